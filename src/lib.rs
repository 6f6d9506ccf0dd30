//! tandem: frame-accurate primary/secondary MPEG-TS playout onto UDP/RTP multicast.
//!
//! The crate is a sans-IO core (`ts`, `index`, `stream`, `pacing`, `recv`, `failover`,
//! `probe`, `bench`, `units`) under one thin I/O layer: `net` (sockets, clocks, threads),
//! `io` (files) and `cli` (commands). See `docs/architecture.md`; `tests/layers.rs` keeps the
//! core off the edge.

pub mod bench;
pub mod cli;
pub mod failover;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod io;
pub mod metrics;
pub mod net;
pub mod pacing;
pub mod playlist;
pub mod probe;
pub mod recv;
pub mod sender;
pub mod stream;
pub mod ts;
pub mod units;
