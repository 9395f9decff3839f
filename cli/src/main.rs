//! `med8k`: the command-line tool. Parsing and wiring only; the work is in the
//! library crates.
//!
//! Exit codes: 0 success; 1 failure (bad input, a device or pipeline error);
//! 2 usage error; 130 stopped by Ctrl-C.

mod audit;
mod bench;
mod bench_report;
mod codec;
mod colour;
mod consent;
mod demo;
mod demo_desk;
mod detect;
mod dicom;
mod link;
mod pki;
mod probe;
mod report;
mod run;
mod samples;
mod view;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use med8k_auth::identity::pkcs11::SOFTHSM2_CONF_ENV;
use med8k_auth::pkifile::PkiFile;

/// Exit code for a run stopped by Ctrl-C.
const EXIT_INTERRUPTED: u8 = 130;

/// med8k: 8K endoscope video and 7-band multispectral imaging engine.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Recorded samples: the 8K endoscope clip and 7-band cubes.
    Samples {
        #[command(subcommand)]
        command: SamplesCommand,
    },
    /// Run a pipeline described in a TOML file.
    Run {
        /// The pipeline configuration.
        #[arg(long)]
        config: PathBuf,
        /// Also write the run's report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Show GStreamer and its plugins, GPU adapters and PKCS#11 modules.
    Probe {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The main job on built-in defaults: samples (generated if missing)
    /// through the pipeline, a summary, and a JSON report.
    Demo(demo::DemoArgs),
    /// Compress and decompress pictures, clips and cubes.
    Codec {
        #[command(subcommand)]
        command: CodecCommand,
    },
    /// Accept links from other sites and store what they send.
    Serve(link::ServeArgs),
    /// Send live frames (and optionally a file) to a site.
    Send(link::SendArgs),
    /// Ask a site for a patient's data through its consent gate (HPKI and
    /// JPKI logins) and receive it.
    Fetch(link::FetchArgs),
    /// The pathologist's desk: a specimen in the browser (loopback only,
    /// nothing on disk), and cut-out instructions sent back signed.
    View(view::ViewArgs),
    /// Benchmarks on the recorded samples: without a subcommand, every
    /// scenario (surgeon, remote monitor, pathology, detection) in one report.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        command: Option<BenchCommand>,
        #[command(flatten)]
        args: bench_report::BenchArgs,
    },
    /// Run an ONNX anomaly model over a clip or a cube.
    Detect(detect::DetectArgs),
    /// Measure quality and speed against the sample set's labels.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// The audit log of consent decisions and transfers.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Certificates: a demo PKI on SoftHSM2 tokens, and checking one.
    Pki {
        #[command(subcommand)]
        command: pki::PkiCommand,
    },
    /// Patient consent: grant and revoke with the patient's token, list,
    /// and check a physician's access.
    Consent {
        #[command(subcommand)]
        command: consent::ConsentCommand,
    },
    /// Colour from 7-band cubes: render true colour, and measure it against
    /// an RGB camera.
    Colour {
        #[command(subcommand)]
        command: colour::ColourCommand,
    },
    /// DICOM: export cubes and frames as objects a PACS keeps, import them
    /// back, store into and fetch from a PACS.
    Dicom {
        #[command(subcommand)]
        command: dicom::DicomCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// An anomaly model: image, pixel and tile AUROC, frames/s, latency,
    /// and tract against onnxruntime on the bare model.
    Detect(detect::EvalDetectArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the log's keyed hash chain (with its key LOG.key); names the
    /// first altered, removed, reordered or garbled entry.
    Verify {
        /// The audit log (JSON Lines).
        #[arg(long)]
        log: PathBuf,
        /// A checkpoint taken earlier (`audit checkpoint`): the log must
        /// still hold what it saw (entries cut from the end are found).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print a checkpoint of the log (entries, head, MAC) to keep outside
    /// it.
    Checkpoint {
        /// The audit log (JSON Lines).
        #[arg(long)]
        log: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CodecCommand {
    /// Encode a picture, raw frames, a clip or a cube.
    Encode(codec::EncodeArgs),
    /// Decode a bitstream or sequence.
    Decode(codec::DecodeArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Ratio, speed and quality of the codec and its peers.
    Codec(bench::BenchCodecArgs),
    /// A link on loopback (through the impairment relay when impaired):
    /// goodput against a plain quinn ceiling, frame latency, losses.
    Link(link::BenchLinkArgs),
}

#[derive(Debug, Subcommand)]
enum SamplesCommand {
    /// Generate the clip, labels, masks and cubes (same seed, same bytes).
    Generate(samples::GenerateArgs),
    /// Model training/evaluation arrays (.npy) made with the engine's input code.
    Dataset(samples::DatasetArgs),
}

/// The environment the libraries read, set once, first thing in `main`,
/// while this process runs no other thread (setting it later is unsound):
/// - Mesa's device-select Vulkan layer looks for a Wayland display whenever
///   a GPU is opened and, on a headless machine (no `XDG_RUNTIME_DIR`),
///   prints `error: XDG_RUNTIME_DIR is invalid` from whichever thread opened
///   it; without a display there is nothing for it to find, so it is off.
/// - SoftHSM2 (the demo's cards) reads `SOFTHSM2_CONF` when its module
///   loads: the configuration of the PKI directory the command names.
fn prepare_environment(command: &Command) {
    let mut set = Vec::new();
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        set.push(("NODEVICE_SELECT", PathBuf::from("1")));
    }
    if let Some(conf) = softhsm2_conf(command) {
        set.push((SOFTHSM2_CONF_ENV, conf));
    }
    for (key, value) in set {
        // SAFETY: called first thing in `main`, after argument parsing,
        // which starts no thread: nothing reads the environment concurrently.
        unsafe { std::env::set_var(key, value) };
    }
}

/// The SoftHSM2 configuration of the PKI directory `command` works with.
fn softhsm2_conf(command: &Command) -> Option<PathBuf> {
    let of_dir = |dir: &Path| PkiFile::load(dir).ok()?.softhsm2_conf();
    match command {
        Command::Pki {
            command: pki::PkiCommand::DemoInit(args),
        } => Some(args.out.join("softhsm2.conf")),
        Command::Consent { command } => of_dir(match command {
            consent::ConsentCommand::Grant(a) => &a.token.pki,
            consent::ConsentCommand::Revoke(a) => &a.token.pki,
            consent::ConsentCommand::Check(a) => &a.pki,
            consent::ConsentCommand::List(_) | consent::ConsentCommand::Stop(_) => return None,
        }),
        Command::Fetch(args) => of_dir(&args.pki),
        Command::View(args) => of_dir(args.pki.as_deref()?),
        Command::Demo(args) => Some(
            args.samples
                .options()
                .out
                .join(demo::DEMO_PKI)
                .join("softhsm2.conf"),
        ),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    prepare_environment(&cli.command);
    init_logging(cli.verbose);
    let result = run_command(cli.command);
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Ok(Outcome::Denied) => ExitCode::FAILURE,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("med8k: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `med8k ARGS...` inside this process (the demo chains commands).
fn run_args(args: &[&str]) -> anyhow::Result<Outcome> {
    let cli = Cli::try_parse_from(std::iter::once("med8k").chain(args.iter().copied()))?;
    run_command(cli.command)
}

fn run_command(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Samples {
            command: SamplesCommand::Generate(args),
        } => samples::generate(&args),
        Command::Samples {
            command: SamplesCommand::Dataset(args),
        } => samples::dataset(&args),
        Command::Run { config, json } => run::run(&config, json.as_deref()),
        Command::Probe { json } => probe::probe(json),
        Command::Demo(args) => demo::demo(&args),
        Command::Codec {
            command: CodecCommand::Encode(args),
        } => codec::encode(&args),
        Command::Codec {
            command: CodecCommand::Decode(args),
        } => codec::decode(&args),
        Command::Bench {
            command: None,
            args,
        } => bench_report::bench(&args),
        Command::Bench {
            command: Some(BenchCommand::Codec(args)),
            ..
        } => bench::bench_codec(&args),
        Command::Bench {
            command: Some(BenchCommand::Link(args)),
            ..
        } => link::bench_link(&args),
        Command::Serve(args) => link::serve(&args),
        Command::Send(args) => link::send(&args),
        Command::Fetch(args) => link::fetch(&args),
        Command::View(args) => view::view(&args),
        Command::Detect(args) => detect::detect(&args),
        Command::Eval {
            command: EvalCommand::Detect(args),
        } => detect::eval_detect(&args),
        Command::Audit {
            command: AuditCommand::Verify { log, checkpoint },
        } => audit::verify(&log, checkpoint.as_deref()),
        Command::Audit {
            command: AuditCommand::Checkpoint { log },
        } => audit::checkpoint(&log),
        Command::Pki { command } => pki::run(&command),
        Command::Consent { command } => consent::run(&command),
        Command::Colour { command } => colour::run(&command),
        Command::Dicom { command } => dicom::run(&command),
    }
}

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It did what it was asked.
    Done,
    /// Ctrl-C stopped it; it shut down cleanly.
    Interrupted,
    /// It ran, and its answer was no (`consent check` denied access): exit 1.
    Denied,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,med8k=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Writing to a closed pipe (`med8k probe | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A Ctrl-C handler that asks `shutdown` to stop; a second Ctrl-C exits at once.
fn on_ctrl_c(shutdown: &med8k_pipeline::Shutdown) -> anyhow::Result<()> {
    let shutdown = shutdown.clone();
    ctrlc::set_handler(move || {
        if shutdown.is_requested() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("\nmed8k: stopping (Ctrl-C again to quit at once)");
        shutdown.request();
    })?;
    Ok(())
}
