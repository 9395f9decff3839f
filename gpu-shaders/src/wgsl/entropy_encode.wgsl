// The block encoder: one invocation codes one block (twin: encode_block in
// engine/codec/src/entropy.rs). Prepended with entropy_common.wgsl.

struct Params {
    blocks: u32,
    write: u32,   // 0: only measure lengths (rate control)
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read> coef: array<i32>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read> steps: array<u32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<u32>;
@group(0) @binding(4) var<storage, read_write> lens: array<u32>;
// Blocks in the order they are coded: alike shapes side by side, so a
// subgroup's lanes run alike.
@group(0) @binding(5) var<storage, read> order: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

var<private> blk: Block;
var<private> step: u32;
var<private> acc: u32;
var<private> nbits: u32;
var<private> wpos: u32;
var<private> room: u32;
var<private> total: u32;

fn writer_reset() {
    acc = 0u;
    nbits = 0u;
    wpos = 0u;
    total = 0u;
}

fn emit(word: u32) {
    if (p.write != 0u && wpos < room) {
        scratch[blk.scratch + wpos] = word;
    }
    wpos += 1u;
}

// Append the low n (<= 32) bits of v.
fn put(v: u32, n: u32) {
    if (n == 0u) { return; }
    total += n;
    let space = 32u - nbits;
    if (n < space) {
        acc = (acc << n) | v;
        nbits += n;
        return;
    }
    let rest = n - space;
    var word = v >> rest;
    if (nbits > 0u) { word |= acc << space; }
    emit(word);
    if (rest == 0u) { acc = 0u; } else { acc = v & ((1u << rest) - 1u); }
    nbits = rest;
}

fn finish() {
    if (nbits > 0u) {
        emit(acc << (32u - nbits));
        acc = 0u;
        nbits = 0u;
    }
}

// sign(c) * floor(16|c| / step), steps in sixteenths (16 = lossless);
// split so nothing overflows 32 bits for step <= 2^26.
fn quant(x: u32, y: u32) -> i32 {
    let c = coef[blk.offset + y * blk.stride + x];
    if (step == STEP_ONE) { return c; }
    let a = u32(abs(c));
    let m = i32(((a / step) << 4u) + (((a % step) << 4u) / step));
    return select(m, -m, c < 0);
}

// The magnitude at column x of the row above row y.
fn above(x: u32, y: u32) -> u32 {
    if (narrow) { return row_get(above_row, x); }
    return magnitude(quant(x, y - 1u));
}

fn put_rice(u: u32, k: u32) {
    let q = u >> k;
    if (q < ESCAPE) {
        put(1u, q + 1u);
        if (k > 0u) { put(u & ((1u << k) - 1u), k); }
    } else {
        put(0u, ESCAPE);
        put(u, 32u);
    }
}

@compute @workgroup_size(32)
fn encode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = gid.y * nwg.x * LANES + gid.x;
    if (i >= p.blocks) { return; }
    let b = order[i];
    lane = lid.x;
    blk = blocks[b];
    step = block_step();
    let w = blk.width;
    let h = blk.height;
    narrow = w <= ROW_MAX;
    above_row = 0u;
    room = (7u + 32u * w * h + 31u) / 32u;
    writer_reset();
    model_reset();
    var widest = 0u;
    put(0u, 1u);
    for (var y = 0u; y < h; y++) {
        var x = 0u;
        var a = 0u;
        while (x < w) {
            let t = activity(x, y, w, a);
            if (t > 0u) {
                let q = quant(x, y);
                let u = zigzag(q);
                widest = max(widest, u);
                let cx = context(t);
                put_rice(u, model_k(cx));
                model_update(cx, u);
                a = magnitude(q);
                set_mag(x, a);
                x += 1u;
                continue;
            }
            var run = 0u;
            var q = 0;
            while (x + run < w) {
                q = quant(x + run, y);
                if (q != 0) { break; }
                set_mag(x + run, 0u);
                run += 1u;
            }
            var rest = run;
            while (rest >= (1u << jrun(ri))) {
                put(1u, 1u);
                rest -= 1u << jrun(ri);
                ri = min(ri + 1u, 31u);
            }
            x += run;
            if (x == w) {
                if (rest > 0u) { put(1u, 1u); }
                break;
            }
            put(0u, 1u);
            put(rest, jrun(ri));
            if (ri > 0u) { ri -= 1u; }
            let u = zigzag(q);
            widest = max(widest, u);
            put_rice(u - 1u, model_k(RUN_CONTEXT));
            model_update(RUN_CONTEXT, u - 1u);
            a = magnitude(q);
            set_mag(x, a);
            x += 1u;
        }
        next_row();
    }
    let wb = bitlen(widest);
    // Plain size 7 + w*h*wb bits, compared without overflow in 32 bits.
    let plain = 7u + w * h * wb;
    if (total > plain) {
        writer_reset();
        put(1u, 1u);
        put(wb, 6u);
        for (var y = 0u; y < h; y++) {
            for (var x = 0u; x < w; x++) {
                put(zigzag(quant(x, y)), wb);
            }
        }
    }
    finish();
    lens[b] = wpos;
}
