//! `med8k audit`: checking the keyed, hash-chained audit log, and taking a
//! checkpoint of it to keep elsewhere.

use std::path::Path;

use anyhow::Context;
use med8k_auth::audit::{AuditLog, Checkpoint};

use crate::Outcome;

/// `med8k audit verify`: prints `N entries, chain intact`, or fails naming
/// the first altered, removed, reordered or garbled entry; with a
/// checkpoint, also fails when the log no longer holds what it saw.
pub fn verify(log: &Path, checkpoint: Option<&Path>) -> anyhow::Result<Outcome> {
    let checkpoint = match checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                Checkpoint::parse(&text)
                    .with_context(|| format!("{}: not a med8k audit checkpoint", path.display()))?,
            )
        }
        None => None,
    };
    let report = med8k_auth::audit::verify_against(log, checkpoint.as_ref())
        .with_context(|| format!("audit log {}", log.display()))?;
    match checkpoint {
        Some(c) => println!(
            "{} entries, chain intact, the checkpoint's {} entries present",
            report.entries, c.entries
        ),
        None => println!("{} entries, chain intact", report.entries),
    }
    Ok(Outcome::Done)
}

/// `med8k audit checkpoint`: prints one line (entries, head, MAC) to keep
/// outside the log, for `audit verify --checkpoint`.
pub fn checkpoint(log: &Path) -> anyhow::Result<Outcome> {
    if !log.is_file() {
        anyhow::bail!("audit log {}: no such file", log.display());
    }
    let mut audit = AuditLog::open(log).with_context(|| format!("audit log {}", log.display()))?;
    let c = audit
        .checkpoint()
        .with_context(|| format!("audit log {}", log.display()))?;
    println!("{}", c.line());
    Ok(Outcome::Done)
}
