//! Cut-out instructions into the sending hospital's PACS: hospital A keeps
//! a specimen as a DICOM whole-slide object in its PACS (Debian's Orthanc)
//! and serves that object behind its consent gate with `--pacs`; the
//! pathologist at B (`med8k view --from`, driven through the viewer's own
//! HTTP API as the page uses it) draws a cut line and a region and sends
//! them signed with the HPKI card on SoftHSM2; A verifies them, writes the
//! structured report in the specimen's study, and stores it into Orthanc,
//! where it sits beside the specimen. dciodvfy (dicom3tools) and dcmdump
//! (DCMTK) read the report, not our own reader.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;
#[allow(dead_code)] // the C-STORE side is not used here
#[path = "../../engine/dicom/tests/common/orthanc.rs"]
mod orthanc;
#[path = "common/desk.rs"]
mod sites;
#[path = "../../auth/tests/softhsm/mod.rs"]
mod softhsm;

use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Serve, http_text, med8k, stderr, stdout};
use med8k_auth::identity::pkcs11::SOFTHSM2_MODULE;
use orthanc::Orthanc;
use sites::{desk, grant, sites};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

fn dcmdump(path: &Path) -> String {
    let o = Command::new("dcmdump")
        .arg("-q")
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn instructions_on_a_dicom_specimen_go_into_its_study_in_the_pacs() {
    assert!(
        Path::new(SOFTHSM2_MODULE).exists(),
        "SoftHSM2 is not installed"
    );
    softhsm::isolated_in(
        "instructions_on_a_dicom_specimen_go_into_its_study_in_the_pacs",
        "pki/softhsm2.conf",
        pacs_in,
    );
}

fn pacs_in(dir: &Path) {
    ok(&med8k(dir, &["pki", "demo-init", "--out", "pki"]));
    sites(dir);
    let patient = grant(dir);
    let pacs = Orthanc::start();
    // A's specimen, as its PACS keeps it.
    let cube = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/fixtures/he_region.hdr");
    ok(&med8k(
        dir,
        &[
            "dicom",
            "export",
            "--in",
            cube.to_str().unwrap(),
            "--out",
            "a/pacs",
            "--patient",
            "PID-0042",
            "--patient-name",
            "YAMADA^HANAKO",
            "--study",
            "ST-7",
            "--when",
            "20260115093000",
            "--uid-root",
            "1.2.392.200036.9999.1",
            "--tile",
            "128",
        ],
    ));
    let spectral = "a/pacs/he_region.spectral.dcm";
    ok(&med8k(
        dir,
        &["dicom", "store", "--pacs", &pacs.dicomweb(), spectral],
    ));
    assert_eq!(pacs.instance_count(), 1);
    let study = med8k_dicom::import::open(&dir.join(spectral))
        .unwrap()
        .element(dicom_dictionary_std::tags::STUDY_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();

    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-a.toml",
        &[
            "--source",
            spectral,
            "--out",
            "a/received",
            "--links",
            "1",
            "--source-patient",
            patient.as_str(),
            "--source-category",
            "pathology-images",
            "--pacs",
            &pacs.dicomweb(),
        ],
    );
    let (mut child, url, mut out) = desk(dir, &serve.addr, &patient);
    // The pathologist, through the page's requests.
    let rest = url.strip_prefix("http://").unwrap();
    let (host, query) = rest.split_once('/').unwrap();
    let (head, _) = http_text(host, "GET", &format!("/{query}"), "", "");
    let cookie = head
        .lines()
        .find_map(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("set-cookie: ")
                .map(|c| c.split(';').next().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no session cookie: {head}"));
    let (head, info) = http_text(host, "GET", "/api/info", &cookie, "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}{info}");
    assert!(info.contains("350") && info.contains("384"), "{info}");
    let cut = serde_json::json!({
        "shape": "polyline",
        "points": [[35.5, 96.0], [175.0, 115.25], [315.0, 100.0]],
        "label": "cut A",
        "text": "through the lesion, 5 mm from the margin",
    });
    let region = serde_json::json!({
        "shape": "rectangle",
        "points": [[20.0, 20.0], [120.0, 20.0], [120.0, 80.0], [20.0, 80.0]],
        "label": "ink",
        "text": "",
    });
    for (method, path, body) in [
        ("POST", "/api/marks", cut.to_string()),
        ("POST", "/api/marks", region.to_string()),
        (
            "PUT",
            "/api/report",
            r#"{"report":"Adenocarcinoma suspected; cut along A."}"#.to_owned(),
        ),
        ("POST", "/api/send", String::new()),
    ] {
        let (head, body) = http_text(host, method, path, &cookie, &body);
        assert!(
            head.starts_with("HTTP/1.1 2"),
            "{method} {path}: {head}{body}"
        );
    }
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("sent 2 signed mark(s) to jp.hospital-a"),
        "{line}"
    );
    http_text(host, "POST", "/api/end", &cookie, "");
    assert!(child.wait().unwrap().success());

    // A verified them, wrote the report and stored it into its PACS.
    let served = serve.wait(Duration::from_secs(120));
    let text = stdout(&served);
    assert!(served.status.success(), "{text}{}", stderr(&served));
    assert!(text.contains("(verified)"), "{text}");
    let sr = text
        .lines()
        .find_map(|l| l.strip_prefix("structured report -> "))
        .unwrap_or_else(|| panic!("no structured report: {text}{}", stderr(&served)));
    assert!(
        text.contains(&format!("{sr} stored into the PACS (1 instance(s))")),
        "{text}{}",
        stderr(&served)
    );
    let sr = dir.join(sr);

    // dcmdump reads the report: the specimen's patient and study, the
    // physician who signed, the coordinates sent (the region closed).
    let dump = dcmdump(&sr);
    for want in [
        "=ComprehensiveSRStorage",
        &format!("[{study}]"),
        "[PID-0042]",
        "[VERIFIED]",
        "(0070,0022) FL 35.5\\96\\175\\115.25\\315\\100",
        "(0070,0022) FL 20\\20\\120\\20\\120\\80\\20\\80\\20\\20",
        "[Cut line]",
        "[cut A]",
        "[through the lesion, 5 mm from the margin]",
        "[Adenocarcinoma suspected; cut along A.]",
    ] {
        assert!(dump.contains(want), "{want} not in\n{dump}");
    }
    // dciodvfy: a valid Comprehensive SR (its only complaint: the private
    // coding scheme 99MED8K it does not know).
    let v = Command::new("dciodvfy").arg(&sr).output().unwrap();
    let verdict = format!(
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(verdict.contains("ComprehensiveSR"), "{verdict}");
    for l in verdict.lines() {
        assert!(!l.starts_with("Error"), "{verdict}");
        assert!(
            !l.starts_with("Warning") || l.contains("<99MED8K>"),
            "{verdict}"
        );
    }
    // In the PACS, in the specimen's study: both instances, and the report
    // as Orthanc serves it back carries the same coordinates.
    assert_eq!(pacs.instance_count(), 2);
    let web = med8k_dicom::web::DicomWeb::new(&pacs.dicomweb(), Duration::from_secs(30)).unwrap();
    let instances = web.instances(&study).unwrap();
    assert_eq!(instances.len(), 2, "{instances:?}");
    let sr_uid = med8k_dicom::import::open(&sr)
        .unwrap()
        .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    let (series, _) = instances.iter().find(|(_, i)| *i == sr_uid).unwrap();
    let back = web.retrieve_instance(&study, series, &sr_uid).unwrap();
    let back_path = dir.join("from-pacs.dcm");
    std::fs::write(&back_path, back).unwrap();
    let back_dump = dcmdump(&back_path);
    assert!(
        back_dump.contains("(0070,0022) FL 35.5\\96\\175\\115.25\\315\\100"),
        "{back_dump}"
    );
}
