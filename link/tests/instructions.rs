//! Cut-out instructions as the receiving site checks them: a set signed
//! with an HPKI signing key (key files and the demo PKI, made here) is
//! accepted with the same coordinates; forged, unsigned, re-signed by a
//! pharmacist or by another CA, for another specimen, outside the image or
//! too large: refused with a message that says why.
#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use med8k_auth::cert::{Profile, Role, StoreKind, TrustStore};
use med8k_auth::identity::keyfile::{KeyFileSigner, generate_rsa_key, spki_of};
use med8k_auth::issue::DemoPki;
use med8k_link::annotations::{
    FORMAT, Inbox, InstructionError, InstructionSet, Mark, MarkShape, Specimen, Target, Verifier,
    sign,
};
use med8k_transport::proto::Instructions;

struct Fixture {
    pki: DemoPki,
    doctor: KeyFileSigner,
    chain: Vec<Vec<u8>>,
}

fn signer(pki: &DemoPki, role: &str, serial: u64) -> KeyFileSigner {
    let key = generate_rsa_key(2048).unwrap();
    let cert = pki
        .issue("Dr. Test", serial, DemoPki::hpki_sign(role), &spki_of(&key))
        .unwrap();
    KeyFileSigner::new(key, cert).unwrap()
}

fn fixture() -> Fixture {
    let pki = DemoPki::new(SystemTime::now(), 1).unwrap();
    let doctor = signer(&pki, "Medical Doctor", 10);
    let chain = vec![pki.hpki_sub.der().to_vec()];
    Fixture { pki, doctor, chain }
}

fn verifier(pki: &DemoPki) -> Verifier {
    let mut store = TrustStore::new(StoreKind::Hpki);
    store.add_der(pki.hpki_root.der()).unwrap();
    Verifier {
        store,
        profile: Profile::new(DemoPki::profile_config()),
        roles: vec![Role::MedicalDoctor],
        revocation: None,
    }
}

fn specimen() -> Specimen {
    Specimen {
        study_uid: "2.25.123456789".into(),
        width: 1000,
        height: 800,
    }
}

fn set(marks: Vec<Mark>) -> InstructionSet {
    InstructionSet {
        format: FORMAT.into(),
        study_uid: "2.25.123456789".into(),
        target: Target::Frame { channel: 0, seq: 0 },
        width: 1000,
        height: 800,
        author: "Dr. Test".into(),
        created: 1_800_000_000,
        report: "cut along 1".into(),
        marks,
    }
}

fn cut(id: u64, points: Vec<[f32; 2]>) -> Mark {
    Mark {
        id,
        shape: MarkShape::Polyline,
        points,
        label: format!("cut {id}"),
        text: "5 mm from the margin".into(),
    }
}

/// Delivers the messages to a fresh inbox and checks the set.
fn deliver(
    f: &Fixture,
    marks: Vec<med8k_transport::proto::Annotation>,
    msg: &Instructions,
) -> Result<med8k_link::annotations::Received, InstructionError> {
    let mut inbox = Inbox::new();
    for a in marks {
        inbox.annotation(a);
    }
    inbox.instructions(msg, &specimen(), &verifier(&f.pki), SystemTime::now())
}

#[test]
fn a_signed_set_arrives_with_its_coordinates_and_bad_ones_are_refused() {
    let f = fixture();
    let s = set(vec![
        cut(1, vec![[10.5, 20.25], [999.0, 799.5], [0.0, 0.0]]),
        Mark {
            id: 2,
            shape: MarkShape::Rectangle,
            points: vec![
                [100.0, 100.0],
                [200.0, 100.0],
                [200.0, 150.0],
                [100.0, 150.0],
            ],
            label: "region".into(),
            text: String::new(),
        },
    ]);
    let (marks, msg) = sign(&s, &f.doctor, &f.chain).unwrap();
    let got = deliver(&f, marks.clone(), &msg).unwrap();
    assert_eq!(got.set, s);
    assert_eq!(
        got.set.marks[0].points,
        vec![[10.5, 20.25], [999.0, 799.5], [0.0, 0.0]]
    );
    assert_eq!(got.role, Role::MedicalDoctor);
    assert!(got.signer.contains("Dr. Test"), "{}", got.signer);

    // Forged: the document changed after signing.
    let mut forged = msg.clone();
    let text = String::from_utf8(forged.document.clone()).unwrap();
    forged.document = text.replace("10.5", "11.5").into_bytes();
    let e = deliver(&f, marks.clone(), &forged).unwrap_err();
    assert!(e.to_string().contains("signature was refused"), "{e}");

    // The annotations changed on the way (the document is intact).
    let mut moved = marks.clone();
    moved[0].points[0].x = 11.5;
    let e = deliver(&f, moved, &msg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mark 1 arrived different from what was signed"
    );

    // A signed mark that never arrived; an extra one that no signature covers.
    let e = deliver(&f, marks[..1].to_vec(), &msg).unwrap_err();
    assert_eq!(e.to_string(), "mark 2 is signed but never arrived");
    let mut extra = marks.clone();
    let mut third = marks[0].clone();
    third.id = 3;
    extra.push(third);
    let e = deliver(&f, extra, &msg).unwrap_err();
    assert!(e.to_string().contains("without a signature"), "{e}");

    // Unsigned: annotations and no Instructions.
    let mut inbox = Inbox::new();
    for a in marks.clone() {
        inbox.annotation(a);
    }
    let e = inbox.finish().unwrap_err();
    assert_eq!(
        e.to_string(),
        "2 annotation(s) arrived without a signature: refused, nothing stored"
    );

    // A garbage signature.
    let mut garbage = msg.clone();
    garbage.signature = vec![0x30, 0x03, 0x02, 0x01, 0x01];
    let e = deliver(&f, marks.clone(), &garbage).unwrap_err();
    assert!(
        e.to_string().starts_with("the signature was refused"),
        "{e}"
    );

    // Signed by a pharmacist (a valid HPKI signing certificate, wrong role).
    let pharmacist = signer(&f.pki, "Pharmacist", 11);
    let (m2, msg2) = sign(&s, &pharmacist, &f.chain).unwrap();
    let e = deliver(&f, m2, &msg2).unwrap_err();
    assert!(
        e.to_string().starts_with("the signer is not a physician"),
        "{e}"
    );

    // Signed under another CA.
    let other = fixture();
    let (m3, msg3) = sign(&s, &other.doctor, &other.chain).unwrap();
    let e = deliver(&f, m3, &msg3).unwrap_err();
    assert!(
        e.to_string().starts_with("the signature was refused"),
        "{e}"
    );

    // For another specimen.
    let mut elsewhere = s.clone();
    elsewhere.width = 1001;
    let (m4, msg4) = sign(&elsewhere, &f.doctor, &f.chain).unwrap();
    let e = deliver(&f, m4, &msg4).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the instructions are for another specimen (1001x800 signed, 1000x800 held)"
    );
}

#[test]
fn outside_the_image_and_huge_sets_are_refused_before_and_after_signing() {
    let f = fixture();
    // The signing end refuses them.
    let outside = set(vec![cut(1, vec![[10.0, 10.0], [1000.5, 10.0]])]);
    let e = sign(&outside, &f.doctor, &f.chain).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mark 1: point (1000.5, 10) is outside the 1000x800 image"
    );
    let nan = set(vec![cut(1, vec![[10.0, 10.0], [f32::NAN, 10.0]])]);
    assert!(matches!(
        sign(&nan, &f.doctor, &f.chain),
        Err(InstructionError::OutsideImage { .. })
    ));
    let huge = set(vec![Mark {
        id: 1,
        shape: MarkShape::Polygon,
        points: vec![[1.0, 1.0]; 8193],
        label: "huge".into(),
        text: String::new(),
    }]);
    assert_eq!(
        sign(&huge, &f.doctor, &f.chain).unwrap_err().to_string(),
        "mark 1: 8193 points; a Polygon takes 3..=8192"
    );
    let many: Vec<Mark> = (0..9).map(|i| cut(i, vec![[1.0, 1.0]; 8000])).collect();
    assert_eq!(
        sign(&set(many), &f.doctor, &f.chain)
            .unwrap_err()
            .to_string(),
        "72000 points in one set (at most 65536)"
    );
    let skew = set(vec![Mark {
        id: 1,
        shape: MarkShape::Rectangle,
        points: vec![[1.0, 1.0], [5.0, 2.0], [5.0, 5.0], [1.0, 5.0]],
        label: "r".into(),
        text: String::new(),
    }]);
    assert!(matches!(
        sign(&skew, &f.doctor, &f.chain),
        Err(InstructionError::NotARectangle(1))
    ));

    // A hostile sender signs such a document itself: the receiver refuses it.
    let document = serde_json::to_vec(&outside).unwrap();
    let signature = med8k_auth::consent::cms::sign_detached_with_chain(
        &document,
        &f.doctor,
        &f.chain,
        outside.created,
    )
    .unwrap();
    let msg = Instructions {
        study_uid: outside.study_uid.clone(),
        document,
        signature,
    };
    let e = deliver(&f, outside.annotations(), &msg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mark 1: point (1000.5, 10) is outside the 1000x800 image"
    );

    // A document that is not canonical (whitespace added) is refused too.
    let s = set(vec![cut(1, vec![[1.0, 1.0], [2.0, 2.0]])]);
    let pretty = serde_json::to_vec_pretty(&s).unwrap();
    let signature =
        med8k_auth::consent::cms::sign_detached_with_chain(&pretty, &f.doctor, &f.chain, 0)
            .unwrap();
    let msg = Instructions {
        study_uid: s.study_uid.clone(),
        document: pretty,
        signature,
    };
    let e = deliver(&f, s.annotations(), &msg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the instructions document is not in canonical form"
    );
}
