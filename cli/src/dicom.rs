//! `med8k dicom export|import|store|fetch`: arguments and printing over
//! `med8k_dicom`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use med8k_dicom::endoscopy::{EndoscopyOptions, RgbFrame, endoscopic_image};
use med8k_dicom::identity::{Disclosure, Patient, StudyInfo};
use med8k_dicom::pacs::Pacs;
use med8k_dicom::report::{Finding, Region, detection_report};
use med8k_dicom::uid::{UidRoot, log_id};
use med8k_dicom::web::DicomWeb;
use med8k_dicom::{Instance, Site, SpecimenSeries, Syntax, WsiOptions};
use med8k_media::spectral::envi;

use crate::Outcome;

/// `med8k dicom` subcommands.
#[derive(Debug, Subcommand)]
pub enum DicomCommand {
    /// A cube (ENVI .hdr) to the 7-band WSI image and its true-colour
    /// rendering; a frame (PNG/PPM) to a VL Endoscopic Image, with the
    /// detector's report when --model is given.
    Export(Box<ExportArgs>),
    /// A spectral image (.dcm) back to an ENVI cube, bit-exact.
    Import(ImportArgs),
    /// Store files into a PACS: --pacs URL (STOW-RS) or --scp AE@HOST:PORT (C-STORE).
    Store(StoreArgs),
    /// Fetch a study (or one instance) from a PACS by WADO-RS.
    Fetch(FetchArgs),
}

/// `med8k dicom export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A cube (`.hdr`) or an endoscope frame (PNG, PPM/PGM).
    #[arg(long = "in")]
    input: PathBuf,
    /// Folder to write the objects in.
    #[arg(long)]
    out: PathBuf,
    /// The site's patient ID.
    #[arg(long, default_value = "")]
    patient: String,
    /// The patient's name, DICOM PN form (FAMILY^GIVEN).
    #[arg(long, default_value = "")]
    patient_name: String,
    /// Birth date, YYYYMMDD.
    #[arg(long, default_value = "")]
    birth_date: String,
    /// Sex: M, F or O.
    #[arg(long, default_value = "")]
    sex: String,
    /// The site's study ID.
    #[arg(long, default_value = "")]
    study: String,
    /// Accession number.
    #[arg(long, default_value = "")]
    accession: String,
    /// Study date and time, YYYYMMDDHHMMSS [default: the input file's modification time, UTC].
    #[arg(long)]
    when: Option<String>,
    /// The site's UID root [default: UUID-derived 2.25 UIDs].
    #[arg(long)]
    uid_root: Option<String>,
    /// Institution name.
    #[arg(long, default_value = "")]
    institution: String,
    /// Transfer syntax: explicit, jpeg-ls or deflate.
    #[arg(long, default_value = "jpeg-ls")]
    syntax: Syntax,
    /// Write the copy that may cross a link: the patient as this pseudonym
    /// (the consent's), PS3.15's basic profile applied.
    #[arg(long)]
    pseudonym: Option<String>,
    /// Tile edge in pixels (cubes).
    #[arg(long, default_value_t = 512)]
    tile: u16,
    /// Pixel spacing on the specimen in mm (cubes).
    #[arg(long, default_value_t = 0.05)]
    pixel_spacing: f64,
    /// The anomaly model (frames): run it and attach its result as a
    /// Comprehensive SR.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The procedure the frame belongs to (frames; its series) [default: the file's stem].
    #[arg(long)]
    series_key: Option<String>,
    /// The frame's number in the recording (frames).
    #[arg(long, default_value_t = 0)]
    frame_number: u64,
}

/// `med8k dicom import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A spectral image written by `med8k dicom export` (or any VL WSI
    /// MONOCHROME2 16-bit TILED_FULL image).
    #[arg(long = "in")]
    input: PathBuf,
    /// The cube to write (`.hdr`, with its `.raw`).
    #[arg(long)]
    out: PathBuf,
}

/// `med8k dicom store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// DICOMweb root (STOW-RS), e.g. http://127.0.0.1:8042/dicom-web.
    #[arg(long, conflicts_with = "scp", required_unless_present = "scp")]
    pacs: Option<String>,
    /// Storage SCP (C-STORE), AE@HOST:PORT.
    #[arg(long)]
    scp: Option<String>,
    /// The files (DICOM Part 10).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// `med8k dicom fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// DICOMweb root (WADO-RS).
    #[arg(long)]
    pacs: String,
    /// Study Instance UID.
    #[arg(long)]
    study: String,
    /// Series and SOP Instance UID of one instance (both, or neither for the whole study).
    #[arg(long, requires = "instance")]
    series: Option<String>,
    /// SOP Instance UID.
    #[arg(long, requires = "series")]
    instance: Option<String>,
    /// Folder to write the instances in (named by a hash of their UID).
    #[arg(long)]
    out: PathBuf,
}

/// Runs a `med8k dicom` subcommand.
pub fn run(command: &DicomCommand) -> anyhow::Result<Outcome> {
    match command {
        DicomCommand::Export(a) => export(a),
        DicomCommand::Import(a) => import(a),
        DicomCommand::Store(a) => store(a),
        DicomCommand::Fetch(a) => fetch(a),
    }
}

const TIMEOUT: Duration = Duration::from_secs(600);

fn study_info(a: &ExportArgs) -> anyhow::Result<StudyInfo> {
    let when = match &a.when {
        Some(w) => w.clone(),
        None => {
            let t = std::fs::metadata(&a.input)
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            let (y, mo, d, h, mi, s) =
                med8k_auth::civil::civil_from_unix(med8k_auth::civil::unix(t));
            format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
        }
    };
    if when.len() != 14 || !when.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--when {when:?}: YYYYMMDDHHMMSS");
    }
    Ok(StudyInfo {
        patient: Patient {
            id: a.patient.clone(),
            name: a.patient_name.clone(),
            birth_date: a.birth_date.clone(),
            sex: a.sex.clone(),
        },
        study_id: a.study.clone(),
        accession: a.accession.clone(),
        description: String::new(),
        date: when[..8].to_string(),
        time: when[8..].to_string(),
    })
}

fn write_all(instances: &mut [Instance], a: &ExportArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let stem = a
        .input
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    for inst in instances.iter_mut() {
        if let Some(p) = &a.pseudonym {
            inst.disclose(&Disclosure::Pseudonym(p.clone()));
        }
        let path = a.out.join(format!("{stem}.{}.dcm", inst.kind().name()));
        let t0 = Instant::now();
        let bytes = inst.write(&path, a.syntax)?;
        println!(
            "{} -> {} ({} bytes, {}, instance {}) in {:.2} s",
            inst.kind().name(),
            path.display(),
            bytes,
            inst.syntax_for(a.syntax).name(),
            log_id(&inst.sop_instance_uid()),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn export(a: &ExportArgs) -> anyhow::Result<Outcome> {
    let root = match &a.uid_root {
        Some(r) => UidRoot::org(r)?,
        None => UidRoot::Uuid,
    };
    let site = Site::new(root).with_institution(&a.institution);
    let study = study_info(a)?;
    let is_cube = a.input.extension().is_some_and(|e| e == "hdr");
    let mut instances = if is_cube {
        let t0 = Instant::now();
        let cube = envi::read(&a.input)?;
        let options = WsiOptions::default()
            .with_tile(a.tile)
            .with_pixel_spacing_mm(a.pixel_spacing);
        let series = SpecimenSeries::new(&site, &study, &cube, options)
            .with_context(|| a.input.display().to_string())?;
        let spectral = series.spectral_image(&cube)?;
        let colour = series.colour_image(&cube)?;
        println!(
            "{}x{} {}-band cube: objects built in {:.2} s",
            cube.width(),
            cube.height(),
            cube.band_count(),
            t0.elapsed().as_secs_f64()
        );
        vec![spectral, colour]
    } else {
        let picture = med8k_media::imageio::read_picture(&a.input, None)
            .with_context(|| a.input.display().to_string())?;
        let frame =
            RgbFrame::from_picture(&picture).with_context(|| a.input.display().to_string())?;
        let key = a.series_key.clone().unwrap_or_else(|| {
            a.input
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        });
        let image = endoscopic_image(
            &frame,
            &site,
            &study,
            &EndoscopyOptions::new(&key, a.frame_number),
        )?;
        let mut out = vec![image];
        if let Some(model) = &a.model {
            let finding = detect(model, &a.input)?;
            println!(
                "detector {} {}: score {:.4} (threshold {:.4}), {}, {} region(s)",
                finding.model,
                finding.version,
                finding.score,
                finding.threshold,
                if finding.flagged {
                    "flagged"
                } else {
                    "not flagged"
                },
                finding.regions.len()
            );
            let report = detection_report(&finding, &out[0], &site, &study)?;
            out.push(report);
        }
        out
    };
    write_all(&mut instances, a)?;
    Ok(Outcome::Done)
}

/// Runs the model on the frame file (the detector's own input path).
fn detect(model: &Path, input: &Path) -> anyhow::Result<Finding> {
    use med8k_pipeline::input::InputSpec;
    let model = med8k_detect::model::Model::load(model)
        .with_context(|| format!("model {}", model.display()))?;
    let mut runner = model.runner()?;
    let name = input.display().to_string();
    let c = model.contract();
    if c.input.source != med8k_detect::contract::InputSource::FrameYcbcr {
        anyhow::bail!(
            "model {}: it takes cubes, not endoscope frames",
            model.path().display()
        );
    }
    // The first picture of the file (a picture file, a raw frame or a
    // stream), area-averaged to the model's input as every frame is.
    let picture = InputSpec::parse(&name, None)
        .open("dicom")
        .with_context(|| format!("opening {name}"))?
        .pictures()
        .next()
        .with_context(|| format!("{name}: no frame"))??;
    let tensor = med8k_detect::input::still_tensor(&picture, c.input.width(), c.input.height())?;
    let d = runner.run_tensor(
        0,
        tensor,
        (picture.width() as usize, picture.height() as usize),
    )?;
    let c = model.contract();
    Ok(Finding {
        model: c.name.clone(),
        version: c.version.clone(),
        score: d.score,
        threshold: c.threshold.score,
        flagged: d.anomalous,
        regions: d
            .boxes
            .iter()
            .map(|b| Region {
                x: b.x,
                y: b.y,
                width: b.width,
                height: b.height,
            })
            .collect(),
    })
}

fn import(a: &ImportArgs) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    let cube = med8k_dicom::import::read_cube(&a.input)?;
    let stem = a.out.with_extension("");
    envi::write(&cube, &stem, "med8k dicom import")?;
    println!(
        "{} -> {} ({}x{}, {} bands) in {:.2} s",
        a.input.display(),
        stem.with_extension("hdr").display(),
        cube.width(),
        cube.height(),
        cube.band_count(),
        t0.elapsed().as_secs_f64()
    );
    Ok(Outcome::Done)
}

fn store(a: &StoreArgs) -> anyhow::Result<Outcome> {
    let target = a.pacs.as_deref().or(a.scp.as_deref()).unwrap_or_default();
    let pacs = Pacs::parse(target, TIMEOUT)?;
    let t0 = Instant::now();
    let bytes: u64 = a
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let stored = pacs.store_files(&a.files)?;
    let s = t0.elapsed().as_secs_f64();
    println!(
        "stored {} instance(s), {} bytes, into {} in {:.2} s ({:.1} MB/s)",
        stored.len(),
        bytes,
        pacs.url(),
        s,
        bytes as f64 / 1e6 / s.max(1e-9)
    );
    Ok(Outcome::Done)
}

fn fetch(a: &FetchArgs) -> anyhow::Result<Outcome> {
    let web = DicomWeb::new(&a.pacs, TIMEOUT)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let parts = match (&a.series, &a.instance) {
        (Some(series), Some(instance)) => vec![web.retrieve_instance(&a.study, series, instance)?],
        _ => web.retrieve_study(&a.study)?,
    };
    for part in &parts {
        let obj =
            med8k_dicom::import::from_bytes(&med8k_dicom::import::memory_name("WADO-RS"), part)?;
        let uid = obj
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches(['\0', ' '])
            .to_string();
        let path = a.out.join(format!("{}.dcm", log_id(&uid)));
        std::fs::write(&path, part).with_context(|| format!("writing {}", path.display()))?;
        println!("{} ({} bytes)", path.display(), part.len());
    }
    println!("fetched {} instance(s) from {}", parts.len(), a.pacs);
    Ok(Outcome::Done)
}

/// The DICOM object `send` sends: from `--object FILE.dcm` or a PACS, with
/// the consent's disclosure applied; `None` when the object is not DICOM.
pub fn outgoing_object(
    object: Option<&Path>,
    from_pacs: Option<&str>,
    pseudonym: Option<&str>,
    disclose_identity: bool,
    work: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    use med8k_link::pacs::{DicomSource, prepare_outgoing};
    let source = match (object, from_pacs) {
        (Some(p), None) if p.extension().is_some_and(|e| e == "dcm") => {
            DicomSource::File(p.to_path_buf())
        }
        (_, Some(spec)) => {
            // URL#STUDY or URL#STUDY/SERIES/INSTANCE
            let (url, uids) = spec.split_once('#').with_context(|| {
                format!("--object-from-pacs {spec}: URL#STUDY[/SERIES/INSTANCE]")
            })?;
            let parts: Vec<&str> = uids.split('/').collect();
            match parts[..] {
                [study] => DicomSource::Study(url.into(), study.into()),
                [study, series, instance] => {
                    DicomSource::Instance(url.into(), study.into(), series.into(), instance.into())
                }
                _ => bail!("--object-from-pacs {spec}: URL#STUDY[/SERIES/INSTANCE]"),
            }
        }
        _ => return Ok(None),
    };
    let disclosure = match (pseudonym, disclose_identity) {
        (Some(p), false) => Disclosure::Pseudonym(p.to_string()),
        (None, true) => Disclosure::Identified,
        (None, false) => bail!(
            "a DICOM object crosses a link as the consent discloses it: give --pseudonym (the patient's pseudonym, the default disclosure) or --disclose-identity"
        ),
        (Some(_), true) => bail!("--pseudonym and --disclose-identity exclude each other"),
    };
    Ok(Some(prepare_outgoing(&source, &disclosure, work)?))
}
