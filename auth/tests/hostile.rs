//! Certificates and CRLs made outside med8k (Python's `cryptography`, with
//! hand-written DER for hcRole: `tests/fixtures/hostile_pki.py`), checked
//! the way a gate checks them: real HPKI encodings accepted, hostile paths
//! and CRLs refused. And the CRL fetcher against a host that never finishes.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use med8k_auth::cert::{
    CertError, CrlFetcher, CrlFile, HPKI_DIRECTOR_SCHEME, ParsedCert, PolicyRule, Profile,
    ProfileConfig, Purpose, Revocation, Role, StoreKind, TrustStore, VerifiedChain, verify_chain,
};

const HPKI_AUTH_POLICY: &str = "1.2.392.100495.9.9.2";

/// The fixtures, made once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hostile-pki-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile_pki.py");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("python3 is needed: run scripts/setup-debian.sh");
        assert!(
            out.status.success(),
            "{} failed (is `cryptography` installed? run scripts/setup-debian.sh): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn der(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(format!("{name}.der"))).unwrap()
}

/// 2026-06-01, inside every validity and CRL period of the fixtures.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn store(anchor: &str) -> TrustStore {
    let mut s = TrustStore::new(StoreKind::Hpki);
    s.add_der(&der(anchor)).unwrap();
    s
}

fn config() -> ProfileConfig {
    let mut c = ProfileConfig::default();
    c.policies.insert(
        Purpose::HpkiAuth,
        PolicyRule::AnyOf(vec![HPKI_AUTH_POLICY.into()]),
    );
    c
}

fn hpki(leaf: &str, inters: &[&str], anchor: &str) -> Result<VerifiedChain, CertError> {
    let inters: Vec<Vec<u8>> = inters.iter().map(|n| der(n)).collect();
    let refs: Vec<&[u8]> = inters.iter().map(Vec::as_slice).collect();
    verify_chain(&der(leaf), &refs, &store(anchor), Purpose::HpkiAuth, now())
}

/// The chain and profile of `leaf` under the HPKI sub-CA, then the role.
fn role_of(leaf: &str, profile: &Profile) -> Result<Role, CertError> {
    let chain = hpki(leaf, &["hpki_sub"], "hpki_root")?;
    profile.check(&chain)?;
    profile.require_role(chain.leaf(), &[Role::MedicalDoctor])
}

// ---- 1. hcRole ----

#[test]
fn hc_role_as_hpki_cas_write_it() {
    let p = Profile::new(config());
    for leaf in [
        // [0] { SET { [0] { OID } [2] { UTF8String "Medical Doctor" } } }
        "role_explicit_set",
        "role_explicit_seq",
        "role_implicit",
        // 医師 as a BMPString, "Medical Doctor" as a TeletexString.
        "role_bmp",
        "role_teletex",
    ] {
        assert_eq!(
            role_of(leaf, &p).map_err(|e| e.to_string()),
            Ok(Role::MedicalDoctor),
            "{leaf}"
        );
    }
}

#[test]
fn hc_role_only_under_the_configured_schemes() {
    let p = Profile::new(config());
    for leaf in ["role_other_scheme", "role_director_scheme"] {
        let err = role_of(leaf, &p).unwrap_err();
        assert!(
            matches!(err, CertError::MissingRole { .. }),
            "{leaf}: {err}"
        );
    }
    // A deployment that takes the directors' scheme too.
    let mut c = config();
    c.role_schemes.push(HPKI_DIRECTOR_SCHEME.to_owned());
    let p = Profile::new(c);
    assert_eq!(
        role_of("role_director_scheme", &p).map_err(|e| e.to_string()),
        Ok(Role::MedicalDoctor)
    );
    assert!(role_of("role_other_scheme", &p).is_err());
}

#[test]
fn hc_role_with_a_non_minimal_oid_or_no_scheme_is_refused() {
    let p = Profile::new(config());
    for leaf in ["role_nonminimal_oid", "role_no_scheme"] {
        let err = role_of(leaf, &p).unwrap_err();
        assert!(
            matches!(&err, CertError::Parse { what, .. } if what == "subjectDirectoryAttributes"),
            "{leaf}: {err}"
        );
    }
}

// ---- 2. paths ----

#[test]
fn path_length_counts_every_ca_below() {
    // root -> CA1 (pathLenConstraint 0) -> CA2 -> leaf: CA1 allows no CA below.
    let err = hpki("pathlen0_leaf", &["pathlen0_ca2", "pathlen0_ca1"], "root").unwrap_err();
    assert!(
        matches!(&err, CertError::NotCa { reason, .. } if reason.contains("pathLenConstraint 0")),
        "{err}"
    );
    let chain = hpki("pathlen1_leaf", &["pathlen1_ca2", "pathlen1_ca1"], "root").unwrap();
    Profile::new(config()).check(&chain).unwrap();
}

#[test]
fn critical_extensions_only_when_enforced() {
    for (tag, oid) in [
        ("name_constraints", "2.5.29.30"),
        ("policy_constraints", "2.5.29.36"),
        ("inhibit_any_policy", "2.5.29.54"),
        ("policy_mappings", "2.5.29.33"),
        ("unparsable_critical", "2.5.29.36"),
    ] {
        let err = hpki(&format!("{tag}_leaf"), &[&format!("{tag}_ca")], "root").unwrap_err();
        assert!(
            matches!(&err, CertError::ExtensionNotEnforced { oid: o, .. } if o == oid),
            "{tag}: {err}"
        );
    }
}

#[test]
fn the_policy_holds_on_every_ca_of_the_path() {
    // A pharmacists' CA issued a leaf carrying the doctors' policy.
    let chain = hpki("pharmacist_ca_leaf", &["pharmacist_ca_ca"], "root").unwrap();
    let err = Profile::new(config()).check(&chain).unwrap_err();
    assert!(
        matches!(&err, CertError::Policy { subject, .. } if subject.contains("pharmacist_ca CA")),
        "{err}"
    );
}

#[test]
fn sha1_and_short_rsa_keys_are_refused() {
    let err = hpki("sha1_leaf", &["sha1_ca"], "root").unwrap_err();
    assert!(
        matches!(&err, CertError::WeakAlgorithm { algorithm, .. } if algorithm == "1.2.840.113549.1.1.5"),
        "{err}"
    );
    let err = hpki("rsa1024_leaf", &["rsa1024_ca"], "root").unwrap_err();
    assert!(
        matches!(err, CertError::WeakKey { bits: 1024, .. }),
        "{err}"
    );
}

// ---- 3. CRLs ----

fn crl_check(leaf: &str, ca: &str, crls: &[&str]) -> Result<(), CertError> {
    let mut file = CrlFile::new();
    for c in crls {
        file.add_der(&der(c))?;
    }
    let cert = ParsedCert::from_der(&der(leaf)).unwrap();
    let issuer = ParsedCert::from_der(&der(ca)).unwrap();
    file.check(&cert, &issuer, now())
}

#[test]
fn the_newest_crl_in_scope_decides() {
    // An older CRL listed first does not hide a later revocation.
    let err = crl_check("crl_leaf", "crl_ca", &["crl_empty_1", "crl_revokes_2"]).unwrap_err();
    assert!(matches!(err, CertError::Revoked { .. }), "{err}");
    let err = crl_check("crl_leaf", "crl_ca", &["crl_revokes_2", "crl_empty_1"]).unwrap_err();
    assert!(matches!(err, CertError::Revoked { .. }), "{err}");
    // A CRL of CA certificates only, or of another distribution point, says
    // nothing of this leaf: unknown.
    for out_of_scope in ["crl_only_ca", "crl_other_point"] {
        let err = crl_check("crl_leaf", "crl_ca", &[out_of_scope]).unwrap_err();
        assert!(
            matches!(err, CertError::RevocationUnknown { .. }),
            "{out_of_scope}: {err}"
        );
    }
    // The CRL of the leaf's own distribution point, newest, revokes it,
    // though an older complete CRL and out-of-scope ones do not.
    let err = crl_check(
        "crl_leaf",
        "crl_ca",
        &["crl_empty_1", "crl_only_ca", "crl_own_point"],
    )
    .unwrap_err();
    assert!(matches!(err, CertError::Revoked { .. }), "{err}");
    crl_check("crl_leaf", "crl_ca", &["crl_empty_1"]).unwrap();
}

#[test]
fn crls_that_cannot_be_interpreted_are_refused() {
    for crl in ["crl_delta", "crl_unknown_critical"] {
        assert!(CrlFile::new().add_der(&der(crl)).is_err(), "{crl} loaded");
    }
    // Signed with SHA-1: no answer.
    let err = crl_check("crl_leaf", "crl_ca", &["crl_sha1"]).unwrap_err();
    assert!(matches!(err, CertError::RevocationUnknown { .. }), "{err}");
    // Signed by a CA whose key usage does not allow CRL signing.
    let err = crl_check("nocrlsign_leaf", "nocrlsign_ca", &["crl_nocrlsign"]).unwrap_err();
    assert!(
        matches!(&err, CertError::RevocationUnknown { reason, .. } if reason.contains("cRLSign")),
        "{err}"
    );
}

/// An HTTP host that answers `GET` with a header and then one byte every
/// 100 ms, for ever (until the test process ends).
fn trickling_host() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
                while s.write_all(b"0").is_ok() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    format!("http://{addr}/slow.crl")
}

/// An HTTP host that serves `body` at once.
fn quick_host(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
            );
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/ca.crl")
}

#[test]
fn the_crl_fetcher_has_a_deadline_and_holds_no_lock() {
    use med8k_auth::cert::CertRef;
    let issuer = ParsedCert::from_der(&der("crl_ca")).unwrap();
    let leaf = CertRef::of(&ParsedCert::from_der(&der("crl_leaf")).unwrap()).unwrap();
    let slow = CertRef {
        crl_points: vec![trickling_host()],
        ..leaf.clone()
    };
    let quick = CertRef {
        crl_points: vec![quick_host(der("crl_empty_1"))],
        ..leaf
    };
    let fetcher = Arc::new(
        CrlFetcher::new()
            .with_timeout(Duration::from_secs(5))
            .with_deadline(Duration::from_secs(3)),
    );

    // The slow host keeps sending: only the deadline ends the fetch.
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fetcher.clone();
    let i = issuer.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f.check_ref(&slow, &i, now()));
    });
    // Meanwhile another certificate's CRL is fetched and checked at once.
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    fetcher.check_ref(&quick, &issuer, now()).unwrap();
    // (Waiting for the other fetch's lock would take its whole deadline.)
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "a fetch waited for another: {:?}",
        t.elapsed()
    );
    let slow_result = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the fetch of a trickling CRL did not end at its deadline");
    let err = slow_result.unwrap_err();
    assert!(
        matches!(&err, CertError::RevocationUnknown { reason, .. } if reason.contains("deadline")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}
