//! `med8k serve`, `med8k send`, `med8k fetch` and `med8k bench link`: the
//! flows of `med8k_link`, with their arguments and what they print.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use med8k_link::bench::{
    BenchClassesOptions, BenchLinkOptions, DEFAULT_FRAME_KB, bench_classes, bench_link as run_bench,
};
use med8k_link::fetch::{FetchEvent, FetchOptions};
use med8k_link::mbps;
use med8k_link::send::{SendEvent, SendOptions};
use med8k_link::serve::{LinkReport, ServeEvent, ServeOptions};
use med8k_pipeline::Shutdown;
use med8k_pipeline::input::InputSpec;
use med8k_transport::driver::Congestion;

use crate::consent::{CategoryArg, PurposeArg};
use crate::{Outcome, on_ctrl_c};

/// `med8k serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (IPv4 or IPv6; port 0 picks one).
    #[arg(long)]
    listen: SocketAddr,
    /// The site configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Store frames (M8KS per link) and objects in this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Decode every frame and push it to this GStreamer sink (for example
    /// `videoconvert ! autovideosink`); frames the decoder cannot keep up
    /// with are dropped, never the link.
    #[arg(long)]
    sink: Option<String>,
    /// Where the sink's frames are decoded: auto (a hardware GPU when there
    /// is one, else the CPU twin), gpu (lavapipe too) or cpu.
    #[arg(long, default_value_t = med8k_pipeline::encode::Backend::Auto, requires = "sink")]
    decode: med8k_pipeline::encode::Backend,
    /// Stop after this many frames (over all links).
    #[arg(long)]
    frames: Option<u64>,
    /// Stop after this many links have ended.
    #[arg(long)]
    links: Option<u64>,
    /// Offer this to every permitted session: a picture or raw file, a
    /// recorded clip (.mkv) or a sample folder, coded losslessly.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Frames per second of the offered source.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// The patient (pseudonym) the source belongs to; with the consent
    /// gate, only claims for this patient are permitted.
    #[arg(long, requires = "source")]
    source_patient: Option<String>,
    /// The data category of the source; with the consent gate, only claims
    /// for it are permitted.
    #[arg(long, value_enum, requires = "source")]
    source_category: Option<CategoryArg>,
    /// Offer --source under the development gate (allow-authenticated): to
    /// every peer with a facility certificate, with NO consent checked.
    #[arg(long)]
    development_gate: bool,
    /// Store every DICOM object that arrives (whole, SHA-256 checked) into
    /// this PACS: a DICOMweb root (STOW-RS) or AE@HOST:PORT (C-STORE);
    /// audited; retried, and kept in --out if the PACS refuses.
    #[arg(long, requires = "out")]
    pacs: Option<String>,
}

/// `med8k send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The receiving site's address.
    #[arg(long)]
    to: SocketAddr,
    /// The site configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// A recorded clip (.mkv), a sample folder, a picture or raw file, or a
    /// GStreamer pipeline description.
    #[arg(long)]
    source: String,
    /// Target bits per pixel per frame.
    #[arg(long, conflicts_with = "lossless")]
    bpp: Option<f64>,
    /// Every sample comes back exactly (the default).
    #[arg(long)]
    lossless: bool,
    /// The facility the receiver's certificate must name (default: the one
    /// allowed facility of the configuration).
    #[arg(long)]
    facility: Option<String>,
    /// Also send this file on the reliable channel (a cube's .raw, a DICOM file…).
    #[arg(long)]
    object: Option<PathBuf>,
    /// Most frames to send.
    #[arg(long)]
    frames: Option<u64>,
    /// Frames per second from a file (a live source keeps its own pace);
    /// sent faster than the link takes them, newer frames overtake older
    /// ones, which are then lost.
    #[arg(long, default_value_t = 60.0)]
    fps: f64,
    /// Run this anomaly model (a `frame-ycbcr` ONNX model beside its
    /// `.json` sidecar) on the newest captured frame whenever it is idle,
    /// and send each result with its frame as metadata.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Send a study or an instance from a PACS as the object:
    /// `URL#STUDY` or `URL#STUDY/SERIES/INSTANCE` (WADO-RS).
    #[arg(long, conflicts_with = "object")]
    object_from_pacs: Option<String>,
    /// A DICOM object crosses as the consent discloses it: by default as
    /// this pseudonym (the patient's, from the consent), de-identified
    /// (PS3.15 basic profile).
    #[arg(long)]
    pseudonym: Option<String>,
    /// The consent discloses the patient's identity: send DICOM as it is.
    #[arg(long)]
    disclose_identity: bool,
}

/// `med8k fetch`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// The holding site's address.
    #[arg(long)]
    from: SocketAddr,
    /// This (the requesting) site's configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// The facility the holding site's certificate must name (default: the
    /// one allowed facility of the configuration).
    #[arg(long)]
    facility: Option<String>,
    /// The demo PKI directory (`med8k pki demo-init --out DIR`).
    #[arg(long)]
    pub(crate) pki: PathBuf,
    /// The physician's HPKI token (label).
    #[arg(long)]
    physician_token: String,
    /// The patient's JPKI token (label), when the patient is present.
    #[arg(long)]
    patient_token: Option<String>,
    /// Environment variable holding the physician token's PIN (default: the
    /// demo PIN in pki.toml).
    #[arg(long)]
    pin_env: Option<String>,
    /// Environment variable holding the patient token's PIN (default: the
    /// demo PIN in pki.toml).
    #[arg(long)]
    patient_pin_env: Option<String>,
    /// The patient's pseudonym (64 hex digits).
    #[arg(long)]
    patient: String,
    /// The data asked for.
    #[arg(long, value_enum)]
    category: CategoryArg,
    /// Why.
    #[arg(long, value_enum)]
    purpose: PurposeArg,
    /// The visit, for per-visit consent.
    #[arg(long)]
    visit: Option<String>,
    /// Store the frames received as DIR/<facility>.m8ks.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Stop after this many frames.
    #[arg(long)]
    frames: Option<u64>,
}

/// A congestion controller by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CongestionArg {
    Cubic,
    Bbr,
    Newreno,
}

/// `med8k bench link`.
#[derive(Debug, clap::Args)]
pub struct BenchLinkArgs {
    /// Random loss per datagram, each direction, in percent (0..=100):
    /// `--loss 1` drops one datagram in a hundred.
    #[arg(long, value_name = "PERCENT")]
    loss: Option<f64>,
    /// One-way delay in milliseconds, each direction (the round trip is twice it).
    #[arg(long, value_name = "MS")]
    delay: Option<u64>,
    /// Bandwidth cap in Mbit/s, each direction.
    #[arg(long, value_name = "MBPS")]
    rate: Option<f64>,
    /// Seconds per phase (per class with --classes).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Live frame size in KB (1000 bytes).
    #[arg(long, default_value_t = DEFAULT_FRAME_KB)]
    frame_kb: u32,
    /// Pace frames at this rate instead of as fast as the link takes them.
    #[arg(long)]
    fps: Option<f64>,
    /// Frames in flight at most when not paced (default: 3 on loopback;
    /// through the relay, two round trips' worth at the cap plus three).
    #[arg(long)]
    window: Option<u32>,
    /// Live frame deadline in milliseconds.
    #[arg(long, default_value_t = 250)]
    deadline_ms: u64,
    /// Congestion controller for both phases.
    #[arg(long, value_enum, default_value_t = CongestionArg::Bbr)]
    congestion: CongestionArg,
    /// The largest UDP payload path MTU discovery may reach, both phases
    /// (1200..=6500, default 6500; loopback carries any size, so 1452 is
    /// what an Ethernet path between the sites would allow).
    #[arg(long, value_name = "BYTES")]
    max_udp_payload: Option<u16>,
    /// Instead of the two phases, what arrives of an 8K stream on each link
    /// class (in-hospital 5 Gbit/s; 150, 40 and 20 Mbit/s between
    /// hospitals, with --loss (default 1) and --delay (default 20)).
    #[arg(
        long,
        conflicts_with_all = ["rate", "frame_kb", "fps", "window", "max_udp_payload"]
    )]
    classes: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<Outcome> {
    let forwarder = match &args.pacs {
        Some(url) => Some(med8k_link::pacs::Forwarder::start(
            med8k_dicom::pacs::Pacs::parse(url, std::time::Duration::from_secs(600))?,
            med8k_link::pacs::Audit::of_site(&args.config)?,
        )),
        None => None,
    };
    let options = ServeOptions {
        listen: args.listen,
        config: args.config.clone(),
        out: args.out.clone(),
        sink: args.sink.clone(),
        decode: args.decode,
        frames: args.frames,
        links: args.links,
        source: args.source.clone(),
        fps: args.fps,
        source_patient: args.source_patient.clone(),
        source_category: args.source_category.map(CategoryArg::category),
        development_gate: args.development_gate,
    };
    let shutdown = Shutdown::new();
    on_ctrl_c(&shutdown)?;
    let summary = med8k_link::serve::serve(&options, &shutdown, &mut |event| match event {
        ServeEvent::Listening(addr) => {
            println!("listening on {addr}");
            let _ = std::io::stdout().flush();
        }
        ServeEvent::LinkEnded(report) => {
            print_link(&report);
            for o in report.objects.iter().filter(|_| forwarder.is_some()) {
                forwarder.iter().for_each(|f| f.submit(o, &report.facility));
            }
        }
        ServeEvent::Instructions(outcome) => {
            crate::view::print_instructions(&outcome);
            // The structured report goes into the PACS beside the specimen.
            if let (
                Some(f),
                med8k_link::instructions::InstructionOutcome::Stored {
                    facility, files, ..
                },
            ) = (&forwarder, &*outcome)
                && let Some(sr) = &files.dicom
            {
                f.submit(sr, facility);
            }
        }
        _ => {}
    })?;
    if let Some(f) = forwarder {
        let r = f.finish();
        for (path, n) in &r.stored {
            println!("{} stored into the PACS ({n} instance(s))", path.display());
        }
        for (path, e) in &r.failed {
            eprintln!(
                "med8k: {} not stored into the PACS (kept): {e}",
                path.display()
            );
        }
        if !r.failed.is_empty() {
            anyhow::bail!("{} object(s) not stored into the PACS", r.failed.len());
        }
    }
    println!(
        "{} frame(s) received on {} link(s)",
        summary.frames, summary.links
    );
    Ok(if summary.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
}

fn print_link(r: &LinkReport) {
    let remote = r.remote.map(|a| a.to_string()).unwrap_or_default();
    println!(
        "link {} ({remote}): {} frame(s), {} bytes in {:.2} s ({:.1} Mbit/s), {} lost, \
         {} late, {} dropped by this host, rtt {:.1} ms, packet loss {:.2}%, \
         {} object(s) stored, {} corrupt; {}",
        r.facility,
        r.frames,
        r.bytes,
        r.seconds,
        mbps(r.bytes, r.seconds),
        r.lost,
        r.late,
        r.dropped,
        r.rtt_ms,
        f64::from(r.loss_ppm) / 1e4,
        r.objects.len(),
        r.corrupt,
        r.ended,
    );
    if let Some((n, bytes)) = r.sent {
        println!("  {n} frame(s), {bytes} bytes sent from the source");
    }
    if let Some(n) = r.shown {
        println!("  {n} frame(s) decoded to the sink");
    }
    if r.detections > 0 {
        println!(
            "  {} detection result(s), {} anomalous",
            r.detections, r.anomalous
        );
    }
    if let Some(p) = &r.sequence {
        println!("  frames -> {}", p.display());
    }
    if let Some(p) = &r.detections_file {
        println!("  detections -> {}", p.display());
    }
    for p in &r.objects {
        println!("  object -> {}", p.display());
    }
    if let Some(e) = &r.error {
        eprintln!("med8k: link {}: {e}", r.facility);
    }
    let _ = std::io::stdout().flush();
}

pub fn send(args: &SendArgs) -> anyhow::Result<Outcome> {
    let work = tempfile::tempdir()?;
    let dicom = crate::dicom::outgoing_object(
        args.object.as_deref(),
        args.object_from_pacs.as_deref(),
        args.pseudonym.as_deref(),
        args.disclose_identity,
        work.path(),
    )?;
    let options = SendOptions {
        to: args.to,
        config: args.config.clone(),
        source: InputSpec::parse(&args.source, None),
        bpp: args.bpp,
        facility: args.facility.clone(),
        object: dicom.or_else(|| args.object.clone()),
        frames: args.frames,
        fps: args.fps,
        model: args.model.clone(),
    };
    let shutdown = Shutdown::new();
    on_ctrl_c(&shutdown)?;
    let r = med8k_link::send::send(&options, &shutdown, &mut |event| {
        match event {
            SendEvent::Connected { facility, to } => println!("connected to {facility} at {to}"),
            SendEvent::Reconnected {
                facility,
                to,
                count,
            } => println!("reconnected to {facility} at {to} ({count})"),
            SendEvent::ObjectDelivered { id, bytes } => {
                println!("object {id:016x} delivered ({bytes} bytes, SHA-256 checked)");
            }
            _ => {}
        }
        let _ = std::io::stdout().flush();
    })?;
    println!(
        "{} frame(s) captured ({}), {} sent, {} lost or late, {} dropped before sending; \
         goodput {:.1} Mbit/s over {:.2} s; {} reconnect(s)",
        r.captured, r.encoder, r.sent, r.lost, r.dropped, r.goodput_mbps, r.seconds, r.reconnects,
    );
    if let Some(d) = &r.detection {
        println!(
            "detection: {} frame(s) analysed, {} skipped ({} not Y'CbCr), \
             {} input(s) made on the GPU; \
             {} metadata message(s) sent, {} result(s) without a frame sent",
            d.analysed, d.skipped, d.unsupported, d.inputs_on_gpu, d.metas, d.unsent,
        );
    }
    Ok(if r.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
}

pub fn fetch(args: &FetchArgs) -> anyhow::Result<Outcome> {
    let options = FetchOptions {
        from: args.from,
        config: args.config.clone(),
        facility: args.facility.clone(),
        pki: args.pki.clone(),
        physician_token: args.physician_token.clone(),
        patient_token: args.patient_token.clone(),
        pin_env: args.pin_env.clone(),
        patient_pin_env: args.patient_pin_env.clone(),
        patient: args.patient.clone(),
        category: args.category.category(),
        purpose: args.purpose.purpose(),
        visit: args.visit.clone(),
        out: args.out.clone(),
        frames: args.frames,
    };
    let r = med8k_link::fetch::fetch(&options, &mut |event| {
        if event == FetchEvent::Permitted {
            println!("permitted");
            let _ = std::io::stdout().flush();
        }
    })?;
    println!(
        "{} frame(s), {} bytes received from {} in {:.2} s ({:.1} Mbit/s), {} lost",
        r.frames,
        r.bytes,
        r.facility,
        r.seconds,
        mbps(r.bytes, r.seconds),
        r.lost,
    );
    if let Some(p) = &r.stored {
        println!("frames -> {}", p.display());
    }
    if let Some(why) = r.stopped {
        anyhow::bail!(why);
    }
    Ok(Outcome::Done)
}

pub fn bench_link(args: &BenchLinkArgs) -> anyhow::Result<Outcome> {
    let congestion = match args.congestion {
        CongestionArg::Cubic => Congestion::Cubic,
        CongestionArg::Bbr => Congestion::Bbr,
        CongestionArg::Newreno => Congestion::NewReno,
    };
    let json = if args.classes {
        let mut options = BenchClassesOptions::default();
        options.seconds = args.seconds;
        options.deadline_ms = args.deadline_ms;
        options.congestion = congestion;
        if let Some(l) = args.loss {
            options.loss_percent = l;
        }
        if let Some(d) = args.delay {
            options.delay_ms = d;
        }
        let report = bench_classes(&options)?;
        println!("{report}");
        serde_json::to_vec_pretty(&report)?
    } else {
        let mut options = BenchLinkOptions::default();
        options.loss_percent = args.loss;
        options.delay = args.delay;
        options.rate = args.rate;
        options.seconds = args.seconds;
        options.frame_kb = args.frame_kb;
        options.fps = args.fps;
        options.window = args.window;
        options.deadline_ms = args.deadline_ms;
        options.congestion = congestion;
        options.max_udp_payload = args.max_udp_payload;
        let report = run_bench(&options)?;
        if let Some(e) = &report.ceiling_error {
            eprintln!("med8k: warning: the plain quinn ceiling failed: {e}");
        }
        if let Some(e) = &report.live_error {
            eprintln!("med8k: warning: the live phase stopped: {e}");
        }
        println!("{report}");
        serde_json::to_vec_pretty(&report)?
    };
    if let Some(path) = &args.json {
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Outcome::Done)
}
