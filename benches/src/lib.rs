//! Benchmarks of med8k; see `benches/`.
