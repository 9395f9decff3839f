//! `med8k pki demo-init` on SoftHSM2, then `med8k pki verify` on what it
//! made.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::Path;

use common::{assert_one_line_error, med8k, stderr, stdout};
use med8k_auth::issue::DEMO_HPKI_AUTH_POLICY;

fn softhsm_installed() -> bool {
    // SoftHSM2 stands in for the cards: scripts/setup-debian.sh installs
    // it, and these tests must not pass without it.
    assert!(
        Path::new(med8k_auth::identity::pkcs11::SOFTHSM2_MODULE).exists(),
        "SoftHSM2 is not installed: run scripts/setup-debian.sh"
    );
    true
}

#[test]
fn demo_init_then_verify() {
    if !softhsm_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = med8k(dir.path(), &["pki", "demo-init", "--out", "demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("demo");
    for f in [
        "pki.toml",
        "softhsm2.conf",
        "ca/jpki.pem",
        "ca/hpki.pem",
        "ca/facility.pem",
        "certs/med8k-patient-sign.pem",
        "certs/med8k-patient-auth.pem",
        "certs/med8k-physician-auth.pem",
        "certs/med8k-pharmacist-auth.pem",
        "facility/jp.hospital-a.crt.pem",
        "facility/jp.hospital-b.key.pem",
        "crl/jpki.crl.pem",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Private keys are readable by their owner only.
    for f in [
        "facility/jp.hospital-a.key.pem",
        "facility/jp.hospital-b.key.pem",
        "keys/revoked-patient-auth.key.pem",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let toml = std::fs::read_to_string(out.join("pki.toml")).unwrap();
    assert!(toml.contains("med8k-physician"), "{toml}");
    // A second run refuses to overwrite.
    let again = med8k(dir.path(), &["pki", "demo-init", "--out", "demo"]);
    assert_one_line_error(&again, &["already holds"]);

    let verify = |extra: &[&str]| {
        let mut args = vec!["pki", "verify"];
        args.extend_from_slice(extra);
        med8k(&out, &args)
    };
    let physician = [
        "--cert",
        "certs/med8k-physician-auth.pem",
        "--purpose",
        "hpki-auth",
        "--policy",
        DEMO_HPKI_AUTH_POLICY,
        "--role",
        "Medical Doctor",
    ];

    // Accepted, with the role, and with the CRLs.
    let mut a = physician.to_vec();
    a.extend(["--trust", "ca/hpki.pem", "--crl", "crl/hpki.crl.pem"]);
    let o = verify(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("accepted for hpki-auth"), "{text}");
    assert!(text.contains("Medical Doctor"), "{text}");
    assert!(text.contains("not revoked"), "{text}");

    // Unknown trust anchor: the JPKI CA cannot vouch for the physician.
    let mut a = physician.to_vec();
    a.extend(["--trust", "ca/jpki.pem"]);
    assert_one_line_error(&verify(&a), &["refused", "unknown issuer"]);

    // Expired at a later date.
    let mut a = physician.to_vec();
    a.extend(["--trust", "ca/hpki.pem", "--at", "2099-01-01T00:00:00Z"]);
    assert_one_line_error(&verify(&a), &["refused", "expired"]);

    // A pharmacist is not a Medical Doctor.
    let mut a = physician.to_vec();
    a[1] = "certs/med8k-pharmacist-auth.pem";
    a.extend(["--trust", "ca/hpki.pem"]);
    assert_one_line_error(&verify(&a), &["refused", "Pharmacist"]);

    // The revoked patient is refused with the CRL, accepted without it.
    let revoked = [
        "--cert",
        "certs/revoked-patient-auth.pem",
        "--purpose",
        "jpki-auth",
        "--trust",
        "ca/jpki.pem",
    ];
    assert!(verify(&revoked).status.success());
    let mut a = revoked.to_vec();
    a.extend(["--crl", "crl/jpki.crl.pem"]);
    assert_one_line_error(&verify(&a), &["refused", "revoked"]);

    // The JPKI signing certificate is not an authentication certificate.
    let o = verify(&[
        "--cert",
        "certs/med8k-patient-sign.pem",
        "--purpose",
        "jpki-auth",
        "--trust",
        "ca/jpki.pem",
    ]);
    assert_one_line_error(&o, &["refused", "key usage"]);
    let o = verify(&[
        "--cert",
        "certs/med8k-patient-sign.pem",
        "--purpose",
        "jpki-sign",
        "--trust",
        "ca/jpki.pem",
        "--crl",
        "crl/jpki.crl.pem",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Facility certificates: accepted for the facility purpose, and
    // loadable by med8k's QUIC mTLS under the transport's naming.
    let o = verify(&[
        "--cert",
        "facility/jp.hospital-a.crt.pem",
        "--purpose",
        "facility",
        "--trust",
        "ca/facility.pem",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    use med8k_transport::driver::tls;
    assert_eq!(
        med8k_auth::issue::facility_dns_name("jp.hospital-a"),
        tls::facility_dns_name("jp.hospital-a")
    );
    for site in ["jp.hospital-a", "jp.hospital-b"] {
        let identity = med8k_transport::driver::SiteIdentity::from_pem_files(
            &out.join(format!("facility/{site}.crt.pem")),
            &out.join(format!("facility/{site}.key.pem")),
        )
        .unwrap();
        let trust = med8k_transport::driver::TrustConfig::from_pem_files(
            &[out.join("ca/facility.pem")],
            vec!["jp.hospital-a".into(), "jp.hospital-b".into()],
        )
        .unwrap();
        tls::server_config(&identity, &trust).unwrap();
        tls::client_config(&identity, &trust).unwrap();
        let pem = std::fs::read(out.join(format!("facility/{site}.crt.pem"))).unwrap();
        let der = med8k_auth::cert::pem_blocks(&pem, "CERTIFICATE").unwrap();
        let cert = quinn::rustls::pki_types::CertificateDer::from(der[0].clone());
        assert_eq!(
            tls::certificate_facility(&cert, &["jp.hospital-a".into(), "jp.hospital-b".into()]),
            Some(site.to_owned())
        );
    }

    // Bad input: one-line errors.
    assert_one_line_error(
        &verify(&[
            "--cert",
            "nope.pem",
            "--purpose",
            "facility",
            "--trust",
            "ca/facility.pem",
        ]),
        &["nope.pem"],
    );
    let mut a = physician.to_vec();
    a.extend(["--trust", "ca/hpki.pem", "--at", "tomorrow"]);
    assert_one_line_error(&verify(&a), &["--at", "RFC 3339"]);
}
