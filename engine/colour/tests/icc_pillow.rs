//! The ICC profiles and PNGs, read by an independent implementation: Pillow
//! 13.0.0's ImageCms (LittleCMS 2) and PNG decoder, pinned in
//! engine/colour/data/requirements.txt. Missing Pillow fails the test.

mod common;

use med8k_colour::difference::xyz_to_lab;
use med8k_colour::png_io::write_png_file;
use med8k_colour::rgb::{OutputSpace, PCS_D50_XYZ, bradford, srgb_decode, srgb_encode};
use med8k_colour::{BandSpec, BitDepth, CubeRef, RenderOptions, RgbData, icc, render};

const SCRIPT: &str = r#"
import io, json, sys
from PIL import Image, ImageCms
req = json.load(sys.stdin)
ours = {k: ImageCms.ImageCmsProfile(io.BytesIO(bytes.fromhex(req[k]))) for k in ("srgb", "p3")}
ref = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
intent = ImageCms.Intent.RELATIVE_COLORIMETRIC
def run(src, dst, mode_out, colours):
    img = Image.new("RGB", (len(colours), 1))
    img.putdata([tuple(c) for c in colours])
    t = ImageCms.buildTransform(src, dst, "RGB", mode_out, renderingIntent=intent)
    return [list(p) for p in ImageCms.applyTransform(img, t).getdata()]
out = {
    "desc": ImageCms.getProfileDescription(ours["srgb"]).strip(),
    "srgb_to_ref": run(ours["srgb"], ref, "RGB", req["colours"]),
    "p3_to_ref": run(ours["p3"], ref, "RGB", req["p3_colours"]),
    "srgb_to_lab": run(ours["srgb"], lab, "LAB", req["colours"]),
}
png = Image.open(req["png"])
png.load()
out["png_icc"] = png.info.get("icc_profile", b"").hex()
out["png_mode"] = png.mode
out["png_pixels"] = [list(p) if isinstance(p, tuple) else p for p in png.getdata()][:64]
json.dump(out, sys.stdout)
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn arr3(v: &serde_json::Value) -> [f64; 3] {
    let a = v.as_array().expect("array");
    [0, 1, 2].map(|i| a[i].as_f64().expect("number"))
}

#[test]
fn littlecms_reads_our_profiles_and_pngs() {
    let colours: Vec<[u8; 3]> = vec![
        [0, 0, 0],
        [255, 255, 255],
        [128, 128, 128],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [200, 120, 60],
        [30, 90, 160],
        [90, 200, 120],
        [12, 5, 40],
    ];
    // Display P3 colours inside sRGB (desaturated), with their sRGB values.
    let p3_colours: Vec<[u8; 3]> = vec![
        [200, 150, 120],
        [120, 160, 200],
        [150, 190, 140],
        [128, 128, 128],
    ];
    let p3_to_srgb = |c: [u8; 3]| -> [f64; 3] {
        let lin = c.map(|v| srgb_decode(f64::from(v) / 255.0));
        let m = OutputSpace::DisplayP3.rgb_to_xyz();
        let xyz = [0, 1, 2].map(|r| (0..3).map(|k| m[r][k] * lin[k]).sum::<f64>());
        let n = OutputSpace::Srgb.xyz_to_rgb();
        [0, 1, 2].map(|r| srgb_encode((0..3).map(|k| n[r][k] * xyz[k]).sum::<f64>()) * 255.0)
    };

    // A small 16-bit render written as PNG: Pillow must read the same profile.
    let data = vec![30_000u16; 7 * 8 * 8];
    let cube = CubeRef::from_bsq(&data, 8, 8, BandSpec::med8k_seven(), 60000.0).unwrap();
    let img = render(&cube, &RenderOptions::default().with_depth(BitDepth::Eight)).unwrap();
    let dir = common::temp_dir("icc");
    let png_path = dir.join("grey.png");
    write_png_file(&png_path, &img).unwrap();

    let req = serde_json::json!({
        "srgb": hex(&icc::srgb_profile()),
        "p3": hex(&icc::profile(OutputSpace::DisplayP3)),
        "colours": colours,
        "p3_colours": p3_colours,
        "png": png_path.to_string_lossy(),
    });
    let out = common::run_python(SCRIPT, &req.to_string(), &["PIL.ImageCms"]);
    let got: serde_json::Value = serde_json::from_str(&out).expect("JSON");

    assert_eq!(got["desc"], "sRGB IEC61966-2.1 (med8k)");
    // Our sRGB profile → LittleCMS's built-in sRGB: identity within 1 code.
    for (c, p) in colours.iter().zip(got["srgb_to_ref"].as_array().unwrap()) {
        let p = arr3(p);
        for k in 0..3 {
            assert!((p[k] - f64::from(c[k])).abs() <= 1.0, "sRGB {c:?} -> {p:?}");
        }
    }
    // Display P3 → sRGB matches our own matrices within 1 code.
    for (c, p) in p3_colours.iter().zip(got["p3_to_ref"].as_array().unwrap()) {
        let (p, want) = (arr3(p), p3_to_srgb(*c));
        for k in 0..3 {
            assert!(
                (p[k] - want[k]).abs() <= 1.5,
                "P3 {c:?} -> {p:?}, want {want:?}"
            );
        }
    }
    // sRGB → CIELAB (D50 PCS): Pillow's 8-bit LAB is L·255/100, a + 128, b + 128.
    let chad = bradford(OutputSpace::Srgb.white_xyz(), PCS_D50_XYZ);
    let m = OutputSpace::Srgb.rgb_to_xyz();
    for (c, p) in colours.iter().zip(got["srgb_to_lab"].as_array().unwrap()) {
        let lin = c.map(|v| srgb_decode(f64::from(v) / 255.0));
        let xyz = [0, 1, 2].map(|r| (0..3).map(|k| m[r][k] * lin[k]).sum::<f64>());
        let d50 = [0, 1, 2].map(|r| (0..3).map(|k| chad[r][k] * xyz[k]).sum::<f64>());
        let want = xyz_to_lab(d50, PCS_D50_XYZ);
        let p = arr3(p);
        let lab = [p[0] * 100.0 / 255.0, p[1] - 128.0, p[2] - 128.0];
        assert!(
            (lab[0] - want[0]).abs() <= 1.0
                && (lab[1] - want[1]).abs() <= 1.5
                && (lab[2] - want[2]).abs() <= 1.5,
            "sRGB {c:?} -> Lab {lab:?}, want {want:?}"
        );
    }
    // The PNG: same profile bytes, same pixels.
    assert_eq!(got["png_icc"], hex(&icc::srgb_profile()));
    assert_eq!(got["png_mode"], "RGB");
    let RgbData::Eight(ours) = &img.data else {
        panic!("8-bit")
    };
    let theirs: Vec<u8> = got["png_pixels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| arr3(p).map(|v| v as u8))
        .collect();
    assert_eq!(theirs.as_slice(), &ours[..theirs.len()]);
    let _ = std::fs::remove_dir_all(dir);
}

const TIFF_SCRIPT: &str = r#"
import json, sys
from PIL import Image
req = json.load(sys.stdin)
out = {}
for key in ("tiff8", "tiff16"):
    img = Image.open(req[key])
    img.load()
    out[key] = {
        "size": list(img.size),
        "icc": img.info.get("icc_profile", b"").hex(),
        "pixels": [list(p) for p in img.convert("RGB").getdata()],
    }
json.dump(out, sys.stdout)
"#;

/// TIFFs of several strips at 8 and 16 bits, read back by Pillow's TIFF
/// decoder: the same size, the same ICC profile, the same pixels (Pillow
/// reads 16-bit RGB as 8 bits, the high byte).
#[test]
fn pillow_reads_our_tiffs() {
    use med8k_colour::tiff_io::write_tiff_file;
    let (w, h) = (37usize, 131usize);
    let data: Vec<u16> = (0..7 * w * h)
        .map(|i| (((i * 7919) % 60_000) as u16).max(200))
        .collect();
    let cube = CubeRef::from_bsq(&data, w, h, BandSpec::med8k_seven(), 60000.0).unwrap();
    let dir = common::temp_dir("tiff");
    let mut images = Vec::new();
    for (depth, name) in [(BitDepth::Eight, "tiff8"), (BitDepth::Sixteen, "tiff16")] {
        let img = render(&cube, &RenderOptions::default().with_depth(depth)).unwrap();
        let path = dir.join(format!("{name}.tif"));
        write_tiff_file(&path, &img).unwrap();
        images.push((name, path, img));
    }
    let req = serde_json::json!({
        "tiff8": images[0].1.to_string_lossy(),
        "tiff16": images[1].1.to_string_lossy(),
    });
    let out = common::run_python(TIFF_SCRIPT, &req.to_string(), &["PIL.Image"]);
    let got: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    for (name, _, img) in &images {
        let g = &got[*name];
        assert_eq!(g["size"], serde_json::json!([w, h]), "{name}");
        assert_eq!(g["icc"], hex(&icc::srgb_profile()), "{name}");
        let theirs: Vec<u8> = g["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| arr3(p).map(|v| v as u8))
            .collect();
        let ours: Vec<u8> = match &img.data {
            RgbData::Eight(d) => d.clone(),
            RgbData::Sixteen(d) => d.iter().map(|v| (v >> 8) as u8).collect(),
        };
        assert_eq!(theirs.len(), 3 * w * h, "{name}");
        assert_eq!(theirs, ours, "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
