//! The pipeline core around real GStreamer sources: backpressure, live
//! drops, shutdown, a failing stage, and the example configurations.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use med8k_capture::GstSource;
use med8k_media::frame::VideoFrame;
use med8k_pipeline::{BoxError, Ending, Pipeline, Shutdown, Stage};

/// Sleeps per frame, like a stage that cannot keep up.
struct Slow(Duration, Arc<AtomicU64>);

impl Stage for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        std::thread::sleep(self.0);
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(Some(frame))
    }
}

#[test]
fn a_file_source_behind_a_slow_stage_drops_nothing() {
    let source =
        GstSource::open("videotestsrc num-buffers=40 ! video/x-raw,format=I420,width=64,height=64")
            .unwrap();
    assert!(!source.is_live());
    let seen = Arc::new(AtomicU64::new(0));
    let report = Pipeline::new(source)
        .stage(Slow(Duration::from_millis(5), seen.clone()))
        .run(&Shutdown::new())
        .unwrap();
    assert_eq!(report.ending, Ending::EndOfStream);
    assert_eq!(seen.load(Ordering::SeqCst), 40);
    assert_eq!(report.source.dropped, 0);
    assert_eq!(report.stages[0].frames_in, 40);
    assert!(
        report.stages[0].process.p50_us >= 5_000,
        "{:?}",
        report.stages[0].process
    );
}

#[test]
fn a_live_source_behind_a_slow_stage_drops_the_oldest_and_counts() {
    let source = GstSource::open(
        "videotestsrc is-live=true num-buffers=60 ! video/x-raw,format=I420,width=64,height=64,framerate=200/1",
    )
    .unwrap();
    assert!(source.is_live());
    let seen = Arc::new(AtomicU64::new(0));
    let report = Pipeline::new(source)
        .stage(Slow(Duration::from_millis(40), seen.clone()))
        .run(&Shutdown::new())
        .unwrap();
    let processed = seen.load(Ordering::SeqCst);
    assert!(report.source.dropped > 0, "{report:?}");
    // Every frame the source produced is either processed or counted as dropped.
    assert_eq!(processed + report.source.dropped, 60, "{report:?}");
}

#[test]
fn shutdown_stops_an_endless_live_source() {
    let source = GstSource::open(
        "videotestsrc is-live=true ! video/x-raw,format=RGB,width=32,height=32,framerate=30/1",
    )
    .unwrap();
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        trigger.request();
    });
    let report = Pipeline::new(source).run(&shutdown).unwrap();
    assert_eq!(report.ending, Ending::Shutdown);
    assert!(report.source.frames_out > 0);
}

struct FailOn(u64);

impl Stage for FailOn {
    fn name(&self) -> &str {
        "picky"
    }
    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        if frame.seq == self.0 {
            Err("this frame is wrong".into())
        } else {
            Ok(Some(frame))
        }
    }
}

#[test]
fn a_failing_stage_stops_the_run_and_is_named() {
    let source =
        GstSource::open("videotestsrc num-buffers=1000 ! video/x-raw,width=64,height=64").unwrap();
    let err = Pipeline::new(source)
        .stage(FailOn(3))
        .run(&Shutdown::new())
        .unwrap_err();
    assert_eq!(err.to_string(), "stage `picky` failed on frame 3");
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "this frame is wrong"
    );
}

#[test]
fn the_example_configs_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = med8k_pipeline::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let sink = c.sink.as_ref().map(|s| s.pipeline.as_str());
            med8k_capture::check_descriptions(c.source.pipeline.as_deref(), sink)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 3, "found {n} configs in {}", dir.display());
}

/// Elements of a GStreamer pipeline description: the first word of each
/// `!`-separated part, leaving out caps (`video/x-raw,...`), pad and element
/// references (`demux.video_0`, `quad.`) and format-string holes (`{FFV1}`).
fn elements_of(description: &str) -> Vec<String> {
    description
        .split('!')
        .filter_map(|part| part.split_whitespace().next())
        .filter(|w| {
            !w.contains(['/', '.', '{', '}', '"', '(', '='])
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .map(str::to_owned)
        .collect()
}

/// A fresh machine must have every element the project names: the set-up
/// script installs and checks `scripts/gst-elements.txt`, so every element
/// in the example configs and in the pipeline descriptions of the code must
/// be listed there.
#[test]
fn every_named_element_is_one_the_setup_script_checks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let listed: std::collections::BTreeSet<String> =
        std::fs::read_to_string(root.join("scripts/gst-elements.txt"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
    let mut named = std::collections::BTreeMap::<String, String>::new();
    for entry in std::fs::read_dir(root.join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = med8k_pipeline::config::Config::load(&path).unwrap();
            let sink = c.sink.as_ref().map(|s| s.pipeline.clone());
            for d in c.source.pipeline.iter().chain(sink.iter()) {
                for e in elements_of(d) {
                    named.insert(e, path.display().to_string());
                }
            }
        }
    }
    // String literals of the Rust sources that read as descriptions.
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" && name != "fuzz" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for literal in text.split('"').skip(1).step_by(2) {
                    if literal.contains(" ! ") {
                        for e in elements_of(literal) {
                            named.insert(e, path.display().to_string());
                        }
                    }
                }
            }
        }
    }
    assert!(named.len() >= 10, "found only {named:?}");
    // Tests name elements that do not exist on purpose: `nosuch...`.
    let unlisted: Vec<String> = named
        .iter()
        .filter(|(e, _)| !listed.contains(*e) && !e.starts_with("nosuch"))
        .map(|(e, file)| format!("{e} (named in {file})"))
        .collect();
    assert!(
        unlisted.is_empty(),
        "elements missing from scripts/gst-elements.txt: {unlisted:?}"
    );
}
