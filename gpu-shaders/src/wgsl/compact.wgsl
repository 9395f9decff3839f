// Gathers coded blocks from their worst-case scratch areas into slices:
// per slice, the block lengths as u16 pairs, then the blocks' words
// (twin: engine/codec/src/stream.rs write_slice). Prepended with a
// scan_*.wgsl.
//
// `out` starts with a head of `p.head` words that the host reads first:
// the payload's words, then the words of each slice. The payload follows.

struct Block {
    offset: u32,
    stride: u32,
    width: u32,
    height: u32,
    band: u32,
    slice: u32,
    scratch: u32,
    _pad: u32,
}

struct Params {
    blocks: u32,
    slices: u32,
    head: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read> blocks: array<Block>;
@group(0) @binding(1) var<storage, read> lens: array<u32>;
@group(0) @binding(2) var<storage, read> slice_first: array<u32>;  // slices + 1 entries
@group(0) @binding(3) var<storage, read_write> offs: array<u32>;   // blocks + 1 entries
@group(0) @binding(4) var<storage, read> scratch: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

// Words of slice s's length table.
fn table_words(s: u32) -> u32 {
    return (slice_first[s + 1u] - slice_first[s] + 1u) / 2u;
}

// One workgroup: offs[b] = where block b's words go in the payload;
// offs[blocks] = the payload's words; then the head.
@compute @workgroup_size(256)
fn scan(ids: ScanIds) {
    scan_begin(ids);
    let t = scan_k;
    let chunk = (p.blocks + SCAN - 1u) / SCAN;
    let lo = min(t * chunk, p.blocks);
    let hi = min(lo + chunk, p.blocks);
    var s = 0u;
    for (var b = lo; b < hi; b++) {
        s += lens[b];
        if (b == slice_first[blocks[b].slice]) { s += table_words(blocks[b].slice); }
    }
    var at = wg_scan(s).x;
    for (var b = lo; b < hi; b++) {
        if (b == slice_first[blocks[b].slice]) { at += table_words(blocks[b].slice); }
        offs[b] = at;
        at += lens[b];
    }
    if (hi == p.blocks && lo < hi) { offs[p.blocks] = at; }
    if (p.blocks == 0u && t == 0u) { offs[0] = 0u; }
    storageBarrier();
    workgroupBarrier();
    // The head: the payload's words, then each slice's (its table and blocks).
    if (ids.lid.x == 0u) { out[0] = offs[p.blocks]; }
    for (var sl = ids.lid.x; sl < p.slices; sl += SCAN) {
        let first = slice_first[sl];
        let start = offs[first] - table_words(sl);
        var end = offs[p.blocks];
        if (sl + 1u < p.slices) { end = offs[slice_first[sl + 1u]] - table_words(sl + 1u); }
        out[1u + sl] = end - start;
    }
}

// One workgroup per block: copy its words; the first lane of an even block
// also writes the table word holding its length and its right neighbour's.
@compute @workgroup_size(64)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    if (b >= p.blocks) { return; }
    let blk = blocks[b];
    let n = lens[b];
    let dst = p.head + offs[b];
    for (var i = lid.x; i < n; i += 64u) {
        out[dst + i] = scratch[blk.scratch + i];
    }
    let first = slice_first[blk.slice];
    let local = b - first;
    if (lid.x == 0u && local % 2u == 0u) {
        let table = p.head + offs[first] - table_words(blk.slice);
        var v = n & 0xffffu;
        if (b + 1u < slice_first[blk.slice + 1u]) { v |= (lens[b + 1u] & 0xffffu) << 16u; }
        out[table + local / 2u] = v;
    }
}
