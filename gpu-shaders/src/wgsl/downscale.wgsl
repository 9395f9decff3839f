// Box downscale to 4:2:0 with BT.709 limited-range conversion of RGB, for the
// AV1 path (twin: engine/av1/src/downscale.rs, `downscale_420`, whose
// documentation is the specification followed step by step here).
//
// Samples, in and out, are u16 packed two per u32 word (low half first), each
// plane starting on a word boundary. One dispatch computes one output plane
// (`plane`, `rgb_luma`) or both chroma planes (`rgb_chroma`) of one stripe of
// rows; the driver uploads the source rows the stripe's boxes cover, so row
// `oy` of the stripe reads source rows from `oy * bh` on, clamped to the
// stripe's last row (which is the picture's last row whenever a box reaches
// past it). Each thread writes one output word: two horizontally adjacent
// samples in raster order, which may sit on two rows when the width is odd.

struct Params {
    src0: u32,      // first word of the source plane (red for RGB) in `src`
    src1: u32,      // green (RGB only)
    src2: u32,      // blue (RGB only)
    pw: u32,        // source plane width
    ph: u32,        // source plane rows present in this stripe
    bw: u32,        // box width
    bh: u32,        // box height
    log2n: u32,     // log2(bw * bh)
    ow: u32,        // output plane width
    count: u32,     // output samples of the plane in this stripe
    dst0: u32,      // first word of the output plane (Cb for rgb_chroma)
    dst1: u32,      // first word of the Cr plane (rgb_chroma only)
    in_bits: u32,   // bits of the averaged values: the source depth, 16 for RGB
    out_bits: u32,  // output depth, 8 or 10
    maxv: u32,      // the source depth's largest value (RGB clamps to it)
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;

fn word_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

// Sample `i` of the plane whose first word is `base`.
fn sample(base: u32, i: u32) -> u32 {
    let w = src[base + (i >> 1u)];
    return (w >> ((i & 1u) * 16u)) & 0xffffu;
}

// Source sample index of box element (i, j) of output sample (ox, oy), with
// edge samples repeated past the right and bottom borders.
fn box_at(ox: u32, oy: u32, i: u32, j: u32) -> u32 {
    let x = min(ox * p.bw + i, p.pw - 1u);
    let y = min(oy * p.bh + j, p.ph - 1u);
    return y * p.pw + x;
}

// `requantize`: a `from`-bit average as a `to`-bit sample.
fn requantize(avg: u32) -> u32 {
    let maxo = (1u << p.out_bits) - 1u;
    var v: u32;
    if (p.in_bits > p.out_bits) {
        let s = p.in_bits - p.out_bits;
        v = (avg + (1u << (s - 1u))) >> s;
    } else {
        v = avg << (p.out_bits - p.in_bits);
    }
    return min(v, maxo);
}

// The rounded box average of a sum: `(sum + n/2) / n`, `n` a power of two.
fn average(sum: u32) -> u32 {
    return (sum + ((1u << p.log2n) >> 1u)) >> p.log2n;
}

// Step 1 of `bt709_limited16`: clamp to the source depth, expand to 16 bits.
fn expand16(c: u32) -> u32 {
    return (min(c, p.maxv) * 65535u + (p.maxv >> 1u)) / p.maxv;
}

fn rgb16(i: u32) -> vec3<u32> {
    return vec3<u32>(
        expand16(sample(p.src0, i)),
        expand16(sample(p.src1, i)),
        expand16(sample(p.src2, i)),
    );
}

// Steps 2 and 3 of `bt709_limited16`.
fn luma16(c: vec3<u32>) -> u32 {
    return ((11919u * c.x + 40098u * c.y + 4048u * c.z + 32768u) >> 16u) + 4096u;
}

fn cb16(c: vec3<u32>) -> u32 {
    let r = i32(c.x);
    let g = i32(c.y);
    let b = i32(c.z);
    return u32(((-6570 * r - 22102 * g + 28672 * b + 32768) >> 16u) + 32768);
}

fn cr16(c: vec3<u32>) -> u32 {
    let r = i32(c.x);
    let g = i32(c.y);
    let b = i32(c.z);
    return u32(((28672 * r - 26043 * g - 2629 * b + 32768) >> 16u) + 32768);
}

// One output sample of a YCbCr plane.
fn plane_sample(s: u32) -> u32 {
    let ox = s % p.ow;
    let oy = s / p.ow;
    var sum = 0u;
    for (var j = 0u; j < p.bh; j++) {
        for (var i = 0u; i < p.bw; i++) {
            sum += sample(p.src0, box_at(ox, oy, i, j));
        }
    }
    return requantize(average(sum));
}

// One output luma sample of an RGB picture.
fn luma_sample(s: u32) -> u32 {
    let ox = s % p.ow;
    let oy = s / p.ow;
    var sum = 0u;
    for (var j = 0u; j < p.bh; j++) {
        for (var i = 0u; i < p.bw; i++) {
            sum += luma16(rgb16(box_at(ox, oy, i, j)));
        }
    }
    return requantize(average(sum));
}

// One output Cb and Cr sample of an RGB picture.
fn chroma_sample(s: u32) -> vec2<u32> {
    let ox = s % p.ow;
    let oy = s / p.ow;
    var cb = 0u;
    var cr = 0u;
    for (var j = 0u; j < p.bh; j++) {
        for (var i = 0u; i < p.bw; i++) {
            let c = rgb16(box_at(ox, oy, i, j));
            cb += cb16(c);
            cr += cr16(c);
        }
    }
    return vec2<u32>(requantize(average(cb)), requantize(average(cr)));
}

@compute @workgroup_size(64)
fn plane(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = word_index(gid, nwg);
    let s = 2u * k;
    if (s >= p.count) { return; }
    var hi = 0u;
    if (s + 1u < p.count) {
        hi = plane_sample(s + 1u);
    }
    dst[p.dst0 + k] = plane_sample(s) | (hi << 16u);
}

@compute @workgroup_size(64)
fn rgb_luma(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = word_index(gid, nwg);
    let s = 2u * k;
    if (s >= p.count) { return; }
    var hi = 0u;
    if (s + 1u < p.count) {
        hi = luma_sample(s + 1u);
    }
    dst[p.dst0 + k] = luma_sample(s) | (hi << 16u);
}

@compute @workgroup_size(64)
fn rgb_chroma(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = word_index(gid, nwg);
    let s = 2u * k;
    if (s >= p.count) { return; }
    let lo = chroma_sample(s);
    var hi = vec2<u32>(0u, 0u);
    if (s + 1u < p.count) {
        hi = chroma_sample(s + 1u);
    }
    dst[p.dst0 + k] = lo.x | (hi.x << 16u);
    dst[p.dst1 + k] = lo.y | (hi.y << 16u);
}
