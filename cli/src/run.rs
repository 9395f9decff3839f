//! `med8k run --config FILE`.

use std::path::Path;

use anyhow::Context;
use med8k_pipeline::config::Config;
use med8k_pipeline::{Ending, Shutdown};

use crate::{Outcome, on_ctrl_c, report};

pub fn run(config_path: &Path, json: Option<&Path>) -> anyhow::Result<Outcome> {
    let config = Config::load(config_path)?;
    let pipeline = config.build(config_path)?;
    let shutdown = Shutdown::new();
    on_ctrl_c(&shutdown)?;
    tracing::info!(config = %config_path.display(), ?pipeline, "running");
    let result = pipeline
        .run(&shutdown)
        .with_context(|| format!("running {}", config_path.display()))?;
    report::print(&result);
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if result.ending == Ending::Shutdown {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
}
