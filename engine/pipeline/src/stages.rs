//! Stages that ship with the engine.

use std::time::Duration;

use super::{BoxError, Stage};
use med8k_capture::{GstError, GstSink};
use med8k_media::frame::{VideoFrame, v210};

/// A stage that pushes every frame into a [`GstSink`] and consumes it.
#[derive(Debug)]
pub struct SinkStage {
    sink: Option<GstSink>,
    finish_timeout: Duration,
}

impl SinkStage {
    /// Wrap an open sink; `finish` waits up to `finish_timeout` for it to drain.
    pub fn new(sink: GstSink, finish_timeout: Duration) -> Self {
        SinkStage {
            sink: Some(sink),
            finish_timeout,
        }
    }
}

impl Stage for SinkStage {
    fn name(&self) -> &str {
        "output"
    }

    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        let sink = self.sink.as_mut().ok_or_else(|| GstError::StateChange {
            description: "output already finished".into(),
        })?;
        sink.push(frame)?;
        Ok(None)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        match self.sink.take() {
            Some(s) => Ok(s.finish(self.finish_timeout)?),
            None => Ok(()),
        }
    }
}

/// Planar `I422_10LE` to `v210`, as an SDI output card wants it.
#[derive(Debug, Default)]
pub struct V210Pack;

impl Stage for V210Pack {
    fn name(&self) -> &str {
        "v210-pack"
    }

    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        Ok(Some(v210::pack(&frame)?))
    }
}

/// `v210` from an SDI capture card to planar `I422_10LE`.
#[derive(Debug, Default)]
pub struct V210Unpack;

impl Stage for V210Unpack {
    fn name(&self) -> &str {
        "v210-unpack"
    }

    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        Ok(Some(v210::unpack(&frame)?))
    }
}
