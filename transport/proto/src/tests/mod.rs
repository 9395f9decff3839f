//! Tests of the protocol core: the wire format, and two sessions driven in
//! memory under a simulated clock (the `Pair` harness in [`util`]).
#![allow(clippy::unwrap_used)]

mod codec;
mod hostile;
mod live;
mod objects;
mod samples;
mod session;
mod util;
