// Shared by the block encoder and decoder (twin: engine/codec/src/entropy.rs).
//
// One invocation codes one block; a workgroup is LANES of them. Each lane's
// adaptive model and its two rows of magnitudes (the row above and the row
// being coded) live in workgroup memory, interleaved lane by lane so that
// lanes touching the same entry touch different banks. Blocks wider than
// ROW_MAX read the row above from the coefficients instead.

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
const CONTEXTS: u32 = 17u;
const ESCAPE: u32 = 23u;
const RESET: u32 = 16u;
const MAX_K: u32 = 24u;
const MAG_CAP: u32 = 0xffffu;
// Quantiser steps are in sixteenths; this one is lossless.
const STEP_ONE: u32 = 16u;
// The step buffer: two tables of TABLE_STRIDE steps, then a table index per slice.
const TABLE_STRIDE: u32 = 32u;
const SELECT_AT: u32 = 64u;
const A_CAP: u32 = 16777216u;

// Invocations (blocks) per workgroup.
const LANES: u32 = 32u;
// Widest block whose rows are kept in workgroup memory (u16 magnitudes, two per word).
const ROW_MAX: u32 = 64u;
const ROW_WORDS: u32 = 32u;

// ma/mn[cx * LANES + lane]: 17 contexts of every lane (4352 bytes).
var<workgroup> ma: array<u32, 544>;
var<workgroup> mn: array<u32, 544>;
// rows[((r * ROW_WORDS) + i) * LANES + lane]: word i of row r (0 or 1) of a lane (8 KiB).
var<workgroup> rows: array<u32, 2048>;

var<private> lane: u32;
var<private> ri: u32;
// The block's rows live in `rows` (width <= ROW_MAX).
var<private> narrow: bool;
// Which of the two rows is the one above (the other is being coded).
var<private> above_row: u32;

// The step of the current block (each kernel declares `steps` and `blk`).
fn block_step() -> u32 {
    return steps[min(steps[SELECT_AT + blk.slice], 1u) * TABLE_STRIDE + blk.band];
}

// JPEG-LS's run-length order J[ri], computed: a runtime index into a
// constant array makes naga copy the whole array on every access.
// J = 0,0,0,0, 1,1,1,1, 2,2,2,2, 3,3,3,3, 4,4, 5,5, 6,6, 7,7, 8, 9, ..., 15.
fn jrun(r: u32) -> u32 {
    if (r < 16u) { return r >> 2u; }
    if (r < 24u) { return (r >> 1u) - 4u; }
    return r - 16u;
}

fn bitlen(v: u32) -> u32 {
    return 32u - countLeadingZeros(v);
}

fn model_reset() {
    for (var i = 0u; i < RUN_CONTEXT; i++) {
        ma[i * LANES + lane] = (1u << i) / 3u + 1u;
        mn[i * LANES + lane] = 1u;
    }
    ma[RUN_CONTEXT * LANES + lane] = 2u;
    mn[RUN_CONTEXT * LANES + lane] = 1u;
    ri = 0u;
}

fn model_k(cx: u32) -> u32 {
    let a = ma[cx * LANES + lane];
    let n = mn[cx * LANES + lane];
    let ba = bitlen(a);
    let bn = bitlen(n);
    var k = 0u;
    if (ba > bn) { k = ba - bn; }
    if ((n << k) < a) { k += 1u; }
    return min(k, MAX_K);
}

fn model_update(cx: u32, u: u32) {
    let i = cx * LANES + lane;
    var a = ma[i] + min(u, A_CAP);
    var n = mn[i] + 1u;
    if (n == RESET) {
        a >>= 1u;
        n >>= 1u;
    }
    ma[i] = a;
    mn[i] = n;
}

// Rows of magnitudes, for blocks at most ROW_MAX wide.
fn row_index(r: u32, x: u32) -> u32 {
    return ((r * ROW_WORDS) + (x >> 1u)) * LANES + lane;
}

fn row_get(r: u32, x: u32) -> u32 {
    return (rows[row_index(r, x)] >> ((x & 1u) * 16u)) & 0xffffu;
}

// The magnitude at column x of the row being coded (kept only for narrow blocks).
fn set_mag(x: u32, m: u32) {
    if (!narrow) { return; }
    let i = row_index(1u - above_row, x);
    let s = (x & 1u) * 16u;
    rows[i] = (rows[i] & ~(0xffffu << s)) | (m << s);
}

// Start the next row: the one just coded becomes the one above.
fn next_row() {
    above_row = 1u - above_row;
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

// The context activity 2a + 2b + c + d of column x in row y (a: the left
// neighbour's magnitude; b, c, d: above, above-left, above-right; zero
// outside the block). `above(x)` is each kernel's magnitude of the row above.
fn activity(x: u32, y: u32, w: u32, a: u32) -> u32 {
    var t = 2u * a;
    if (y > 0u) {
        t += 2u * above(x, y);
        if (x > 0u) { t += above(x - 1u, y); }
        if (x + 1u < w) { t += above(x + 1u, y); }
    }
    return t;
}
