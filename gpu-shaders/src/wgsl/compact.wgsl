// Gathers coded blocks from their worst-case scratch areas into slices:
// per slice, the block lengths as u16 pairs, then the blocks' words.

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
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read> blocks: array<Block>;
@group(0) @binding(1) var<storage, read> lens: array<u32>;
@group(0) @binding(2) var<storage, read> slice_first: array<u32>;  // slices + 1 entries
@group(0) @binding(3) var<storage, read_write> offs: array<u32>;   // blocks + 1 entries
@group(0) @binding(4) var<storage, read> scratch: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

const SCAN: u32 = 256u;
var<workgroup> sums: array<u32, 256>;

// Words of slice s's length table.
fn table_words(s: u32) -> u32 {
    return (slice_first[s + 1u] - slice_first[s] + 1u) / 2u;
}

// One workgroup: offs[b] = where block b's words go; offs[blocks] = total words.
@compute @workgroup_size(256)
fn scan(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let chunk = (p.blocks + SCAN - 1u) / SCAN;
    let lo = min(t * chunk, p.blocks);
    let hi = min(lo + chunk, p.blocks);
    var s = 0u;
    for (var b = lo; b < hi; b++) {
        s += lens[b];
        if (b == slice_first[blocks[b].slice]) { s += table_words(blocks[b].slice); }
    }
    sums[t] = s;
    workgroupBarrier();
    if (t == 0u) {
        var run = 0u;
        for (var i = 0u; i < SCAN; i++) {
            let v = sums[i];
            sums[i] = run;
            run += v;
        }
    }
    workgroupBarrier();
    var at = sums[t];
    for (var b = lo; b < hi; b++) {
        if (b == slice_first[blocks[b].slice]) { at += table_words(blocks[b].slice); }
        offs[b] = at;
        at += lens[b];
    }
    if (hi == p.blocks && lo < hi) { offs[p.blocks] = at; }
    if (p.blocks == 0u && t == 0u) { offs[0] = 0u; }
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
    let dst = offs[b];
    for (var i = lid.x; i < n; i += 64u) {
        out[dst + i] = scratch[blk.scratch + i];
    }
    let first = slice_first[blk.slice];
    let local = b - first;
    if (lid.x == 0u && local % 2u == 0u) {
        let table = offs[first] - table_words(blk.slice);
        var v = n & 0xffffu;
        if (b + 1u < slice_first[blk.slice + 1u]) { v |= (lens[b + 1u] & 0xffffu) << 16u; }
        out[table + local / 2u] = v;
    }
}
