//! The failover driver: the I/O around the sans-IO [`crate::failover::node::Node`] that makes
//! `tandem primary` / `tandem secondary` real, plus the component monitor (claim 12) and
//! the one-shot clients (`tandem request`, `tandem status`, `tandem sync`).
//!
//! One mio event loop per server process ([`server::Server`]) owns the sync-link socket,
//! the control socket, a listener on the live group (kernel receive timestamps), a timerfd
//! for the node's deadlines, the playout engine's event channel and a waker. A supervisor
//! thread ([`supervisor`]) is the kernel of claims 14-16. See `docs/failover.md` ("The
//! driver").

pub mod api;
pub mod client;
pub mod event_log;
pub mod host_link;
pub mod link;
pub mod monitor;
pub mod server;
pub mod session;
pub mod supervisor;
pub mod timer;

/// How the secondary chooses the first datagram it sends on the live group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// The datagram right after the last one the primary is known to have sent: nothing
    /// lost, nothing repeated (the streams are byte-identical).
    Seamless,
    /// The first PCR-bearing datagram after it (the claims' switch point).
    Pcr,
    /// The first datagram starting a video frame after it.
    Frame,
}

/// Who initiates synchronisation of the session parameters (claims 4-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncInit {
    /// The secondary asks the primary (claim 4).
    Secondary,
    /// The primary pushes its parameters to a secondary that appears (claim 5).
    Primary,
    /// A separate component, `tandem sync`, fetches and delivers them (claim 6).
    Component,
}
