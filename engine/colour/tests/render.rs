//! The renderer: white and grey, the folded matrix against the scalar chain,
//! strip independence, bit depths, and bad input.

use med8k_colour::rgb::srgb_encode;
use med8k_colour::{
    BandSpec, BitDepth, CubeRef, EstimatorChoice, Illuminant, OutputSpace, RenderError,
    RenderOptions, Renderer, RgbData, render,
};
use ndarray::Array3;

const SCALE: f64 = 60000.0;

fn flat_cube(value: u16, w: usize, h: usize) -> Vec<u16> {
    vec![value; 7 * w * h]
}

/// A cube with a different smooth spectrum at every pixel.
fn varied_cube(w: usize, h: usize) -> Vec<u16> {
    let mut data = vec![0u16; 7 * w * h];
    for b in 0..7 {
        for y in 0..h {
            for x in 0..w {
                let t = (x as f64 / w as f64, y as f64 / h as f64);
                let r = 0.05 + 0.9 * (0.5 + 0.5 * ((b as f64) * t.0 * 2.0 + t.1 * 5.0).sin());
                data[(b * h + y) * w + x] = (r * SCALE) as u16;
            }
        }
    }
    data
}

#[test]
fn white_renders_white_and_grey_renders_neutral() {
    for ill in [Illuminant::D65, Illuminant::D50, Illuminant::A] {
        for space in [OutputSpace::Srgb, OutputSpace::DisplayP3] {
            let opts = RenderOptions::default()
                .with_illuminant(ill)
                .with_space(space);
            let white = flat_cube(60000, 5, 3);
            let cube = CubeRef::from_bsq(&white, 5, 3, BandSpec::med8k_seven(), SCALE).unwrap();
            let img = render(&cube, &opts).unwrap();
            let p = img.pixel8(4, 2).unwrap();
            assert!(p.iter().all(|&v| v >= 254), "{ill} {space}: white -> {p:?}");
            // 18% grey: neutral, and L* ≈ 49.5 → sRGB code ≈ 118.
            let grey = flat_cube(10800, 5, 3);
            let cube = CubeRef::from_bsq(&grey, 5, 3, BandSpec::med8k_seven(), SCALE).unwrap();
            let p = render(&cube, &opts).unwrap().pixel8(0, 0).unwrap();
            let spread = p.iter().max().unwrap() - p.iter().min().unwrap();
            assert!(
                spread <= 1 && (116..=120).contains(&p[1]),
                "{ill} {space}: grey -> {p:?}"
            );
        }
    }
}

#[test]
fn folded_matrix_equals_the_scalar_chain_and_strips_do_not_matter() {
    let (w, h) = (37, 29); // not multiples of anything
    let data = varied_cube(w, h);
    let cube = CubeRef::from_bsq(&data, w, h, BandSpec::med8k_seven(), SCALE).unwrap();
    let opts = RenderOptions::default()
        .with_illuminant(Illuminant::D50)
        .with_depth(BitDepth::Sixteen);
    let r = Renderer::new(&cube.bands, &opts).unwrap();
    let img = r.render(&cube).unwrap();
    let RgbData::Sixteen(px) = &img.data else {
        panic!("expected 16-bit")
    };
    for (x, y) in [(0, 0), (36, 28), (17, 3), (5, 20)] {
        let v: Vec<f64> = (0..7)
            .map(|b| f64::from(data[(b * h + y) * w + x]) / SCALE)
            .collect();
        let lin = r.band_to_linear_rgb().apply(&v);
        for c in 0..3 {
            let want = srgb_encode(lin[c].clamp(0.0, 1.0)) * 65535.0;
            let got = f64::from(px[3 * (y * w + x) + c]);
            assert!(
                (got - want).abs() <= 1.0,
                "({x},{y}) ch {c}: {got} vs {want}"
            );
        }
    }
    for rows in [1, 7, 1000] {
        let other = Renderer::new(&cube.bands, &opts.clone().with_tile_rows(rows))
            .unwrap()
            .render(&cube)
            .unwrap();
        assert_eq!(other, img, "tile_rows {rows}");
    }
    assert_eq!(r.render_bands(&cube.planes, w, h, SCALE).unwrap(), img);
    let xyz = r.render_xyz(&cube).unwrap();
    assert_eq!(xyz.len(), w * h);
}

#[test]
fn eight_bit_is_sixteen_bit_rounded() {
    let (w, h) = (16, 8);
    let data = varied_cube(w, h);
    let cube = CubeRef::from_bsq(&data, w, h, BandSpec::med8k_seven(), SCALE).unwrap();
    let opts =
        RenderOptions::default().with_estimator(EstimatorChoice::PseudoInverse { lambda: 1e-3 });
    let a = render(&cube, &opts).unwrap();
    let b = render(&cube, &opts.with_depth(BitDepth::Sixteen)).unwrap();
    for y in 0..h {
        for x in 0..w {
            let (p, q) = (a.pixel8(x, y).unwrap(), b.pixel8(x, y).unwrap());
            for c in 0..3 {
                assert!(p[c].abs_diff(q[c]) <= 1, "({x},{y}): {p:?} vs {q:?}");
            }
        }
    }
}

#[test]
fn ndarray_cubes_render_like_bsq_slices() {
    let (w, h) = (9, 4);
    let data = varied_cube(w, h);
    let arr = Array3::from_shape_vec((7, h, w), data.clone()).unwrap();
    let a = CubeRef::from_array(arr.view(), BandSpec::med8k_seven(), SCALE).unwrap();
    let b = CubeRef::from_bsq(&data, w, h, BandSpec::med8k_seven(), SCALE).unwrap();
    let opts = RenderOptions::default();
    assert_eq!(render(&a, &opts).unwrap(), render(&b, &opts).unwrap());
    // A transposed view is not in standard layout: an error, not a panic.
    let t = arr.view().reversed_axes();
    assert_eq!(
        CubeRef::from_array(t, BandSpec::med8k_seven(), SCALE).unwrap_err(),
        RenderError::Layout
    );
}

#[test]
fn bad_input_is_an_error_that_names_the_value() {
    let data = flat_cube(100, 4, 4);
    let bands = BandSpec::med8k_seven();
    assert!(matches!(
        CubeRef::from_bsq(&data[..50], 4, 4, bands.clone(), SCALE),
        Err(RenderError::BsqLength {
            len: 50,
            need: 112,
            ..
        })
    ));
    assert!(matches!(
        CubeRef::from_bsq(&data, 0, 4, bands.clone(), SCALE),
        Err(RenderError::Size { width: 0, .. })
    ));
    assert!(matches!(
        CubeRef::from_bsq(&[], usize::MAX, 3, bands.clone(), SCALE),
        Err(RenderError::Size { .. })
    ));
    let mut cube = CubeRef::from_bsq(&data, 4, 4, bands.clone(), SCALE).unwrap();
    cube.planes[3] = &data[..5];
    assert!(matches!(
        render(&cube, &RenderOptions::default()),
        Err(RenderError::PlaneLength {
            band: 3,
            len: 5,
            ..
        })
    ));
    let cube = CubeRef::from_bsq(&data, 4, 4, bands.clone(), f64::NAN).unwrap();
    assert!(matches!(
        render(&cube, &RenderOptions::default()),
        Err(RenderError::Scale(_))
    ));
    let mut odd = bands.clone();
    odd[0].fwhm_nm = -3.0;
    let cube = CubeRef::from_bsq(&data, 4, 4, odd, SCALE).unwrap();
    let e = render(&cube, &RenderOptions::default()).unwrap_err();
    assert!(e.to_string().contains("-3"), "{e}");
    let r = Renderer::new(&bands[..6], &RenderOptions::default()).unwrap();
    let cube = CubeRef::from_bsq(&data, 4, 4, bands.clone(), SCALE).unwrap();
    assert!(matches!(
        r.render(&cube),
        Err(RenderError::BandMismatch { .. })
    ));
    assert_eq!(
        Renderer::new(&bands, &RenderOptions::default().with_tile_rows(0)).unwrap_err(),
        RenderError::TileRows
    );
    let bad_snr = RenderOptions::default().with_estimator(EstimatorChoice::Wiener {
        training: med8k_colour::Reflectances::builtin(
            med8k_colour::ReflectanceSet::ColorCheckerOhta,
        ),
        snr_db: -1.0,
    });
    assert!(matches!(
        Renderer::new(&bands, &bad_snr),
        Err(RenderError::Snr(_))
    ));
}
