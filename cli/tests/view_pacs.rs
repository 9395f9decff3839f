//! `med8k view --pacs`: a study read from a real PACS (Debian's Orthanc on
//! loopback) over QIDO-RS and WADO-RS, shown by the real binary. The cube
//! `dicom export` wrote with a known pixel spacing is stored into Orthanc;
//! the viewer picks the 7-band image over its sRGB rendering, reports the
//! cube's size, bands and samples and the exported pixel spacing (or the one
//! `--pixel-spacing-um` gives), serves a tile, writes nothing where it runs
//! and exits 0 when the session ends. An unknown study, a study without a
//! 7-band image, an instance that is not one and a PACS that is down are
//! each one line, exit 1, naming no UID and no patient.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;
#[path = "../../engine/dicom/tests/common/orthanc.rs"]
#[allow(dead_code)] // its C-STORE side is for cli/tests/dicom.rs
mod orthanc;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::{assert_one_line_error, command, http, med8k, spawn_first_line, stderr, stdout};
use med8k_media::spectral::envi;
use orthanc::Orthanc;

/// What `dicom export` is told: 2.5 µm between pixel centres.
const SPACING_MM: &str = "0.0025";
const PATIENT_NAME: &str = "YAMADA^HANAKO";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/fixtures/he_region.hdr")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

/// Exports the fixture into `dir/ex`: (spectral, colour) files.
fn export(dir: &Path) -> (PathBuf, PathBuf) {
    ok(&med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            fixture().to_str().unwrap(),
            "--out",
            "ex",
            "--patient",
            "PID-0042",
            "--patient-name",
            PATIENT_NAME,
            "--when",
            "20260115093000",
            "--tile",
            "128",
            "--pixel-spacing",
            SPACING_MM,
        ],
    ));
    (
        dir.join("ex/he_region.spectral.dcm"),
        dir.join("ex/he_region.colour.dcm"),
    )
}

fn store(dir: &Path, pacs: &Orthanc, files: &[&Path]) {
    let mut args = vec!["dicom", "store", "--pacs"];
    let url = pacs.dicomweb();
    args.push(&url);
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let o = med8k(dir, &args);
    assert!(o.status.success(), "{}\n{}", stderr(&o), pacs.logs());
}

/// The study, series and SOP instance UIDs of `file`.
fn uids(file: &Path) -> [String; 3] {
    use dicom_dictionary_std::tags;
    let obj = med8k_dicom::import::open(file).unwrap();
    [
        tags::STUDY_INSTANCE_UID,
        tags::SERIES_INSTANCE_UID,
        tags::SOP_INSTANCE_UID,
    ]
    .map(|t| {
        obj.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_owned()
    })
}

/// A viewer started with `args`: its child, loopback address and cookie
/// (the URL's token exchanged).
fn open_viewer(dir: &Path, args: &[&str]) -> (Child, String, String) {
    let (child, line) = spawn_first_line(command(dir, args));
    let url = line.trim().to_owned();
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("first line: {url:?}"));
    let addr = format!("127.0.0.1:{}", rest.split('/').next().unwrap());
    let (head, _) = http(&addr, "GET", &url[url.find("/?t=").unwrap()..], "", "");
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (child, addr, cookie)
}

fn info(addr: &str, cookie: &str) -> serde_json::Value {
    let (head, body) = http(addr, "GET", "/api/info", cookie, "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    serde_json::from_slice(&body).unwrap()
}

/// Ends the session as the End button does; the process exits 0.
fn end(mut child: Child, addr: &str, cookie: &str) {
    let (head, _) = http(addr, "POST", "/api/end", cookie, "");
    assert!(head.contains("clear-site-data"), "{head}");
    let status = wait(&mut child, Duration::from_secs(30));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("session ended: the images were dropped"),
        "{out}"
    );
}

/// Waits for `child` at most `limit`; kills it and fails past that.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("med8k view did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `dir`, with its size.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), m.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn view_shows_a_study_from_the_pacs_with_the_exported_pixel_spacing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cube = envi::read(&fixture()).unwrap();
    let pacs = Orthanc::start();
    let (spectral, colour) = export(dir);
    // The rendering first: the viewer must choose by what the image is, not
    // by order.
    store(dir, &pacs, &[&colour, &spectral]);
    assert_eq!(pacs.instance_count(), 2);
    let [study, series, instance] = uids(&spectral);
    let url = pacs.dicomweb();

    let before = files(dir);
    let (child, addr, cookie) = open_viewer(
        dir,
        &["view", "--pacs", &url, "--study", &study, "--no-browser"],
    );
    let i = info(&addr, &cookie);
    assert_eq!(i["width"], cube.width());
    assert_eq!(i["height"], cube.height());
    let nm: Vec<f64> = i["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["nm"].as_f64().unwrap())
        .collect();
    assert_eq!(nm, [410.0, 450.0, 490.0, 530.0, 570.0, 610.0, 650.0]);
    let um = i["pixel_spacing_um"].as_f64().expect("a pixel spacing");
    assert!((um - 2.5).abs() < 1e-9, "{um} µm, exported 0.0025 mm");
    // The samples are the cube's.
    let (x, y) = (cube.width() - 3, cube.height() / 2);
    let (_, body) = http(
        &addr,
        "GET",
        &format!("/api/spectrum?x={x}&y={y}"),
        &cookie,
        "",
    );
    let s: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let raw: Vec<u64> = s["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["raw"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..7).map(|b| u64::from(cube.data()[[b, y, x]])).collect();
    assert_eq!(raw, want);
    // One tile of the full-resolution level, true colour.
    let (head, png) = http(&addr, "GET", "/api/tile/0/1/0?view=tc&ill=D65", &cookie, "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: image/png"), "{head}");
    let reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    assert_eq!((w, h), (cube.width() - 256, 256));
    end(child, &addr, &cookie);
    assert_eq!(files(dir), before, "view --pacs wrote nothing where it ran");

    // --pixel-spacing-um overrides the object; --series/--instance name it.
    let (child, addr, cookie) = open_viewer(
        dir,
        &[
            "view",
            "--pacs",
            &url,
            "--study",
            &study,
            "--series",
            &series,
            "--instance",
            &instance,
            "--pixel-spacing-um",
            "4",
            "--no-browser",
        ],
    );
    let i = info(&addr, &cookie);
    assert_eq!(i["pixel_spacing_um"].as_f64(), Some(4.0));
    assert_eq!(i["width"], cube.width());
    end(child, &addr, &cookie);
}

/// The command failed in one line, within a bounded time, naming neither
/// the study UID nor the patient.
fn refused(dir: &Path, args: &[&str], words: &[&str], study: &str) {
    let mut child = command(dir, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait(&mut child, Duration::from_secs(60));
    let o = child.wait_with_output().unwrap();
    assert_one_line_error(&o, words);
    let err = stderr(&o);
    assert!(stdout(&o).is_empty(), "no URL: {}", stdout(&o));
    for secret in [study, PATIENT_NAME, "YAMADA", "PID-0042"] {
        assert!(!err.contains(secret), "{secret} in {err}");
    }
}

#[test]
fn view_says_in_one_line_why_a_study_cannot_be_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pacs = Orthanc::start();
    let (spectral, colour) = export(dir);
    // Only the sRGB rendering in the PACS: no 7-band image in the study.
    store(dir, &pacs, &[&colour]);
    let [study, series, instance] = uids(&colour);
    let url = pacs.dicomweb();
    refused(
        dir,
        &["view", "--pacs", &url, "--study", &study, "--no-browser"],
        &["no 7-band", "1 × VL WSI with 1 optical path(s), 8 bits"],
        &study,
    );
    // The rendering named outright: read, and refused for what it is.
    refused(
        dir,
        &[
            "view",
            "--pacs",
            &url,
            "--study",
            &study,
            "--series",
            &series,
            "--instance",
            &instance,
            "--no-browser",
        ],
        &["MONOCHROME2", "colour rendering"],
        &study,
    );
    // A study this PACS never held.
    let other = "1.2.392.200036.9999.1.77";
    refused(
        dir,
        &["view", "--pacs", &url, "--study", other, "--no-browser"],
        &["holds no study", &url],
        other,
    );
    // The PACS stopped: refused at once, not waited on.
    drop(pacs);
    refused(
        dir,
        &["view", "--pacs", &url, "--study", &study, "--no-browser"],
        &["unreachable", &url],
        &study,
    );
    assert!(spectral.exists());
}
