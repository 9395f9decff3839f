//! Site secrets kept in files (the audit salt and key, the ledger key) and
//! files made readable by their owner only.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `path` (which must not exist) readable and writable by its owner
/// only.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The secret in `path`: read, or `len` random bytes written there
/// (owner-only) on first use. A secret shorter than 16 bytes is refused.
///
/// A new secret is written whole to a file of its own, then linked into
/// place (which never replaces an existing file): a process killed at any
/// moment leaves either no secret or a whole one, and two processes making
/// it at once agree on the one that was linked first.
pub(crate) fn load_or_create(path: &Path, len: usize) -> io::Result<Vec<u8>> {
    if !path.exists() {
        let tmp = beside(path, &format!(".{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = create_private(&tmp)?;
        let mut secret = vec![0u8; len];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| io::Error::other("no system randomness"))?;
        let written = file.write_all(&secret).and_then(|()| file.sync_all());
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(secret),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let secret = std::fs::read(path)?;
    if secret.len() < 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: a secret shorter than 16 bytes", path.display()),
        ));
    }
    Ok(secret)
}

/// `path` with `suffix` appended to its file name (`audit.jsonl` →
/// `audit.jsonl.key`).
pub(crate) fn beside(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// HMAC-SHA256 under `key` of `parts`, each length-prefixed (so no two
/// lists of parts give the same input).
pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Compares two MACs without stopping at the first difference.
pub(crate) fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
