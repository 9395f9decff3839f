//! Counter-based hashing, gradient and cellular noise, and the sequential
//! generator used to build the world.

#[inline]
fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

#[inline]
pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
fn lattice(ix: i32, iy: i32, seed: u32) -> u32 {
    hash32(
        (ix as u32)
            .wrapping_mul(0x9e37_79b1)
            .wrapping_add((iy as u32).wrapping_mul(0x85eb_ca77))
            .wrapping_add(seed.wrapping_mul(0xc2b2_ae3d)),
    )
}

const S2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// 16 unit gradient directions.
const GRADS: [(f32, f32); 16] = [
    (1.0, 0.0),
    (0.92388, 0.38268),
    (S2, S2),
    (0.38268, 0.92388),
    (0.0, 1.0),
    (-0.38268, 0.92388),
    (-S2, S2),
    (-0.92388, 0.38268),
    (-1.0, 0.0),
    (-0.92388, -0.38268),
    (-S2, -S2),
    (-0.38268, -0.92388),
    (0.0, -1.0),
    (0.38268, -0.92388),
    (S2, -S2),
    (0.92388, -0.38268),
];

#[inline]
fn gdot(h: u32, x: f32, y: f32) -> f32 {
    let g = GRADS[(h >> 28) as usize];
    g.0 * x + g.1 * y
}

/// Floor as an integer (no libm call), for `|x| < 2^30`.
#[inline]
fn ifloor(x: f32) -> i32 {
    let i = x as i32;
    if (i as f32) > x { i - 1 } else { i }
}

#[inline]
fn fade(t: f32) -> f32 {
    t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
}

/// Gradient noise, roughly in `[-1, 1]`.
#[inline]
pub(super) fn gnoise(x: f32, y: f32, seed: u32) -> f32 {
    let ix = ifloor(x);
    let iy = ifloor(y);
    let fx = x - ix as f32;
    let fy = y - iy as f32;
    let ix1 = ix.wrapping_add(1);
    let iy1 = iy.wrapping_add(1);
    gnoise_corners(
        [
            lattice(ix, iy, seed),
            lattice(ix1, iy, seed),
            lattice(ix, iy1, seed),
            lattice(ix1, iy1, seed),
        ],
        fx,
        fy,
    )
}

/// Gradient noise with period `p` lattice cells in x and y.
#[inline]
pub(super) fn gnoise_p(x: f32, y: f32, p: i32, seed: u32) -> f32 {
    let xf = ifloor(x);
    let yf = ifloor(y);
    let ix = xf.rem_euclid(p);
    let iy = yf.rem_euclid(p);
    let fx = x - xf as f32;
    let fy = y - yf as f32;
    let ix1 = (ix + 1) % p;
    let iy1 = (iy + 1) % p;
    gnoise_corners(
        [
            lattice(ix, iy, seed),
            lattice(ix1, iy, seed),
            lattice(ix, iy1, seed),
            lattice(ix1, iy1, seed),
        ],
        fx,
        fy,
    )
}

#[inline]
fn gnoise_corners(h: [u32; 4], fx: f32, fy: f32) -> f32 {
    let n00 = gdot(h[0], fx, fy);
    let n10 = gdot(h[1], fx - 1.0, fy);
    let n01 = gdot(h[2], fx, fy - 1.0);
    let n11 = gdot(h[3], fx - 1.0, fy - 1.0);
    let ux = fade(fx);
    let uy = fade(fy);
    let a = n00 + ux * (n10 - n00);
    let b = n01 + ux * (n11 - n01);
    (a + uy * (b - a)) * 1.41
}

/// Fractal sum of `oct` octaves of gradient noise (rotated between octaves),
/// normalised to roughly `[-1, 1]` (standard deviation about 0.3).
pub(super) fn fbm(mut x: f32, mut y: f32, oct: u32, seed: u32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 1.0;
    let mut norm = 0.0;
    for i in 0..oct {
        sum += amp * gnoise(x, y, seed.wrapping_add(i.wrapping_mul(1013)));
        norm += amp;
        let nx = 1.6 * x - 1.2 * y + 17.3;
        let ny = 1.2 * x + 1.6 * y - 9.1;
        x = nx;
        y = ny;
        amp *= 0.5;
    }
    sum / norm
}

/// Periodic cellular noise: distances to the nearest and second nearest
/// feature points, in cell units, for a tile of `n x n` cells.
pub(super) fn worley_p(x: f32, y: f32, n: i32, seed: u32) -> (f32, f32) {
    let ix = ifloor(x);
    let iy = ifloor(y);
    let mut f1 = 9.0f32;
    let mut f2 = 9.0f32;
    for dy in -1..=1 {
        for dx in -1..=1 {
            let cx = ix + dx;
            let cy = iy + dy;
            let h = lattice(cx.rem_euclid(n), cy.rem_euclid(n), seed);
            let px = cx as f32 + 0.1 + 0.8 * ((h & 0xffff) as f32 / 65536.0);
            let py = cy as f32 + 0.1 + 0.8 * ((h >> 16) as f32 / 65536.0);
            let d = ((px - x) * (px - x) + (py - y) * (py - y)).sqrt();
            if d < f1 {
                f2 = f1;
                f1 = d;
            } else if d < f2 {
                f2 = d;
            }
        }
    }
    (f1, f2)
}

#[inline]
pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
pub(super) fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Sequential generator for building the world (never used per pixel).
#[derive(Debug, Clone)]
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
    pub(super) fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.unit()
    }
    /// Roughly normal (sum of three uniforms), unit variance.
    pub(super) fn normal(&mut self) -> f64 {
        (self.unit() + self.unit() + self.unit() - 1.5) * 2.0
    }
}
