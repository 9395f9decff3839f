// Shared by the block encoder and decoder (twin: engine/src/codec/entropy.rs).

struct Block {
    offset: u32,
    stride: u32,
    width: u32,
    height: u32,
    band: u32,
    slice: u32,
    scratch: u32,
    _pad: u32,
}

const RUN_CONTEXT: u32 = 16u;
const ESCAPE: u32 = 23u;
const RESET: u32 = 16u;
const MAX_K: u32 = 24u;
const MAG_CAP: u32 = 0xffffu;
// Quantiser steps are in sixteenths; this one is lossless.
const STEP_ONE: u32 = 16u;
// The step buffer: two tables of TABLE_STRIDE steps, then a table index per slice.
const TABLE_STRIDE: u32 = 32u;
const SELECT_AT: u32 = 64u;

// The step of the current block (each kernel declares `steps` and `blk`).
fn block_step() -> u32 {
    return steps[min(steps[SELECT_AT + blk.slice], 1u) * TABLE_STRIDE + blk.band];
}
const A_CAP: u32 = 16777216u;
const J = array<u32, 32>(0u, 0u, 0u, 0u, 1u, 1u, 1u, 1u, 2u, 2u, 2u, 2u, 3u, 3u, 3u, 3u,
                         4u, 4u, 5u, 5u, 6u, 6u, 7u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u);

var<private> ma: array<u32, 17>;
var<private> mn: array<u32, 17>;
var<private> ri: u32;

fn bitlen(v: u32) -> u32 {
    return 32u - countLeadingZeros(v);
}

fn model_reset() {
    for (var i = 0u; i < RUN_CONTEXT; i++) {
        ma[i] = (1u << i) / 3u + 1u;
        mn[i] = 1u;
    }
    ma[RUN_CONTEXT] = 2u;
    mn[RUN_CONTEXT] = 1u;
    ri = 0u;
}

fn model_k(cx: u32) -> u32 {
    let a = ma[cx];
    let n = mn[cx];
    let ba = bitlen(a);
    let bn = bitlen(n);
    var k = 0u;
    if (ba > bn) { k = ba - bn; }
    if ((n << k) < a) { k += 1u; }
    return min(k, MAX_K);
}

fn model_update(cx: u32, u: u32) {
    ma[cx] += min(u, A_CAP);
    mn[cx] += 1u;
    if (mn[cx] == RESET) {
        ma[cx] >>= 1u;
        mn[cx] >>= 1u;
    }
}

fn context(t: u32) -> u32 {
    return min(bitlen(t), 16u) - 1u;
}

fn zigzag(q: i32) -> u32 {
    return u32((q << 1u) ^ (q >> 31u));
}

fn unzigzag(u: u32) -> i32 {
    return i32(u >> 1u) ^ -i32(u & 1u);
}

fn magnitude(q: i32) -> u32 {
    return min(u32(abs(q)), MAG_CAP);
}
