//! The output stream of a playout session (sans-IO).
//!
//! A session is the asset played `loops` times back to back (or endlessly). Datagram `i`
//! holds output packets `7i .. 7i+7`; output packet `j` is asset packet `j % P` of pass
//! `j / P` (see `docs/architecture.md`). [`OutputStream`] turns `i` into its departure time
//! and its exact wire bytes (RTP header, loop rewriting of PCR/PTS/DTS/CC); [`cadence`]
//! decides how far each pass is shifted (by the video cadence) and when the head of a pass
//! departs behind the tail of the one before; [`reader`] feeds
//! it the asset's packets from frame-aligned chunks of the file; [`rtp`] and [`sdp`] are the
//! RFC 3550 / RFC 2250 / RFC 4566 pieces.
//!
//! Nothing here depends on when or where the engine runs: two engines with the same asset
//! and [`SessionParams`] produce byte-identical datagrams.

pub mod cadence;
pub mod chunk;
pub mod cut;
mod framing;
mod output;
pub mod programme;
pub mod reader;
pub mod rtp;
pub mod sdp;
#[cfg(test)]
pub(crate) mod testutil;
pub mod trim;

pub use cadence::LoopPlan;
pub use framing::Framing;
pub use output::{BoundaryKind, OutputStream, RenderError, SessionParams, StreamError};
