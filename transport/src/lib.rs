//! # med8k-transport
//!
//! The links between hospitals: one QUIC connection per site pair, mutually
//! authenticated with facility certificates, carrying live video that never
//! waits for a late frame and pathology images that arrive whole or not at
//! all. It will be a sans-IO protocol core (`proto`) and a quinn driver around
//! it; nothing of it exists yet, and nothing here pretends otherwise.
#![warn(missing_docs)]
