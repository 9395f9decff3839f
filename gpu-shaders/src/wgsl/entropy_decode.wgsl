// The block decoder: one invocation decodes one block and writes its
// dequantised coefficients (twin: decode_block in engine/src/codec/entropy.rs).
// Prepended with entropy_common.wgsl.

struct Params {
    blocks: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read> steps: array<u32>;
@group(0) @binding(3) var<storage, read> offs: array<u32>;
@group(0) @binding(4) var<storage, read> lens: array<u32>;
@group(0) @binding(5) var<storage, read_write> coef: array<i32>;
@group(0) @binding(6) var<storage, read_write> errors: array<atomic<u32>>;
@group(0) @binding(7) var<uniform> p: Params;

var<private> blk: Block;
var<private> step: u32;
var<private> start: u32;
var<private> limit: u32;   // bits in the block
var<private> pos: u32;     // bit position
var<private> bad: bool;

fn word(i: u32) -> u32 {
    if (i >= limit / 32u) { return 0u; }
    return words[start + i];
}

fn peek32() -> u32 {
    let w = pos / 32u;
    let s = pos % 32u;
    let hi = word(w);
    if (s == 0u) { return hi; }
    return (hi << s) | (word(w + 1u) >> (32u - s));
}

fn advance(n: u32) {
    pos += n;
    if (pos > limit) { bad = true; }
}

fn read_bits(n: u32) -> u32 {
    if (n == 0u) { return 0u; }
    let v = peek32() >> (32u - n);
    advance(n);
    return v;
}

fn read_rice(k: u32) -> u32 {
    let z = min(countLeadingZeros(peek32()), ESCAPE);
    if (z < ESCAPE) {
        advance(z + 1u);
        return (z << k) | read_bits(k);
    }
    advance(ESCAPE);
    return read_bits(32u);
}

// The middle of q's interval, steps in sixteenths (16 = lossless).
fn dequant(q: i32) -> i32 {
    if (step == STEP_ONE || q == 0) { return q; }
    let m = i32((u32(abs(q)) * step + step / 2u) >> 4u);
    return select(m, -m, q < 0);
}

// Quantised values go into the block first (the contexts read them back);
// `dequant_block` reconstructs once the block is complete.
fn put_coef(x: u32, y: u32, q: i32) {
    coef[blk.offset + y * blk.stride + x] = q;
}

fn mag(x: u32, y: u32) -> u32 {
    return magnitude(coef[blk.offset + y * blk.stride + x]);
}

fn dequant_block() {
    if (step == STEP_ONE) { return; }
    for (var y = 0u; y < blk.height; y++) {
        for (var x = 0u; x < blk.width; x++) {
            let i = blk.offset + y * blk.stride + x;
            coef[i] = dequant(coef[i]);
        }
    }
}

@compute @workgroup_size(64)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = gid.y * nwg.x * 64u + gid.x;
    if (b >= p.blocks) { return; }
    blk = blocks[b];
    step = block_step();
    start = offs[b];
    limit = lens[b] * 32u;
    pos = 0u;
    bad = false;
    let w = blk.width;
    let h = blk.height;
    if (read_bits(1u) == 1u) {
        let wb = read_bits(6u);
        if (wb > 32u) { bad = true; }
        for (var y = 0u; y < h && !bad; y++) {
            for (var x = 0u; x < w && !bad; x++) {
                put_coef(x, y, unzigzag(read_bits(wb)));
            }
        }
    } else {
        model_reset();
        for (var y = 0u; y < h && !bad; y++) {
            var x = 0u;
            var a = 0u;
            while (x < w && !bad) {
                var bb = 0u; var c = 0u; var d = 0u;
                if (y > 0u) {
                    bb = mag(x, y - 1u);
                    if (x > 0u) { c = mag(x - 1u, y - 1u); }
                    if (x + 1u < w) { d = mag(x + 1u, y - 1u); }
                }
                let t = 2u * a + 2u * bb + c + d;
                if (t > 0u) {
                    let cx = context(t);
                    let u = read_rice(model_k(cx));
                    model_update(cx, u);
                    let q = unzigzag(u);
                    put_coef(x, y, q);
                    a = magnitude(q);
                    x += 1u;
                    continue;
                }
                loop {
                    if (bad) { break; }
                    if (read_bits(1u) == 1u) {
                        let seg = 1u << J[ri];
                        let n = min(seg, w - x);
                        for (var i = 0u; i < n; i++) { put_coef(x + i, y, 0); }
                        x += n;
                        a = 0u;
                        if (n == seg) { ri = min(ri + 1u, 31u); }
                        if (x == w) { break; }
                    } else {
                        let rest = read_bits(J[ri]);
                        if (rest >= w - x) { bad = true; break; }
                        for (var i = 0u; i < rest; i++) { put_coef(x + i, y, 0); }
                        x += rest;
                        if (ri > 0u) { ri -= 1u; }
                        let u = read_rice(model_k(RUN_CONTEXT));
                        model_update(RUN_CONTEXT, u);
                        if (u == 0xffffffffu) { bad = true; break; }
                        let q = unzigzag(u + 1u);
                        put_coef(x, y, q);
                        a = magnitude(q);
                        x += 1u;
                        break;
                    }
                }
            }
        }
    }
    if (bad) {
        atomicMin(&errors[0], b);
        atomicAdd(&errors[1], 1u);
        return;
    }
    dequant_block();
}
