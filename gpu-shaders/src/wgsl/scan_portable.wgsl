// A workgroup-wide exclusive scan of 256 values without subgroup
// operations (lavapipe may lack them): Hillis–Steele in workgroup memory.
// Kernels take `ids: ScanIds` and call `scan_begin(ids)` first.

struct ScanIds {
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

const SCAN: u32 = 256u;
var<workgroup> scan_buf: array<u32, 256>;
// This invocation's place in the scan (which chunk of the work it sums).
var<private> scan_k: u32;

fn scan_begin(ids: ScanIds) {
    scan_k = ids.lid.x;
}

// (the sum of the values before this invocation's, the sum of all).
// Call from uniform control flow.
fn wg_scan(v: u32) -> vec2<u32> {
    let t = scan_k;
    scan_buf[t] = v;
    workgroupBarrier();
    for (var off = 1u; off < SCAN; off <<= 1u) {
        var x = 0u;
        if (t >= off) { x = scan_buf[t - off]; }
        workgroupBarrier();
        scan_buf[t] += x;
        workgroupBarrier();
    }
    let inclusive = scan_buf[t];
    let total = scan_buf[SCAN - 1u];
    workgroupBarrier();
    return vec2<u32>(inclusive - v, total);
}
