//! `med8k view`: the pathologist's desk in a browser.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use med8k_link::annotations::{InstructionSet, Target};
use med8k_link::desk::{DeskEvent, DeskOptions};
use med8k_link::view::{Pyramid, ViewOptions, ViewSession, Viewer, open_browser};

use crate::consent::{CategoryArg, PurposeArg};
use crate::{Outcome, on_ctrl_c};

/// `med8k view`.
#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// A local cube (ENVI .hdr) or a med8k 7-band DICOM object (.dcm, VL
    /// Whole Slide Microscopy) to show (the sending site's own copy).
    #[arg(long = "in", conflicts_with_all = ["from", "pacs"])]
    input: Option<PathBuf>,
    /// The site's PACS (DICOMweb root, http://HOST:PORT/dicom-web): show a
    /// study's 7-band spectral image, read into memory only.
    #[arg(long, conflicts_with = "from", requires = "study")]
    pacs: Option<String>,
    /// Study Instance UID, with --pacs.
    #[arg(long, requires = "pacs")]
    study: Option<String>,
    /// Series Instance UID of the image to show (with --instance; default:
    /// the study's one 7-band image).
    #[arg(long, requires_all = ["pacs", "instance"])]
    series: Option<String>,
    /// SOP Instance UID of the image to show (with --series).
    #[arg(long, requires_all = ["pacs", "series"])]
    instance: Option<String>,
    /// Show instructions received earlier (JSON files `serve` stored) over the local cube.
    #[arg(long, requires = "input")]
    instructions: Vec<PathBuf>,
    /// The holding site to fetch the specimen from, through its consent gate.
    #[arg(long, requires_all = ["config", "pki", "physician_token", "patient", "audit"])]
    from: Option<SocketAddr>,
    /// This site's configuration (TOML), with --from.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The holding facility (default: the one allowed).
    #[arg(long)]
    facility: Option<String>,
    /// The PKI directory (`pki.toml`).
    #[arg(long)]
    pub(crate) pki: Option<PathBuf>,
    /// The physician's HPKI token: its authentication key logs in, its
    /// signing key signs the instructions.
    #[arg(long)]
    physician_token: Option<String>,
    /// The patient's JPKI token, when the patient is present.
    #[arg(long)]
    patient_token: Option<String>,
    /// Environment variable holding the physician token's PIN.
    #[arg(long)]
    pin_env: Option<String>,
    /// Environment variable holding the patient token's PIN.
    #[arg(long)]
    patient_pin_env: Option<String>,
    /// The patient's pseudonym (64 hex digits).
    #[arg(long)]
    patient: Option<String>,
    /// The data asked for.
    #[arg(long, value_enum, default_value = "pathology-images")]
    category: CategoryArg,
    /// Why.
    #[arg(long, value_enum, default_value = "remote-consultation")]
    purpose: PurposeArg,
    /// This end's audit log (instructions sent are recorded), with --from.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Pixel spacing of the specimen in micrometres (draws a scale bar;
    /// overrides what a DICOM object says).
    #[arg(long)]
    pixel_spacing_um: Option<f64>,
    /// End the session after this many minutes without a request.
    #[arg(long, default_value_t = 30)]
    idle_minutes: u64,
    /// Port on 127.0.0.1 (default: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Never try to open a browser; just print the URL.
    #[arg(long)]
    no_browser: bool,
}

fn announce(url: &str, no_browser: bool) {
    println!("{url}");
    let _ = std::io::stdout().flush();
    if !no_browser && open_browser(url) {
        eprintln!("med8k view: opened in the desktop's browser");
    }
}

pub fn view(args: &ViewArgs) -> anyhow::Result<Outcome> {
    if args.idle_minutes == 0 {
        bail!("--idle-minutes must be at least 1");
    }
    if let Some(s) = args.pixel_spacing_um
        && !(s > 0.0 && s.is_finite())
    {
        bail!("--pixel-spacing-um must be a positive number");
    }
    let options = ViewOptions {
        idle: Duration::from_secs(args.idle_minutes * 60),
        pixel_spacing_um: args.pixel_spacing_um,
        port: args.port,
    };
    let end = if let Some(from) = args.from {
        let missing = |what: &str| anyhow::anyhow!("--from needs {what}");
        let desk = DeskOptions {
            from,
            config: args.config.clone().ok_or_else(|| missing("--config"))?,
            facility: args.facility.clone(),
            pki: args.pki.clone().ok_or_else(|| missing("--pki"))?,
            physician_token: args
                .physician_token
                .clone()
                .ok_or_else(|| missing("--physician-token"))?,
            patient_token: args.patient_token.clone(),
            pin_env: (args.pin_env.clone(), args.patient_pin_env.clone()),
            patient: args.patient.clone().ok_or_else(|| missing("--patient"))?,
            category: args.category.category(),
            purpose: args.purpose.purpose(),
            audit: args.audit.clone().ok_or_else(|| missing("--audit"))?,
            view: options,
        };
        let no_browser = args.no_browser;
        med8k_link::desk::desk(
            &desk,
            Box::new(move |e| match e {
                DeskEvent::Permitted => {
                    println!("permitted");
                    let _ = std::io::stdout().flush();
                }
                DeskEvent::Url(u) => announce(&u, no_browser),
                DeskEvent::Sent(line) => {
                    println!("{line}");
                    let _ = std::io::stdout().flush();
                }
                _ => {}
            }),
        )?
    } else {
        let (cube, spacing_mm, title) = if let Some(pacs) = &args.pacs {
            let study = args.study.as_deref().unwrap_or_default();
            let pick = args.series.as_deref().zip(args.instance.as_deref());
            let (cube, spacing_mm) = from_pacs(pacs, study, pick)?;
            (cube, spacing_mm, "from the PACS")
        } else {
            let Some(input) = &args.input else {
                bail!(
                    "give --in CUBE.hdr|FILE.dcm (a local copy), --pacs URL --study UID (the site's PACS) or --from ADDR (a holding site)"
                );
            };
            let (cube, spacing_mm) = open_cube(input)?;
            (cube, spacing_mm, "local copy")
        };
        // The scale bar: --pixel-spacing-um, else what the DICOM object says.
        let options = ViewOptions {
            pixel_spacing_um: options
                .pixel_spacing_um
                .or(spacing_mm.map(|mm| mm * 1000.0)),
            ..options
        };
        let mut shown = Vec::new();
        for f in &args.instructions {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let set =
                InstructionSet::from_document(&bytes).with_context(|| f.display().to_string())?;
            shown.extend(set.marks);
        }
        let pyramid = Pyramid::new(cube)?;
        let session = ViewSession::new(pyramid, Target::Frame { channel: 0, seq: 0 }, title)
            .with_shown(shown);
        let rt = med8k_link::runtime()?;
        let shutdown = med8k_pipeline::Shutdown::new();
        on_ctrl_c(&shutdown)?;
        rt.block_on(async {
            let viewer = Viewer::bind(session, options).await?;
            announce(viewer.url(), args.no_browser);
            viewer
                .run(async move {
                    while !shutdown.is_requested() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                })
                .await
        })?
    };
    println!("session {}: the images were dropped", end.why);
    Ok(Outcome::Done)
}

type Cube = med8k_media::spectral::SpectralCube;

/// How long the PACS may take to answer one request (the retrieval of an
/// 8K 7-band image, 464 MB, included); connecting is bounded at 10 s.
const PACS_TIMEOUT: Duration = Duration::from_secs(300);

/// The study's 7-band spectral image from the PACS by QIDO-RS and WADO-RS,
/// held in memory only, and its pixel spacing in mm.
fn from_pacs(
    pacs: &str,
    study: &str,
    pick: Option<(&str, &str)>,
) -> anyhow::Result<(Cube, Option<f64>)> {
    let web = med8k_dicom::web::DicomWeb::new(pacs, PACS_TIMEOUT)?;
    let t0 = std::time::Instant::now();
    let found = med8k_dicom::study::open_spectral(&web, study, pick, 7)?;
    let cube = &found.image.cube;
    eprintln!(
        "med8k view: instance {} from the PACS, {}x{} {} bands, {} bytes in {:.2} s (in memory only)",
        found.instance,
        cube.width(),
        cube.height(),
        cube.band_count(),
        found.bytes,
        t0.elapsed().as_secs_f64()
    );
    Ok((found.image.cube, found.image.pixel_spacing_mm))
}

/// The cube in `input`, and its pixel spacing in mm when the file gives it:
/// an ENVI header (`.hdr`, no spacing) or a 7-band DICOM object (`.dcm`,
/// read by med8k-dicom); anything else is refused by name.
fn open_cube(input: &std::path::Path) -> anyhow::Result<(Cube, Option<f64>)> {
    let ext = input
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("hdr") => Ok((
            med8k_media::spectral::envi::read(input)
                .with_context(|| format!("reading {}", input.display()))?,
            None,
        )),
        Some("dcm") => {
            let image = med8k_dicom::import::read_image(input)?;
            Ok((image.cube, image.pixel_spacing_mm))
        }
        _ => bail!(
            "--in {}: the viewer opens ENVI cubes (.hdr) and med8k's 7-band DICOM objects (.dcm)",
            input.display()
        ),
    }
}

/// `serve`'s line for instructions that came back: who sent what, where it went.
pub fn print_instructions(outcome: &med8k_link::instructions::InstructionOutcome) {
    use med8k_link::instructions::InstructionOutcome;
    match outcome {
        InstructionOutcome::Stored {
            facility,
            signer,
            marks,
            cut_lines,
            files,
        } => {
            println!(
                "instructions from {facility}: {marks} mark(s), {cut_lines} cut line(s), signed by {signer} (verified) -> {}",
                files.json.display()
            );
            if let Some(o) = &files.overlay {
                println!("overlay -> {}", o.display());
            }
            if let Some(d) = &files.dicom {
                println!("structured report -> {}", d.display());
            }
        }
        InstructionOutcome::Refused { facility, reason } => {
            println!("instructions from {facility} refused: {reason}");
        }
        _ => {}
    }
    let _ = std::io::stdout().flush();
}
