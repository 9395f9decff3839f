// The spatial 5/3 lifting per slice (twin: engine/src/codec/transform.rs).
//
// One level of one plane per dispatch. Forward: rows `a -> t`, then columns
// `t -> a`. Inverse: columns `a -> t`, then rows `t -> a`. The `_hi` and `_lo`
// entry points are the two lifting steps and run in the order the lifting
// needs (forward: hi then lo; inverse: lo then hi).
//
// Rows: gid.x = position i along the row, gid.y = plane row.
// Columns: gid.x = column, gid.y = plane row standing for (slice, i).

struct Params {
    offset: u32,      // first coefficient of the plane
    stride: u32,      // plane width
    width: u32,       // width of the region at this level
    slice_rows: u32,  // rows per slice in this plane
    height: u32,      // plane height
    level: u32,       // levels already applied (region height = rows halved this often)
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read_write> a: array<i32>;
@group(0) @binding(1) var<storage, read_write> t: array<i32>;
@group(0) @binding(2) var<uniform> p: Params;

// Rows of slice `s` in the region at this level.
fn region_rows(s: u32) -> u32 {
    var h = min(p.slice_rows, p.height - s * p.slice_rows);
    for (var l = 0u; l < p.level; l++) { h = (h + 1u) / 2u; }
    return h;
}

struct Line {
    base: u32,
    step: u32,
    n: u32,
    i: u32,
    ok: bool,
}

fn row_line(gid: vec3<u32>) -> Line {
    let y = gid.y;
    var l: Line;
    l.ok = false;
    if (y >= p.height) { return l; }
    let s = y / p.slice_rows;
    let r = y - s * p.slice_rows;
    if (r >= region_rows(s)) { return l; }
    l.base = p.offset + y * p.stride;
    l.step = 1u;
    l.n = p.width;
    l.i = gid.x;
    l.ok = true;
    return l;
}

fn col_line(gid: vec3<u32>) -> Line {
    let y = gid.y;
    var l: Line;
    l.ok = false;
    if (y >= p.height || gid.x >= p.width) { return l; }
    let s = y / p.slice_rows;
    l.base = p.offset + s * p.slice_rows * p.stride + gid.x;
    l.step = p.stride;
    l.n = region_rows(s);
    l.i = y - s * p.slice_rows;
    l.ok = true;
    return l;
}

// Forward high step: t[nl + i] from a.
fn fwd_hi(l: Line, to_t: bool) {
    let n = l.n;
    let nh = n / 2u;
    if (n < 2u || l.i >= nh) { return; }
    let nl = (n + 1u) / 2u;
    let i = l.i;
    var x0: i32; var x1: i32; var x2: i32;
    if (to_t) {
        x0 = a[l.base + 2u * i * l.step];
        x1 = a[l.base + (2u * i + 1u) * l.step];
        x2 = x0;
        if (2u * i + 2u < n) { x2 = a[l.base + (2u * i + 2u) * l.step]; }
        t[l.base + (nl + i) * l.step] = x1 - ((x0 + x2) >> 1u);
    } else {
        x0 = t[l.base + 2u * i * l.step];
        x1 = t[l.base + (2u * i + 1u) * l.step];
        x2 = x0;
        if (2u * i + 2u < n) { x2 = t[l.base + (2u * i + 2u) * l.step]; }
        a[l.base + (nl + i) * l.step] = x1 - ((x0 + x2) >> 1u);
    }
}

fn fwd_lo(l: Line, to_t: bool) {
    let n = l.n;
    let nl = (n + 1u) / 2u;
    if (l.i >= nl) { return; }
    let i = l.i;
    if (n == 1u) {
        if (to_t) { t[l.base] = a[l.base]; } else { a[l.base] = t[l.base]; }
        return;
    }
    let nh = n / 2u;
    let il = l.base + (nl + max(i, 1u) - 1u) * l.step;
    let ir = l.base + (nl + min(i, nh - 1u)) * l.step;
    if (to_t) {
        t[l.base + i * l.step] = a[l.base + 2u * i * l.step] + ((t[il] + t[ir] + 2) >> 2u);
    } else {
        a[l.base + i * l.step] = t[l.base + 2u * i * l.step] + ((a[il] + a[ir] + 2) >> 2u);
    }
}

// Inverse low step: signal[2i] from coefficients.
fn inv_lo(l: Line, to_t: bool) {
    let n = l.n;
    let nl = (n + 1u) / 2u;
    if (l.i >= nl) { return; }
    let i = l.i;
    if (n == 1u) {
        if (to_t) { t[l.base] = a[l.base]; } else { a[l.base] = t[l.base]; }
        return;
    }
    let nh = n / 2u;
    let il = l.base + (nl + max(i, 1u) - 1u) * l.step;
    let ir = l.base + (nl + min(i, nh - 1u)) * l.step;
    if (to_t) {
        t[l.base + 2u * i * l.step] = a[l.base + i * l.step] - ((a[il] + a[ir] + 2) >> 2u);
    } else {
        a[l.base + 2u * i * l.step] = t[l.base + i * l.step] - ((t[il] + t[ir] + 2) >> 2u);
    }
}

fn inv_hi(l: Line, to_t: bool) {
    let n = l.n;
    let nh = n / 2u;
    if (n < 2u || l.i >= nh) { return; }
    let nl = (n + 1u) / 2u;
    let i = l.i;
    let i0 = l.base + 2u * i * l.step;
    var i2 = i0;
    if (2u * i + 2u < n) { i2 = l.base + (2u * i + 2u) * l.step; }
    let o = l.base + (2u * i + 1u) * l.step;
    let h = l.base + (nl + i) * l.step;
    if (to_t) {
        t[o] = a[h] + ((t[i0] + t[i2]) >> 1u);
    } else {
        a[o] = t[h] + ((a[i0] + a[i2]) >> 1u);
    }
}

@compute @workgroup_size(64)
fn fwd_rows_hi(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = row_line(gid);
    if (l.ok) { fwd_hi(l, true); }
}
@compute @workgroup_size(64)
fn fwd_rows_lo(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = row_line(gid);
    if (l.ok) { fwd_lo(l, true); }
}
@compute @workgroup_size(64)
fn fwd_cols_hi(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = col_line(gid);
    if (l.ok) { fwd_hi(l, false); }
}
@compute @workgroup_size(64)
fn fwd_cols_lo(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = col_line(gid);
    if (l.ok) { fwd_lo(l, false); }
}
@compute @workgroup_size(64)
fn inv_cols_lo(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = col_line(gid);
    if (l.ok) { inv_lo(l, true); }
}
@compute @workgroup_size(64)
fn inv_cols_hi(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = col_line(gid);
    if (l.ok) { inv_hi(l, true); }
}
@compute @workgroup_size(64)
fn inv_rows_lo(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = row_line(gid);
    if (l.ok) { inv_lo(l, false); }
}
@compute @workgroup_size(64)
fn inv_rows_hi(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = row_line(gid);
    if (l.ok) { inv_hi(l, false); }
}
