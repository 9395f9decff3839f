//! Every object kind med8k writes passes dciodvfy (dicom3tools) with no
//! error, and DCMTK's dcmdump reads it, in every transfer syntax, as the site
//! wrote it and as disclosed under a pseudonym. dciodvfy's warnings must be
//! among the ones listed here, each with its reason.
//!
//! Debian 12's dciodvfy cannot read Deflated Explicit VR Little Endian at all
//! (it fails on DCMTK's own deflated files too), so a deflated file is
//! inflated by DCMTK (`dcmconv +te`) and the result validated: that checks
//! the deflate stream with an independent reader and the data set with
//! dciodvfy.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::Path;

use common::{dciodvfy, dcmdump, dcmtk, fixture, site, study};
use med8k_dicom::endoscopy::{EndoscopyOptions, RgbFrame, endoscopic_image};
use med8k_dicom::identity::Disclosure;
use med8k_dicom::instructions::{CutMark, CutOut, Outline, cut_out_report};
use med8k_dicom::report::{Finding, Region, detection_report};
use med8k_dicom::{Instance, SpecimenSeries, Syntax, WsiOptions};

/// Warnings dciodvfy may give, and why they are acceptable.
const ALLOWED: &[(&str, &str)] = &[
    // med8k's private block (0009,xx10 creator "MED8K 1"): exact band FWHM and
    // the reflectance scale; dciodvfy knows no private dictionary.
    ("(0x0009,0x1001)", "private: band FWHM"),
    ("(0x0009,0x1002)", "private: reflectance scale"),
    // VL Endoscopic: Laterality is 2C (paired body parts), which dciodvfy
    // cannot evaluate: absent is an error, empty this warning. The side an
    // endoscope looked at is not known to med8k, which is what empty says.
    ("attribute <Laterality>", "endoscopic: side unknown"),
    // SR: concepts DICOM has no code for are in the local scheme 99MED8K
    // (PS3.16 8.1: "99" prefixes private schemes), declared in the Coding
    // Scheme Identification Sequence; dciodvfy knows only registered ones.
    (
        "Unrecognized defined term <99MED8K>",
        "SR: private coding scheme",
    ),
    // Disclosed objects: PS3.15's basic profile empties these (action Z);
    // a DICOMDIR would want them, a PACS does not.
    ("needed to build DICOMDIR - Study Date", "de-identified: Z"),
    ("needed to build DICOMDIR - Study Time", "de-identified: Z"),
    ("needed to build DICOMDIR - Study ID", "de-identified: Z"),
];

fn check(path: &Path, syntax: Syntax, dir: &Path) {
    dcmdump(path);
    let target = if syntax == Syntax::Deflated {
        let inflated = dir.join("inflated.dcm");
        dcmtk("dcmconv", &[Path::new("+te"), path, &inflated]);
        inflated
    } else {
        path.to_path_buf()
    };
    let v = dciodvfy(&target);
    eprintln!(
        "== dciodvfy {} ({}):\n{}",
        path.display(),
        syntax.name(),
        v.output
    );
    assert!(
        v.errors.is_empty(),
        "dciodvfy errors on {} ({}):\n{}",
        path.display(),
        syntax.name(),
        v.output
    );
    for w in &v.warnings {
        assert!(
            ALLOWED.iter().any(|(a, _)| w.contains(a)),
            "unexpected dciodvfy warning on {}: {w}\n{}",
            path.display(),
            v.output
        );
    }
    assert!(
        v.output.contains("VLWholeSlideMicroscopyImage")
            || v.output.contains("VLEndoscopicImage")
            || v.output.contains("ComprehensiveSR"),
        "dciodvfy did not recognise the IOD:\n{}",
        v.output
    );
}

fn objects() -> Vec<Instance> {
    let cube = fixture("he_region");
    let (site, study) = (site(), study());
    let options = WsiOptions::default()
        .with_tile(256)
        .with_specimen("C-1", "S-1");
    let series = SpecimenSeries::new(&site, &study, &cube, options).unwrap();
    // An endoscope frame (odd size, a gradient) and a finding with two boxes.
    let (w, h) = (641u16, 359u16);
    let data = (0..w as usize * h as usize * 3)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let frame = RgbFrame {
        width: w,
        height: h,
        data,
    };
    let image = endoscopic_image(
        &frame,
        &site,
        &study,
        &EndoscopyOptions::new("clip-1", 1234),
    )
    .unwrap();
    let finding = Finding {
        model: "med8k-anomaly".into(),
        version: "1.2.0".into(),
        score: 0.8125,
        threshold: 0.5,
        flagged: true,
        regions: vec![
            Region {
                x: 10,
                y: 20,
                width: 64,
                height: 32,
            },
            Region {
                x: 600,
                y: 300,
                width: 41,
                height: 59,
            },
        ],
    };
    let report = detection_report(&finding, &image, &site, &study).unwrap();
    let spectral = series.spectral_image(&cube).unwrap();
    let instructions = cut_out_report(&cut_out(), spectral.dataset(), &site).unwrap();
    vec![
        spectral,
        series.colour_image(&cube).unwrap(),
        image,
        report,
        instructions,
    ]
}

/// A pathologist's instructions on the fixture (350×384): a cut line, a
/// polygon and a rectangle.
fn cut_out() -> CutOut {
    CutOut {
        marks: vec![
            CutMark {
                outline: Outline::CutLine,
                label: "cut A".into(),
                text: "through the lesion, 5 mm from the margin".into(),
                points: vec![[10.5, 20.25], [200.0, 180.0], [349.0, 383.5]],
            },
            CutMark {
                outline: Outline::Polygon,
                label: "margin".into(),
                text: String::new(),
                points: vec![[50.0, 50.0], [120.0, 60.0], [90.0, 140.0]],
            },
            CutMark {
                outline: Outline::Rectangle,
                label: String::new(),
                text: "ink".into(),
                points: vec![[0.0, 0.0], [350.0, 0.0], [350.0, 384.0], [0.0, 384.0]],
            },
        ],
        report: "Adenocarcinoma suspected; cut along A.".into(),
        physician: "Dr. Test".into(),
        facility: "jp.hospital-b".into(),
        document_sha256: "ab".repeat(32),
        verified: ("20261207".into(), "203000".into()),
    }
}

#[test]
fn cut_out_instructions_keep_their_coordinates_and_refuse_bad_marks() {
    let cube = fixture("he_region");
    let (site, study) = (site(), study());
    let series = SpecimenSeries::new(&site, &study, &cube, WsiOptions::default()).unwrap();
    let spectral = series.spectral_image(&cube).unwrap();
    let cut = cut_out();
    let sr = cut_out_report(&cut, spectral.dataset(), &site).unwrap();
    // In the specimen's study, its own series; the same set makes the same object.
    assert_eq!(sr.study_uid(), spectral.study_uid());
    assert_ne!(sr.series_uid(), spectral.series_uid());
    let again = cut_out_report(&cut, spectral.dataset(), &site).unwrap();
    assert_eq!(again.sop_instance_uid(), sr.sop_instance_uid());
    // DCMTK reads the points back as written (regions closed).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut-out.dcm");
    sr.write(&p, Syntax::ExplicitLittle).unwrap();
    let dump = dcmdump(&p);
    for want in [
        "(0070,0022) FL 10.5\\20.25\\200\\180\\349\\383.5",
        "(0070,0022) FL 50\\50\\120\\60\\90\\140\\50\\50",
        "[Cut line]",
        "[through the lesion, 5 mm from the margin]",
        "[VERIFIED]",
        "[Dr. Test^]",
        "[mark 3]",
    ] {
        assert!(dump.contains(want), "{want} not in\n{dump}");
    }
    // Bad marks: outside the specimen, a cut line of one point, a
    // five-corner rectangle, a non-finite point; and not drawn on a WSI.
    let bad = |f: &dyn Fn(&mut CutOut)| {
        let mut c = cut_out();
        f(&mut c);
        cut_out_report(&c, spectral.dataset(), &site)
            .unwrap_err()
            .to_string()
    };
    assert!(bad(&|c| c.marks[0].points[1] = [351.0, 10.0]).contains("outside the 350x384"));
    assert!(bad(&|c| c.marks[0].points.truncate(1)).contains("has 1 points"));
    assert!(bad(&|c| c.marks[2].points.push([1.0, 1.0])).contains("has 5 points"));
    assert!(bad(&|c| c.marks[1].points[0] = [f32::NAN, 1.0]).contains("outside"));
    assert!(bad(&|c| c.physician.clear()).contains("no signer"));
    let colour_is_fine = series.colour_image(&cube).unwrap();
    assert!(cut_out_report(&cut, colour_is_fine.dataset(), &site).is_ok());
    let frame = RgbFrame {
        width: 16,
        height: 16,
        data: vec![0; 16 * 16 * 3],
    };
    let endo = endoscopic_image(&frame, &site, &study, &EndoscopyOptions::new("c", 1)).unwrap();
    let e = cut_out_report(&cut, endo.dataset(), &site)
        .unwrap_err()
        .to_string();
    assert!(e.contains("whole-slide images"), "{e}");
}

#[test]
fn every_object_kind_is_valid_in_every_syntax() {
    let dir = tempfile::tempdir().unwrap();
    for inst in objects() {
        for syntax in [
            Syntax::ExplicitLittle,
            Syntax::JpegLsLossless,
            Syntax::Deflated,
        ] {
            let p = dir
                .path()
                .join(format!("{}-{}.dcm", inst.kind().name(), syntax.name()));
            inst.write(&p, syntax).unwrap();
            check(&p, syntax, dir.path());
        }
    }
}

#[test]
fn disclosed_objects_are_valid_and_carry_no_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let s = study();
    for mut inst in objects() {
        let original = inst.sop_instance_uid();
        inst.disclose(&Disclosure::Pseudonym("a1b2c3d4e5f60718".into()));
        assert_ne!(inst.sop_instance_uid(), original, "UIDs are replaced");
        let p = dir
            .path()
            .join(format!("{}-disclosed.dcm", inst.kind().name()));
        inst.write(&p, Syntax::ExplicitLittle).unwrap();
        check(&p, Syntax::ExplicitLittle, dir.path());
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            s.patient.id.as_str(),
            "YAMADA",
            "山田",
            s.patient.birth_date.as_str(),
            s.study_id.as_str(),
            s.accession.as_str(),
            "Site A Hospital",
            "C-1",
            "S-1",
            original.as_str(),
        ] {
            assert!(!text.contains(secret), "{secret:?} left in {}", p.display());
        }
        let dump = dcmdump(&p);
        assert!(
            dump.contains("a1b2c3d4e5f60718"),
            "the pseudonym stands for the patient"
        );
        assert!(dump.contains("PatientIdentityRemoved"), "{dump}");
    }
}
