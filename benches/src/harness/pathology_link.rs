//! The pathology scenario's journey: each cube coded losslessly, across the
//! link through the impairment relay, into a real PACS (Orthanc) and back
//! the viewer's way, to the viewer's first screen and whole image
//! ([`med8k_link::bench::pathology`], where the measuring lives).

use std::path::PathBuf;

use med8k_link::bench::{PathologyOptions, PathologyReport, bench_pathology};

use super::{Better, HarnessOptions, Scenario};
use med8k_dicom::orthanc::LocalOrthanc as Orthanc;

/// Runs each cube (the first only in a full run: an 8K cube takes minutes)
/// and adds the figures and notes to `s`.
pub fn add(
    s: &mut Scenario,
    cubes: &[PathBuf],
    options: &HarnessOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let taken = if options.quick { cubes.len() } else { 1 };
    let mut link = PathologyOptions::default();
    // Starting checks that Orthanc is installed; either way the note says why not.
    let pacs = match Orthanc::start() {
        Ok(o) => Some(o),
        Err(e) => {
            s.notes
                .push(format!("No PACS: {e}; the viewer opened the decoded copy."));
            None
        }
    };
    link.pacs = pacs.as_ref().map(Orthanc::dicomweb);
    let mut reports = Vec::new();
    for path in cubes.iter().take(taken) {
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        progress(&format!("  {name}: lossless → link → PACS → viewer"));
        let cube = med8k_media::spectral::envi::read(path)?;
        let r = bench_pathology(&cube, &link, progress)?;
        figures(s, &name, &r);
        reports.push(r);
    }
    drop(pacs);
    let count = |f: fn(&PathologyReport) -> Option<bool>, want: bool| {
        reports.iter().filter(|r| f(r) == Some(want)).count() as f64
    };
    s.figure(
        "cubes bit-exact after the link",
        count(|r| Some(r.exact_after_link), true),
        "",
        Better::None,
    );
    s.figure(
        "cubes not bit-exact after the link",
        count(|r| Some(r.exact_after_link), false),
        "",
        Better::Lower,
    );
    if link.pacs.is_some() {
        s.figure(
            "cubes bit-exact in the PACS",
            count(|r| r.exact_in_pacs, true),
            "",
            Better::None,
        );
        s.figure(
            "cubes not bit-exact in the PACS",
            count(|r| r.exact_in_pacs, false),
            "",
            Better::Lower,
        );
    }
    let n = reports.len().max(1) as f64;
    s.figure(
        "pathologist's wait for the first screen (mean)",
        reports.iter().map(|r| r.first_screen_ms).sum::<f64>() / n,
        "ms",
        Better::Lower,
    );
    s.figure(
        "pathologist's wait for the whole image (mean)",
        reports.iter().map(|r| r.whole_image_ms).sum::<f64>() / n,
        "ms",
        Better::Lower,
    );
    s.notes.push(format!(
        "The journey ({} of {} cubes): lossless coding, the codestream as an object (reliable, \
         SHA-256 checked; \"link\" runs from opening the session to the whole object held) over \
         a med8k session (quinn, mutual TLS under a CA made for the run) \
         through the impairment relay at {} Mbit/s with {}% loss and {} ms each way, decoded \
         and checked bit-exact; {}; the viewer's pyramid, its first screen (the coarsest \
         level's tile, true colour under D65) and then every full-resolution tile. The waits \
         run from the start of coding.",
        reports.len(),
        cubes.len(),
        link.cap_mbps,
        link.loss_percent,
        link.delay_ms,
        if link.pacs.is_some() {
            "stored into Orthanc by STOW-RS as a VL Whole Slide Microscopy Image (Explicit VR \
             Little Endian, a benchmark study) and read back as `med8k view --pacs` reads it \
             (QIDO-RS, WADO-RS), checked bit-exact again"
        } else {
            "no PACS"
        }
    ));
    Ok(())
}

fn figures(s: &mut Scenario, name: &str, r: &PathologyReport) {
    let c = name;
    s.figure(format!("{c}: encode"), r.encode_ms, "ms", Better::Lower);
    s.figure(format!("{c}: link"), r.link_ms, "ms", Better::Lower);
    s.figure(
        format!("{c}: link rate"),
        r.link_mbps,
        "Mbit/s",
        Better::Higher,
    );
    s.figure(
        format!("{c}: bytes on the wire"),
        r.wire_bytes as f64,
        "B",
        Better::None,
    );
    s.figure(
        format!("{c}: packets lost on the link"),
        r.packets_lost_percent,
        "%",
        Better::None,
    );
    s.figure(
        format!("{c}: sent again from the start"),
        r.restarts as f64,
        "",
        Better::Lower,
    );
    s.figure(format!("{c}: decode"), r.decode_ms, "ms", Better::Lower);
    if let Some(t) = r.store_ms {
        s.figure(format!("{c}: PACS store"), t, "ms", Better::Lower);
    }
    if let Some(t) = r.retrieve_ms {
        s.figure(format!("{c}: PACS retrieve"), t, "ms", Better::Lower);
    }
    s.figure(
        format!("{c}: viewer pyramid"),
        r.pyramid_ms,
        "ms",
        Better::Lower,
    );
    s.figure(
        format!("{c}: wait for the first screen"),
        r.first_screen_ms,
        "ms",
        Better::Lower,
    );
    s.figure(
        format!("{c}: wait for the whole image ({} tiles)", r.full_tiles),
        r.whole_image_ms,
        "ms",
        Better::Lower,
    );
}
