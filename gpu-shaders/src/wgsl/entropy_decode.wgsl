// The block decoder: one invocation decodes one block and writes its
// dequantised coefficients (twin: decode_block in engine/codec/src/entropy.rs).
// Prepended with entropy_common.wgsl.
//
// The coefficients are cleared before this kernel runs, so zeros (runs)
// are not written. Bits are read through a 64-bit window (two words),
// refilled one word at a time.

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
// [blocks - first bad block (0: none), bad blocks, slices - first bad slice table (0: none)]
@group(0) @binding(6) var<storage, read_write> errors: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read> order: array<u32>;
@group(0) @binding(8) var<uniform> p: Params;

var<private> blk: Block;
var<private> step: u32;
var<private> start: u32;   // first word of the block in `words`
var<private> nwords: u32;  // words in the block
var<private> limit: u32;   // bits in the block
var<private> pos: u32;     // bits consumed
var<private> bad: bool;
// The window: the next 64 bits from `pos`, most significant first; `avail`
// of them loaded (zeros past the block's end), `next` the next word to load.
var<private> win_hi: u32;
var<private> win_lo: u32;
var<private> avail: u32;
var<private> next: u32;

fn word(i: u32) -> u32 {
    if (i >= nwords) { return 0u; }
    return words[start + i];
}

// Keep at least 33 bits in the window.
fn refill() {
    if (avail > 32u) { return; }
    let w = word(next);
    next += 1u;
    if (avail == 0u) {
        win_hi = w;
        win_lo = 0u;
    } else if (avail < 32u) {
        win_hi |= w >> avail;
        win_lo = w << (32u - avail);
    } else {
        win_lo = w;
    }
    avail += 32u;
}

fn reader_reset() {
    win_hi = 0u;
    win_lo = 0u;
    avail = 0u;
    next = 0u;
    pos = 0u;
    refill();
    refill();
}

// Drop n (<= 32) bits.
fn consume(n: u32) {
    if (n == 0u) { return; }
    if (n == 32u) {
        win_hi = win_lo;
        win_lo = 0u;
    } else {
        win_hi = (win_hi << n) | (win_lo >> (32u - n));
        win_lo <<= n;
    }
    avail -= n;
    pos += n;
    if (pos > limit) { bad = true; }
    refill();
}

fn read_bits(n: u32) -> u32 {
    if (n == 0u) { return 0u; }
    let v = win_hi >> (32u - n);
    consume(n);
    return v;
}

fn read_rice(k: u32) -> u32 {
    let z = min(countLeadingZeros(win_hi), ESCAPE);
    if (z < ESCAPE) {
        consume(z + 1u);
        return (z << k) | read_bits(k);
    }
    consume(ESCAPE);
    return read_bits(32u);
}

// The middle of q's interval, steps in sixteenths (16 = lossless).
fn dequant(q: i32) -> i32 {
    if (step == STEP_ONE || q == 0) { return q; }
    let m = i32((u32(abs(q)) * step + step / 2u) >> 4u);
    return select(m, -m, q < 0);
}

// Quantised values go into the block first (wide blocks read the row above
// back); `dequant_block` reconstructs once the block is complete.
fn put_coef(x: u32, y: u32, q: i32) {
    if (q != 0) {
        coef[blk.offset + y * blk.stride + x] = q;
    }
}

// The magnitude at column x of the row above row y.
fn above(x: u32, y: u32) -> u32 {
    if (narrow) { return row_get(above_row, x); }
    return magnitude(coef[blk.offset + (y - 1u) * blk.stride + x]);
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

@compute @workgroup_size(32)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = gid.y * nwg.x * LANES + gid.x;
    if (i >= p.blocks) { return; }
    let b = order[i];
    lane = lid.x;
    blk = blocks[b];
    step = block_step();
    start = offs[b];
    nwords = lens[b];
    limit = nwords * 32u;
    bad = false;
    reader_reset();
    let w = blk.width;
    let h = blk.height;
    narrow = w <= ROW_MAX;
    above_row = 0u;
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
                let t = activity(x, y, w, a);
                if (t > 0u) {
                    let cx = context(t);
                    let u = read_rice(model_k(cx));
                    model_update(cx, u);
                    let q = unzigzag(u);
                    put_coef(x, y, q);
                    a = magnitude(q);
                    set_mag(x, a);
                    x += 1u;
                    continue;
                }
                // Run mode: each leading one of the window is a whole
                // segment of zeros; a zero interrupts the run.
                a = 0u;
                loop {
                    if (bad) { break; }
                    let ones = countLeadingZeros(~win_hi);
                    if (ones > 0u) {
                        var used = 0u;
                        while (used < ones && x < w) {
                            let seg = 1u << jrun(ri);
                            let n = min(seg, w - x);
                            for (var k = 0u; k < n; k++) { set_mag(x + k, 0u); }
                            x += n;
                            if (n == seg) { ri = min(ri + 1u, 31u); }
                            used += 1u;
                        }
                        consume(used);
                        if (x == w) { break; }
                        continue;
                    }
                    consume(1u);
                    let rest = read_bits(jrun(ri));
                    if (rest >= w - x) { bad = true; break; }
                    for (var k = 0u; k < rest; k++) { set_mag(x + k, 0u); }
                    x += rest;
                    if (ri > 0u) { ri -= 1u; }
                    let u = read_rice(model_k(RUN_CONTEXT));
                    model_update(RUN_CONTEXT, u);
                    if (u == 0xffffffffu) { bad = true; break; }
                    let q = unzigzag(u + 1u);
                    put_coef(x, y, q);
                    a = magnitude(q);
                    set_mag(x, a);
                    x += 1u;
                    break;
                }
            }
            next_row();
        }
    }
    if (bad) {
        atomicMax(&errors[0], p.blocks - b);
        atomicAdd(&errors[1], 1u);
        return;
    }
    dequant_block();
}
