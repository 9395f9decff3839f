//! CIELAB and the CIEDE2000 colour difference.
//!
//! CIELAB follows CIE 15:2004 with the exact constants ε = 216/24389 and
//! κ = 24389/27. CIEDE2000 follows CIE 142-2001 as written out step by step by
//! Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula:
//! implementation notes, supplementary test data, and mathematical
//! observations", *Color Res. Appl.* 30(1):21–30; the tests check all 34 pairs
//! of their Table 1.

/// A CIELAB colour: `[L*, a*, b*]`.
pub type Lab = [f64; 3];

const EPSILON: f64 = 216.0 / 24389.0;
const KAPPA: f64 = 24389.0 / 27.0;

fn f_lab(t: f64) -> f64 {
    if t > EPSILON {
        t.cbrt()
    } else {
        (KAPPA * t + 16.0) / 116.0
    }
}

fn f_lab_inv(f: f64) -> f64 {
    let t = f * f * f;
    if t > EPSILON {
        t
    } else {
        (116.0 * f - 16.0) / KAPPA
    }
}

/// CIE XYZ → CIELAB relative to the reference white `white` (same scale as `xyz`).
pub fn xyz_to_lab(xyz: [f64; 3], white: [f64; 3]) -> Lab {
    let fx = f_lab(xyz[0] / white[0]);
    let fy = f_lab(xyz[1] / white[1]);
    let fz = f_lab(xyz[2] / white[2]);
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIELAB → CIE XYZ relative to the reference white `white`.
pub fn lab_to_xyz(lab: Lab, white: [f64; 3]) -> [f64; 3] {
    let fy = (lab[0] + 16.0) / 116.0;
    let fx = fy + lab[1] / 500.0;
    let fz = fy - lab[2] / 200.0;
    [
        white[0] * f_lab_inv(fx),
        white[1] * f_lab_inv(fy),
        white[2] * f_lab_inv(fz),
    ]
}

/// Hue angle in degrees, 0..360, with atan2(0, 0) = 0 as the formula requires.
fn hue_deg(b: f64, a: f64) -> f64 {
    if a == 0.0 && b == 0.0 {
        return 0.0;
    }
    let h = b.atan2(a).to_degrees();
    if h < 0.0 { h + 360.0 } else { h }
}

/// Hue differences within this many degrees of ±180° are taken to be exactly
/// 180° apart. Two hues that are mathematically opposite (Sharma's pair 14)
/// otherwise land on either side of 180° depending on the last bit of atan2,
/// and the formula jumps there; the paper's value is the one for exactly 180°.
const OPPOSITE_HUE_TOLERANCE_DEG: f64 = 1e-9;

/// The CIEDE2000 colour difference ΔE00 between two CIELAB colours, with the
/// parametric factors k_L = k_C = k_H = 1.
pub fn delta_e_2000(lab1: Lab, lab2: Lab) -> f64 {
    delta_e_2000_weighted(lab1, lab2, [1.0, 1.0, 1.0])
}

/// CIEDE2000 with explicit parametric factors `[k_L, k_C, k_H]`.
pub fn delta_e_2000_weighted(lab1: Lab, lab2: Lab, k: [f64; 3]) -> f64 {
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;
    // Step 1: C'ab and h' (equations 2–7).
    let c1 = a1.hypot(b1);
    let c2 = a2.hypot(b2);
    let c_bar = 0.5 * (c1 + c2);
    let c_bar7 = c_bar.powi(7);
    let g = 0.5 * (1.0 - (c_bar7 / (c_bar7 + 25f64.powi(7))).sqrt());
    let a1p = (1.0 + g) * a1;
    let a2p = (1.0 + g) * a2;
    let c1p = a1p.hypot(b1);
    let c2p = a2p.hypot(b2);
    let h1p = hue_deg(b1, a1p);
    let h2p = hue_deg(b2, a2p);

    // Step 2: ΔL', ΔC', ΔH' (equations 8–11).
    let dlp = l2 - l1;
    let dcp = c2p - c1p;
    let product_c = c1p * c2p;
    let diff = h2p - h1p;
    let near_180 = (diff.abs() - 180.0).abs() <= OPPOSITE_HUE_TOLERANCE_DEG;
    let dhp = if product_c == 0.0 {
        0.0
    } else if diff.abs() <= 180.0 || near_180 {
        diff
    } else if diff > 180.0 {
        diff - 360.0
    } else {
        diff + 360.0
    };
    let d_hp = 2.0 * product_c.sqrt() * (dhp.to_radians() / 2.0).sin();

    // Step 3: the weighting functions (equations 12–22).
    let l_bar = 0.5 * (l1 + l2);
    let c_bar_p = 0.5 * (c1p + c2p);
    let sum_h = h1p + h2p;
    let h_bar = if product_c == 0.0 {
        sum_h
    } else if (h1p - h2p).abs() <= 180.0 || near_180 {
        0.5 * sum_h
    } else if sum_h < 360.0 {
        0.5 * (sum_h + 360.0)
    } else {
        0.5 * (sum_h - 360.0)
    };
    let t = 1.0 - 0.17 * (h_bar - 30.0).to_radians().cos()
        + 0.24 * (2.0 * h_bar).to_radians().cos()
        + 0.32 * (3.0 * h_bar + 6.0).to_radians().cos()
        - 0.20 * (4.0 * h_bar - 63.0).to_radians().cos();
    let d_theta = 30.0 * (-((h_bar - 275.0) / 25.0).powi(2)).exp();
    let c_bar_p7 = c_bar_p.powi(7);
    let r_c = 2.0 * (c_bar_p7 / (c_bar_p7 + 25f64.powi(7))).sqrt();
    let l50 = (l_bar - 50.0).powi(2);
    let s_l = 1.0 + 0.015 * l50 / (20.0 + l50).sqrt();
    let s_c = 1.0 + 0.045 * c_bar_p;
    let s_h = 1.0 + 0.015 * c_bar_p * t;
    let r_t = -(2.0 * d_theta).to_radians().sin() * r_c;

    let tl = dlp / (k[0] * s_l);
    let tc = dcp / (k[1] * s_c);
    let th = d_hp / (k[2] * s_h);
    (tl * tl + tc * tc + th * th + r_t * tc * th).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sharma, Wu & Dalal (2005), Table 1: all 34 pairs (L*, a*, b*) and ΔE00.
    #[rustfmt::skip]
    const SHARMA_2005: [(Lab, Lab, f64); 34] = [
        ([50.0000, 2.6772, -79.7751], [50.0000, 0.0000, -82.7485], 2.0425),
        ([50.0000, 3.1571, -77.2803], [50.0000, 0.0000, -82.7485], 2.8615),
        ([50.0000, 2.8361, -74.0200], [50.0000, 0.0000, -82.7485], 3.4412),
        ([50.0000, -1.3802, -84.2814], [50.0000, 0.0000, -82.7485], 1.0000),
        ([50.0000, -1.1848, -84.8006], [50.0000, 0.0000, -82.7485], 1.0000),
        ([50.0000, -0.9009, -85.5211], [50.0000, 0.0000, -82.7485], 1.0000),
        ([50.0000, 0.0000, 0.0000], [50.0000, -1.0000, 2.0000], 2.3669),
        ([50.0000, -1.0000, 2.0000], [50.0000, 0.0000, 0.0000], 2.3669),
        ([50.0000, 2.4900, -0.0010], [50.0000, -2.4900, 0.0009], 7.1792),
        ([50.0000, 2.4900, -0.0010], [50.0000, -2.4900, 0.0010], 7.1792),
        ([50.0000, 2.4900, -0.0010], [50.0000, -2.4900, 0.0011], 7.2195),
        ([50.0000, 2.4900, -0.0010], [50.0000, -2.4900, 0.0012], 7.2195),
        ([50.0000, -0.0010, 2.4900], [50.0000, 0.0009, -2.4900], 4.8045),
        ([50.0000, -0.0010, 2.4900], [50.0000, 0.0010, -2.4900], 4.8045),
        ([50.0000, -0.0010, 2.4900], [50.0000, 0.0011, -2.4900], 4.7461),
        ([50.0000, 2.5000, 0.0000], [50.0000, 0.0000, -2.5000], 4.3065),
        ([50.0000, 2.5000, 0.0000], [73.0000, 25.0000, -18.0000], 27.1492),
        ([50.0000, 2.5000, 0.0000], [61.0000, -5.0000, 29.0000], 22.8977),
        ([50.0000, 2.5000, 0.0000], [56.0000, -27.0000, -3.0000], 31.9030),
        ([50.0000, 2.5000, 0.0000], [58.0000, 24.0000, 15.0000], 19.4535),
        ([50.0000, 2.5000, 0.0000], [50.0000, 3.1736, 0.5854], 1.0000),
        ([50.0000, 2.5000, 0.0000], [50.0000, 3.2972, 0.0000], 1.0000),
        ([50.0000, 2.5000, 0.0000], [50.0000, 1.8634, 0.5757], 1.0000),
        ([50.0000, 2.5000, 0.0000], [50.0000, 3.2592, 0.3350], 1.0000),
        ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644),
        ([63.0109, -31.0961, -5.8663], [62.8187, -29.7946, -4.0864], 1.2630),
        ([61.2901, 3.7196, -5.3901], [61.4292, 2.2480, -4.9620], 1.8731),
        ([35.0831, -44.1164, 3.7933], [35.0232, -40.0716, 1.5901], 1.8645),
        ([22.7233, 20.0904, -46.6940], [23.0331, 14.9730, -42.5619], 2.0373),
        ([36.4612, 47.8580, 18.3852], [36.2715, 50.5065, 21.2231], 1.4146),
        ([90.8027, -2.0831, 1.4410], [91.1528, -1.6435, 0.0447], 1.4441),
        ([90.9257, -0.5406, -0.9208], [88.6381, -0.8985, -0.7239], 1.5381),
        ([6.7747, -0.2908, -2.4247], [5.8714, -0.0985, -2.2286], 0.6377),
        ([2.0776, 0.0795, -1.1350], [0.9033, -0.0636, -0.5514], 0.9082),
    ];

    #[test]
    fn sharma_wu_dalal_all_34_pairs() {
        for (i, (l1, l2, want)) in SHARMA_2005.iter().enumerate() {
            let got = delta_e_2000(*l1, *l2);
            assert!((got - want).abs() < 1e-4, "pair {}: {got} vs {want}", i + 1);
            // The formula is symmetric in its arguments (Sharma et al., §4).
            let rev = delta_e_2000(*l2, *l1);
            assert!((rev - want).abs() < 1e-4, "pair {} reversed: {rev}", i + 1);
        }
    }

    #[test]
    fn identical_colours_have_zero_difference() {
        assert_eq!(delta_e_2000([50.0, 10.0, -20.0], [50.0, 10.0, -20.0]), 0.0);
        assert_eq!(delta_e_2000([0.0; 3], [0.0; 3]), 0.0);
    }

    #[test]
    fn lab_round_trips() {
        let white = [0.95047, 1.0, 1.08883];
        for xyz in [[0.2, 0.3, 0.4], [0.001, 0.002, 0.003], white, [0.0; 3]] {
            let back = lab_to_xyz(xyz_to_lab(xyz, white), white);
            for c in 0..3 {
                assert!((back[c] - xyz[c]).abs() < 1e-12, "{xyz:?} -> {back:?}");
            }
        }
        let l = xyz_to_lab(white, white);
        assert!((l[0] - 100.0).abs() < 1e-12 && l[1].abs() < 1e-12 && l[2].abs() < 1e-12);
    }
}
