// v210 (packed 10-bit 4:2:2, as SDI capture cards deliver it) in and out of
// the codec (twin: engine/media/src/frame/v210.rs unpack and pack).
//
// Six pixels (6 Y, 3 Cb, 3 Cr) fill four words, three 10-bit samples per
// word in bits 0-9, 10-19, 20-29:
//   word 0: Cb0 Y0 Cr0    word 1: Y1 Cb1 Y2    word 2: Cr1 Y3 Cb2    word 3: Y4 Cr2 Y5
// A row is a whole number of 48-pixel (128-byte) groups; samples past the
// width are zero.

struct Params {
    width: u32,      // pixels
    height: u32,     // rows
    row_words: u32,  // words per v210 row
    shift: i32,      // level shift, 1 << (bit_depth - 1)
    maxv: i32,       // largest sample value
    y_words: u32,    // words of the Y plane in `samples` (chroma planes follow)
    c_words: u32,    // words of each chroma plane in `samples`
    coef_cb: u32,    // first coefficient of Cb (Y at 0; Cr after Cb)
}

@group(0) @binding(0) var<storage, read_write> raw: array<u32>;
@group(0) @binding(1) var<storage, read_write> samples: array<u32>;
@group(0) @binding(2) var<storage, read_write> coef: array<i32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 64u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

// Sample `x` of row `y` of plane `plane` (0 Y, 1 Cb, 2 Cr) from the packed rows.
fn unpacked(plane: u32, x: u32, y: u32) -> u32 {
    var g: u32;
    var word: u32;
    var slot: u32;
    if (plane == 0u) {
        g = x / 6u;
        let k = x % 6u;
        word = (2u * k + 1u) / 3u;
        slot = (2u * k + 1u) % 3u;
    } else if (plane == 1u) {
        g = x / 3u;
        let k = x % 3u;
        word = k;
        slot = k;
    } else {
        g = x / 3u;
        let k = x % 3u;
        word = select(k + 1u, 0u, k == 0u);
        slot = (k + 2u) % 3u;
    }
    let v = raw[y * p.row_words + 4u * g + word];
    return (v >> (10u * slot)) & 0x3ffu;
}

// One word (two samples) of the planar sample buffer per invocation.
@compute @workgroup_size(64)
fn unpack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.y_words + 2u * p.c_words) { return; }
    var plane = 0u;
    var j = k;
    var pw = p.width;
    if (k >= p.y_words) {
        plane = 1u + (k - p.y_words) / p.c_words;
        j = (k - p.y_words) % p.c_words;
        pw = (p.width + 1u) / 2u;
    }
    let count = pw * p.height;
    let i = 2u * j;
    let lo = unpacked(plane, i % pw, i / pw);
    var hi = 0u;
    if (i + 1u < count) { hi = unpacked(plane, (i + 1u) % pw, (i + 1u) / pw); }
    samples[k] = lo | (hi << 16u);
}

// Sample of plane `plane` at (x, y) from the decoded coefficients; zero past the width.
fn packed(plane: u32, x: u32, y: u32) -> u32 {
    var pw = p.width;
    var at = 0u;
    if (plane > 0u) {
        pw = (p.width + 1u) / 2u;
        at = p.coef_cb + (plane - 1u) * pw * p.height;
    }
    if (x >= pw) { return 0u; }
    let c = coef[at + y * pw + x];
    return u32(clamp(c + p.shift, 0, p.maxv)) & 0x3ffu;
}

// One v210 word per invocation.
@compute @workgroup_size(64)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.height * p.row_words) { return; }
    let y = k / p.row_words;
    let i = k % p.row_words;
    let g = i / 4u;
    var v = 0u;
    if (6u * g < p.width) {
        let yx = 6u * g;
        let cx = 3u * g;
        switch (i % 4u) {
            case 0u: {
                v = packed(1u, cx, y) | (packed(0u, yx, y) << 10u) | (packed(2u, cx, y) << 20u);
            }
            case 1u: {
                v = packed(0u, yx + 1u, y) | (packed(1u, cx + 1u, y) << 10u) | (packed(0u, yx + 2u, y) << 20u);
            }
            case 2u: {
                v = packed(2u, cx + 1u, y) | (packed(0u, yx + 3u, y) << 10u) | (packed(1u, cx + 2u, y) << 20u);
            }
            default: {
                v = packed(0u, yx + 4u, y) | (packed(2u, cx + 2u, y) << 10u) | (packed(0u, yx + 5u, y) << 20u);
            }
        }
    }
    raw[k] = v;
}
