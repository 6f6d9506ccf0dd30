//! tandem: frame-accurate primary/secondary MPEG-TS playout onto UDP/RTP multicast.
//!
//! The crate is a sans-IO core (`ts`, `index`, `stream`, `pacing`, `failover`, `recv`
//! analysis) under one thin I/O layer (`net`). See `docs/architecture.md`.

pub mod bench;
pub mod cli;
pub mod failover;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod net;
pub mod pacing;
pub mod probe;
pub mod recv;
pub mod stream;
pub mod ts;
