//! The sans-IO failover core (claims 1-27): the nine states, the state machine, the failure
//! detector, the clock offset filter, the wire format of the sync link and control messages,
//! the supervisor kernel and the recovery rule of a failed server. Nothing here reads a clock
//! or touches a socket: every type takes inputs and `now` (ns) and answers with actions and
//! its next deadline. See `docs/failover.md`.

pub mod absent;
pub mod alarms;
pub mod clock;
pub mod detector;
pub mod failback;
pub mod kernel;
pub mod live_id;
pub mod machine;
pub mod node;
pub mod policy;
pub mod recovery;
#[cfg(test)]
mod sim;
pub mod state;
pub mod switch_gap;
pub mod watchdog;
pub mod wire;
