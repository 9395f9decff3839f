// Component transforms of the med8k wavelet codec (twin: engine/codec/src/transform.rs).
//
// Samples arrive as u16 packed two per u32 word (low half first), each plane
// starting on a word boundary. Coefficients are i32, plane after plane.

struct Params {
    count: u32,   // samples per plane
    src: u32,     // first sample of the plane in `samples` (even)
    dst: u32,     // first coefficient of the plane (or of plane 0 for rct/bands)
    shift: i32,   // level shift, 1 << (bit_depth - 1)
    maxv: i32,    // largest sample value
    bands: u32,   // planes for the band transform
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read_write> samples: array<u32>;
@group(0) @binding(1) var<storage, read_write> coef: array<i32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

fn sample(i: u32) -> i32 {
    let w = samples[i >> 1u];
    return i32((w >> ((i & 1u) * 16u)) & 0xffffu);
}

@compute @workgroup_size(64)
fn forward_plane(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    coef[p.dst + i] = sample(p.src + i) - p.shift;
}

@compute @workgroup_size(64)
fn forward_rct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let r = coef[p.dst + i];
    let g = coef[p.dst + p.count + i];
    let b = coef[p.dst + 2u * p.count + i];
    coef[p.dst + i] = (r + 2 * g + b) >> 2u;
    coef[p.dst + p.count + i] = b - g;
    coef[p.dst + 2u * p.count + i] = r - g;
}

@compute @workgroup_size(64)
fn inverse_rct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let y = coef[p.dst + i];
    let cb = coef[p.dst + p.count + i];
    let cr = coef[p.dst + 2u * p.count + i];
    let g = y - ((cb + cr) >> 2u);
    coef[p.dst + i] = cr + g;
    coef[p.dst + p.count + i] = g;
    coef[p.dst + 2u * p.count + i] = cb + g;
}

// Two output samples per thread, so no word is written by two threads.
@compute @workgroup_size(64)
fn inverse_plane(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    let i = 2u * k;
    if (i >= p.count) { return; }
    let a = u32(clamp(coef[p.dst + i] + p.shift, 0, p.maxv));
    var b = 0u;
    if (i + 1u < p.count) {
        b = u32(clamp(coef[p.dst + i + 1u] + p.shift, 0, p.maxv));
    }
    samples[(p.src >> 1u) + k] = a | (b << 16u);
}

// The dyadic 5/3 along the band axis, per pixel (at most 64 bands on the GPU).
const MAX_BANDS: u32 = 64u;
var<private> x: array<i32, 64>;
var<private> t: array<i32, 64>;

fn lift_forward(n: u32) {
    let nl = (n + 1u) / 2u;
    let nh = n / 2u;
    for (var i = 0u; i < nh; i++) {
        var right = x[2u * i];
        if (2u * i + 2u < n) { right = x[2u * i + 2u]; }
        t[nl + i] = x[2u * i + 1u] - ((x[2u * i] + right) >> 1u);
    }
    for (var i = 0u; i < nl; i++) {
        let dl = t[nl + max(i, 1u) - 1u];
        let dr = t[nl + min(i, nh - 1u)];
        t[i] = x[2u * i] + ((dl + dr + 2) >> 2u);
    }
    for (var i = 0u; i < n; i++) { x[i] = t[i]; }
}

fn lift_inverse(n: u32) {
    let nl = (n + 1u) / 2u;
    let nh = n / 2u;
    for (var i = 0u; i < nl; i++) {
        let dl = x[nl + max(i, 1u) - 1u];
        let dr = x[nl + min(i, nh - 1u)];
        t[2u * i] = x[i] - ((dl + dr + 2) >> 2u);
    }
    for (var i = 0u; i < nh; i++) {
        var right = t[2u * i];
        if (2u * i + 2u < n) { right = t[2u * i + 2u]; }
        t[2u * i + 1u] = x[nl + i] + ((t[2u * i] + right) >> 1u);
    }
    for (var i = 0u; i < n; i++) { x[i] = t[i]; }
}

@compute @workgroup_size(64)
fn forward_bands(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count || p.bands > MAX_BANDS) { return; }
    for (var b = 0u; b < p.bands; b++) { x[b] = coef[p.dst + b * p.count + i]; }
    var n = p.bands;
    while (n > 1u) {
        lift_forward(n);
        n = (n + 1u) / 2u;
    }
    for (var b = 0u; b < p.bands; b++) { coef[p.dst + b * p.count + i] = x[b]; }
}

@compute @workgroup_size(64)
fn inverse_bands(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count || p.bands > MAX_BANDS) { return; }
    for (var b = 0u; b < p.bands; b++) { x[b] = coef[p.dst + b * p.count + i]; }
    // Levels from the coarsest: lengths bands, ceil(bands/2), ... down to 2.
    var lens: array<u32, 8>;
    var levels = 0u;
    var n = p.bands;
    while (n > 1u) {
        lens[levels] = n;
        levels++;
        n = (n + 1u) / 2u;
    }
    while (levels > 0u) {
        levels--;
        lift_inverse(lens[levels]);
    }
    for (var b = 0u; b < p.bands; b++) { coef[p.dst + b * p.count + i] = x[b]; }
}
