// A workgroup-wide exclusive scan of 256 values with subgroup operations
// (wgpu's SUBGROUP feature; naga 30 takes no `enable` directive for them).
// An invocation's place in the scan is its subgroup's index times the
// subgroup size plus its lane, so the scan needs no assumption about how
// invocations are grouped, only that subgroups are full (the workgroup is a
// multiple of every subgroup size a device uses).
// Kernels take `ids: ScanIds` and call `scan_begin(ids)` first.

struct ScanIds {
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
}

const SCAN: u32 = 256u;
var<workgroup> sg_totals: array<u32, 256>;
var<private> scan_k: u32;
var<private> sg_id: u32;
var<private> sg_lane: u32;
var<private> sg_size: u32;

fn scan_begin(ids: ScanIds) {
    sg_id = ids.sg_id;
    sg_lane = ids.sg_lane;
    sg_size = ids.sg_size;
    scan_k = sg_id * sg_size + sg_lane;
}

// (the sum of the values before this invocation's, the sum of all).
// Call from uniform control flow.
fn wg_scan(v: u32) -> vec2<u32> {
    let inclusive = subgroupInclusiveAdd(v);
    if (sg_lane == sg_size - 1u) { sg_totals[sg_id] = inclusive; }
    workgroupBarrier();
    let groups = SCAN / sg_size;
    var before = 0u;
    var total = 0u;
    for (var g = 0u; g < groups; g++) {
        let s = sg_totals[g];
        if (g < sg_id) { before += s; }
        total += s;
    }
    workgroupBarrier();
    return vec2<u32>(before + inclusive - v, total);
}
