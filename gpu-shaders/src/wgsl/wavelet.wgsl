// The spatial 5/3 lifting per slice (twin: engine/codec/src/transform.rs).
//
// One level of one plane per dispatch. Forward: rows `a -> t`, then columns
// `t -> a`. Inverse: columns `a -> t`, then rows `t -> a`. Both lifting
// steps run in one pass: the invocation of low coefficient i computes the
// highs it needs itself (the neighbours' too), which costs a few loads and
// saves a dispatch and a barrier per step.
//
// Rows: gid.x = low index i along the row, gid.y = plane row.
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

fn ld(i: u32, from_a: bool) -> i32 {
    if (from_a) { return a[i]; }
    return t[i];
}

fn st(i: u32, to_a: bool, v: i32) {
    if (to_a) { a[i] = v; } else { t[i] = v; }
}

// Forward, from `a` (from_a) or `t` into the other: the signal x at
// positions base + k * step becomes lows then highs.
fn forward(l: Line, from_a: bool) {
    let n = l.n;
    let nl = (n + 1u) / 2u;
    let i = l.i;
    if (i >= nl) { return; }
    if (n == 1u) {
        st(l.base, !from_a, ld(l.base, from_a));
        return;
    }
    let nh = n / 2u;
    // High j: x[2j+1] - ((x[2j] + x[2j+2]) >> 1), x[n] = x[n-2].
    let jl = max(i, 1u) - 1u;
    let jr = min(i, nh - 1u);
    let dl = high(l, jl, from_a);
    var dr = dl;
    if (jr != jl) { dr = high(l, jr, from_a); }
    st(l.base + i * l.step, !from_a, ld(l.base + 2u * i * l.step, from_a) + ((dl + dr + 2) >> 2u));
    if (i < nh) {
        st(l.base + (nl + i) * l.step, !from_a, dr);
    }
}

fn high(l: Line, j: u32, from_a: bool) -> i32 {
    let x0 = ld(l.base + 2u * j * l.step, from_a);
    let x1 = ld(l.base + (2u * j + 1u) * l.step, from_a);
    var x2 = x0;
    if (2u * j + 2u < l.n) { x2 = ld(l.base + (2u * j + 2u) * l.step, from_a); }
    return x1 - ((x0 + x2) >> 1u);
}

// Inverse, from `a` (from_a) or `t` into the other: lows then highs become
// the signal.
fn inverse(l: Line, from_a: bool) {
    let n = l.n;
    let nl = (n + 1u) / 2u;
    let i = l.i;
    if (i >= nl) { return; }
    if (n == 1u) {
        st(l.base, !from_a, ld(l.base, from_a));
        return;
    }
    let nh = n / 2u;
    let e0 = even(l, i, nl, nh, from_a);
    st(l.base + 2u * i * l.step, !from_a, e0);
    if (i < nh) {
        var e1 = e0;
        if (2u * i + 2u < n) { e1 = even(l, i + 1u, nl, nh, from_a); }
        let h = ld(l.base + (nl + i) * l.step, from_a);
        st(l.base + (2u * i + 1u) * l.step, !from_a, h + ((e0 + e1) >> 1u));
    }
}

// Signal sample 2i from low i and the highs either side.
fn even(l: Line, i: u32, nl: u32, nh: u32, from_a: bool) -> i32 {
    let dl = ld(l.base + (nl + max(i, 1u) - 1u) * l.step, from_a);
    let dr = ld(l.base + (nl + min(i, nh - 1u)) * l.step, from_a);
    return ld(l.base + i * l.step, from_a) - ((dl + dr + 2) >> 2u);
}

@compute @workgroup_size(64)
fn fwd_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = row_line(gid);
    if (l.ok) { forward(l, true); }
}
@compute @workgroup_size(64)
fn fwd_cols(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = col_line(gid);
    if (l.ok) { forward(l, false); }
}
@compute @workgroup_size(64)
fn inv_cols(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = col_line(gid);
    if (l.ok) { inverse(l, true); }
}
@compute @workgroup_size(64)
fn inv_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = row_line(gid);
    if (l.ok) { inverse(l, false); }
}
