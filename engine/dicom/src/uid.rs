//! Real, stable UIDs: under a root the site was given, or UUID-derived
//! `2.25.` UIDs (PS3.5 B.2) when it has none.
//!
//! A UID is a pure function of its root and of what it names: the same object
//! exported twice gets the same UIDs, so a PACS keeps one copy. The name is
//! hashed (SHA-256), so no identifier a UID is made from can be read back out
//! of it.

use sha2::{Digest, Sha256};

/// Longest UID PS3.5 allows.
pub const MAX_UID_LEN: usize = 64;

/// Where a site's UIDs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidRoot {
    /// UUID-derived UIDs: `2.25.` and the decimal value of a name-based
    /// (version 8, SHA-256) UUID.
    Uuid,
    /// An organisational root registered for the site (for example an
    /// ISO/JIS OID under `1.2.392`), followed by a hashed component.
    Org(String),
}

/// A root that is not a valid UID prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("UID root {root:?}: {reason}")]
pub struct InvalidUidRoot {
    /// The root as given.
    pub root: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl UidRoot {
    /// A configured root: digits and dots, no leading zeros in a component,
    /// short enough to leave room for a 20-digit component.
    pub fn org(root: &str) -> Result<Self, InvalidUidRoot> {
        let bad = |reason| InvalidUidRoot {
            root: root.to_string(),
            reason,
        };
        if root.is_empty() || root.len() > MAX_UID_LEN - 21 {
            return Err(bad("must be 1 to 43 characters"));
        }
        if !is_valid_uid(root) {
            return Err(bad(
                "components of digits separated by dots, no leading zeros",
            ));
        }
        Ok(UidRoot::Org(root.to_string()))
    }

    /// The UID for `name` (any string that says what is named, with enough
    /// context to be unique: a kind and a content hash, for example).
    pub fn uid(&self, name: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"med8k-uid\0");
        match self {
            UidRoot::Uuid => h.update(b"2.25"),
            UidRoot::Org(root) => h.update(root.as_bytes()),
        }
        h.update([0]);
        h.update(name.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        match self {
            UidRoot::Uuid => {
                // RFC 9562 version 8 (custom) and the RFC variant bits.
                bytes[6] = (bytes[6] & 0x0f) | 0x80;
                bytes[8] = (bytes[8] & 0x3f) | 0x80;
                format!("2.25.{}", u128::from_be_bytes(bytes))
            }
            UidRoot::Org(root) => {
                // 64 bits: at most 20 digits, never a leading zero.
                let mut v = [0u8; 8];
                v.copy_from_slice(&bytes[..8]);
                format!("{root}.{}", u64::from_be_bytes(v) | 1 << 63)
            }
        }
    }
}

/// Whether `uid` is a syntactically valid UID (PS3.5 9.1): at most 64
/// characters, components of digits separated by single dots, no component
/// with a leading zero unless it is `0`.
pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_UID_LEN
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

/// Hex SHA-256 of a UID, for logs: says which object without naming it.
pub fn log_id(uid: &str) -> String {
    let d = Sha256::digest(uid.as_bytes());
    d[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_uids_are_valid_stable_and_distinct() {
        let r = UidRoot::Uuid;
        let a = r.uid("study:site-a:123");
        assert!(a.starts_with("2.25."), "{a}");
        assert!(is_valid_uid(&a), "{a}");
        assert_eq!(a, r.uid("study:site-a:123"));
        assert_ne!(a, r.uid("study:site-a:124"));
    }

    #[test]
    fn org_uids_sit_under_the_root() {
        let r = UidRoot::org("1.2.392.200036.9999").unwrap();
        let u = r.uid("x");
        assert!(u.starts_with("1.2.392.200036.9999."), "{u}");
        assert!(is_valid_uid(&u) && u.len() <= MAX_UID_LEN, "{u}");
        assert_ne!(u, UidRoot::org("1.2.392.200036.9998").unwrap().uid("x"));
    }

    #[test]
    fn bad_roots_and_uids_are_refused() {
        for root in ["", "1.02", "1..2", "1.2.a", "1.2.", &"1.".repeat(30)] {
            assert!(UidRoot::org(root).is_err(), "{root}");
        }
        assert!(!is_valid_uid("1.2.3.04"));
        assert!(is_valid_uid("1.2.0.4"));
    }
}
