//! Two sites on loopback for the pathologist's desk tests: their
//! configurations (A holds the specimen behind its consent gate, B is the
//! pathologist's), the patient's consent signed on their SoftHSM2 token, a
//! 7-band specimen, and `med8k view --from` started at B.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use med8k_auth::cert::{CrlFile, Profile, StoreKind, TrustStore, pem_blocks};
use med8k_auth::consent::{
    ConsentDecision, ConsentPurpose, ConsentRecord, Coverage, DataCategory, FacilityId, Ledger,
    PatientId, Period, RecordId, Scope, SignatureCheck, cms,
};
use med8k_auth::identity::pkcs11::SOFTHSM2_MODULE;
use med8k_auth::identity::{Module, Signer};
use med8k_auth::issue::{DEMO_HPKI_AUTH_POLICY, DEMO_HPKI_SIGN_POLICY, DemoPki};
use med8k_media::spectral::{SpectralCube, envi};

use crate::common::command;

pub const A: &str = "jp.hospital-a";
pub const B: &str = "jp.hospital-b";

pub fn sites(dir: &Path) {
    let a = format!(
        "[site]\nid = \"{A}\"\nname = \"Hospital A\"\n\n[tls]\n\
         cert = \"pki/facility/{A}.crt.pem\"\nkey = \"pki/facility/{A}.key.pem\"\n\
         roots = [\"pki/ca/facility.pem\"]\nallowed = [\"{B}\"]\n\n\
         [link]\ndeadline_ms = 2000\n\n\
         [gate]\nkind = \"consent\"\nledger = \"a/consent.sqlite\"\naudit = \"a/audit.jsonl\"\n\
         hpki_roots = [\"pki/ca/hpki.pem\"]\nhpki_policies = [\"{DEMO_HPKI_AUTH_POLICY}\"]\n\
         hpki_sign_policies = [\"{DEMO_HPKI_SIGN_POLICY}\"]\n\
         jpki_roots = [\"pki/ca/jpki.pem\"]\nrequire_patient = true\n\
         crl = [\"pki/crl/hpki.crl.pem\", \"pki/crl/jpki.crl.pem\"]\n"
    );
    std::fs::write(dir.join("site-a.toml"), a).unwrap();
    let b = format!(
        "[site]\nid = \"{B}\"\nname = \"Hospital B\"\n\n[tls]\n\
         cert = \"pki/facility/{B}.crt.pem\"\nkey = \"pki/facility/{B}.key.pem\"\n\
         roots = [\"pki/ca/facility.pem\"]\nallowed = [\"{A}\"]\n\n[link]\ndeadline_ms = 2000\n"
    );
    std::fs::write(dir.join("site-b.toml"), b).unwrap();
}

pub fn cert(dir: &Path, name: &str) -> Vec<u8> {
    let pem = std::fs::read(dir.join(format!("pki/certs/{name}.pem"))).unwrap();
    pem_blocks(&pem, "CERTIFICATE").unwrap().remove(0)
}

/// The patient signs consent on their token: pathology images to B.
pub fn grant(dir: &Path) -> PatientId {
    let module = Module::open(Path::new(SOFTHSM2_MODULE)).unwrap();
    let session = module.login("med8k-patient", "1111").unwrap();
    let signer: Arc<dyn Signer> = Arc::new(session.signer(&[1]).unwrap());
    let patient = PatientId::from_signing_cert(&cert(dir, "med8k-patient-sign"));
    let now = SystemTime::now();
    let t = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let record = ConsentRecord {
        id: RecordId::new("consent-view-1").unwrap(),
        patient: patient.clone(),
        created: t,
        decision: ConsentDecision::Permit,
        scope: vec![Scope::Register, Scope::Disclose],
        grantees: vec![FacilityId::new(B).unwrap()],
        purposes: vec![ConsentPurpose::RemoteConsultation],
        categories: vec![DataCategory::PathologyImages],
        period: Period {
            start: t - 3600,
            end: t + 86_400,
        },
        coverage: Coverage::AllLaterVisits,
        login: Some(PatientId::of_cert(&cert(dir, "med8k-patient-auth"))),
    };
    let bytes = record.canonical_bytes().unwrap();
    let blob = cms::sign_detached(&bytes, signer.as_ref(), t).unwrap();
    let mut store = TrustStore::new(StoreKind::Jpki);
    store
        .add_pem(&std::fs::read(dir.join("pki/ca/jpki.pem")).unwrap())
        .unwrap();
    let profile = Profile::new(DemoPki::profile_config());
    let mut crls = CrlFile::new();
    crls.add_file(&dir.join("pki/crl/jpki.crl.pem")).unwrap();
    let check = SignatureCheck::new(&store, &profile).with_revocation(&crls);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    Ledger::open(dir.join("a/consent.sqlite"))
        .unwrap()
        .grant(&bytes, &blob, &check, now)
        .unwrap();
    patient
}

/// A specimen: the H&E fixture, each pixel made 3×3 (1050×1152, 4 levels).
pub fn specimen(dir: &Path) -> SpectralCube {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/fixtures/he_region.hdr");
    let small = envi::read(&root).unwrap();
    let (w, h) = (small.width(), small.height());
    let data = ndarray::Array3::from_shape_fn((7, h * 3, w * 3), |(b, y, x)| {
        small.data()[[b, y / 3, x / 3]]
    });
    let mut cube = SpectralCube::new(small.bands().to_vec(), data).unwrap();
    cube.reflectance_scale = small.reflectance_scale;
    envi::write(&cube, &dir.join("specimen"), "med8k test specimen").unwrap();
    cube
}

/// `med8k view --from` at B: its first lines are `permitted` and the URL.
pub fn desk(
    dir: &Path,
    addr: &str,
    patient: &PatientId,
) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut c = command(
        dir,
        &[
            "view",
            "--from",
            addr,
            "--config",
            "site-b.toml",
            "--pki",
            "pki",
            "--physician-token",
            "med8k-physician",
            "--patient-token",
            "med8k-patient",
            "--patient",
            patient.as_str(),
            "--audit",
            "b/audit.jsonl",
            "--no-browser",
            "--pixel-spacing-um",
            "12.5",
        ],
    );
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "permitted", "{line}");
    line.clear();
    out.read_line(&mut line).unwrap();
    let url = line.trim().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/?t="),
        "{url}"
    );
    (child, url, out)
}
