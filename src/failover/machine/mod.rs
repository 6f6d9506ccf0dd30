//! The failover state machine (claims 1-27): events + `now` in, actions + next deadline out.
//!
//! Sans-IO in the style of `quinn-proto`: [`Machine::handle`] takes an [`Event`],
//! [`Machine::handle_timeout`] is called when [`Machine::poll_timeout`] is due, and the driver
//! drains [`Machine::poll_action`] after each call and performs the [`Action`]s in order.
//! Every state change comes out as [`Action::Transition`] with its trigger and reason, for
//! the log and `tandem status`.
//!
//! What happens is decided by one table, [`table::TRANSITIONS`]: the machine classifies an
//! event against its state into a [`Trigger`], looks up the rule for `(state, trigger)`,
//! checks its condition and runs its [`Step`]s. `docs/failover.md` carries the same table.
//!
//! # The live gate
//! "On air" (sending on the live group) is decided by the *live gate*, not by the state
//! alone: a server in an on-air state may hold its output while it verifies that it still
//! owns the live group ([`LiveGate::Held`]), after a stall or before its first start. The
//! invariant kept by the table: the gate is not [`LiveGate::Off`] exactly when the state is
//! an on-air state, and it is [`LiveGate::Open`] only after ownership was established
//! (a verified start or resume, or a takeover on a failure declaration).
//!
//! # Epochs
//! Each period on air has an epoch: a server that goes on air claims the highest epoch it
//! knows plus one and announces it ([`Action::SendTakeover`]). A server that owns the live
//! group and sees a higher `(epoch, server id)` claimed by an on-air peer stops sending on
//! the live group first and then goes `Secondary_synchronizing`.
//!
//! # The indices
//! [`Action::SwitchToLive`] carries the last datagram index the primary is known to have sent
//! (from the detector, the Failed notice or the heartbeats). The machine does not know the
//! asset: the driver resolves "the first PCR/frame boundary after that index" with the
//! offset map (`index::DatagramEntry::flags`), or the next boundary after its own position
//! if it is already past it.

pub mod table;
mod timers;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::VecDeque;
use std::fmt;

use crate::failover::detector::{Cause, Declaration};
use crate::failover::state::{Role, State};
pub use table::{EveryStateRule, Guard, Rule, Step, Trigger, IN_EVERY_STATE, TRANSITIONS};
pub use timers::{Timer, TimerTable};

/// Settings of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// This server's id (tie-break between equal epochs: the higher id wins).
    pub server_id: u32,
    /// Heartbeat period, ns ([`Action::SendHeartbeat`] comes this often).
    pub heartbeat_period_ns: u64,
    /// A stall at least this long while sending on the live group makes the server hold its
    /// output and verify ownership before it sends again. Must not exceed the time the peer
    /// needs to declare a failure (`miss x period`); the engine uses the same bound to close
    /// its own gate when it finds itself late.
    pub stall_verify_ns: u64,
    /// Resend the ownership query this often while waiting, ns.
    pub verify_retry_ns: u64,
    /// Give up waiting for an ownership reply after this long, ns.
    pub verify_timeout_ns: u64,
    /// A "not owner" reply counts only if handled within this long after its query was sent
    /// (the peer's promise not to declare lasts one detection window from the query; the
    /// resumed output must reach it before then). Assumes a one-way link delay well below
    /// a heartbeat period.
    pub reply_fresh_ns: u64,
    /// Whether the driver reports traffic of other senders on the live group
    /// ([`Event::ForeignLive`]).
    pub live_watch: bool,
    /// Resend the sync request this often while waiting for parameters, ns.
    pub sync_retry_ns: u64,
}

impl Config {
    /// Defaults for a heartbeat period and the detector's miss count: verify after a stall of
    /// one period, retry every period, time out after `miss` periods, replies fresh for
    /// `miss - 1` periods, live watching on, sync requests repeated every 8 periods.
    pub fn new(server_id: u32, heartbeat_period_ns: u64, miss: u32) -> Config {
        let p = heartbeat_period_ns.max(1);
        Config {
            server_id,
            heartbeat_period_ns: p,
            stall_verify_ns: p,
            verify_retry_ns: p,
            verify_timeout_ns: p * miss.max(1) as u64,
            reply_fresh_ns: if miss > 1 {
                p * (miss as u64 - 1)
            } else {
                p / 2
            },
            live_watch: true,
            sync_retry_ns: 8 * p,
        }
    }
}

/// How the server's own output failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFault {
    /// A send call failed (errno text).
    SendError(String),
    /// The output stopped progressing for this long, ns.
    Stalled {
        /// Duration, ns.
        for_ns: u64,
    },
    /// The pacer is persistently late by this much, ns.
    PacerLate {
        /// Lateness, ns.
        late_ns: u64,
    },
}

impl fmt::Display for OutputFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputFault::SendError(e) => write!(f, "send error: {e}"),
            OutputFault::Stalled { for_ns } => write!(f, "output stalled {} us", for_ns / 1_000),
            OutputFault::PacerLate { late_ns } => write!(f, "pacer late {} us", late_ns / 1_000),
        }
    }
}

/// Where an epoch was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Via {
    /// A message on the sync link.
    SyncLink,
    /// An announcement heard on the live group.
    LiveGroup,
}

/// Everything the machine reacts to. The driver turns messages, engine reports, kernel
/// verdicts, detector declarations and operator commands into these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The command started with an asset, or an operator start (a stopped secondary runs
    /// again).
    Started,
    /// A user's asset request (`PlayRequest`) arrived.
    AssetRequest {
        /// The requested asset.
        asset: String,
    },
    /// Operator stop or a monitor's stop command.
    Stop {
        /// Who stopped it (for the log).
        by: String,
    },
    /// A heartbeat or status from the peer server.
    PeerStatus {
        /// Its state.
        state: State,
        /// The epoch in its header.
        epoch: u64,
        /// Whether it owns the live group (header flag): then `epoch` is its claim.
        owner: bool,
        /// Its server id.
        server: u32,
        /// The last datagram it says it sent.
        last_index: Option<u64>,
    },
    /// The peer's heartbeats stopped (the primary's own detector on its secondary).
    PeerLost {
        /// How long it has been silent, ns.
        silent_ns: u64,
    },
    /// The peer asked for the session parameters (`SyncRequest`).
    SyncRequested,
    /// Session parameters arrived and were accepted (asset found, identity matches).
    ParamsReceived,
    /// The clock offset is locked and the timeline placed: muted output can start.
    LockAcquired,
    /// The muted output runs in step with the primary (its index at a given instant matches
    /// the heartbeats' `last_index` / send time within tolerance).
    InStep,
    /// The lock was lost.
    LockLost {
        /// Why (asset changed, clock offset jumped, position cannot be followed).
        reason: String,
    },
    /// The detector declared the primary failed.
    Declared(Declaration),
    /// The primary's Failed notice.
    FailedNotice {
        /// Failed component.
        component: String,
        /// Why.
        reason: String,
        /// Last datagram it sent on the live group.
        last_index: Option<u64>,
    },
    /// A monitor commands this (synchronised) secondary to take over.
    MonitorTakeover,
    /// A monitor declares this server failed.
    MonitorFailed {
        /// The monitor's reason.
        reason: String,
    },
    /// The kernel's verdict: a critical component failed.
    KernelFailure {
        /// The component.
        component: String,
        /// Why.
        why: String,
    },
    /// This server's own output failed.
    OutputFailure(OutputFault),
    /// An epoch claimed by another server (a `Takeover` message, or an announcement on the
    /// live group).
    EpochSeen {
        /// The epoch.
        epoch: u64,
        /// The claiming server.
        server: u32,
        /// Whether the claimant is on air (a takeover announcement is).
        on_air: bool,
        /// Where it was seen.
        via: Via,
    },
    /// The server (or its engine) was stalled for this long and is running again; the engine
    /// has held its live output if the stall reached [`Config::stall_verify_ns`].
    ResumedAfterStall {
        /// Length of the stall, ns.
        stalled_for: u64,
    },
    /// The peer asks whether this server owns the live group.
    OwnershipQuery {
        /// To echo.
        nonce: u64,
        /// The asking server.
        from: u32,
    },
    /// The peer's answer to this server's ownership query.
    OwnershipReply {
        /// The echoed nonce.
        nonce: u64,
        /// The peer's state.
        state: State,
        /// Whether the peer owns the live group (sending, or holding after a stall).
        on_air: bool,
        /// The peer's epoch.
        epoch: u64,
        /// The peer's id.
        server: u32,
    },
    /// A datagram from another sender arrived on the live group at kernel time `rx_ns`. While
    /// the live output is held this proves another owner and the server steps down.
    ForeignLive {
        /// Kernel receive time, ns (same clock as `now`).
        rx_ns: u64,
        /// Its session index, when the driver could tell it (RTP sequence, a ring match).
        /// A datagram before the first one this server owns is the previous owner's
        /// (the tail of a hand-over, or a late arrival) and proves nothing.
        index: Option<u64>,
    },
    /// The failed server was restarted.
    Restart,
    /// The failed server recovered and is to follow the server on air.
    Recover,
    /// An operator asks this server (on air) to hand the live group to its synchronised
    /// peer from datagram `at_index` (chosen by the driver far enough ahead for the offer
    /// and the acceptance to cross the sync link; see [`Machine::hand_over_refusal`]).
    HandOverRequested {
        /// First datagram the peer is to send on the live group.
        at_index: u64,
    },
    /// The server on air offers this one the live group from `at_index` under `epoch`.
    HandOverOffered {
        /// First datagram to send on the live group.
        at_index: u64,
        /// The epoch to claim.
        epoch: u64,
        /// The offering server.
        from: u32,
    },
    /// The engine moved to the muted group at datagram `index` (the hand-over index).
    HandOverReleased {
        /// First datagram not sent live.
        index: u64,
    },
}

/// A state change, with why it happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// What made it happen.
    pub trigger: Trigger,
    /// Details (component, reason, epoch, ...).
    pub detail: String,
    /// When, ns.
    pub at: u64,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} ({}", self.from, self.to, self.trigger)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        f.write_str(")")
    }
}

/// What the driver must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The state changed: log it (tracing) and publish it to `tandem status`.
    Transition(Transition),
    /// Start the session on the live group now (primary).
    StartLive,
    /// Move the running muted output to the live group, starting with the first PCR/frame
    /// boundary after `after_index` (the last datagram the primary is known to have sent;
    /// `None`: unknown, switch at the next boundary), and stop the muted output.
    SwitchToLive {
        /// Last datagram known sent by the primary.
        after_index: Option<u64>,
    },
    /// Stop sending on the live group now but keep pacing: [`Action::ResumeLive`] may follow.
    HoldLive,
    /// Send on the live group again from the current position.
    ResumeLive,
    /// Stop sending on the live group.
    StopLive,
    /// Start sending into the muted group, locked onto the primary's timeline.
    StartMuted,
    /// Stop sending into the muted group.
    StopMuted,
    /// Send a heartbeat now (periodic, and after every state change).
    SendHeartbeat,
    /// Ask the peer for the session parameters.
    SendSyncRequest,
    /// Send the session parameters to the peer (claim 5).
    SendSyncParams,
    /// Forget the clock lock and start measuring the offset (time requests).
    StartClockSync,
    /// Tell the peer that this server failed (the driver adds the last index sent).
    SendFailedNotice {
        /// Failed component.
        component: String,
        /// Why.
        reason: String,
    },
    /// Announce this server's new epoch on the sync link (and the live group's announcement
    /// channel if there is one).
    SendTakeover {
        /// The new epoch.
        epoch: u64,
        /// Index after which it sends.
        from_index: Option<u64>,
    },
    /// Offer the peer the live group from `at_index` under `epoch` (planned hand-over).
    SendHandOver {
        /// First datagram the peer is to send live.
        at_index: u64,
        /// The epoch the peer is to claim.
        epoch: u64,
    },
    /// Move the running muted output to the live group exactly from datagram `index` (a
    /// hand-over: the index is ahead, so nothing is rewound), and stop the muted output.
    SwitchToLiveAt {
        /// First datagram sent live.
        index: u64,
    },
    /// Cancel a scheduled [`Action::ReleaseLiveAt`]: this server stays on the live group
    /// (if the release happened already, live output resumes).
    CancelRelease,
    /// Leave the live group at datagram `index`: the datagrams before it still go live,
    /// the rest to the muted group; report [`Event::HandOverReleased`] when it happened.
    ReleaseLiveAt {
        /// First datagram not sent live.
        index: u64,
    },
    /// Ask the peer whether it owns the live group.
    SendOwnershipQuery {
        /// To be echoed.
        nonce: u64,
    },
    /// Answer a peer's ownership query.
    SendOwnershipReply {
        /// Echoed nonce.
        nonce: u64,
        /// The asking server.
        to: u32,
        /// This server's state.
        state: State,
        /// Whether this server owns the live group.
        on_air: bool,
        /// This server's epoch.
        epoch: u64,
    },
}

/// Why the live output is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HoldPurpose {
    /// Before the first start of the session: not an owner yet, yields to any owner.
    Start,
    /// After a stall: an owner that must verify it still is one.
    Resume,
}

/// The live gate (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LiveGate {
    /// Not on air.
    Off,
    /// Sending on the live group.
    Open,
    /// In an on-air state, output held while ownership is verified.
    Held {
        /// Why.
        purpose: HoldPurpose,
        /// Since when, ns.
        since: u64,
        /// The outstanding ownership query (a fresh nonce for every retry).
        nonce: u64,
        /// When that query was sent, ns.
        asked_at: u64,
        /// An owner's claim was seen while holding (a lower one from the peer's answer, or
        /// any from a message): without a fresh "not owner" answer, the server yields at the
        /// timeout.
        contested: bool,
    },
}

impl LiveGate {
    /// Whether the gate is open (sending on the live group).
    pub fn is_open(self) -> bool {
        self == LiveGate::Open
    }
}

#[derive(Debug, Default)]
struct Ctx {
    detail: String,
    failure: Option<(String, String)>,
    take_index: Option<u64>,
    /// A hand-over: (first datagram, epoch).
    hand_over: Option<(u64, u64)>,
    /// The server that offered the hand-over.
    handed_by: Option<u32>,
    /// An ownership query to answer: (nonce, asking server).
    query: Option<(u64, u32)>,
}

/// Why a hand-over is refused for a moment: the output is held while ownership is verified
/// (after a stall, a few ms). A client may ask again.
pub const HELD_REFUSAL: &str =
    "the live output is held while this server verifies ownership (after a stall): try again";

/// A hand-over this server (on air) has offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HandOver {
    at_index: u64,
    epoch: u64,
    /// The peer claimed `epoch`: the release at `at_index` is scheduled.
    accepted: bool,
}

fn ctx(detail: impl Into<String>) -> Ctx {
    Ctx {
        detail: detail.into(),
        ..Ctx::default()
    }
}

/// Transitions kept for `tandem status`.
const HISTORY: usize = 32;

/// A hand-over offer the peer has not accepted within this long is withdrawn (ns): the
/// server stays on air and a new request may be made.
pub const HAND_OVER_OFFER_NS: u64 = 1_000_000_000;

/// The state machine of one server.
#[derive(Debug, Clone)]
pub struct Machine {
    config: Config,
    state: State,
    home: Role,
    enabled: bool,
    epoch: u64,
    owner_epoch: Option<u64>,
    gate: LiveGate,
    muted: bool,
    locked: bool,
    /// Stepped down from the live group: the engine keeps running on the session's
    /// timeline (muted or off) until resynchronisation restarts it.
    engine_kept: bool,
    primary_heard: bool,
    peer_state: Option<State>,
    peer_heard_at: Option<u64>,
    peer_last_index: Option<u64>,
    /// Ownership queries of the current hold: (nonce, sent at), the latest last.
    asked: VecDeque<(u64, u64)>,
    next_nonce: u64,
    /// Every deadline (heartbeat, verification retry and timeout, sync retry, hand-over).
    timers: TimerTable,
    params: bool,
    actions: VecDeque<Action>,
    history: VecDeque<Transition>,
    transitions: u64,
    /// A planned hand-over in progress (this server on air).
    hand_over: Option<HandOver>,
    /// The first datagram this server owns on the live group since it last took it.
    owned_from: Option<u64>,
    /// The server that handed the live group to this one (it sends up to `owned_from`).
    handed_by: Option<u32>,
}

impl Machine {
    /// A machine in `Primary_offline` or `Secondary_offline`, not started; its first
    /// heartbeat is due at `now`.
    pub fn new(config: Config, initial_role: Role, now: u64) -> Machine {
        Machine {
            config,
            state: match initial_role {
                Role::Primary => State::PrimaryOffline,
                Role::Secondary => State::SecondaryOffline,
            },
            home: initial_role,
            enabled: false,
            epoch: 0,
            owner_epoch: None,
            gate: LiveGate::Off,
            muted: false,
            locked: false,
            engine_kept: false,
            primary_heard: false,
            peer_state: None,
            peer_heard_at: None,
            peer_last_index: None,
            asked: VecDeque::new(),
            next_nonce: 1,
            timers: {
                let mut t = TimerTable::default();
                t.set(Timer::Heartbeat, now);
                t
            },
            params: false,
            actions: VecDeque::new(),
            history: VecDeque::new(),
            transitions: 0,
            hand_over: None,
            owned_from: None,
            handed_by: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// The role: the current state's, or for `Failed` the role it had before.
    pub fn role(&self) -> Role {
        self.home
    }
    /// The highest epoch known.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The epoch this server claimed, while it owns the live group.
    pub fn owner_epoch(&self) -> Option<u64> {
        self.owner_epoch
    }
    /// The live gate.
    pub fn live_gate(&self) -> LiveGate {
        self.gate
    }
    /// Whether this server is sending on the live group ("on air" in the strict sense).
    pub fn sending_live(&self) -> bool {
        self.gate == LiveGate::Open
    }
    /// Whether this server owns the live group (sending, or holding after a stall).
    pub fn is_owner(&self) -> bool {
        self.owner_epoch.is_some()
    }
    /// Whether this server is sending into the muted group.
    pub fn sending_muted(&self) -> bool {
        self.muted
    }
    /// Whether the timeline is locked onto the primary's.
    pub fn locked(&self) -> bool {
        self.locked
    }
    /// Whether the server was started (and not stopped since).
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// The peer's last reported state.
    pub fn peer_state(&self) -> Option<State> {
        self.peer_state
    }
    /// The last datagram index the peer is known to have sent.
    pub fn peer_last_index(&self) -> Option<u64> {
        self.peer_last_index
    }
    /// The last state changes (up to 32), oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Transition> {
        self.history.iter()
    }
    /// How many state changes happened since the machine was made.
    pub fn transition_count(&self) -> u64 {
        self.transitions
    }

    /// The next action to perform, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Every pending action, in order.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }

    /// The earliest instant at which [`Machine::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next()
    }

    /// Timers due at `now`: heartbeats, ownership-query retries and timeouts. A heartbeat
    /// timer found late by at least [`Config::stall_verify_ns`] while sending on the live
    /// group means this server was stalled: it holds and verifies (trigger `Stall`). A
    /// verification timeout found that late does not confirm anything: the query is sent
    /// again with a fresh timeout.
    ///
    /// Feed every pending input (drain the sockets) before calling this.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.timers.expired(Timer::HandOverOffer, now) {
            self.timers.stop(Timer::HandOverOffer);
            if self.hand_over.is_some_and(|h| !h.accepted) {
                self.hand_over = None;
            }
        }
        let heartbeat_at = self.timers.get(Timer::Heartbeat).unwrap_or(now);
        if now >= heartbeat_at {
            let late = now - heartbeat_at;
            if late >= self.config.stall_verify_ns && self.gate == LiveGate::Open {
                self.fire(
                    Trigger::Stall,
                    ctx(format!("heartbeat timer late by {} us", late / 1_000)),
                    now,
                );
            }
            self.actions.push_back(Action::SendHeartbeat);
            let p = self.config.heartbeat_period_ns;
            let next = if late >= p { now + p } else { heartbeat_at + p };
            self.timers.set(Timer::Heartbeat, next);
        }
        if self.timers.expired(Timer::SyncRetry, now) {
            if self.awaiting_params() {
                self.actions.push_back(Action::SendSyncRequest);
                self.timers
                    .set(Timer::SyncRetry, now + self.config.sync_retry_ns);
            } else {
                self.timers.stop(Timer::SyncRetry);
            }
        }
        if let LiveGate::Held { contested, .. } = self.gate {
            if let Some(d) = self.timers.get(Timer::VerifyDeadline).filter(|&d| now >= d) {
                let waited = self.config.verify_timeout_ns / 1_000;
                if now - d >= self.config.stall_verify_ns {
                    // This server was stalled itself while waiting: the silence proves
                    // nothing (an owner's first datagrams may still be on their way). Ask
                    // again with a fresh nonce and a fresh timeout.
                    self.run(
                        Step::Verify,
                        &ctx("verification interrupted by a stall"),
                        now,
                    );
                } else if !contested && self.peer_may_take_over(now) {
                    // The peer is alive and could declare this server failed, but no answer
                    // got through: silence is no proof here. Keep holding and ask again.
                    self.run(
                        Step::Verify,
                        &ctx("the peer is alive but did not answer"),
                        now,
                    );
                } else if contested {
                    self.fire(
                        Trigger::PeerOnAir,
                        ctx(format!(
                            "another server claims the live group, no answer within {waited} us"
                        )),
                        now,
                    );
                } else {
                    self.fire(
                        Trigger::OwnershipConfirmed,
                        ctx(format!(
                            "no owner answered within {waited} us, live group quiet"
                        )),
                        now,
                    );
                }
            } else if self.timers.expired(Timer::VerifyRetry, now) {
                let fresh = self.next_nonce;
                self.next_nonce += 1;
                if let LiveGate::Held {
                    nonce, asked_at, ..
                } = &mut self.gate
                {
                    *nonce = fresh;
                    *asked_at = now;
                }
                self.note_query(fresh, now);
                self.actions
                    .push_back(Action::SendOwnershipQuery { nonce: fresh });
                self.timers
                    .set(Timer::VerifyRetry, now + self.config.verify_retry_ns);
            }
        }
    }

    /// Handles one event at `now`.
    pub fn handle(&mut self, event: Event, now: u64) {
        for (trigger, c) in self.classify(event, now) {
            self.fire(trigger, c, now);
        }
    }

    /// Turns an event into the triggers it means in the current state.
    fn classify(&mut self, event: Event, now: u64) -> Vec<(Trigger, Ctx)> {
        use Trigger as T;
        if matches!(
            event,
            Event::PeerStatus { .. }
                | Event::OwnershipQuery { .. }
                | Event::OwnershipReply { .. }
                | Event::FailedNotice { .. }
                | Event::EpochSeen {
                    via: Via::SyncLink,
                    ..
                }
        ) {
            self.peer_heard_at = Some(now);
        }
        match event {
            Event::Started => vec![(T::Started, ctx("started"))],
            Event::AssetRequest { asset } => {
                vec![(T::AssetRequest, ctx(format!("asset request: {asset}")))]
            }
            Event::Stop { by } => vec![(T::Stop, ctx(format!("stopped by {by}")))],
            Event::PeerStatus {
                state,
                epoch,
                owner,
                server,
                last_index,
            } => self.classify_peer(state, epoch, owner, server, last_index),
            Event::PeerLost { silent_ns } => vec![(
                T::SecondaryLost,
                ctx(format!("secondary silent for {} us", silent_ns / 1_000)),
            )],
            Event::SyncRequested => vec![(T::SyncRequested, ctx("sync request"))],
            Event::ParamsReceived => {
                let mut v = Vec::new();
                if self.state == State::SecondaryOffline && self.enabled {
                    self.primary_heard = true;
                    v.push((T::PrimaryHeard, ctx("parameters from a primary")));
                }
                v.push((T::ParamsReceived, ctx("session parameters received")));
                v
            }
            Event::LockAcquired => vec![(T::LockAcquired, ctx("timeline locked"))],
            Event::InStep => vec![(T::InStep, ctx("muted output in step with the primary"))],
            Event::LockLost { reason } => vec![(T::LockLost, ctx(reason))],
            Event::Declared(d) => {
                // A broken live path: the heartbeats reported datagrams that never reached
                // the live group; the switch continues after the last one viewers got.
                let take_index = match d.reason.cause {
                    Cause::LivePathSilent => d.last_index.or(self.peer_last_index),
                    Cause::HeartbeatsMissing => {
                        self.note_peer_index(d.last_index);
                        self.peer_last_index
                    }
                };
                vec![(
                    T::FailureDeclared,
                    Ctx {
                        detail: d.to_string(),
                        failure: None,
                        take_index,
                        hand_over: None,
                        handed_by: None,
                        query: None,
                    },
                )]
            }
            Event::FailedNotice {
                component,
                reason,
                last_index,
            } => {
                self.note_peer_index(last_index);
                vec![(
                    T::FailedNotice,
                    Ctx {
                        detail: format!("primary failed: {component}: {reason}"),
                        failure: None,
                        take_index: self.peer_last_index,
                        hand_over: None,
                        handed_by: None,
                        query: None,
                    },
                )]
            }
            Event::MonitorTakeover => vec![(
                T::MonitorTakeover,
                Ctx {
                    detail: "monitor command".into(),
                    failure: None,
                    take_index: self.peer_last_index,
                    hand_over: None,
                    handed_by: None,
                    query: None,
                },
            )],
            Event::MonitorFailed { reason } => vec![(
                T::MonitorFailed,
                Ctx {
                    detail: format!("monitor: {reason}"),
                    failure: Some(("monitor".into(), reason)),
                    take_index: None,
                    hand_over: None,
                    handed_by: None,
                    query: None,
                },
            )],
            Event::KernelFailure { component, why } => vec![(
                T::KernelFailure,
                Ctx {
                    detail: format!("{component}: {why}"),
                    failure: Some((component, why)),
                    take_index: None,
                    hand_over: None,
                    handed_by: None,
                    query: None,
                },
            )],
            Event::OutputFailure(fault) => vec![(
                T::OutputFailure,
                Ctx {
                    detail: fault.to_string(),
                    failure: Some(("output".into(), fault.to_string())),
                    take_index: None,
                    hand_over: None,
                    handed_by: None,
                    query: None,
                },
            )],
            Event::EpochSeen {
                epoch,
                server,
                on_air,
                via,
            } => self.classify_epoch(epoch, server, on_air, via),
            Event::ResumedAfterStall { stalled_for } => {
                if stalled_for >= self.config.stall_verify_ns && self.gate == LiveGate::Open {
                    vec![(
                        T::Stall,
                        ctx(format!("stalled for {} us", stalled_for / 1_000)),
                    )]
                } else {
                    Vec::new()
                }
            }
            Event::OwnershipQuery { nonce, from } => vec![(
                T::OwnershipQueried,
                Ctx {
                    detail: format!("server {from} asks who owns the live group"),
                    query: Some((nonce, from)),
                    ..Ctx::default()
                },
            )],
            Event::OwnershipReply {
                nonce,
                state,
                on_air,
                epoch,
                server,
            } => self.classify_reply(nonce, state, on_air, epoch, server, now),
            Event::ForeignLive { rx_ns, index } => match self.gate {
                // The previous owner's datagrams, before the first one this server owns.
                _ if index.zip(self.owned_from).is_some_and(|(i, from)| i < from) => Vec::new(),
                // Any other sender heard while holding means someone else owns the group,
                // including datagrams that arrived during the stall itself.
                LiveGate::Held { .. } if self.config.live_watch => vec![(
                    T::PeerOnAir,
                    ctx(format!("another sender heard on the live group at {rx_ns}")),
                )],
                _ => Vec::new(),
            },
            Event::Restart => vec![(T::Restart, ctx("restarted"))],
            Event::Recover => vec![(T::Recover, ctx("recovered"))],
            Event::HandOverRequested { at_index } => match self.hand_over_refusal() {
                Some(_) => Vec::new(),
                None => vec![(
                    T::HandOverRequested,
                    Ctx {
                        detail: format!("hand-over requested from datagram {at_index}"),
                        hand_over: Some((at_index, self.epoch + 1)),
                        ..Ctx::default()
                    },
                )],
            },
            Event::HandOverOffered {
                at_index,
                epoch,
                from,
            } => {
                if epoch <= self.epoch {
                    return Vec::new();
                }
                vec![(
                    T::HandOverOffered,
                    Ctx {
                        detail: format!(
                            "server {from} hands over the live group from datagram {at_index} (epoch {epoch})"
                        ),
                        hand_over: Some((at_index, epoch)),
                        handed_by: Some(from),
                        ..Ctx::default()
                    },
                )]
            }
            Event::HandOverReleased { index } => match self.hand_over {
                Some(h) if h.accepted && index == h.at_index => vec![(
                    T::HandOverReleased,
                    ctx(format!(
                        "handed over: the peer is on air from datagram {index}"
                    )),
                )],
                _ => Vec::new(),
            },
        }
    }

    /// Why this server cannot hand the live group over now (`None`: it can): it must be
    /// the `Primary` on air, with a peer that reports `Secondary_synchronized`, and no
    /// hand-over already under way.
    pub fn hand_over_refusal(&self) -> Option<String> {
        if self.state == State::Primary && matches!(self.gate, LiveGate::Held { .. }) {
            return Some(HELD_REFUSAL.to_string());
        }
        if self.state != State::Primary || self.gate != LiveGate::Open {
            return Some(format!(
                "this server is {}, not the primary on air",
                self.state
            ));
        }
        if self.peer_state != Some(State::SecondarySynchronized) {
            return Some(match self.peer_state {
                Some(s) => format!("the peer is {s}, not synchronised"),
                None => "no peer heard".to_string(),
            });
        }
        if self.hand_over.is_some() {
            return Some("a hand-over is already under way".to_string());
        }
        None
    }

    fn note_peer_index(&mut self, index: Option<u64>) {
        if let Some(i) = index {
            self.peer_last_index = Some(self.peer_last_index.map_or(i, |l| l.max(i)));
        }
    }

    /// Whether a claim `(epoch, server)` beats this server's own claim.
    fn beats_own(&self, epoch: u64, server: u32) -> bool {
        match self.owner_epoch {
            Some(own) => (epoch, server) > (own, self.config.server_id),
            None => true,
        }
    }

    fn classify_epoch(
        &mut self,
        epoch: u64,
        server: u32,
        on_air: bool,
        via: Via,
    ) -> Vec<(Trigger, Ctx)> {
        self.epoch = self.epoch.max(epoch);
        if !on_air {
            return Vec::new();
        }
        let detail = format!("server {server} claims epoch {epoch} ({via:?})");
        // The peer's claim of the epoch this server offered is its acceptance of the
        // hand-over, not a rival: the live output goes on up to the hand-over index.
        if let Some(h) = &mut self.hand_over {
            if epoch == h.epoch && server != self.config.server_id {
                if h.accepted {
                    return Vec::new();
                }
                h.accepted = true;
                return vec![(
                    Trigger::HandOverAccepted,
                    ctx(format!("{detail}: hand-over accepted")),
                )];
            }
        }
        let beats = self.beats_own(epoch, server);
        match &mut self.gate {
            // Holding, this server sends nothing: a claim read from a message (perhaps one
            // that waited in the socket while it stalled, from a server that has failed
            // since) is remembered, and the fresh answer to the ownership query decides.
            // Without such an answer the claim wins at the timeout.
            LiveGate::Held {
                purpose, contested, ..
            } => {
                if *purpose == HoldPurpose::Start || beats {
                    *contested = true;
                }
                Vec::new()
            }
            LiveGate::Open if beats => vec![(Trigger::HigherEpoch, ctx(detail))],
            _ => Vec::new(),
        }
    }

    fn classify_peer(
        &mut self,
        state: State,
        epoch: u64,
        owner: bool,
        server: u32,
        last_index: Option<u64>,
    ) -> Vec<(Trigger, Ctx)> {
        use Trigger as T;
        self.peer_state = Some(state);
        self.note_peer_index(last_index);
        let claims = self.classify_epoch(epoch, server, owner, Via::SyncLink);
        if self
            .hand_over
            .is_some_and(|h| h.accepted && owner && epoch == h.epoch)
        {
            // The new owner, on air from the hand-over index: this server steps down when
            // its engine has moved there.
            return claims;
        }
        if !claims.is_empty() || (owner && matches!(self.gate, LiveGate::Held { .. })) {
            // A claim on the live group is settled by the epochs or, while this server
            // holds, by its verification; the claimant's state says nothing more.
            return claims;
        }
        if state.role() == Some(Role::Primary) || state.on_air() {
            self.primary_heard = true;
        }
        let detail = format!("peer {server} reports {state}");
        let t = match self.state {
            State::PrimaryNoSecondary | State::SecondaryNoPrimary
                if state == State::SecondarySynchronized =>
            {
                Some(T::SecondarySynchronized)
            }
            State::Primary if state != State::SecondarySynchronized => Some(T::SecondaryLost),
            State::SecondaryOffline if self.primary_heard => Some(T::PrimaryHeard),
            State::SecondarySynchronizing | State::SecondarySynchronized
                if state == State::PrimaryOffline =>
            {
                Some(T::PrimaryStopped)
            }
            // The server followed failed, or restarted as a secondary that cannot be on air
            // (it must synchronise behind an on-air server first): nobody is on air.
            State::SecondarySynchronized
                if matches!(
                    state,
                    State::Failed
                        | State::SecondaryOffline
                        | State::Secondary
                        | State::SecondarySynchronizing
                ) =>
            {
                Some(T::FailedNotice)
            }
            _ => None,
        };
        match t {
            Some(t) => vec![(
                t,
                Ctx {
                    detail,
                    failure: None,
                    take_index: self.peer_last_index,
                    hand_over: None,
                    handed_by: None,
                    query: None,
                },
            )],
            None => Vec::new(),
        }
    }

    fn classify_reply(
        &mut self,
        nonce: u64,
        state: State,
        on_air: bool,
        epoch: u64,
        server: u32,
        now: u64,
    ) -> Vec<(Trigger, Ctx)> {
        let LiveGate::Held { purpose, .. } = self.gate else {
            return Vec::new();
        };
        // An answer to any query of this hold (with a link slower than the retry period the
        // answer to a query comes after the next one was sent).
        let Some(&(_, asked_at)) = self.asked.iter().find(|(n, _)| *n == nonce) else {
            return Vec::new();
        };
        if !on_air && now.saturating_sub(asked_at) >= self.config.reply_fresh_ns {
            // "Not owner" is a lease that starts when the peer got the query: handled this
            // late (this server stalled meanwhile), it may have expired. Wait for a fresh
            // answer to the next retry instead.
            return Vec::new();
        }
        self.epoch = self.epoch.max(epoch);
        let detail = format!(
            "server {server} answers {state}, {}, epoch {epoch}",
            if on_air { "owner" } else { "not owner" }
        );
        if !on_air {
            return vec![(Trigger::OwnershipConfirmed, ctx(detail))];
        }
        // Held during a hand-over this server offered, the peer's claim of the offered
        // epoch is its acceptance: it owns the live group only from the hand-over index,
        // and the datagrams before it are still this server's to send (the release bounds
        // the resume, so nothing from the index on goes out twice).
        if let Some(h) = &mut self.hand_over {
            if epoch == h.epoch && server != self.config.server_id {
                let mut out = Vec::new();
                if !h.accepted {
                    h.accepted = true;
                    out.push((
                        Trigger::HandOverAccepted,
                        ctx(format!("{detail}: hand-over accepted")),
                    ));
                }
                let at = h.at_index;
                out.push((
                    Trigger::OwnershipConfirmed,
                    ctx(format!("{detail}: the peer owns it from datagram {at}")),
                ));
                return out;
            }
        }
        if purpose == HoldPurpose::Start || self.beats_own(epoch, server) {
            return vec![(Trigger::PeerOnAir, ctx(detail))];
        }
        // The server that handed the live group to this one, with its lower claim, still
        // sends the datagrams before the hand-over index: that is the hand-over, not a rival.
        if self.handed_by == Some(server) && self.owner_epoch.is_some_and(|own| epoch < own) {
            return vec![(
                Trigger::OwnershipConfirmed,
                ctx(format!("{detail}: the hand-over's tail")),
            )];
        }
        // The peer claims the live group with a lower claim: it will step down when it sees
        // ours; keep holding until it says so or the timeout.
        if let LiveGate::Held { contested, .. } = &mut self.gate {
            *contested = true;
        }
        Vec::new()
    }

    /// Whether the peer was heard within a verification window and could take the live group
    /// by itself (it is synchronised behind this server).
    fn peer_may_take_over(&self, now: u64) -> bool {
        self.peer_state == Some(State::SecondarySynchronized)
            && self
                .peer_heard_at
                .is_some_and(|t| now.saturating_sub(t) < self.config.verify_timeout_ns)
    }

    /// A started secondary without session parameters keeps asking for them.
    fn awaiting_params(&self) -> bool {
        !self.params && matches!(self.state, State::Secondary | State::SecondarySynchronizing)
    }

    fn guard(&self, when: Guard) -> bool {
        match when {
            Guard::Always => true,
            Guard::LiveHeld => matches!(self.gate, LiveGate::Held { .. }),
            Guard::LiveSending => self.gate == LiveGate::Open,
            Guard::Owner => self.is_owner(),
            Guard::Started => self.enabled,
            Guard::PrimaryHeard => self.primary_heard,
            Guard::Locked => self.locked,
            Guard::NotLocked => !self.locked,
            Guard::EngineRunning => self.locked || self.engine_kept,
        }
    }

    /// Looks the rule up and runs it. Returns whether a rule applied.
    fn fire(&mut self, trigger: Trigger, c: Ctx, now: u64) -> bool {
        if let Some(every) = table::every_state_rule(trigger) {
            for step in every.steps {
                self.run(*step, &c, now);
            }
        }
        let Some(rule) = table::rule(self.state, trigger) else {
            return false;
        };
        if !self.guard(rule.when) {
            return false;
        }
        for step in rule.steps {
            self.run(*step, &c, now);
        }
        match trigger {
            Trigger::LockAcquired => self.locked = true,
            Trigger::ParamsReceived => self.params = true,
            _ => {}
        }
        if rule.to != rule.from {
            // An accepted hand-over dropped while this server still owns the live group
            // (the peer gave it up before the index): the scheduled release is cancelled,
            // or nobody would be on air from the index.
            if self.hand_over.is_some_and(|h| h.accepted)
                && self.owner_epoch.is_some()
                && trigger != Trigger::HandOverReleased
            {
                self.actions.push_back(Action::CancelRelease);
                if self.gate == LiveGate::Open {
                    self.actions.push_back(Action::ResumeLive);
                }
            }
            self.hand_over = None;
            if let Some(role) = self.state.role() {
                self.home = role;
            }
            self.state = rule.to;
            if let Some(role) = rule.to.role() {
                self.home = role;
            }
            if !matches!(
                rule.to,
                State::SecondarySynchronizing | State::SecondarySynchronized
            ) {
                self.locked = false;
                self.engine_kept = false;
            }
            if rule.to == State::SecondarySynchronizing && rule.from.on_air() {
                self.engine_kept = true;
            }
            let t = Transition {
                from: rule.from,
                to: rule.to,
                trigger,
                detail: c.detail,
                at: now,
            };
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(t.clone());
            self.transitions += 1;
            self.actions.push_back(Action::Transition(t));
            self.actions.push_back(Action::SendHeartbeat);
            self.timers
                .set(Timer::Heartbeat, now + self.config.heartbeat_period_ns);
        }
        true
    }

    fn note_query(&mut self, nonce: u64, now: u64) {
        if self.asked.len() == 16 {
            self.asked.pop_front();
        }
        self.asked.push_back((nonce, now));
    }

    fn clear_verify(&mut self) {
        self.timers.stop(Timer::VerifyRetry);
        self.timers.stop(Timer::VerifyDeadline);
    }

    fn run(&mut self, step: Step, c: &Ctx, now: u64) {
        match step {
            Step::Hold => {
                if self.gate == LiveGate::Open {
                    self.gate = LiveGate::Held {
                        purpose: HoldPurpose::Resume,
                        since: now,
                        nonce: 0,
                        asked_at: now,
                        contested: false,
                    };
                    self.actions.push_back(Action::HoldLive);
                }
            }
            Step::Verify => {
                let nonce = self.next_nonce;
                self.next_nonce += 1;
                if !matches!(self.gate, LiveGate::Held { .. }) {
                    self.asked.clear();
                }
                self.note_query(nonce, now);
                self.gate = match self.gate {
                    LiveGate::Held { purpose, since, .. } => LiveGate::Held {
                        purpose,
                        since,
                        nonce,
                        asked_at: now,
                        contested: false,
                    },
                    _ => LiveGate::Held {
                        purpose: HoldPurpose::Start,
                        since: now,
                        nonce,
                        asked_at: now,
                        contested: false,
                    },
                };
                self.actions.push_back(Action::SendOwnershipQuery { nonce });
                self.timers
                    .set(Timer::VerifyRetry, now + self.config.verify_retry_ns);
                self.timers
                    .set(Timer::VerifyDeadline, now + self.config.verify_timeout_ns);
            }
            Step::OpenLive => {
                if let LiveGate::Held { purpose, .. } = self.gate {
                    self.clear_verify();
                    self.gate = LiveGate::Open;
                    match purpose {
                        HoldPurpose::Start => {
                            self.epoch += 1;
                            self.owner_epoch = Some(self.epoch);
                            self.actions.push_back(Action::StartLive);
                            self.actions.push_back(Action::SendTakeover {
                                epoch: self.epoch,
                                from_index: None,
                            });
                            self.actions.push_back(Action::SendSyncParams);
                        }
                        HoldPurpose::Resume => self.actions.push_back(Action::ResumeLive),
                    }
                }
            }
            Step::TakeLive => {
                self.epoch += 1;
                self.owner_epoch = Some(self.epoch);
                self.muted = false;
                self.gate = LiveGate::Open;
                self.owned_from = c.take_index.map(|i| i + 1);
                self.handed_by = None;
                self.actions.push_back(Action::SwitchToLive {
                    after_index: c.take_index,
                });
                self.actions.push_back(Action::SendTakeover {
                    epoch: self.epoch,
                    from_index: c.take_index,
                });
            }
            Step::StopLive => {
                if self.gate != LiveGate::Off {
                    self.gate = LiveGate::Off;
                    self.owned_from = None;
                    self.handed_by = None;
                    self.owner_epoch = None;
                    self.clear_verify();
                    self.actions.push_back(Action::StopLive);
                }
            }
            Step::StartMuted => {
                if !self.muted {
                    self.muted = true;
                    self.actions.push_back(Action::StartMuted);
                }
            }
            Step::StopMuted => {
                if self.muted {
                    self.muted = false;
                    self.actions.push_back(Action::StopMuted);
                }
            }
            Step::SyncRequest => {
                // Parameters are asked for afresh (a new server on air to follow).
                self.params = false;
                self.timers
                    .set(Timer::SyncRetry, now + self.config.sync_retry_ns);
                self.actions.push_back(Action::SendSyncRequest);
            }
            Step::SyncParams => self.actions.push_back(Action::SendSyncParams),
            Step::ClockSync => {
                self.locked = false;
                self.engine_kept = false;
                self.actions.push_back(Action::StartClockSync);
            }
            Step::OfferHandOver => {
                if let Some((at_index, epoch)) = c.hand_over {
                    self.hand_over = Some(HandOver {
                        at_index,
                        epoch,
                        accepted: false,
                    });
                    self.timers
                        .set(Timer::HandOverOffer, now + HAND_OVER_OFFER_NS);
                    self.actions
                        .push_back(Action::SendHandOver { at_index, epoch });
                }
            }
            Step::TakeLiveAt => {
                if let Some((at_index, epoch)) = c.hand_over {
                    self.epoch = self.epoch.max(epoch);
                    self.owner_epoch = Some(epoch);
                    self.muted = false;
                    self.gate = LiveGate::Open;
                    self.owned_from = Some(at_index);
                    self.handed_by = c.handed_by;
                    self.actions
                        .push_back(Action::SwitchToLiveAt { index: at_index });
                    self.actions.push_back(Action::SendTakeover {
                        epoch,
                        from_index: at_index.checked_sub(1),
                    });
                }
            }
            Step::ReleaseLiveAt => {
                if let Some(h) = self.hand_over {
                    self.actions
                        .push_back(Action::ReleaseLiveAt { index: h.at_index });
                }
            }
            Step::Enable => self.enabled = true,
            Step::Disable => self.enabled = false,
            Step::AnswerOwnership => {
                if let Some((nonce, from)) = c.query {
                    self.actions.push_back(Action::SendOwnershipReply {
                        nonce,
                        to: from,
                        state: self.state,
                        on_air: self.is_owner(),
                        epoch: self.owner_epoch.unwrap_or(self.epoch),
                    });
                }
            }
            Step::FailedNotice => {
                let (component, reason) = c
                    .failure
                    .clone()
                    .unwrap_or_else(|| ("unknown".into(), c.detail.clone()));
                self.actions
                    .push_back(Action::SendFailedNotice { component, reason });
            }
        }
    }
}
