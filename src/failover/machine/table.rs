//! The transition table: every (state, trigger) pair the machine acts on, the state it goes
//! to and the actions it takes, in order. [`super::Machine::handle`] looks rules up here and
//! nowhere else, and `docs/failover.md` carries this table verbatim (a test compares them).

use crate::failover::state::State;
use std::fmt;

/// What made the machine act: the events of `docs/states.md`, after the machine has classified
/// an [`super::Event`] against its state (a peer's status, for example, becomes
/// `SecondarySynchronized`, `SecondaryLost`, `PrimaryHeard`, `PrimaryStopped`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Trigger {
    /// The command started with an asset, or an operator start.
    Started,
    /// A user's asset request arrived (claim 1).
    AssetRequest,
    /// The peer reports `Secondary_synchronized`.
    SecondarySynchronized,
    /// The secondary's heartbeats stopped, or it reports a state other than synchronised.
    SecondaryLost,
    /// The kernel saw a registered critical component fail (claims 14-16).
    KernelFailure,
    /// This server's own output failed (send error, output stalled, pacer late).
    OutputFailure,
    /// A component monitor declared this server failed (claim 12).
    MonitorFailed,
    /// A higher epoch (or an equal one from a higher server id) was claimed by an owner
    /// while this server sends on the live group.
    HigherEpoch,
    /// While holding the live output to verify ownership: the peer answered that it owns the
    /// group (and wins), another sender was heard on the live group, or an owner's claim was
    /// seen and no fresh "not owner" answer came before the timeout.
    PeerOnAir,
    /// This server was stalled long enough that the peer may have declared it failed.
    Stall,
    /// Ownership verified: the peer answered that it is not on air, or no answer came within
    /// the timeout and nothing else was heard on the live group.
    OwnershipConfirmed,
    /// The peer asked for the session parameters.
    SyncRequested,
    /// The failed server was restarted.
    Restart,
    /// The failed server recovered and follows the server on air.
    Recover,
    /// A started secondary heard a primary (a primary-role or on-air peer).
    PrimaryHeard,
    /// Session parameters were received and accepted.
    ParamsReceived,
    /// The clock offset is locked and the timeline placed: muted output can start.
    LockAcquired,
    /// The muted output runs in step with the primary's heartbeats.
    InStep,
    /// The lock was lost (asset changed, clock offset jumped, position cannot be followed).
    LockLost,
    /// The primary reports that it was stopped (`Primary_offline`).
    PrimaryStopped,
    /// The detector declared the primary failed (missed heartbeats, live group silent).
    FailureDeclared,
    /// The primary's kernel sent a Failed notice, or its heartbeats say `Failed` or show it
    /// restarted in a secondary state that cannot be on air.
    FailedNotice,
    /// A component monitor commanded this secondary to take over.
    MonitorTakeover,
    /// Operator stop (or a monitor's stop command).
    Stop,
    /// An operator asks the server on air to hand the live group to its synchronised peer
    /// (a planned switchover, for maintenance or to restore the preferred layout).
    HandOverRequested,
    /// The server on air offers this synchronised secondary the live group from a datagram
    /// index ahead of both.
    HandOverOffered,
    /// The peer accepted the offer: it claimed the offered epoch.
    HandOverAccepted,
    /// The engine moved to the muted group at the hand-over index: the peer is on air.
    HandOverReleased,
    /// The peer asked whether this server owns the live group.
    OwnershipQueried,
}

impl Trigger {
    /// The name used in logs, status and the documentation.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Started => "Started",
            Trigger::AssetRequest => "AssetRequest",
            Trigger::SecondarySynchronized => "SecondarySynchronized",
            Trigger::SecondaryLost => "SecondaryLost",
            Trigger::KernelFailure => "KernelFailure",
            Trigger::OutputFailure => "OutputFailure",
            Trigger::MonitorFailed => "MonitorFailed",
            Trigger::HigherEpoch => "HigherEpoch",
            Trigger::PeerOnAir => "PeerOnAir",
            Trigger::Stall => "Stall",
            Trigger::OwnershipConfirmed => "OwnershipConfirmed",
            Trigger::SyncRequested => "SyncRequested",
            Trigger::Restart => "Restart",
            Trigger::Recover => "Recover",
            Trigger::PrimaryHeard => "PrimaryHeard",
            Trigger::ParamsReceived => "ParamsReceived",
            Trigger::LockAcquired => "LockAcquired",
            Trigger::InStep => "InStep",
            Trigger::LockLost => "LockLost",
            Trigger::PrimaryStopped => "PrimaryStopped",
            Trigger::FailureDeclared => "FailureDeclared",
            Trigger::FailedNotice => "FailedNotice",
            Trigger::MonitorTakeover => "MonitorTakeover",
            Trigger::Stop => "Stop",
            Trigger::HandOverRequested => "HandOverRequested",
            Trigger::HandOverOffered => "HandOverOffered",
            Trigger::HandOverAccepted => "HandOverAccepted",
            Trigger::HandOverReleased => "HandOverReleased",
            Trigger::OwnershipQueried => "OwnershipQueried",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The steps a rule takes, executed in order by the machine. Each becomes zero or more
/// [`super::Action`]s; a step that has nothing to do (stop an output that is not running)
/// emits nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hold the live output (it is running): `HoldLive`.
    Hold,
    /// Ask the peer whether it owns the live group (`SendOwnershipQuery`) and wait for the
    /// answer or the timeout with the live output held (a start waits before it starts).
    Verify,
    /// Ownership verified: a start claims `epoch + 1` (`StartLive`, `SendTakeover`,
    /// `SendSyncParams`); a hold resumes (`ResumeLive`).
    OpenLive,
    /// Take the live group: claim `epoch + 1`, `SwitchToLive` after the primary's last
    /// known datagram, `SendTakeover`.
    TakeLive,
    /// Stop sending on the live group (first, before anything else): `StopLive`.
    StopLive,
    /// `StartMuted`.
    StartMuted,
    /// `StopMuted`.
    StopMuted,
    /// `SendSyncRequest`.
    SyncRequest,
    /// `SendSyncParams`.
    SyncParams,
    /// Forget the lock and (re)start the clock exchange: `StartClockSync`.
    ClockSync,
    /// Tell the peer this server failed: `SendFailedNotice`.
    FailedNotice,
    /// Offer the peer the live group from a datagram ahead, under `epoch + 1`:
    /// `SendHandOver`.
    OfferHandOver,
    /// Accept an offer: claim the offered epoch, `SwitchToLiveAt` the offered index (the
    /// muted output keeps the datagrams before it), `SendTakeover` (the acceptance).
    TakeLiveAt,
    /// Leave the live group at the hand-over index: `ReleaseLiveAt` (the datagrams before
    /// it still go live, the rest muted).
    ReleaseLiveAt,
    /// The server may act on the peer's messages (it was started or given an asset).
    Enable,
    /// The server was stopped: it no longer acts on what it hears until started again.
    Disable,
    /// Answer the peer's ownership query with this server's state, whether it owns the
    /// live group, and its claim: `SendOwnershipReply`.
    AnswerOwnership,
}

impl Step {
    /// Name used in the documentation.
    pub fn name(self) -> &'static str {
        match self {
            Step::Hold => "Hold",
            Step::Verify => "Verify",
            Step::OpenLive => "OpenLive",
            Step::TakeLive => "TakeLive",
            Step::StopLive => "StopLive",
            Step::StartMuted => "StartMuted",
            Step::StopMuted => "StopMuted",
            Step::SyncRequest => "SyncRequest",
            Step::SyncParams => "SyncParams",
            Step::ClockSync => "ClockSync",
            Step::FailedNotice => "FailedNotice",
            Step::OfferHandOver => "OfferHandOver",
            Step::TakeLiveAt => "TakeLiveAt",
            Step::ReleaseLiveAt => "ReleaseLiveAt",
            Step::Enable => "Enable",
            Step::Disable => "Disable",
            Step::AnswerOwnership => "AnswerOwnership",
        }
    }
}

/// The condition a rule checks besides its state and trigger (the `when` column of the
/// table). Every guard is a fact the machine carries; [`super::Machine`] evaluates each by
/// an exhaustive match, so a new guard cannot silently read as false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    /// No condition.
    Always,
    /// The live output is held (a start or a resume waits for the ownership verdict).
    LiveHeld,
    /// The live output is sending.
    LiveSending,
    /// This server owns the live group (it is on air with the highest epoch it knows).
    Owner,
    /// The server was started (with an asset, or by an operator).
    Started,
    /// A primary (a primary-role or on-air peer) was heard.
    PrimaryHeard,
    /// The clock offset is locked and the timeline placed.
    Locked,
    /// Not [`Guard::Locked`].
    NotLocked,
    /// The engine still runs on the session's timeline (locked, or kept across a step down).
    EngineRunning,
}

impl Guard {
    /// Every guard, for tests and the documentation.
    pub const ALL: [Guard; 9] = [
        Guard::Always,
        Guard::LiveHeld,
        Guard::LiveSending,
        Guard::Owner,
        Guard::Started,
        Guard::PrimaryHeard,
        Guard::Locked,
        Guard::NotLocked,
        Guard::EngineRunning,
    ];

    /// The text of the table's `when` column.
    pub fn name(self) -> &'static str {
        match self {
            Guard::Always => "",
            Guard::LiveHeld => "live held",
            Guard::LiveSending => "live sending",
            Guard::Owner => "owner",
            Guard::Started => "started",
            Guard::PrimaryHeard => "a primary was heard",
            Guard::Locked => "locked",
            Guard::NotLocked => "not locked",
            Guard::EngineRunning => "engine running",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// State the rule applies in.
    pub from: State,
    /// What happened.
    pub trigger: Trigger,
    /// Extra condition checked by the machine.
    pub when: Guard,
    /// State after the rule (`from` itself for in-state reactions).
    pub to: State,
    /// Steps, in order.
    pub steps: &'static [Step],
}

use Guard as G;
use State as S;
use Step as A;
use Trigger as T;

const FAIL_ON_AIR: &[Step] = &[A::StopLive, A::FailedNotice];
const FAIL_MUTED: &[Step] = &[A::StopMuted, A::FailedNotice];
const STEP_DOWN: &[Step] = &[A::StopLive, A::SyncRequest];

const fn r(from: State, trigger: Trigger, to: State, steps: &'static [Step]) -> Rule {
    Rule {
        from,
        trigger,
        when: Guard::Always,
        to,
        steps,
    }
}

const fn rw(from: State, trigger: Trigger, when: Guard, to: State, steps: &'static [Step]) -> Rule {
    Rule {
        from,
        trigger,
        when,
        to,
        steps,
    }
}

/// The whole table. `docs/failover.md` lists exactly these rows.
#[rustfmt::skip]
pub static TRANSITIONS: &[Rule] = &[
    // Primary_offline
    r(S::PrimaryOffline, T::Started, S::PrimaryNoSecondary, &[A::Verify]),
    r(S::PrimaryOffline, T::AssetRequest, S::PrimaryNoSecondary, &[A::Verify]),
    r(S::PrimaryOffline, T::KernelFailure, S::Failed, &[A::FailedNotice]),
    r(S::PrimaryOffline, T::OutputFailure, S::Failed, &[A::FailedNotice]),
    r(S::PrimaryOffline, T::MonitorFailed, S::Failed, &[A::FailedNotice]),
    // Primary_no_secondary
    rw(S::PrimaryNoSecondary, T::OwnershipConfirmed, G::LiveHeld, S::PrimaryNoSecondary, &[A::OpenLive]),
    rw(S::PrimaryNoSecondary, T::Stall, G::LiveSending, S::PrimaryNoSecondary, &[A::Hold, A::Verify]),
    rw(S::PrimaryNoSecondary, T::SyncRequested, G::Owner, S::PrimaryNoSecondary, &[A::SyncParams]),
    rw(S::PrimaryNoSecondary, T::SecondarySynchronized, G::Owner, S::Primary, &[]),
    r(S::PrimaryNoSecondary, T::KernelFailure, S::Failed, FAIL_ON_AIR),
    r(S::PrimaryNoSecondary, T::OutputFailure, S::Failed, FAIL_ON_AIR),
    r(S::PrimaryNoSecondary, T::MonitorFailed, S::Failed, FAIL_ON_AIR),
    rw(S::PrimaryNoSecondary, T::HigherEpoch, G::LiveSending, S::SecondarySynchronizing, STEP_DOWN),
    rw(S::PrimaryNoSecondary, T::PeerOnAir, G::LiveHeld, S::SecondarySynchronizing, STEP_DOWN),
    r(S::PrimaryNoSecondary, T::Stop, S::PrimaryOffline, &[A::StopLive]),
    // Primary
    rw(S::Primary, T::OwnershipConfirmed, G::LiveHeld, S::Primary, &[A::OpenLive]),
    rw(S::Primary, T::Stall, G::LiveSending, S::Primary, &[A::Hold, A::Verify]),
    rw(S::Primary, T::SyncRequested, G::Owner, S::Primary, &[A::SyncParams]),
    r(S::Primary, T::SecondaryLost, S::PrimaryNoSecondary, &[]),
    r(S::Primary, T::KernelFailure, S::Failed, FAIL_ON_AIR),
    r(S::Primary, T::OutputFailure, S::Failed, FAIL_ON_AIR),
    r(S::Primary, T::MonitorFailed, S::Failed, FAIL_ON_AIR),
    rw(S::Primary, T::HigherEpoch, G::LiveSending, S::SecondarySynchronizing, STEP_DOWN),
    rw(S::Primary, T::PeerOnAir, G::LiveHeld, S::SecondarySynchronizing, STEP_DOWN),
    r(S::Primary, T::Stop, S::PrimaryOffline, &[A::StopLive]),
    // The planned hand-over: offer, the peer's acceptance (its epoch claim), the release at
    // the offered index, then a step down behind the new owner.
    rw(S::Primary, T::HandOverRequested, G::LiveSending, S::Primary, &[A::OfferHandOver]),
    // Accepted while the output is held (a stall) too: the release bounds the resume.
    r(S::Primary, T::HandOverAccepted, S::Primary, &[A::ReleaseLiveAt]),
    r(S::Primary, T::HandOverReleased, S::SecondarySynchronizing, STEP_DOWN),
    // Failed
    r(S::Failed, T::Restart, S::SecondaryOffline, &[]),
    r(S::Failed, T::Recover, S::SecondarySynchronizing, &[A::SyncRequest]),
    r(S::Failed, T::Stop, S::SecondaryOffline, &[]),
    // Secondary_offline
    rw(S::SecondaryOffline, T::PrimaryHeard, G::Started, S::Secondary, &[A::SyncRequest]),
    rw(S::SecondaryOffline, T::Started, G::PrimaryHeard, S::Secondary, &[A::SyncRequest]),
    r(S::SecondaryOffline, T::KernelFailure, S::Failed, &[A::FailedNotice]),
    r(S::SecondaryOffline, T::OutputFailure, S::Failed, &[A::FailedNotice]),
    r(S::SecondaryOffline, T::MonitorFailed, S::Failed, &[A::FailedNotice]),
    // Secondary
    r(S::Secondary, T::ParamsReceived, S::SecondarySynchronizing, &[A::ClockSync]),
    r(S::Secondary, T::KernelFailure, S::Failed, &[A::FailedNotice]),
    r(S::Secondary, T::OutputFailure, S::Failed, &[A::FailedNotice]),
    r(S::Secondary, T::MonitorFailed, S::Failed, &[A::FailedNotice]),
    r(S::Secondary, T::Stop, S::SecondaryOffline, &[]),
    // Secondary_synchronizing
    r(S::SecondarySynchronizing, T::ParamsReceived, S::SecondarySynchronizing, &[A::StopMuted, A::ClockSync]),
    rw(S::SecondarySynchronizing, T::LockAcquired, G::NotLocked, S::SecondarySynchronizing, &[A::StartMuted]),
    rw(S::SecondarySynchronizing, T::InStep, G::Locked, S::SecondarySynchronized, &[]),
    rw(S::SecondarySynchronizing, T::LockLost, G::Locked, S::SecondarySynchronizing, &[A::StopMuted, A::ClockSync]),
    r(S::SecondarySynchronizing, T::PrimaryStopped, S::Secondary, &[A::StopMuted]),
    // The server on air failed while this one resynchronises (e.g. it stepped down a moment
    // ago): its engine still runs on the session's timeline, so it can take over.
    rw(S::SecondarySynchronizing, T::FailedNotice, G::EngineRunning, S::SecondaryNoPrimary, &[A::TakeLive]),
    r(S::SecondarySynchronizing, T::KernelFailure, S::Failed, FAIL_MUTED),
    r(S::SecondarySynchronizing, T::OutputFailure, S::Failed, FAIL_MUTED),
    r(S::SecondarySynchronizing, T::MonitorFailed, S::Failed, FAIL_MUTED),
    r(S::SecondarySynchronizing, T::Stop, S::SecondaryOffline, &[A::StopMuted]),
    // Secondary_synchronized
    r(S::SecondarySynchronized, T::LockLost, S::SecondarySynchronizing, &[A::StopMuted, A::ClockSync]),
    r(S::SecondarySynchronized, T::ParamsReceived, S::SecondarySynchronizing, &[A::StopMuted, A::ClockSync]),
    r(S::SecondarySynchronized, T::FailureDeclared, S::SecondaryNoPrimary, &[A::TakeLive]),
    r(S::SecondarySynchronized, T::FailedNotice, S::SecondaryNoPrimary, &[A::TakeLive]),
    r(S::SecondarySynchronized, T::MonitorTakeover, S::SecondaryNoPrimary, &[A::TakeLive]),
    rw(S::SecondarySynchronized, T::HandOverOffered, G::Locked, S::SecondaryNoPrimary, &[A::TakeLiveAt]),
    r(S::SecondarySynchronized, T::PrimaryStopped, S::Secondary, &[A::StopMuted]),
    r(S::SecondarySynchronized, T::KernelFailure, S::Failed, FAIL_MUTED),
    r(S::SecondarySynchronized, T::OutputFailure, S::Failed, FAIL_MUTED),
    r(S::SecondarySynchronized, T::MonitorFailed, S::Failed, FAIL_MUTED),
    r(S::SecondarySynchronized, T::Stop, S::SecondaryOffline, &[A::StopMuted]),
    // Secondary_no_primary
    rw(S::SecondaryNoPrimary, T::SecondarySynchronized, G::Owner, S::Primary, &[]),
    rw(S::SecondaryNoPrimary, T::OwnershipConfirmed, G::LiveHeld, S::SecondaryNoPrimary, &[A::OpenLive]),
    rw(S::SecondaryNoPrimary, T::Stall, G::LiveSending, S::SecondaryNoPrimary, &[A::Hold, A::Verify]),
    rw(S::SecondaryNoPrimary, T::SyncRequested, G::Owner, S::SecondaryNoPrimary, &[A::SyncParams]),
    r(S::SecondaryNoPrimary, T::KernelFailure, S::Failed, FAIL_ON_AIR),
    r(S::SecondaryNoPrimary, T::OutputFailure, S::Failed, FAIL_ON_AIR),
    r(S::SecondaryNoPrimary, T::MonitorFailed, S::Failed, FAIL_ON_AIR),
    rw(S::SecondaryNoPrimary, T::HigherEpoch, G::LiveSending, S::SecondarySynchronizing, STEP_DOWN),
    rw(S::SecondaryNoPrimary, T::PeerOnAir, G::LiveHeld, S::SecondarySynchronizing, STEP_DOWN),
    r(S::SecondaryNoPrimary, T::Stop, S::SecondaryOffline, &[A::StopLive]),
];

/// A reaction the same in every state, taken before the state's own rule (if any) and
/// whether or not that rule's guard holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EveryStateRule {
    /// What happened.
    pub trigger: Trigger,
    /// Steps, in order.
    pub steps: &'static [Step],
}

/// The reactions of every state. `docs/failover.md` lists exactly these rows.
pub static IN_EVERY_STATE: &[EveryStateRule] = &[
    EveryStateRule {
        trigger: T::Started,
        steps: &[A::Enable],
    },
    EveryStateRule {
        trigger: T::AssetRequest,
        steps: &[A::Enable],
    },
    EveryStateRule {
        trigger: T::Stop,
        steps: &[A::Disable],
    },
    EveryStateRule {
        trigger: T::OwnershipQueried,
        steps: &[A::AnswerOwnership],
    },
];

/// The every-state reaction to `trigger`, if any.
pub fn every_state_rule(trigger: Trigger) -> Option<&'static EveryStateRule> {
    IN_EVERY_STATE.iter().find(|r| r.trigger == trigger)
}

/// The rule for `(from, trigger)`, if any.
pub fn rule(from: State, trigger: Trigger) -> Option<&'static Rule> {
    TRANSITIONS
        .iter()
        .find(|r| r.from == from && r.trigger == trigger)
}

/// The table as the Markdown that `docs/failover.md` carries between its
/// `<!-- transitions:begin -->` and `<!-- transitions:end -->` markers.
pub fn markdown() -> String {
    let mut s = String::from("| from | event | when | to | actions |\n|---|---|---|---|---|\n");
    for r in TRANSITIONS {
        let to = if r.to == r.from {
            "(same)".to_string()
        } else {
            r.to.name().to_string()
        };
        let steps: Vec<&str> = r.steps.iter().map(|s| s.name()).collect();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.from.name(),
            r.trigger.name(),
            r.when.name(),
            to,
            steps.join(", ")
        ));
    }
    s.push_str(
        "\nIn every state, before the state's own rule:\n\n| event | actions |\n|---|---|\n",
    );
    for r in IN_EVERY_STATE {
        let steps: Vec<&str> = r.steps.iter().map(|s| s.name()).collect();
        s.push_str(&format!(
            "| {} | {} |\n",
            r.trigger.name(),
            steps.join(", ")
        ));
    }
    s
}
