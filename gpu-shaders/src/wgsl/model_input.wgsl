// Exact area sums of the detector's model input (twin: engine/detect/src/input.rs,
// `picture_sums`, whose `AreaSums` documentation is the specification).
//
// Samples are u16 packed two per u32 word (low half first), each plane starting
// on a word: the codec's sample buffer. The driver uploads the twin's own taps
// (source index, weight) per output column and per output row, so both sides
// weigh the same samples by the same integers. A band of source rows goes
// through both passes at a time; its partial sums add to those of earlier bands.
//
// `horizontal`: one thread per (source row of the band, output column): the
//   row's weighted sum `Σ wx · v`. Weights of one output column add up to the
//   frame width W, so the sum is at most W · 65535, below 2^32 for W ≤ 65536
//   (the driver refuses wider sources).
// `vertical`: one thread per output value: `Σ wy · h` over the output's row
//   taps that fall in the band, a 64-bit sum held as two u32 words (lo, hi)
//   and added to what `sums` holds. The whole sum is below 2^48.

struct Params {
    src0: u32,   // sample index in `src` of the plane's first row in the band
    pw: u32,     // plane width: samples per row
    r0: u32,     // first plane row of the band
    rows: u32,   // plane rows in the band
    out_w: u32,  // output width
    out_h: u32,  // output height
    htab: u32,   // first word in `taps` of the plane's column table
    vtab: u32,   // first word in `taps` of the plane's row table
    h0: u32,     // first word in `h` of the plane's row sums
    dst0: u32,   // first output value of the plane (two words each in `sums`)
    _p0: u32,
    _p1: u32,
}

// A tap table of n outputs at word t: taps[t + o] .. taps[t + o + 1] are the
// words of output o's pairs (source index, weight).
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> taps: array<u32>;
@group(0) @binding(2) var<storage, read_write> h: array<u32>;
@group(0) @binding(3) var<storage, read_write> sums: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
// Loops take two taps per iteration: lavapipe (llvmpipe) ends a loop after
// about 65500 iterations, and an output has up to 65536 taps (a side of 65536
// pixels, the driver's limit, to one output).

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

fn sample(i: u32) -> u32 {
    return (src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
}

// a · b as (lo, hi), from 16-bit halves.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let lo = (p00 & 0xffffu) | (mid << 16u);
    let hi = a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(lo, hi);
}

fn add_wide(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

@compute @workgroup_size(64)
fn horizontal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.out_w) { return; }
    let ox = i % p.out_w;
    let row = p.src0 + (i / p.out_w) * p.pw;
    let end = taps[p.htab + ox + 1u];
    var acc = 0u;
    var k = taps[p.htab + ox];
    for (; k + 2u < end; k += 4u) {
        acc += taps[k + 1u] * sample(row + taps[k]) + taps[k + 3u] * sample(row + taps[k + 2u]);
    }
    if (k < end) {
        acc += taps[k + 1u] * sample(row + taps[k]);
    }
    h[p.h0 + i] = acc;
}

// wy · h of the row tap at word k for column ox, zero when the row is not in the band.
fn row_term(k: u32, ox: u32) -> vec2<u32> {
    let r = taps[k];
    if (r < p.r0 || r >= p.r0 + p.rows) { return vec2<u32>(0u, 0u); }
    return mul_wide(taps[k + 1u], h[p.h0 + (r - p.r0) * p.out_w + ox]);
}

@compute @workgroup_size(64)
fn vertical(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.out_h * p.out_w) { return; }
    let oy = i / p.out_w;
    let ox = i % p.out_w;
    let end = taps[p.vtab + oy + 1u];
    var acc = vec2<u32>(0u, 0u);
    var k = taps[p.vtab + oy];
    for (; k + 2u < end; k += 4u) {
        acc = add_wide(acc, row_term(k, ox));
        acc = add_wide(acc, row_term(k + 2u, ox));
    }
    if (k < end) {
        acc = add_wide(acc, row_term(k, ox));
    }
    let at = 2u * (p.dst0 + i);
    let total = add_wide(vec2<u32>(sums[at], sums[at + 1u]), acc);
    sums[at] = total.x;
    sums[at + 1u] = total.y;
}
