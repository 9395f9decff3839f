//! The cube comes back bit-exact from every transfer syntax, through
//! med8k's reader and, for JPEG-LS, through DCMTK's independent decoder;
//! hostile and wrong files are one-line errors naming the file and tag.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::Path;

use common::{dcmtk, fixture, site, study};
use med8k_dicom::import::{open, read_cube};
use med8k_dicom::{ImportError, SpecimenSeries, Syntax, WsiOptions};

#[test]
fn cubes_round_trip_bit_exact_in_every_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let (site, study) = (site(), study());
    for name in ["he_region", "ihc_colon", "fundus"] {
        let cube = fixture(name);
        // Tiles that do not divide the image: edge tiles are padded.
        for tile in [128u16, 1024] {
            let series =
                SpecimenSeries::new(&site, &study, &cube, WsiOptions::default().with_tile(tile))
                    .unwrap();
            let image = series.spectral_image(&cube).unwrap();
            for syntax in [
                Syntax::ExplicitLittle,
                Syntax::JpegLsLossless,
                Syntax::Deflated,
            ] {
                let p = dir
                    .path()
                    .join(format!("{name}-{tile}-{}.dcm", syntax.name()));
                image.write(&p, syntax).unwrap();
                let back = read_cube(&p).unwrap();
                assert_eq!(
                    back.bands(),
                    cube.bands(),
                    "{name} {tile} {}",
                    syntax.name()
                );
                assert_eq!(back.reflectance_scale, cube.reflectance_scale);
                assert!(
                    back.data() == cube.data(),
                    "{name} {tile} {}: samples differ",
                    syntax.name()
                );
            }
        }
    }
}

#[test]
fn dcmtk_decodes_our_jpeg_ls_to_the_same_samples() {
    let dir = tempfile::tempdir().unwrap();
    let cube = fixture("ihc_colon");
    let (site, study) = (site(), study());
    let series =
        SpecimenSeries::new(&site, &study, &cube, WsiOptions::default().with_tile(200)).unwrap();
    let jls = dir.path().join("jls.dcm");
    series
        .spectral_image(&cube)
        .unwrap()
        .write(&jls, Syntax::JpegLsLossless)
        .unwrap();
    let native = dir.path().join("native.dcm");
    dcmtk("dcmdjpls", &[&jls, &native]);
    let back = read_cube(&native).unwrap();
    assert!(
        back.data() == cube.data(),
        "DCMTK's JPEG-LS decoder disagrees"
    );
    // And the compressed file is smaller than the samples.
    let raw = cube.data().len() as u64 * 2;
    let size = std::fs::metadata(&jls).unwrap().len();
    assert!(
        size < raw,
        "JPEG-LS {size} bytes for {raw} bytes of samples"
    );
}

#[test]
fn uids_are_stable_for_the_same_object_and_differ_otherwise() {
    let (site, study) = (site(), study());
    let cube = fixture("he_region");
    let a = SpecimenSeries::new(&site, &study, &cube, WsiOptions::default()).unwrap();
    let b = SpecimenSeries::new(&site, &study, &cube, WsiOptions::default()).unwrap();
    let (ia, ib) = (
        a.spectral_image(&cube).unwrap(),
        b.spectral_image(&cube).unwrap(),
    );
    assert_eq!(ia.sop_instance_uid(), ib.sop_instance_uid());
    assert_eq!(ia.series_uid(), ib.series_uid());
    let colour = a.colour_image(&cube).unwrap();
    assert_eq!(colour.series_uid(), ia.series_uid(), "one series");
    assert_ne!(colour.sop_instance_uid(), ia.sop_instance_uid());
    let mut other = cube.clone();
    other.data_mut()[[0, 0, 0]] ^= 1;
    let c = SpecimenSeries::new(&site, &study, &other, WsiOptions::default()).unwrap();
    assert_ne!(
        c.spectral_image(&other).unwrap().sop_instance_uid(),
        ia.sop_instance_uid()
    );
}

fn one_line_naming(err: &ImportError, path: &Path, also: &str) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "names the file: {msg}"
    );
    assert!(msg.contains(also), "names {also}: {msg}");
    for secret in ["PID-0042", "YAMADA", "19610203"] {
        assert!(!msg.contains(secret), "patient data in an error: {msg}");
    }
}

#[test]
fn truncated_garbled_and_hostile_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (site, study) = (site(), study());
    let cube = fixture("he_region");
    let series = SpecimenSeries::new(&site, &study, &cube, WsiOptions::default()).unwrap();
    let good = series
        .spectral_image(&cube)
        .unwrap()
        .to_bytes(Syntax::JpegLsLossless)
        .unwrap();
    // Truncated at many points.
    for cut in [0, 10, 131, 200, good.len() / 3, good.len() - 1] {
        let p = dir.path().join(format!("cut-{cut}.dcm"));
        std::fs::write(&p, &good[..cut]).unwrap();
        let e = read_cube(&p).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    }
    // Not DICOM.
    let p = dir.path().join("text.dcm");
    std::fs::write(&p, b"hello, this is not a DICOM file at all").unwrap();
    one_line_naming(&read_cube(&p).unwrap_err(), &p, "not a readable DICOM file");
    // A hostile length: the first data element after the meta claims 4 GiB.
    let mut hostile = good.clone();
    let meta_end = {
        let gl = u32::from_le_bytes(hostile[140..144].try_into().unwrap()) as usize;
        144 + gl
    };
    hostile[meta_end + 6..meta_end + 8].copy_from_slice(&0xfff0u16.to_le_bytes());
    let p = dir.path().join("hostile.dcm");
    std::fs::write(&p, &hostile).unwrap();
    assert!(read_cube(&p).is_err());
    // Flipped bytes inside the compressed frames: an error or different
    // samples, never a panic.
    let mut flipped = good.clone();
    let n = flipped.len();
    for i in (n - 5000..n - 100).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    let p = dir.path().join("flipped.dcm");
    std::fs::write(&p, &flipped).unwrap();
    if let Ok(c) = read_cube(&p) {
        assert!(c.data() != cube.data());
    }
}

#[test]
fn wrong_iods_and_inconsistent_attributes_name_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (site, study) = (site(), study());
    let cube = fixture("he_region");
    let series = SpecimenSeries::new(&site, &study, &cube, WsiOptions::default()).unwrap();
    // The colour rendering is WSI but not a cube.
    let p = dir.path().join("colour.dcm");
    series
        .colour_image(&cube)
        .unwrap()
        .write(&p, Syntax::ExplicitLittle)
        .unwrap();
    one_line_naming(&read_cube(&p).unwrap_err(), &p, "(0028,0004)");
    // An endoscopic image is another IOD.
    let frame = med8k_dicom::endoscopy::RgbFrame {
        width: 4,
        height: 2,
        data: vec![9; 24],
    };
    let img = med8k_dicom::endoscopy::endoscopic_image(
        &frame,
        &site,
        &study,
        &med8k_dicom::endoscopy::EndoscopyOptions::new("k", 0),
    )
    .unwrap();
    let p = dir.path().join("es.dcm");
    img.write(&p, Syntax::ExplicitLittle).unwrap();
    let e = read_cube(&p).unwrap_err();
    assert!(matches!(e, ImportError::WrongIod { .. }), "{e}");
    one_line_naming(&e, &p, "1.2.840.10008.5.1.4.1.1.77.1.1");
    // A frame count that disagrees with the tiles.
    let mut obj = open(&dir.path().join("colour.dcm")).unwrap();
    let mut spectral = series
        .spectral_image(&cube)
        .unwrap()
        .to_object(Syntax::ExplicitLittle)
        .unwrap();
    spectral.put_str(
        dicom_dictionary_std::tags::NUMBER_OF_FRAMES,
        dicom_core::VR::IS,
        "6",
    );
    let p = dir.path().join("frames.dcm");
    spectral.write_to_file(&p).unwrap();
    one_line_naming(&read_cube(&p).unwrap_err(), &p, "(0028,0008)");
    // The optical path sequence removed.
    spectral.put_str(
        dicom_dictionary_std::tags::NUMBER_OF_FRAMES,
        dicom_core::VR::IS,
        "7",
    );
    spectral.remove_element(dicom_dictionary_std::tags::OPTICAL_PATH_SEQUENCE);
    spectral.write_to_file(&p).unwrap();
    one_line_naming(&read_cube(&p).unwrap_err(), &p, "(0048,0105)");
    let _ = &mut obj;
}
