//! Picture quality: PSNR and SSIM between an original and its reconstruction.

use rayon::prelude::*;

use med8k_media::picture::Picture;

/// Peak signal-to-noise ratio over all planes, in dB (infinite when identical).
pub fn psnr(a: &Picture, b: &Picture) -> f64 {
    let (mut se, mut n) = (0f64, 0usize);
    for (pa, pb) in a.planes().iter().zip(b.planes()) {
        se += pa
            .par_chunks(1 << 16)
            .zip(pb.par_chunks(1 << 16))
            .map(|(x, y)| {
                x.iter()
                    .zip(y)
                    .map(|(&p, &q)| {
                        let d = f64::from(p) - f64::from(q);
                        d * d
                    })
                    .sum::<f64>()
            })
            .sum::<f64>();
        n += pa.len();
    }
    if se == 0.0 {
        return f64::INFINITY;
    }
    let peak = f64::from((1u32 << a.bit_depth()) - 1);
    10.0 * (peak * peak / (se / n as f64)).log10()
}

/// Mean SSIM of the planes, each the mean over 8×8 windows every 4 samples
/// (the windowing of x264 and FFmpeg's `ssim` filter), weighted by plane size.
pub fn ssim(a: &Picture, b: &Picture) -> f64 {
    let peak = f64::from((1u32 << a.bit_depth()) - 1);
    let (c1, c2) = ((0.01 * peak).powi(2), (0.03 * peak).powi(2));
    let (mut total, mut weight) = (0.0, 0.0);
    for (p, (pa, pb)) in a.planes().iter().zip(b.planes()).enumerate() {
        let (w, h) = a.plane_dims(p);
        let (w, h) = (w as usize, h as usize);
        if w < 8 || h < 8 {
            continue;
        }
        let rows: Vec<usize> = (0..=h - 8).step_by(4).collect();
        let sum: f64 = rows
            .par_iter()
            .map(|&y| {
                let mut s = 0.0;
                for x in (0..=w - 8).step_by(4) {
                    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for r in y..y + 8 {
                        for c in x..x + 8 {
                            let (u, v) = (f64::from(pa[r * w + c]), f64::from(pb[r * w + c]));
                            sa += u;
                            sb += v;
                            saa += u * u;
                            sbb += v * v;
                            sab += u * v;
                        }
                    }
                    let n = 64.0;
                    let (ma, mb) = (sa / n, sb / n);
                    let va = saa / n - ma * ma;
                    let vb = sbb / n - mb * mb;
                    let cov = sab / n - ma * mb;
                    s += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                        / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                }
                s
            })
            .sum();
        let windows = rows.len() * ((w - 8) / 4 + 1);
        total += sum / windows as f64 * pa.len() as f64;
        weight += pa.len() as f64;
    }
    if weight == 0.0 { 1.0 } else { total / weight }
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_media::picture::Layout;

    #[test]
    fn identical_pictures_are_perfect_and_noise_is_not() {
        let a = Picture::new(
            Layout::Gray,
            16,
            16,
            8,
            vec![(0..256).map(|i| (i % 251) as u16).collect()],
        )
        .unwrap();
        assert_eq!(psnr(&a, &a), f64::INFINITY);
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
        let mut b = a.clone();
        for (i, v) in b.planes_mut()[0].iter_mut().enumerate() {
            *v = if i % 2 == 0 {
                v.saturating_add(8).min(255)
            } else {
                v.saturating_sub(8)
            };
        }
        let p = psnr(&a, &b);
        assert!(p > 25.0 && p < 35.0, "{p}");
        assert!(ssim(&a, &b) < 0.99);
    }
}
