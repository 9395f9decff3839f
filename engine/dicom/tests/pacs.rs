//! A real PACS: Orthanc from Debian, started here on loopback. Objects go in
//! by STOW-RS and by C-STORE, come back by WADO-RS, and are compared sample
//! for sample; a PACS that is down or refuses is an error naming the URL and
//! the file, and the file stays where it was.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::orthanc::Orthanc;
use common::{fixture, site, study};
use med8k_dicom::import::{cube_from_object, from_bytes, memory_name};
use med8k_dicom::pacs::Pacs;
use med8k_dicom::web::DicomWeb;
use med8k_dicom::{PacsError, SpecimenSeries, Syntax, WsiOptions};

const T: Duration = Duration::from_secs(120);

fn export(
    dir: &std::path::Path,
    syntax: Syntax,
) -> (Vec<PathBuf>, med8k_media::spectral::SpectralCube, String) {
    let cube = fixture("he_region");
    let (site, study) = (site(), study());
    let series =
        SpecimenSeries::new(&site, &study, &cube, WsiOptions::default().with_tile(128)).unwrap();
    let spectral = series.spectral_image(&cube).unwrap();
    let colour = series.colour_image(&cube).unwrap();
    let a = dir.join(format!("spectral-{}.dcm", syntax.name()));
    let b = dir.join(format!("colour-{}.dcm", syntax.name()));
    spectral.write(&a, syntax).unwrap();
    colour.write(&b, syntax).unwrap();
    (vec![a, b], cube, spectral.study_uid())
}

#[test]
fn stow_and_c_store_then_wado_back_sample_for_sample() {
    let orthanc = Orthanc::start();
    let dir = tempfile::tempdir().unwrap();
    // STOW-RS, JPEG-LS.
    let (files, cube, study_uid) = export(dir.path(), Syntax::JpegLsLossless);
    let web = Pacs::parse(&orthanc.dicomweb(), T).unwrap();
    let stored = web
        .store_files(&files)
        .unwrap_or_else(|e| panic!("{e}\n{}", orthanc.logs()));
    assert_eq!(stored.len(), 2);
    // C-STORE, explicit VR LE, of a disclosed copy (another study UID).
    let (site, study) = (site(), study());
    let series = SpecimenSeries::new(&site, &study, &cube, WsiOptions::default()).unwrap();
    let mut disclosed = series.spectral_image(&cube).unwrap();
    disclosed.disclose(&med8k_dicom::identity::Disclosure::Pseudonym(
        "feedc0de".into(),
    ));
    let p = dir.path().join("disclosed.dcm");
    disclosed.write(&p, Syntax::ExplicitLittle).unwrap();
    let scp = Pacs::parse(&orthanc.scp(), T).unwrap();
    let stored = scp
        .store_files(std::slice::from_ref(&p))
        .unwrap_or_else(|e| panic!("{e}\n{}", orthanc.logs()));
    assert_eq!(stored, vec![disclosed.sop_instance_uid()]);
    assert_eq!(orthanc.instance_count(), 3);
    // Back through WADO-RS: every sample, both ways in.
    let client = DicomWeb::new(&orthanc.dicomweb(), T).unwrap();
    for (study_uid, want) in [
        (study_uid.as_str(), 2usize),
        (disclosed.study_uid().as_str(), 1),
    ] {
        let listed = client.instances(study_uid).unwrap();
        assert_eq!(listed.len(), want, "QIDO-RS lists the study's instances");
        let parts = client.retrieve_study(study_uid).unwrap();
        assert_eq!(parts.len(), want);
        let mut cubes = 0;
        for part in parts {
            let obj = from_bytes(&memory_name("wado"), &part).unwrap();
            if obj
                .element(dicom_dictionary_std::tags::PHOTOMETRIC_INTERPRETATION)
                .unwrap()
                .to_str()
                .unwrap()
                .trim()
                == "MONOCHROME2"
            {
                let back = cube_from_object(&memory_name("wado"), &obj).unwrap();
                assert!(back.data() == cube.data(), "samples differ after the PACS");
                assert_eq!(back.bands(), cube.bands());
                cubes += 1;
            }
        }
        assert_eq!(cubes, 1);
    }
    // One instance by its UIDs, byte for byte what was stored.
    let one = client
        .retrieve_instance(
            &disclosed.study_uid(),
            &disclosed.series_uid(),
            &disclosed.sop_instance_uid(),
        )
        .unwrap();
    let obj = from_bytes(&memory_name("wado"), &one).unwrap();
    assert!(cube_from_object(&memory_name("wado"), &obj).unwrap().data() == cube.data());
    // Storing the same objects again is harmless (stable UIDs).
    web.store_files(&files).unwrap();
    assert_eq!(orthanc.instance_count(), 3);
}

#[test]
fn a_pacs_that_is_down_or_refuses_is_a_named_error_and_the_file_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _, _) = export(dir.path(), Syntax::ExplicitLittle);
    // Down: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/dicom-web");
    let e = Pacs::parse(&url, T)
        .unwrap()
        .store_files(&files)
        .unwrap_err();
    assert!(matches!(e, PacsError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string().contains(&url) && !e.to_string().contains('\n'),
        "{e}"
    );
    let e = Pacs::parse(&format!("ORTHANC@127.0.0.1:{port}"), T)
        .unwrap()
        .store_files(&files)
        .unwrap_err();
    assert!(matches!(e, PacsError::Unreachable { .. }), "{e}");
    assert!(
        files.iter().all(|f| f.exists()),
        "files stay where they were"
    );
    // Refuses: a real Orthanc, asked at a path that is not DICOMweb, and sent
    // a file that is not DICOM.
    let orthanc = Orthanc::start();
    let wrong = format!("http://127.0.0.1:{}/nowhere", orthanc.http_port);
    let e = Pacs::parse(&wrong, T)
        .unwrap()
        .store_files(&files)
        .unwrap_err();
    assert!(matches!(e, PacsError::Refused { .. }), "{e}");
    assert!(e.to_string().contains(&wrong), "{e}");
    let junk = dir.path().join("junk.dcm");
    std::fs::write(&junk, b"not dicom").unwrap();
    let e = Pacs::parse(&orthanc.dicomweb(), T)
        .unwrap()
        .store_files(std::slice::from_ref(&junk))
        .unwrap_err();
    assert!(e.to_string().contains("junk.dcm"), "{e}");
    // A Part 10 file whose data set is garbage: the PACS refuses it.
    let mut bad = std::fs::read(&files[0]).unwrap();
    let n = bad.len();
    bad.truncate(n / 2);
    let half = dir.path().join("half.dcm");
    std::fs::write(&half, &bad).unwrap();
    let e = Pacs::parse(&orthanc.dicomweb(), T)
        .unwrap()
        .store_files(std::slice::from_ref(&half))
        .unwrap_err();
    assert!(
        matches!(e, PacsError::Refused { .. } | PacsError::Protocol { .. }),
        "{e}"
    );
    assert_eq!(orthanc.instance_count(), 0, "{}", orthanc.logs());
    assert!(half.exists());
}
