//! `med8k view --in` on the sending site's own copy, run as the binary:
//! a 7-band DICOM object written by `med8k dicom export` opens, the URL is
//! the first line on stdout, the token lets a client in and the cube's
//! samples come back at a point; ending the session ends the process. A file
//! that is neither a cube nor a DICOM object, a missing one and a bad option
//! are one-line errors.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::io::Read;
use std::path::Path;

use common::{assert_one_line_error, command, http_text, med8k, spawn_first_line, stderr};
use med8k_media::spectral::envi;

#[test]
fn view_opens_a_dicom_copy_on_loopback_behind_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/fixtures/he_region.hdr");
    let cube = envi::read(&fixture).unwrap();
    let o = med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            fixture.to_str().unwrap(),
            "--out",
            "dcm",
            "--syntax",
            "explicit",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The spectral object: the one that is not the sRGB rendering.
    let mut objects: Vec<_> = std::fs::read_dir(dir.join("dcm"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    objects.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    let dcm = objects.first().expect("dicom export wrote no .dcm");

    let (mut child, line) = spawn_first_line(command(
        dir,
        &["view", "--in", dcm.to_str().unwrap(), "--no-browser"],
    ));
    let url = line.trim().to_owned();
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("first line: {url:?}"));
    let addr = format!("127.0.0.1:{}", rest.split('/').next().unwrap());
    let path = &url[url.find("/?t=").unwrap()..];

    let (head, _) = http_text(&addr, "GET", "/?t=0000", "", "");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (head, _) = http_text(&addr, "GET", "/api/info", "", "");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, _) = http_text(&addr, "GET", path, "", "");
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (head, body) = http_text(&addr, "GET", "/api/info", &cookie, "");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["width"], cube.width());
    assert_eq!(info["height"], cube.height());
    // The scale bar from the object: `dicom export`'s default 0.05 mm.
    let um = info["pixel_spacing_um"].as_f64().expect("a pixel spacing");
    assert!((um - 50.0).abs() < 1e-9, "{um} µm");
    let (x, y) = (cube.width() / 2, cube.height() / 3);
    let (_, body) = http_text(
        &addr,
        "GET",
        &format!("/api/spectrum?x={x}&y={y}"),
        &cookie,
        "",
    );
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    let raw: Vec<u64> = s["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["raw"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..7).map(|b| u64::from(cube.data()[[b, y, x]])).collect();
    assert_eq!(raw, want, "the DICOM copy's samples are the cube's");

    let (head, _) = http_text(&addr, "POST", "/api/end", &cookie, "");
    assert!(head.contains("clear-site-data"), "{head}");
    let status = child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success());
    assert!(
        out.contains("session ended: the images were dropped"),
        "{out}"
    );
}

#[test]
fn view_refuses_what_it_cannot_open_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let o = med8k(dir, &["view", "--in", "notes.txt", "--no-browser"]);
    assert_one_line_error(&o, &["notes.txt", ".hdr", ".dcm"]);
    std::fs::write(dir.join("fake.dcm"), vec![0u8; 300]).unwrap();
    let o = med8k(dir, &["view", "--in", "fake.dcm", "--no-browser"]);
    assert_one_line_error(&o, &["fake.dcm"]);
    let o = med8k(dir, &["view", "--in", "missing.hdr", "--no-browser"]);
    assert_one_line_error(&o, &["missing.hdr"]);
    let o = med8k(dir, &["view", "--no-browser"]);
    assert_one_line_error(&o, &["--in"]);
}
