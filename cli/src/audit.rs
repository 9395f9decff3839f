//! `med8k audit`: checking the hash-chained audit log.

use std::path::Path;

use anyhow::Context;

use crate::Outcome;

/// `med8k audit verify`: prints `N entries, chain intact`, or fails naming
/// the first altered, removed, reordered or garbled entry.
pub fn verify(log: &Path) -> anyhow::Result<Outcome> {
    let report =
        med8k_auth::audit::verify(log).with_context(|| format!("audit log {}", log.display()))?;
    println!("{} entries, chain intact", report.entries);
    Ok(Outcome::Done)
}
