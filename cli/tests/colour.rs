//! `med8k colour render` and `med8k colour eval` as a user runs them: a
//! fixture cube to PNG and TIFF (read back by the png crate), an evaluation
//! on a reflectance CSV, and the refusals.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::Path;

use common::{assert_one_line_error, med8k, stderr, stdout};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_cube_renders_to_png_with_its_profile_and_to_tiff() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cube = fixture("he_region.hdr");
    let o = med8k(dir, &["colour", "render", "--in", &cube, "--out", "he.png"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("-> he.png (sRGB, D65, 8-bit)"),
        "{}",
        stdout(&o)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("he.png")).unwrap(),
    ));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    let (w, h) = (info.width, info.height);
    assert!(info.icc_profile.is_some(), "no iCCP chunk");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    // The header's size: the cube's samples and lines.
    let hdr = std::fs::read_to_string(&cube).unwrap();
    assert!(hdr.contains(&format!("samples = {w}")), "{hdr}");
    assert!(hdr.contains(&format!("lines = {h}")), "{hdr}");

    let o = med8k(
        dir,
        &[
            "colour",
            "render",
            "--in",
            &cube,
            "--out",
            "he.tif",
            "--space",
            "p3",
            "--illuminant",
            "D50",
            "--sixteen-bit",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let tif = std::fs::read(dir.join("he.tif")).unwrap();
    assert_eq!(&tif[..4], b"II*\0");
    // Header, tags and profile, then 2 bytes × 3 channels per pixel.
    assert!(tif.len() as u64 > 6 * u64::from(w) * u64::from(h));
}

#[test]
fn eval_scores_both_cameras_on_a_csv_and_refuses_training_on_the_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Three smooth reflectances on a 10 nm grid, 380-780 nm.
    let mut csv = String::from("wavelength,flat,red,blue\n");
    for nm in (380..=780).step_by(10) {
        let x = f64::from(nm - 380) / 400.0;
        csv.push_str(&format!(
            "{nm},0.5,{:.4},{:.4}\n",
            0.1 + 0.8 * x,
            0.9 - 0.8 * x
        ));
    }
    std::fs::write(dir.join("mine.csv"), csv).unwrap();
    let o = med8k(
        dir,
        &[
            "colour",
            "eval",
            "--spectra",
            "mine.csv",
            "--illuminant",
            "D65",
            "--json",
            "e.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("e.json")).unwrap()).unwrap();
    let text = report.to_string();
    assert!(text.contains("mine"), "{text}");
    assert!(stdout(&o).contains("D65"), "{}", stdout(&o));

    let o = med8k(dir, &["colour", "eval", "--spectra", "cie2017"]);
    assert_one_line_error(&o, &["also the training set"]);
    std::fs::write(dir.join("bad.csv"), "wavelength,a\n500,0.5\n").unwrap();
    let o = med8k(dir, &["colour", "eval", "--spectra", "bad.csv"]);
    assert_one_line_error(&o, &["bad.csv"]);
    let o = med8k(
        dir,
        &["colour", "render", "--in", "missing.hdr", "--out", "x.png"],
    );
    assert_one_line_error(&o, &["missing.hdr"]);
}
