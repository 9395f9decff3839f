// Where each coded block lies in a stream: one workgroup per slice reads the
// slice's u16 block lengths, checks them and scans them into word offsets
// (twin: engine/codec/src/stream.rs split_slice). Prepended with a
// scan_*.wgsl.

struct Params {
    slices: u32,
    blocks: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read> slice_first: array<u32>;  // slices + 1 entries
// Per slice: its first word in `words` and the bytes after its length table.
@group(0) @binding(2) var<storage, read> starts: array<u32>;
@group(0) @binding(3) var<storage, read_write> offs: array<u32>;
@group(0) @binding(4) var<storage, read_write> lens: array<u32>;
// [2]: slices - the first slice whose table is wrong (0: none); see entropy_decode.wgsl.
@group(0) @binding(5) var<storage, read_write> errors: array<atomic<u32>>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> wrong: atomic<u32>;

fn block_len(base: u32, i: u32) -> u32 {
    return (words[base + (i >> 1u)] >> ((i & 1u) * 16u)) & 0xffffu;
}

@compute @workgroup_size(256)
fn table(ids: ScanIds) {
    scan_begin(ids);
    let s = ids.wid.y * ids.nwg.x + ids.wid.x;
    if (s >= p.slices) { return; }
    if (ids.lid.x == 0u) { atomicStore(&wrong, 0u); }
    workgroupBarrier();
    let first = slice_first[s];
    let n = slice_first[s + 1u] - first;
    let base = starts[2u * s];
    let body = starts[2u * s + 1u] / 4u;
    let body_bytes = starts[2u * s + 1u];
    let t = scan_k;
    let chunk = (n + SCAN - 1u) / SCAN;
    let lo = min(t * chunk, n);
    let hi = min(lo + chunk, n);
    // A chunk above the body cannot add up right; capping keeps the scan
    // from wrapping (body < 2^30 words).
    var sum = 0u;
    var bad = false;
    for (var i = lo; i < hi; i++) {
        let l = block_len(base, i);
        if (l == 0u) { bad = true; }
        sum = min(sum + l, body + 1u);
    }
    let scanned = wg_scan(sum);
    let before = scanned.x;
    if (sum > body || before + sum > body) { bad = true; }
    if (t == 0u && (scanned.y != body || body * 4u != body_bytes)) { bad = true; }
    let table = (n + 1u) / 2u;
    var at = base + table + before;
    for (var i = lo; i < hi; i++) {
        let l = block_len(base, i);
        offs[first + i] = at;
        lens[first + i] = l;
        at += l;
    }
    if (bad) { atomicStore(&wrong, 1u); }
    workgroupBarrier();
    if (ids.lid.x == 0u && atomicLoad(&wrong) != 0u) {
        atomicMax(&errors[2], p.slices - s);
    }
}
