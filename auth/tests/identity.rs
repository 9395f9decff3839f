//! Keys on real SoftHSM2 tokens (a private token directory per test, under the target
//! dir) and in key files: provisioning, signing, verification.
#![allow(clippy::unwrap_used)]

mod softhsm;

use std::time::SystemTime;

use med8k_auth::cert::{ParsedCert, Profile, Purpose, StoreKind, TrustStore, verify_chain};
use med8k_auth::identity::keyfile::{generate_rsa_key, rsa_key_pem, spki_of};
use med8k_auth::identity::{IdentityError, KeyFileSigner, Signer, sha256, verify_sha256};
use med8k_auth::issue::{DemoPki, LeafKind, pem};

use softhsm::{softhsm, softhsm_test};

const SO_PIN: &str = "so-pin-1234";
const PIN: &str = "user-pin-1234";

fn now() -> SystemTime {
    SystemTime::now()
}

softhsm_test! {
    fn token_keygen_certificate_and_signature() {
        let m = softhsm();
        m.init_token("identity-keygen", SO_PIN, PIN).unwrap();
        assert!(
            m.tokens()
                .unwrap()
                .iter()
                .any(|t| t.label == "identity-keygen" && t.initialized)
        );
        let s = m.login("identity-keygen", PIN).unwrap();
        let spki = s.generate_rsa_key_pair(&[0x02], "auth", 2048).unwrap();
        assert_eq!(s.public_key(&[0x02]).unwrap(), spki);

        let pki = DemoPki::new(now(), 1).unwrap();
        let der = pki
            .issue("token patient", 7, LeafKind::JpkiAuth, &spki)
            .unwrap();
        s.store_certificate(&[0x02], "JPKI auth", &der).unwrap();
        let certs = s.certificates().unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].label, "JPKI auth");
        assert_eq!(certs[0].id, [0x02]);
        assert_eq!(certs[0].der, der);

        let signer = s.signer_by_label("JPKI auth").unwrap();
        assert_eq!(signer.certificate(), der.as_slice());
        let msg = b"challenge bytes";
        let sig = signer.sign(msg).unwrap();
        assert_eq!(sig.len(), 256);
        let cert = ParsedCert::from_der(&der).unwrap();
        verify_sha256(&cert, msg, &sig).unwrap();
        assert!(verify_sha256(&cert, b"other bytes", &sig).is_err());

        // The certificate issued for the token's key is a valid JPKI auth cert.
        let mut store = TrustStore::new(StoreKind::Jpki);
        store.add_der(pki.jpki.der()).unwrap();
        let chain = verify_chain(&der, &[], &store, Purpose::JpkiAuth, now()).unwrap();
        Profile::new(DemoPki::profile_config())
            .check(&chain)
            .unwrap();
    }
}

softhsm_test! {
    fn token_and_key_file_sign_identically() {
        let m = softhsm();
        let key = generate_rsa_key(2048).unwrap();
        let pki = DemoPki::new(now(), 1).unwrap();
        let der = pki
            .issue("shared key", 8, LeafKind::JpkiSign, &spki_of(&key))
            .unwrap();

        // Key file path, through files on disk.
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.pem");
        let cert_path = dir.path().join("cert.pem");
        std::fs::write(&key_path, rsa_key_pem(&key).unwrap()).unwrap();
        std::fs::write(&cert_path, pem("CERTIFICATE", &der)).unwrap();
        let file_signer = KeyFileSigner::open(&key_path, &cert_path).unwrap();

        // Token path, same key imported.
        m.init_token("identity-same-key", SO_PIN, PIN).unwrap();
        let s = m.login("identity-same-key", PIN).unwrap();
        s.import_rsa_key(&[0x01], "sign", &key).unwrap();
        s.store_certificate(&[0x01], "JPKI sign", &der).unwrap();
        assert_eq!(s.public_key(&[0x01]).unwrap(), spki_of(&key));
        let token_signer = s.signer(&[0x01]).unwrap();

        let digest = sha256(b"consent record");
        let a = file_signer.sign_sha256(&digest).unwrap();
        let b = token_signer.sign_sha256(&digest).unwrap();
        assert_eq!(a, b, "PKCS#1 v1.5 is deterministic: same key, same bytes");
        verify_sha256(&ParsedCert::from_der(&der).unwrap(), b"consent record", &a).unwrap();
    }
}

softhsm_test! {
    fn wrong_pin_refused() {
        let m = softhsm();
        m.init_token("identity-wrong-pin", SO_PIN, PIN).unwrap();
        let err = m.login("identity-wrong-pin", "0000").unwrap_err();
        assert!(matches!(err, IdentityError::PinRefused), "{err}");
        // The error never shows the PIN.
        assert!(!err.to_string().contains("0000"));
        let s = m.login("identity-wrong-pin", PIN).unwrap();
        // While logged in, a second login (which the module would not check)
        // is refused, whatever its PIN.
        let err = m.login("identity-wrong-pin", "0000").unwrap_err();
        assert!(matches!(err, IdentityError::Pkcs11(_)), "{err}");
        drop(s);
        assert!(matches!(
            m.login("identity-wrong-pin", "0000").unwrap_err(),
            IdentityError::PinRefused
        ));
        m.login("identity-wrong-pin", PIN).unwrap();
    }
}

softhsm_test! {
    fn missing_token_key_and_certificate_are_not_found() {
        let m = softhsm();
        let err = m.login("no-such-token", PIN).unwrap_err();
        assert!(matches!(err, IdentityError::NotFound(_)), "{err}");
        m.init_token("identity-empty", SO_PIN, PIN).unwrap();
        let s = m.login("identity-empty", PIN).unwrap();
        assert!(s.certificates().unwrap().is_empty());
        assert!(matches!(s.signer(&[9]), Err(IdentityError::NotFound(_))));
        assert!(matches!(
            s.public_key(&[9]),
            Err(IdentityError::NotFound(_))
        ));
        // A second token with the same label is refused.
        assert!(m.init_token("identity-empty", SO_PIN, PIN).is_err());
    }
}

#[test]
fn key_file_refuses_a_certificate_for_another_key() {
    let key = generate_rsa_key(2048).unwrap();
    let other = generate_rsa_key(2048).unwrap();
    let pki = DemoPki::new(now(), 1).unwrap();
    let der = pki
        .issue("other", 9, LeafKind::JpkiAuth, &spki_of(&other))
        .unwrap();
    let err = KeyFileSigner::new(key, der).unwrap_err();
    assert!(matches!(err, IdentityError::UnsupportedKey(_)), "{err}");
    assert!(generate_rsa_key(1024).is_err());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = KeyFileSigner::open(&missing, &missing).unwrap_err();
    assert!(matches!(err, IdentityError::KeyFile { .. }), "{err}");
}

softhsm_test! {
    fn probe_shares_an_open_module_and_leaves_it_initialised() {
        let m = softhsm();
        let status = med8k_auth::pkcs11::probe(m.path());
        assert!(
            matches!(status, med8k_auth::pkcs11::ModuleStatus::Loaded { .. }),
            "{status}"
        );
        m.init_token("identity-after-probe", SO_PIN, PIN).unwrap();
        m.login("identity-after-probe", PIN).unwrap();
    }
}
