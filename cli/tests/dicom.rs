//! `med8k dicom` and `med8k serve --pacs`: the real binary, two real
//! Orthanc PACS (Debian's) on loopback, and a link between two sites.
//!
//! The walk-through of the README: site A exports a 7-band cube, stores it
//! into its PACS by C-STORE; `send` takes the study from that PACS, discloses
//! it under the consent's pseudonym and sends it over the link; site B's
//! `serve --pacs` stores it into its PACS by STOW-RS; `dicom fetch` takes it
//! back out by WADO-RS and `dicom import` gives the cube back bit-exact.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;
#[path = "../../engine/dicom/tests/common/orthanc.rs"]
mod orthanc;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Serve, assert_one_line_error, med8k, stderr, stdout};
use med8k_transport::pki::Ephemeral;
use orthanc::Orthanc;
use tempfile::TempDir;

const A: &str = "jp.hospital-a";
const B: &str = "jp.hospital-b";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/fixtures")
}

fn sites(dir: &Path) {
    let ca = Ephemeral::new("Test CA").unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.cert_pem).unwrap();
    for (id, file, peer) in [(A, "a", B), (B, "b", A)] {
        let leaf = ca.facility(id).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), &leaf.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), &leaf.key_pem).unwrap();
        let text = format!(
            "[site]\nid = \"{id}\"\nname = \"Site {file}\"\n\n[tls]\ncert = \"{file}.pem\"\n\
             key = \"{file}.key\"\nroots = [\"ca.pem\"]\nallowed = [\"{peer}\"]\n\n\
             [gate]\nkind = \"allow-authenticated\"\n"
        );
        std::fs::write(dir.join(format!("site-{file}.toml")), text).unwrap();
    }
    // One grey frame for the live channel (send always has a source).
    let mut pgm = b"P5\n64 32\n255\n".to_vec();
    pgm.extend((0..64 * 32).map(|i| (i % 251) as u8));
    std::fs::write(dir.join("frame.pgm"), pgm).unwrap();
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

#[test]
fn a_cube_crosses_a_consented_link_into_the_receiving_pacs_and_back_bit_exact() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    sites(dir);
    let (pacs_a, pacs_b) = (Orthanc::start(), Orthanc::start());
    let cube = fixtures().join("he_region.hdr");
    // Site A: its own identifiers, its own UID root.
    let out = ok(&med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            cube.to_str().unwrap(),
            "--out",
            "a",
            "--patient",
            "PID-0042",
            "--patient-name",
            "YAMADA^HANAKO",
            "--birth-date",
            "19610203",
            "--study",
            "ST-7",
            "--accession",
            "ACC-991",
            "--when",
            "20260115093000",
            "--uid-root",
            "1.2.392.200036.9999.1",
            "--syntax",
            "jpeg-ls",
            "--tile",
            "256",
        ],
    ));
    assert!(
        out.contains("spectral -> ") && out.contains("colour -> "),
        "{out}"
    );
    // Colour pixel data is written in explicit VR whatever was asked for
    // (dicom-rs's JPEG-LS writer mislays RGB), and the line says so.
    let colour_line = out.lines().find(|l| l.starts_with("colour -> ")).unwrap();
    assert!(colour_line.contains(", explicit,"), "{out}");
    let spectral = dir.join("a/he_region.spectral.dcm");
    let colour = dir.join("a/he_region.colour.dcm");
    ok(&med8k(
        dir,
        &[
            "dicom",
            "store",
            "--scp",
            &pacs_a.scp(),
            spectral.to_str().unwrap(),
            colour.to_str().unwrap(),
        ],
    ));
    let study = med8k_dicom::import::open(&spectral)
        .unwrap()
        .element(dicom_dictionary_std::tags::STUDY_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    // Site B listens, storing what arrives into its PACS.
    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-b.toml",
        &[
            "--out",
            "recv",
            "--links",
            "1",
            "--pacs",
            &pacs_b.dicomweb(),
        ],
    );
    // Site A sends the study from its PACS, disclosed as the pseudonym.
    let pseudonym = "9f86d081884c7d65";
    let sent = ok(&med8k(
        dir,
        &[
            "send",
            "--to",
            &serve.addr,
            "--config",
            "site-a.toml",
            "--source",
            "frame.pgm",
            "--frames",
            "1",
            "--lossless",
            "--object-from-pacs",
            &format!("{}#{study}", pacs_a.dicomweb()),
            "--pseudonym",
            pseudonym,
        ],
    ));
    assert!(sent.contains("delivered"), "{sent}");
    let served = serve.wait(Duration::from_secs(120));
    let report = ok(&served);
    assert!(
        report.contains("stored into the PACS (2 instance(s))"),
        "{report}"
    );
    assert_eq!(pacs_b.instance_count(), 2, "{}", pacs_b.logs());
    // Out of site B's PACS by WADO-RS, under the pseudonymised study UID.
    let disclosed_study = med8k_dicom::identity::replacement_uid(pseudonym, &study);
    let fetched = ok(&med8k(
        dir,
        &[
            "dicom",
            "fetch",
            "--pacs",
            &pacs_b.dicomweb(),
            "--study",
            &disclosed_study,
            "--out",
            "b",
        ],
    ));
    assert!(fetched.contains("fetched 2 instance(s)"), "{fetched}");
    let mut cubes = 0;
    for f in std::fs::read_dir(dir.join("b")).unwrap() {
        let f = f.unwrap().path();
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            "PID-0042",
            "YAMADA",
            "19610203",
            "ST-7",
            "ACC-991",
            study.as_str(),
        ] {
            assert!(
                !text.contains(secret),
                "{secret} crossed the link in {}",
                f.display()
            );
        }
        assert!(text.contains(pseudonym));
        let o = med8k(
            dir,
            &[
                "dicom",
                "import",
                "--in",
                f.to_str().unwrap(),
                "--out",
                "back.hdr",
            ],
        );
        if o.status.success() {
            cubes += 1;
            let a = std::fs::read(fixtures().join("he_region.raw")).unwrap();
            let b = std::fs::read(dir.join("back.raw")).unwrap();
            assert!(a == b, "samples differ after two PACS and a link");
        } else {
            // The colour rendering is not a cube, and says so on one line.
            assert_one_line_error(&o, &["PhotometricInterpretation", "RGB"]);
        }
    }
    assert_eq!(cubes, 1);
}

#[test]
fn bad_input_and_a_down_pacs_are_one_line_errors_and_nothing_is_lost() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    sites(dir);
    std::fs::write(dir.join("junk.dcm"), b"not a dicom file").unwrap();
    let o = med8k(
        dir,
        &["dicom", "import", "--in", "junk.dcm", "--out", "x.hdr"],
    );
    assert_one_line_error(&o, &["junk.dcm", "not a readable DICOM file"]);
    // A cube export for a PACS that is down.
    let cube = fixtures().join("fundus.hdr");
    ok(&med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            cube.to_str().unwrap(),
            "--out",
            "a",
            "--syntax",
            "explicit",
        ],
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/dicom-web");
    let o = med8k(
        dir,
        &["dicom", "store", "--pacs", &url, "a/fundus.spectral.dcm"],
    );
    assert_one_line_error(&o, &[&url, "unreachable"]);
    assert!(dir.join("a/fundus.spectral.dcm").exists());
    // A DICOM object without a disclosure is not sent.
    let o = med8k(
        dir,
        &[
            "send",
            "--to",
            "127.0.0.1:9",
            "--config",
            "site-a.toml",
            "--source",
            "frame.pgm",
            "--object",
            "a/fundus.spectral.dcm",
        ],
    );
    assert_one_line_error(&o, &["--pseudonym", "--disclose-identity"]);
    // A frame export with a frame that is not a picture.
    let o = med8k(dir, &["dicom", "export", "--in", "junk.dcm", "--out", "e"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

/// A frame file (a PPM, as a grab from the monitor would be, and a PNG made
/// by FFmpeg) with the endoscope model: the VL Endoscopic image and the SR
/// of the detector's result, both read by DCMTK; a cube model on a frame is
/// a one-line error.
#[test]
fn a_frame_exports_with_the_detectors_report() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let (w, h) = (320usize, 180usize);
    let mut ppm = format!("P6\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            let lesion = (100..140).contains(&x) && (60..100).contains(&y);
            ppm.extend(if lesion { [40, 200, 60] } else { [190, 90, 80] });
        }
    }
    std::fs::write(dir.join("grab.ppm"), ppm).unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let model = models.join("endoscope/med8k-endoscope-gauss.onnx");
    let out = ok(&med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            "grab.ppm",
            "--out",
            "e",
            "--model",
            model.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("detector med8k-endoscope-gauss"), "{out}");
    // DCMTK reads both objects; the SR names the model.
    let dump = |f: &str| {
        let o = std::process::Command::new("dcmdump")
            .arg(dir.join(f))
            .output()
            .expect("dcmdump (Debian dcmtk)");
        assert!(o.status.success(), "dcmdump {f}: {}", stderr(&o));
        stdout(&o)
    };
    assert!(dump("e/grab.detection-sr.dcm").contains("med8k-endoscope-gauss"));
    assert!(dump("e/grab.endoscopic.dcm").contains("=VLEndoscopicImageStorage"));
    // A grab made by another tool: FFmpeg's test pattern as an RGB PNG.
    let o = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x180",
        ])
        .args(["-frames:v", "1", "-pix_fmt", "rgb24"])
        .arg(dir.join("ffmpeg.png"))
        .output()
        .expect("ffmpeg (Debian ffmpeg)");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = ok(&med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            "ffmpeg.png",
            "--out",
            "g",
            "--model",
            model.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("detector med8k-endoscope-gauss"), "{out}");
    assert!(dump("g/ffmpeg.detection-sr.dcm").contains("med8k-endoscope-gauss"));
    let cube_model = models.join("rx/med8k-rx-7band.onnx");
    let o = med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            "grab.ppm",
            "--out",
            "f",
            "--model",
            cube_model.to_str().unwrap(),
        ],
    );
    assert_one_line_error(&o, &["takes cubes"]);
}
