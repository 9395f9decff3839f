//! The same specimen through the 7-band pipeline and through a simulated RGB
//! camera, side by side, with a ΔE2000 heat map; then the render time of a
//! synthetic 8K 7-band cube and the 7-band vs RGB evaluation.
//!
//! ```text
//! cargo run --release --example compare [FIXTURE] [OUT.png]
//! ```
//! FIXTURE is one of ihc_colon, fundus, he_region (default he_region); the
//! figure goes to engine/colour/docs/colour-compare.png by default.
//!
//! Panels: (1) 7 bands → Wiener (CIE 2017 prior) → XYZ under D65 → sRGB;
//! (2) the RGB camera (Nikon D5100, NPL sensitivities, flat-fielded under D65,
//! 3×3 fitted on the ColorChecker) photographing, at each pixel, the spectrum
//! the 7-band Wiener estimate gives there (the true per-pixel spectra are only
//! kept on a 16-pixel grid); (3) ΔE2000 between panels 1 and 2, 0–5 from dark
//! blue to yellow (0–2 ΔE2000). The figures vs the ground truth spectra are printed.

#[path = "../tests/common/fixture.rs"]
mod fixture;

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use med8k_colour::eval::{DeltaEStats, fit_3x3};
use med8k_colour::rgb::{bradford, srgb_encode};
use med8k_colour::{
    AffineMap, BandSpec, CameraModel, Colorimetry, CubeRef, Estimator, EvalOptions, Illuminant,
    MeasuredCamera, Observer, OutputSpace, ReflectanceSet, Reflectances, RenderOptions, Renderer,
    RgbData, RgbImage, SensorNoise, compare_cameras, delta_e_2000, png_io, xyz_to_lab,
};

const HEAT_MAX: f64 = 2.0;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map(String::as_str).unwrap_or("he_region");
    let out = args.get(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/colour-compare.png")
    });

    let cube = fixture::read_cube(name)?;
    let view = CubeRef::from_bsq(
        &cube.data,
        cube.width,
        cube.height,
        cube.bands.clone(),
        cube.scale,
    )?;
    let options = RenderOptions::default();
    let renderer = Renderer::new(&view.bands, &options)?;
    let seven_xyz = renderer.render_xyz(&view)?;
    let white = renderer.white();

    // The RGB path is affine in the band values too: bands → Wiener spectrum
    // → camera RGB → 3×3 → XYZ.
    let col = Colorimetry::new(Illuminant::D65, Observer::Cie1931TwoDegree);
    let ms = CameraModel::med8k_seven_band();
    let training = Reflectances::builtin(ReflectanceSet::Cie2017Tcs99);
    let wiener = Estimator::wiener(&ms, &training, SensorNoise::from_snr_db(40.0)?)?;
    let rgb_cam = CameraModel::measured(MeasuredCamera::NikonD5100);
    let chart = Reflectances::builtin(ReflectanceSet::ColorCheckerOhta);
    let chart_rgb: Vec<Vec<f64>> = chart.spectra().iter().map(|s| rgb_cam.respond(s)).collect();
    let chart_xyz: Vec<[f64; 3]> = chart.spectra().iter().map(|s| col.xyz(s)).collect();
    let m = fit_3x3(&chart_rgb, &chart_xyz)?;
    let rgb_path = |v: &[f64]| -> Result<[f64; 3], Box<dyn Error>> {
        let c = rgb_cam.respond(&wiener.estimate(v)?);
        Ok(std::array::from_fn(|r| {
            (0..3).map(|k| m[r][k] * c[k]).sum()
        }))
    };
    let zero = vec![0.0; cube.bands.len()];
    let offset = rgb_path(&zero)?;
    let mut columns = Vec::new();
    for b in 0..cube.bands.len() {
        let mut e = zero.clone();
        e[b] = 1.0;
        let x = rgb_path(&e)?;
        columns.push(std::array::from_fn(|c| x[c] - offset[c]));
    }
    let rgb_map = AffineMap { columns, offset };

    let (w, h) = (cube.width, cube.height);
    let npx = w * h;
    let mut rgb_xyz = vec![[0.0f64; 3]; npx];
    let mut de = vec![0.0f64; npx];
    for i in 0..npx {
        let v: Vec<f64> = (0..cube.bands.len())
            .map(|b| f64::from(cube.data[b * npx + i]) / cube.scale)
            .collect();
        rgb_xyz[i] = rgb_map.apply(&v);
        let a = xyz_to_lab(seven_xyz[i].map(f64::from), white);
        de[i] = delta_e_2000(a, xyz_to_lab(rgb_xyz[i], white));
    }
    let stats = DeltaEStats::of(&de).ok_or("empty image")?;
    println!(
        "{name} ({w}x{h}): ΔE2000 between the 7-band and RGB renderings: mean {:.2} median {:.2} p95 {:.2} max {:.2}",
        stats.mean, stats.median, stats.p95, stats.max
    );

    // Against the ground truth spectra (16-pixel grid): each camera photographs
    // the true spectrum, without noise.
    let truth = fixture::read_truth_spectra(name)?;
    let picks = fixture::read_truth_xyz(name)?;
    let (mut de7, mut de_rgb) = (Vec::new(), Vec::new());
    for (s, p) in truth.spectra().iter().zip(&picks) {
        let t = xyz_to_lab(p.d65, white);
        let x7 = seven_xyz[p.row * w + p.col].map(f64::from);
        de7.push(delta_e_2000(t, xyz_to_lab(x7, white)));
        let c = rgb_cam.respond(s);
        let xr: [f64; 3] = std::array::from_fn(|r| (0..3).map(|k| m[r][k] * c[k]).sum());
        de_rgb.push(delta_e_2000(t, xyz_to_lab(xr, white)));
    }
    for (label, v) in [
        ("7-band render (cube)", de7),
        ("RGB camera on true spectra", de_rgb),
    ] {
        if let Some(s) = DeltaEStats::of(&v) {
            println!(
                "  vs ground truth, {label:<27}: n={} mean {:.3} median {:.3} p95 {:.3} max {:.3}",
                s.n, s.mean, s.median, s.p95, s.max
            );
        }
    }

    let seven_img = renderer.render(&view)?;
    let to_srgb = {
        let adapt = bradford(white, OutputSpace::Srgb.white_xyz());
        let n = OutputSpace::Srgb.xyz_to_rgb();
        move |xyz: [f64; 3]| -> [u8; 3] {
            let a: [f64; 3] = std::array::from_fn(|r| (0..3).map(|k| adapt[r][k] * xyz[k]).sum());
            std::array::from_fn(|r| {
                let lin: f64 = (0..3).map(|k| n[r][k] * a[k]).sum();
                (srgb_encode(lin.clamp(0.0, 1.0)) * 255.0).round() as u8
            })
        }
    };
    let figure = compose(&seven_img, &rgb_xyz, &de, w, h, &to_srgb)?;
    png_io::write_png_file(&out, &figure)?;
    println!(
        "wrote {} ({} bytes)",
        out.display(),
        std::fs::metadata(&out)?.len()
    );

    time_8k()?;

    let report = compare_cameras(&EvalOptions::default())?;
    println!("\n{report}");
    Ok(())
}

/// Renders a synthetic 7680×4320 7-band cube a few times; prints the median.
fn time_8k() -> Result<(), Box<dyn Error>> {
    let (w, h) = (7680usize, 4320usize);
    let bands = BandSpec::med8k_seven();
    let t0 = Instant::now();
    let mut data = vec![0u16; bands.len() * w * h];
    for (b, plane) in data.chunks_exact_mut(w * h).enumerate() {
        for (y, row) in plane.chunks_exact_mut(w).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                let t = ((x * (b + 3) + y * 5) % 997) as f64 / 997.0;
                *v = (3000.0 + 54000.0 * t) as u16;
            }
        }
    }
    println!(
        "\nsynthetic 8K cube: {w}x{h}x{} u16 ({:.0} MB), made in {:.2} s",
        bands.len(),
        (data.len() * 2) as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let cube = CubeRef::from_bsq(&data, w, h, bands.clone(), 60000.0)?;
    let t1 = Instant::now();
    let renderer = Renderer::new(&bands, &RenderOptions::default())?;
    println!(
        "renderer set-up (Wiener fit + matrix): {:.1} ms",
        t1.elapsed().as_secs_f64() * 1e3
    );
    for depth in [
        med8k_colour::BitDepth::Eight,
        med8k_colour::BitDepth::Sixteen,
    ] {
        let r = Renderer::new(&bands, &RenderOptions::default().with_depth(depth))?;
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let img = r.render(&cube)?;
            times.push(t.elapsed().as_secs_f64());
            drop(img);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "8K render, {depth:?}-bit sRGB: median {:.3} s of 5 ({:.0} Mpx/s) on {} rayon threads",
            times[2],
            (w * h) as f64 / times[2] / 1e6,
            rayon::current_num_threads()
        );
    }
    drop(renderer);
    Ok(())
}

/// Three panels and a colour bar, with small captions.
fn compose(
    seven: &RgbImage,
    rgb_xyz: &[[f64; 3]],
    de: &[f64],
    w: usize,
    h: usize,
    to_srgb: &dyn Fn([f64; 3]) -> [u8; 3],
) -> Result<RgbImage, Box<dyn Error>> {
    let RgbData::Eight(seven_px) = &seven.data else {
        return Err("expected an 8-bit render".into());
    };
    let gap = 12;
    let top = 28;
    let bar_h = 56;
    let fw = 3 * w + 4 * gap;
    let fh = top + h + gap + bar_h;
    let mut img = vec![255u8; fw * fh * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        if x < fw && y < fh {
            img[3 * (y * fw + x)..3 * (y * fw + x) + 3].copy_from_slice(&c);
        }
    };
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let p7 = [seven_px[3 * i], seven_px[3 * i + 1], seven_px[3 * i + 2]];
            put(gap + x, top + y, p7);
            put(2 * gap + w + x, top + y, to_srgb(rgb_xyz[i]));
            put(3 * gap + 2 * w + x, top + y, heat(de[i] / HEAT_MAX));
        }
    }
    let ink = [20, 20, 20];
    for (i, caption) in ["7-BAND WIENER", "RGB D5100 + 3X3", "DELTA E 2000"]
        .iter()
        .enumerate()
    {
        text(&mut put, gap + i * (w + gap), 6, caption, ink);
    }
    // Colour bar under the heat map, 0..HEAT_MAX, ticks every 0.5, labels every 1.
    let bx = 3 * gap + 2 * w;
    let by = top + h + gap;
    for x in 0..w {
        let c = heat(x as f64 / (w - 1) as f64);
        for y in 0..14 {
            put(bx + x, by + y, c);
        }
    }
    for k in 0..=(2.0 * HEAT_MAX) as usize {
        let x = bx + (k as f64 / (2.0 * HEAT_MAX) * (w - 1) as f64) as usize;
        for y in 14..20 {
            put(x, by + y, ink);
        }
        if k % 2 == 0 {
            text(
                &mut put,
                x.saturating_sub(4),
                by + 24,
                &(k / 2).to_string(),
                ink,
            );
        }
    }
    Ok(RgbImage {
        width: fw,
        height: fh,
        space: OutputSpace::Srgb,
        data: RgbData::Eight(img),
    })
}

/// A blue → teal → yellow ramp (close to viridis) for t in [0, 1].
fn heat(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    std::array::from_fn(|c| (STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c])).round() as u8)
}

/// A 3×5 pixel font, drawn at 3× scale; unknown characters are blank.
fn text(put: &mut impl FnMut(usize, usize, [u8; 3]), x0: usize, y0: usize, s: &str, c: [u8; 3]) {
    for (n, ch) in s.chars().enumerate() {
        let rows = glyph(ch);
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..3 {
                if bits & (4 >> rx) != 0 {
                    for dy in 0..3 {
                        for dx in 0..3 {
                            put(x0 + n * 12 + rx * 3 + dx, y0 + ry * 3 + dy, c);
                        }
                    }
                }
            }
        }
    }
}

fn glyph(ch: char) -> [u8; 5] {
    match ch {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '7' => [7, 1, 2, 2, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'G' => [3, 4, 5, 5, 3],
        'I' => [7, 2, 2, 2, 7],
        'L' => [4, 4, 4, 4, 7],
        'N' => [6, 5, 5, 5, 5],
        'R' => [6, 5, 6, 5, 5],
        'T' => [7, 2, 2, 2, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        _ => [0; 5],
    }
}
