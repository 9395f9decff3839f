//! A library of anomaly kinds the scene generator never makes, painted into
//! a model input (`[3, H, W]` Y', Cb, Cr as `code / 1023`, BT.2020 limited
//! range, as [`med8k_detect::input`] makes it), to evaluate a detector on
//! things it was not fitted for.
//!
//! Each kind works on the picture as R'G'B' in `[0, 1]` (camera values, clipped as
//! a sensor clips) and is drawn with parameters picked from a seed, anti-aliased at
//! the model's resolution; the 8K frame is area-averaged to that resolution first,
//! so a kind drawn there is what the model would see of the same thing drawn at 8K.
//!
//! Two groups, matching the detector's two alarms ([`Alarm`]): tissue kinds (a
//! thing in the scene: instruments, clips, dye, blobs, gauze, bubbles) and
//! image-quality kinds (the picture itself: glare, defocus, motion blur, smoke,
//! fogging, exposure). Half of each group is [`held out`](Kind::held_out): no
//! fitting, threshold or design choice of the reference models in `models/` looks
//! at those; `med8k eval detect --heldout` scores them.

use std::f32::consts::PI;
use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

/// Which alarm a kind should raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alarm {
    /// Something abnormal in the scene (where: the map).
    Tissue,
    /// The picture cannot be trusted (defocus, blur, smoke, glare, exposure).
    Quality,
}

macro_rules! kinds {
    ($($v:ident $name:literal $alarm:ident $held:literal: $doc:literal,)*) => {
        /// An anomaly kind; see the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Kind {
            $(#[doc = $doc] $v,)*
        }
        impl Kind {
            /// Every kind, tissue kinds first.
            pub const ALL: &'static [Kind] = &[$(Kind::$v,)*];
            /// Its name on the command line and in reports.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$v => $name,)* }
            }
            /// The alarm it should raise.
            pub fn alarm(self) -> Alarm {
                match self { $(Kind::$v => Alarm::$alarm,)* }
            }
            /// Kept out of every fitting, threshold and design choice.
            pub fn held_out(self) -> bool {
                match self { $(Kind::$v => $held,)* }
            }
        }
    };
}

kinds! {
    Instrument "instrument" Tissue false: "A metal instrument shaft entering from the edge, shaded as a cylinder with a specular line.",
    Clip "clip" Tissue true: "A small metal clip (foreign body): a silver U a few pixels across.",
    Dye "dye" Tissue true: "A blue dye stain (indigo carmine, methylene blue) over the tissue texture.",
    DarkBlob "dark-blob" Tissue false: "A dark irregular blob (clot, char, a hole), the hue kept.",
    BrightBlob "bright-blob" Tissue true: "A pale, whitish irregular plaque (fibrin, an ulcer base).",
    Gauze "gauze" Tissue true: "A woven textile patch, partly soaked with blood.",
    Bubbles "bubbles" Tissue false: "A cluster of transparent bubbles with bright rims and specular dots.",
    Glare "glare" Quality false: "A saturated specular glare patch with a halo.",
    Defocus "defocus" Quality false: "The whole frame out of focus (disc blur).",
    MotionBlur "motion-blur" Quality true: "The whole frame blurred along a line (camera motion).",
    Smoke "smoke" Quality true: "Surgical smoke: an uneven grey veil and scattering blur.",
    Fog "fog" Quality false: "A fogged lens: a uniform veil and a soft blur.",
    Overexposure "overexposure" Quality false: "Too much light: gain in linear light, clipped.",
    Underexposure "underexposure" Quality true: "Too little light: a low gain in linear light, with sensor noise.",
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown anomaly kind `{s}` (one of {})", names.join(", "))
            })
    }
}

/// Parse a kind list: `all`, `held-out`, `dev` (the kinds that are not held out),
/// or names separated by commas.
pub fn parse_kinds(s: &str) -> Result<Vec<Kind>, String> {
    let pick = |held: bool| {
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.held_out() == held)
            .collect()
    };
    match s {
        "all" => Ok(Kind::ALL.to_vec()),
        "held-out" => Ok(pick(true)),
        "dev" => Ok(pick(false)),
        _ => s.split(',').map(|p| p.trim().parse()).collect(),
    }
}

// ---------------------------------------------------------------------------
// Y'CbCr tensor <-> R'G'B' (BT.2020, 10-bit limited range, values / 1023)
// ---------------------------------------------------------------------------

const KR: f32 = 0.2627;
const KB: f32 = 0.0593;
const KG: f32 = 1.0 - KR - KB;

/// `[3, H, W]` Y'CbCr (`code / 1023`) to R'G'B' planes in `[0, 1]` (unclipped).
pub fn tensor_to_rgb(t: &[f32]) -> Vec<f32> {
    let n = t.len() / 3;
    let mut out = vec![0f32; 3 * n];
    for i in 0..n {
        let y = (t[i] * 1023.0 - 64.0) / 876.0;
        let cb = (t[n + i] * 1023.0 - 512.0) / 896.0;
        let cr = (t[2 * n + i] * 1023.0 - 512.0) / 896.0;
        let r = y + 2.0 * (1.0 - KR) * cr;
        let b = y + 2.0 * (1.0 - KB) * cb;
        out[i] = r;
        out[n + i] = (y - KR * r - KB * b) / KG;
        out[2 * n + i] = b;
    }
    out
}

/// R'G'B' planes (clipped to `[0, 1]` here) to the `[3, H, W]` Y'CbCr tensor,
/// quantised to 10-bit codes as a camera would.
pub fn rgb_to_tensor(rgb: &[f32]) -> Vec<f32> {
    let n = rgb.len() / 3;
    let mut out = vec![0f32; 3 * n];
    let code = |v: f32| (v.round().clamp(0.0, 1023.0)) / 1023.0;
    for i in 0..n {
        let (r, g, b) = (
            rgb[i].clamp(0.0, 1.0),
            rgb[n + i].clamp(0.0, 1.0),
            rgb[2 * n + i].clamp(0.0, 1.0),
        );
        let y = KR * r + KG * g + KB * b;
        out[i] = code(64.0 + 876.0 * y);
        out[n + i] = code(512.0 + 896.0 * (b - y) / (2.0 * (1.0 - KB)));
        out[2 * n + i] = code(512.0 + 896.0 * (r - y) / (2.0 * (1.0 - KR)));
    }
    out
}

// ---------------------------------------------------------------------------
// Randomness and small helpers
// ---------------------------------------------------------------------------

/// SplitMix64: the parameters of a kind from its seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[a, b)`.
    fn range(&mut self, a: f32, b: f32) -> f32 {
        a + (b - a) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// Roughly normal (sum of four uniforms), mean 0, sd 1.
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.range(-1.0, 1.0)).sum::<f32>() * 0.866
    }
}

/// An RGB picture being altered.
struct Pic {
    w: usize,
    h: usize,
    rgb: Vec<f32>,
}

impl Pic {
    fn n(&self) -> usize {
        self.w * self.h
    }
    /// Blend colour `c` into pixel `i` with weight `a`.
    fn mix(&mut self, i: usize, c: [f32; 3], a: f32) {
        let n = self.n();
        for (k, ck) in c.iter().enumerate() {
            let v = &mut self.rgb[k * n + i];
            *v += (ck - *v) * a;
        }
    }
    fn get(&self, i: usize) -> [f32; 3] {
        let n = self.n();
        [self.rgb[i], self.rgb[n + i], self.rgb[2 * n + i]]
    }
    /// A random point inside the frame, `margin` (a fraction) from its edges.
    fn point(&self, rng: &mut Rng, margin: f32) -> (f32, f32) {
        let (w, h) = (self.w as f32, self.h as f32);
        (
            rng.range(margin * w, (1.0 - margin) * w),
            rng.range(margin * h, (1.0 - margin) * h),
        )
    }
    /// Convolve every plane with `taps` (offsets and weights summing to 1),
    /// sampling bilinearly (exactly, for whole-pixel offsets) and clamping at
    /// the edges.
    fn convolve(&mut self, taps: &[(f32, f32, f32)]) {
        let (w, h, n) = (self.w, self.h, self.n());
        // Each tap as up to four whole-pixel offsets with bilinear weights.
        let mut whole: Vec<(isize, isize, f32)> = Vec::new();
        for &(dx, dy, wt) in taps {
            let (x0, y0) = (dx.floor(), dy.floor());
            let (fx, fy) = (dx - x0, dy - y0);
            for (ox, oy, f) in [
                (0, 0, (1.0 - fx) * (1.0 - fy)),
                (1, 0, fx * (1.0 - fy)),
                (0, 1, (1.0 - fx) * fy),
                (1, 1, fx * fy),
            ] {
                if f > 0.0 {
                    whole.push((x0 as isize + ox, y0 as isize + oy, wt * f));
                }
            }
        }
        let src = self.rgb.clone();
        let clamp = |v: isize, hi: usize| v.clamp(0, hi as isize - 1) as usize;
        self.rgb
            .par_chunks_mut(w)
            .enumerate()
            .for_each(|(row, out)| {
                let (k, y) = (row / h, (row % h) as isize);
                let plane = &src[k * n..(k + 1) * n];
                for (x, o) in out.iter_mut().enumerate() {
                    *o = whole
                        .iter()
                        .map(|&(dx, dy, wt)| {
                            wt * plane[clamp(y + dy, h) * w + clamp(x as isize + dx, w)]
                        })
                        .sum();
                }
            });
    }
}

/// A disc kernel of radius `r` (pixel weights by the area the disc covers,
/// estimated on a 4x4 sub-grid).
fn disc_taps(r: f32) -> Vec<(f32, f32, f32)> {
    let m = r.ceil() as i32;
    let mut taps = Vec::new();
    for dy in -m..=m {
        for dx in -m..=m {
            let mut cover = 0.0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let (px, py) = (
                        dx as f32 + (sx as f32 + 0.5) / 4.0 - 0.5,
                        dy as f32 + (sy as f32 + 0.5) / 4.0 - 0.5,
                    );
                    if px * px + py * py <= r * r {
                        cover += 1.0 / 16.0;
                    }
                }
            }
            if cover > 0.0 {
                taps.push((dx as f32, dy as f32, cover));
            }
        }
    }
    normalise(taps)
}

fn normalise(mut taps: Vec<(f32, f32, f32)>) -> Vec<(f32, f32, f32)> {
    let total: f32 = taps.iter().map(|t| t.2).sum();
    taps.iter_mut().for_each(|t| t.2 /= total);
    taps
}

/// Smooth value noise in `[0, 1]` on a grid of `cell` pixels.
fn value_noise(seed: u64, x: f32, y: f32, cell: f32) -> f32 {
    let hash = |i: i64, j: i64| {
        let mut r = Rng(seed
            ^ (i as u64).wrapping_mul(0x9E37_79B9)
            ^ (j as u64).wrapping_mul(0x85EB_CA6B) << 20);
        r.range(0.0, 1.0)
    };
    let (gx, gy) = (x / cell, y / cell);
    let (i, j) = (gx.floor() as i64, gy.floor() as i64);
    let (fx, fy) = (gx - i as f32, gy - j as f32);
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(fx), s(fy));
    let top = hash(i, j) * (1.0 - sx) + hash(i + 1, j) * sx;
    let bottom = hash(i, j + 1) * (1.0 - sx) + hash(i + 1, j + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// Coverage in `[0, 1]` of an irregular blob (radius wobbling with the angle)
/// centred at `c` with mean radius `r0`, edges `soft` pixels wide.
struct Blob {
    c: (f32, f32),
    r0: f32,
    wobble: [(f32, f32); 3],
    soft: f32,
}

impl Blob {
    fn new(rng: &mut Rng, c: (f32, f32), r0: f32, soft: f32) -> Blob {
        let mut wobble = [(0.0, 0.0); 3];
        for w in &mut wobble {
            *w = (rng.range(0.0, 0.16), rng.range(0.0, 2.0 * PI));
        }
        Blob {
            c,
            r0,
            wobble,
            soft,
        }
    }
    fn coverage(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x + 0.5 - self.c.0, y + 0.5 - self.c.1);
        let d = (dx * dx + dy * dy).sqrt();
        let th = dy.atan2(dx);
        let r = self.r0
            * (1.0
                + self
                    .wobble
                    .iter()
                    .enumerate()
                    .map(|(k, (a, p))| a * ((k as f32 + 2.0) * th + p).cos())
                    .sum::<f32>());
        ((r - d) / self.soft + 0.5).clamp(0.0, 1.0)
    }
    /// The pixels the blob may touch.
    fn bounds(&self, w: usize, h: usize) -> (usize, usize, usize, usize) {
        let m = self.r0 * 1.6 + self.soft + 1.0;
        let clamp = |v: f32, hi: usize| v.clamp(0.0, hi as f32) as usize;
        (
            clamp(self.c.0 - m, w),
            clamp(self.c.1 - m, h),
            clamp(self.c.0 + m + 1.0, w),
            clamp(self.c.1 + m + 1.0, h),
        )
    }
}

/// Distance from `p` to the segment `a`-`b`, and where along it (0..1).
fn segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    let (vx, vy) = (b.0 - a.0, b.1 - a.1);
    let len2 = (vx * vx + vy * vy).max(1e-6);
    let t = (((p.0 - a.0) * vx + (p.1 - a.1) * vy) / len2).clamp(0.0, 1.0);
    let (qx, qy) = (a.0 + t * vx - p.0, a.1 + t * vy - p.1);
    ((qx * qx + qy * qy).sqrt(), t)
}

fn luma(c: [f32; 3]) -> f32 {
    KR * c[0] + KG * c[1] + KB * c[2]
}

// ---------------------------------------------------------------------------
// The kinds
// ---------------------------------------------------------------------------

/// Paint `kind` into `tensor` (`[3, height, width]` Y'CbCr, `code / 1023`),
/// with parameters drawn from `seed`; the same arguments give the same values.
///
/// # Panics
/// If `tensor` is not `3 × width × height` values (a bug in the caller).
pub fn apply(kind: Kind, tensor: &mut [f32], width: usize, height: usize, seed: u64) {
    assert_eq!(tensor.len(), 3 * width * height, "tensor is not [3, H, W]");
    let mut pic = Pic {
        w: width,
        h: height,
        rgb: tensor_to_rgb(tensor),
    };
    let mut rng = Rng(seed ^ (kind as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let scale = width as f32 / 256.0;
    match kind {
        Kind::Instrument => instrument(&mut pic, &mut rng, scale),
        Kind::Clip => clip(&mut pic, &mut rng, scale),
        Kind::Dye => dye(&mut pic, &mut rng, scale),
        Kind::DarkBlob => dark_blob(&mut pic, &mut rng, scale),
        Kind::BrightBlob => bright_blob(&mut pic, &mut rng, scale),
        Kind::Gauze => gauze(&mut pic, &mut rng, scale),
        Kind::Bubbles => bubbles(&mut pic, &mut rng, scale),
        Kind::Glare => glare(&mut pic, &mut rng, scale),
        Kind::Defocus => {
            let r = rng.range(2.5, 5.0) * scale;
            pic.convolve(&disc_taps(r));
        }
        Kind::MotionBlur => {
            let len = rng.range(7.0, 15.0) * scale;
            let th = rng.range(0.0, PI);
            let k = (2.0 * len).ceil() as usize;
            let taps = (0..=k)
                .map(|i| {
                    let s = (i as f32 / k as f32 - 0.5) * len;
                    (s * th.cos(), s * th.sin(), 1.0)
                })
                .collect();
            pic.convolve(&normalise(taps));
        }
        Kind::Smoke => smoke(&mut pic, &mut rng, scale),
        Kind::Fog => {
            pic.convolve(&disc_taps(rng.range(1.5, 3.0) * scale));
            let a = rng.range(0.3, 0.5);
            let g = rng.range(0.8, 0.9);
            for i in 0..pic.n() {
                pic.mix(i, [g, g, g], a);
            }
        }
        Kind::Overexposure => exposure(&mut pic, rng.range(2.0, 3.5), 0.0, &mut rng),
        Kind::Underexposure => {
            let gain = rng.range(0.1, 0.25);
            exposure(&mut pic, gain, 0.008, &mut rng);
        }
    }
    tensor.copy_from_slice(&rgb_to_tensor(&pic.rgb));
}

/// Gain in linear light (a 2.4 power stands in for the camera's transfer),
/// clipped, with additive noise of `noise` in R'G'B'.
fn exposure(pic: &mut Pic, gain: f32, noise: f32, rng: &mut Rng) {
    for v in &mut pic.rgb {
        let lin = v.clamp(0.0, 1.0).powf(2.4) * gain;
        *v = lin.min(1.0).powf(1.0 / 2.4) + noise * rng.normal();
    }
}

fn blob_paint(pic: &mut Pic, blob: &Blob, mut paint: impl FnMut(&mut Pic, usize, usize, f32)) {
    let (x0, y0, x1, y1) = blob.bounds(pic.w, pic.h);
    for y in y0..y1 {
        for x in x0..x1 {
            let a = blob.coverage(x as f32, y as f32);
            if a > 0.0 {
                paint(pic, x, y, a);
            }
        }
    }
}

fn dark_blob(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let c = pic.point(rng, 0.15);
    let r0 = rng.range(6.0, 18.0) * s;
    let blob = Blob::new(rng, c, r0, 2.0 * s);
    let g = rng.range(0.12, 0.35);
    blob_paint(pic, &blob, |p, x, y, a| {
        let i = y * p.w + x;
        let px = p.get(i);
        p.mix(i, px.map(|v| v * g), a);
    });
}

fn bright_blob(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let c = pic.point(rng, 0.15);
    let r0 = rng.range(6.0, 18.0) * s;
    let blob = Blob::new(rng, c, r0, 2.5 * s);
    let a0 = rng.range(0.6, 0.9);
    let tint = [
        rng.range(0.88, 0.96),
        rng.range(0.84, 0.92),
        rng.range(0.72, 0.84),
    ];
    let seed = rng.next();
    blob_paint(pic, &blob, |p, x, y, a| {
        let t = 0.9 + 0.1 * value_noise(seed, x as f32, y as f32, 3.0 * s);
        p.mix(y * p.w + x, tint.map(|v| v * t), a * a0);
    });
}

fn dye(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let c = pic.point(rng, 0.2);
    let r0 = rng.range(10.0, 28.0) * s;
    let blob = Blob::new(rng, c, r0, 6.0 * s);
    let a0 = rng.range(0.55, 0.9);
    let filter = [
        rng.range(0.2, 0.4),
        rng.range(0.4, 0.6),
        rng.range(0.95, 1.2),
    ];
    let seed = rng.next();
    blob_paint(pic, &blob, |p, x, y, a| {
        let i = y * p.w + x;
        // Dye pools unevenly; the tissue texture shows through (multiplicative).
        let pool = 0.6 + 0.4 * value_noise(seed, x as f32, y as f32, 6.0 * s);
        let l = luma(p.get(i)).max(0.05) * 1.2;
        p.mix(i, filter.map(|f| (f * l).min(1.0)), a * a0 * pool);
    });
}

/// A metal surface shaded as a cylinder across `u` in `[-1, 1]`, with a
/// specular line; `g` is the base grey.
fn metal(u: f32, g: f32, tint: [f32; 3]) -> [f32; 3] {
    let body = g * (0.5 + 0.5 * (1.0 - u * u).max(0.0).sqrt());
    let spec = 0.6 * (-((u - 0.35) / 0.18).powi(2)).exp();
    tint.map(|t| (body * t + spec).min(1.0))
}

fn instrument(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let (w, h) = (pic.w as f32, pic.h as f32);
    // Enter from a random edge point, aim at a point inside.
    let side = rng.next() % 4;
    let t = rng.range(0.1, 0.9);
    let a = match side {
        0 => (t * w, -5.0),
        1 => (w + 5.0, t * h),
        2 => (t * w, h + 5.0),
        _ => (-5.0, t * h),
    };
    let tip = pic.point(rng, 0.25);
    let hw = rng.range(5.0, 10.0) * s;
    let g = rng.range(0.4, 0.65);
    let tint = [0.95, 1.0, 1.06];
    for y in 0..pic.h {
        for x in 0..pic.w {
            let p = (x as f32 + 0.5, y as f32 + 0.5);
            let (d, along) = segment(p, a, tip);
            // The jaws at the tip are wider.
            let half = if along > 0.88 { hw * 1.25 } else { hw };
            let cover = (half - d + 0.5).clamp(0.0, 1.0);
            if cover > 0.0 {
                // Signed across-shaft coordinate.
                let (vx, vy) = (tip.0 - a.0, tip.1 - a.1);
                let cross = ((p.0 - a.0) * vy - (p.1 - a.1) * vx) / (vx * vx + vy * vy).sqrt();
                let u = (cross / half).clamp(-1.0, 1.0);
                pic.mix(y * pic.w + x, metal(u, g, tint), cover);
            }
        }
    }
}

fn clip(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let c = pic.point(rng, 0.15);
    let th = rng.range(0.0, 2.0 * PI);
    let len = rng.range(8.0, 14.0) * s;
    let gap = rng.range(2.0, 3.0) * s;
    let hw = 1.2 * s;
    let (ux, uy) = (th.cos(), th.sin());
    let (nx, ny) = (-uy, ux);
    let p = |a: f32, b: f32| (c.0 + a * ux + b * nx, c.1 + a * uy + b * ny);
    let segs = [
        (p(-len / 2.0, -gap), p(len / 2.0, -gap)),
        (p(-len / 2.0, gap), p(len / 2.0, gap)),
        (p(-len / 2.0, -gap), p(-len / 2.0, gap)),
    ];
    let g = rng.range(0.7, 0.9);
    let m = (len + gap + 3.0) as i32;
    for y in (c.1 as i32 - m).max(0)..(c.1 as i32 + m).min(pic.h as i32) {
        for x in (c.0 as i32 - m).max(0)..(c.0 as i32 + m).min(pic.w as i32) {
            let q = (x as f32 + 0.5, y as f32 + 0.5);
            let d = segs
                .iter()
                .map(|(a, b)| segment(q, *a, *b).0)
                .fold(f32::INFINITY, f32::min);
            let cover = (hw - d + 0.5).clamp(0.0, 1.0);
            if cover > 0.0 {
                pic.mix(
                    y as usize * pic.w + x as usize,
                    metal(d / hw * 0.8, g, [0.97, 1.0, 1.04]),
                    cover,
                );
            }
        }
    }
}

fn gauze(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let c = pic.point(rng, 0.2);
    let (hw, hh) = (rng.range(15.0, 35.0) * s, rng.range(10.0, 25.0) * s);
    let th = rng.range(0.0, PI);
    let period = rng.range(3.0, 5.0) * s;
    let soak_seed = rng.next();
    let soak_amount = rng.range(0.0, 0.7);
    let (ct, st) = (th.cos(), th.sin());
    for y in 0..pic.h {
        for x in 0..pic.w {
            let (dx, dy) = (x as f32 + 0.5 - c.0, y as f32 + 0.5 - c.1);
            let (u, v) = (dx * ct + dy * st, -dx * st + dy * ct);
            let edge = (hw - u.abs()).min(hh - v.abs());
            let cover = (edge + 0.5).clamp(0.0, 1.0);
            if cover <= 0.0 {
                continue;
            }
            let weave = (PI * u / period)
                .cos()
                .powi(2)
                .max((PI * v / period).cos().powi(2));
            let soak = soak_amount * value_noise(soak_seed, u, v, 12.0 * s);
            let white = [0.93, 0.92, 0.9].map(|w| w * (0.7 + 0.3 * weave));
            let blood = [0.55, 0.06, 0.05];
            let col: [f32; 3] = std::array::from_fn(|k| white[k] + (blood[k] - white[k]) * soak);
            pic.mix(y * pic.w + x, col, cover * (0.55 + 0.45 * weave));
        }
    }
}

fn bubbles(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let c = pic.point(rng, 0.2);
    let spread = rng.range(8.0, 20.0) * s;
    let n = 6 + (rng.next() % 15) as usize;
    for _ in 0..n {
        let (bx, by) = (
            c.0 + spread * rng.normal(),
            c.1 + spread * 0.7 * rng.normal(),
        );
        let r = rng.range(2.0, 6.5) * s;
        let m = (r + 3.0) as i32;
        for y in (by as i32 - m).max(0)..(by as i32 + m).min(pic.h as i32) {
            for x in (bx as i32 - m).max(0)..(bx as i32 + m).min(pic.w as i32) {
                let (dx, dy) = (x as f32 + 0.5 - bx, y as f32 + 0.5 - by);
                let d = (dx * dx + dy * dy).sqrt();
                let rim = 0.55 * (-((d - r) / (0.7 * s)).powi(2)).exp();
                let (sx, sy) = (dx + 0.4 * r, dy + 0.4 * r);
                let spec = 0.8 * (-(sx * sx + sy * sy) / (0.8 * s).powi(2)).exp();
                let inside = if d < r { 0.06 } else { 0.0 };
                let a = (rim + spec + inside).min(1.0);
                if a > 0.003 {
                    pic.mix(y as usize * pic.w + x as usize, [1.0, 1.0, 1.0], a);
                }
            }
        }
    }
}

fn glare(pic: &mut Pic, rng: &mut Rng, s: f32) {
    let c = pic.point(rng, 0.15);
    let r0 = rng.range(10.0, 28.0) * s;
    let blob = Blob::new(rng, c, r0, 2.0 * s);
    let halo = blob.r0 * 0.8;
    let (x0, y0, x1, y1) = (0, 0, pic.w, pic.h);
    for y in y0..y1 {
        for x in x0..x1 {
            let core = blob.coverage(x as f32, y as f32);
            let (dx, dy) = (x as f32 + 0.5 - c.0, y as f32 + 0.5 - c.1);
            let d = (dx * dx + dy * dy).sqrt();
            let outer = 0.6 * (-((d - blob.r0).max(0.0) / halo).powi(2)).exp();
            let a = core.max(outer);
            if a > 0.003 {
                pic.mix(y * pic.w + x, [1.0, 1.0, 0.98], a);
            }
        }
    }
}

fn smoke(pic: &mut Pic, rng: &mut Rng, s: f32) {
    pic.convolve(&disc_taps(rng.range(1.0, 2.0) * s));
    let a0 = rng.range(0.45, 0.75);
    let veil = [
        rng.range(0.78, 0.86),
        rng.range(0.76, 0.84),
        rng.range(0.72, 0.8),
    ];
    let seed = rng.next();
    for y in 0..pic.h {
        for x in 0..pic.w {
            let n = value_noise(seed, x as f32, y as f32, 40.0 * s);
            pic.mix(y * pic.w + x, veil, a0 * (0.55 + 0.45 * n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured, reddish frame in the tensor's ranges.
    fn frame(w: usize, h: usize) -> Vec<f32> {
        let mut rgb = vec![0f32; 3 * w * h];
        for y in 0..h {
            for x in 0..w {
                let grain = ((x * 7919 + y * 104_729) % 97) as f32 / 97.0 - 0.5;
                let t =
                    0.5 + 0.2 * ((x as f32 * 0.7).sin() * (y as f32 * 0.45).cos()) + 0.1 * grain;
                let i = y * w + x;
                rgb[i] = 0.75 * t + 0.1;
                rgb[w * h + i] = 0.35 * t;
                rgb[2 * w * h + i] = 0.3 * t;
            }
        }
        rgb_to_tensor(&rgb)
    }

    #[test]
    fn ycbcr_round_trip_is_within_a_code() {
        let t = frame(32, 16);
        let back = rgb_to_tensor(&tensor_to_rgb(&t));
        let worst = t
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1.01 / 1023.0, "{worst}");
        // White is Y' 940, neutral chroma.
        let white = rgb_to_tensor(&[1.0, 1.0, 1.0]);
        let codes: Vec<f32> = white.iter().map(|v| (v * 1023.0).round()).collect();
        assert_eq!(codes, [940.0, 512.0, 512.0]);
    }

    #[test]
    fn every_kind_changes_the_frame_deterministically_and_stays_in_range() {
        let (w, h) = (128, 72);
        let clean = frame(w, h);
        for &kind in Kind::ALL {
            let mut a = clean.clone();
            apply(kind, &mut a, w, h, 7);
            let mut b = clean.clone();
            apply(kind, &mut b, w, h, 7);
            assert_eq!(a, b, "{kind}: same seed, same frame");
            let mut c = clean.clone();
            apply(kind, &mut c, w, h, 8);
            assert_ne!(a, c, "{kind}: another seed, another frame");
            let changed = a
                .iter()
                .zip(&clean)
                .filter(|(x, y)| (*x - *y).abs() > 2.0 / 1023.0)
                .count();
            assert!(changed > 20, "{kind} changed only {changed} values");
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)), "{kind}");
            let global = changed > w * h;
            assert_eq!(
                global,
                matches!(
                    kind,
                    Kind::Defocus
                        | Kind::MotionBlur
                        | Kind::Smoke
                        | Kind::Fog
                        | Kind::Overexposure
                        | Kind::Underexposure
                ),
                "{kind}: {changed} values changed"
            );
        }
    }

    #[test]
    fn kinds_have_the_effect_their_name_says() {
        let (w, h) = (128, 72);
        let clean = frame(w, h);
        let mean_y = |t: &[f32]| t[..w * h].iter().sum::<f32>() / (w * h) as f32;
        // High-frequency energy of Y'.
        let detail = |t: &[f32]| {
            (w + 1..w * h)
                .map(|i| (t[i] - t[i - 1]).abs() + (t[i] - t[i - w]).abs())
                .sum::<f32>()
                / (w * h) as f32
        };
        let with = |k| {
            let mut t = clean.clone();
            apply(k, &mut t, w, h, 3);
            t
        };
        assert!(mean_y(&with(Kind::Overexposure)) > mean_y(&clean) + 0.05);
        assert!(mean_y(&with(Kind::Underexposure)) < mean_y(&clean) - 0.05);
        assert!(detail(&with(Kind::Defocus)) < 0.8 * detail(&clean));
        assert!(detail(&with(Kind::MotionBlur)) < 0.8 * detail(&clean));
        let smoke = with(Kind::Smoke);
        let chroma = |t: &[f32]| t[2 * w * h..].iter().map(|v| (v - 0.5).abs()).sum::<f32>();
        assert!(chroma(&smoke) < 0.7 * chroma(&clean), "smoke desaturates");
        // Dye is blue: Cb rises where it is.
        let dye = with(Kind::Dye);
        let cb = |t: &[f32]| t[w * h..2 * w * h].iter().sum::<f32>();
        assert!(cb(&dye) > cb(&clean));
    }

    #[test]
    fn kind_lists_parse_and_split_in_two() {
        let held = parse_kinds("held-out").unwrap();
        let dev = parse_kinds("dev").unwrap();
        assert_eq!(held.len() + dev.len(), Kind::ALL.len());
        assert!(held.iter().all(|k| k.held_out()) && dev.iter().all(|k| !k.held_out()));
        for alarm in [Alarm::Tissue, Alarm::Quality] {
            assert!(held.iter().any(|k| k.alarm() == alarm));
            assert!(dev.iter().any(|k| k.alarm() == alarm));
        }
        assert_eq!(
            parse_kinds("dye, smoke").unwrap(),
            vec![Kind::Dye, Kind::Smoke]
        );
        let e = parse_kinds("dye,mud").unwrap_err();
        assert!(e.contains("`mud`") && e.contains("dark-blob"), "{e}");
    }
}
