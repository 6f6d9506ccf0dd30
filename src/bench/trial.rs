//! One trial: what the receiver, the secondary's event log and the stall watcher saw, turned
//! into the benchmark's figures (sans-IO: [`Trial::from_input`] takes the observations and
//! never reads a clock).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::stall::{largest_gap_in, StallLog};
use crate::recv::Report;

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The secondary's datagrams reached the live group after the fault.
    Switched,
    /// The fault was injected but no other sender appeared on the live group.
    NoSwitch,
    /// The trial could not be run to the fault (pair did not start or synchronise, ...).
    Error,
}

/// One datagram on the live group: who sent it and its kernel receive time (unix ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Source address.
    pub src: SocketAddr,
    /// Kernel receive time (`SO_TIMESTAMPNS`, unix ns).
    pub rx_ns: u64,
}

/// What the stall witnesses saw around a trial (ns beyond the nominal datagram interval
/// for the two senders).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StallWitness {
    /// Longest wake delay of the benchmark's watcher thread from one frame before the
    /// fault to the secondary's first live datagram.
    pub machine_ns: u64,
    /// Largest gap between the primary's live datagrams in the frame before the fault,
    /// minus the nominal interval.
    pub primary_ns: u64,
    /// Largest gap between the secondary's muted datagrams from one frame before the fault
    /// to its first live datagram, minus the nominal interval.
    pub secondary_ns: u64,
    /// One of the three reached the threshold: the trial's figures include a stall.
    pub spoiled: bool,
}

/// Everything observed in one trial (input of [`Trial::from_input`]).
#[derive(Debug, Clone)]
pub struct TrialInput<'a> {
    /// Trial number (1-based).
    pub n: u32,
    /// When the fault was injected (unix ns; for `kernel`, when the component failed).
    pub fault_real_ns: u64,
    /// Phase of the fault within the frame grid (ns), when the grid is known.
    pub phase_ns: Option<u64>,
    /// When and why the secondary declared the failure (unix ns), from its event log.
    pub declared: Option<(u64, String)>,
    /// Live-group datagrams in arrival order.
    pub live: &'a [Arrival],
    /// Receive times of the secondary's muted-group datagrams (its first sender only),
    /// sorted.
    pub muted_rx: &'a [u64],
    /// The analyzer's report on the live group.
    pub report: &'a Report,
    /// The watcher's stalls.
    pub machine_stalls: &'a StallLog,
    /// One frame (ns).
    pub frame_ns: u64,
    /// Nominal interval between datagrams (ns).
    pub datagram_ns: u64,
    /// Stall threshold (ns).
    pub stall_threshold_ns: u64,
    /// Why the trial could not run (outcome [`Outcome::Error`]).
    pub error: Option<String>,
    /// The primary's state when the fault was injected (from its event log).
    pub primary_state_at_fault: Option<String>,
    /// The secondary's state when the fault was injected.
    pub secondary_state_at_fault: Option<String>,
    /// The original primary took the live group back *by the rules* after the switch: its
    /// own event log shows it, by then a synchronised secondary, declaring the new owner
    /// failed (e.g. the new owner stalled). `(instant, "trigger: reason")`.
    pub primary_retook: Option<(u64, String)>,
    /// The secondary's first live datagram against its due time (ns), from its `switch`
    /// event: what a viewer's decoder sees late, whatever the content's own gaps.
    pub switch_late_ns: Option<i64>,
}

/// One trial's figures (the JSON `trials` array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Trial number (1-based).
    pub n: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it could not run, or what went wrong.
    pub error: Option<String>,
    /// When the fault was injected (unix ns).
    pub fault_real_ns: u64,
    /// Phase of the fault within the frame (ns), when known.
    pub phase_ns: Option<u64>,
    /// When the secondary declared the failure (unix ns).
    pub declared_real_ns: Option<u64>,
    /// The declaration's reason.
    pub declared_reason: Option<String>,
    /// Fault -> declared (ns; negative if the declaration came first).
    pub detection_ns: Option<i64>,
    /// Declared -> first datagram of the secondary on the live group (ns).
    pub switch_ns: Option<i64>,
    /// The secondary's first live datagram after its due time (ns), as its own socket
    /// received it back.
    #[serde(default)]
    pub switch_late_ns: Option<i64>,
    /// The primary's last live datagram before the switch (kernel rx, unix ns).
    pub last_primary_rx_ns: Option<u64>,
    /// The secondary's first live datagram (kernel rx, unix ns).
    pub first_secondary_rx_ns: Option<u64>,
    /// The receiver's gap at the switch (ns).
    pub gap_ns: Option<u64>,
    /// Changes of sender the receiver saw (1 for a clean switch).
    pub sender_changes: u64,
    /// Datagrams lost (RTP: sequence numbers; UDP: estimated from the PCR rate).
    pub datagrams_lost: Option<u64>,
    /// TS packets lost (RTP: 7 per lost datagram; UDP: estimated from the PCR rate).
    pub ts_packets_lost: Option<u64>,
    /// Continuity count errors at the receiver over the trial.
    pub cc_errors: u64,
    /// Datagrams received twice (RTP: sequence numbers; UDP: estimated).
    pub duplicates: Option<u64>,
    /// Datagrams of the primary on the live group after the secondary's first.
    pub primary_after_switch: u64,
    /// The secondary was on the live group before the fault was injected: the primary had
    /// already failed by itself (e.g. its kernel declared it Failed after a stall). The gap
    /// is that switch's; there is no detection latency of the injected fault.
    pub switched_before_fault: bool,
    /// The primary's state when the fault was injected.
    pub primary_state_at_fault: Option<String>,
    /// The secondary's state when the fault was injected (a secondary that was not
    /// `Secondary_synchronized` then could not take over).
    pub secondary_state_at_fault: Option<String>,
    /// The original primary came back on the live group by a takeover of its own, by the
    /// rules (see [`TrialInput::primary_retook`]): why. `None` when it did not, or came back
    /// by itself (a failure).
    #[serde(default)]
    pub primary_retook: Option<String>,
    /// The receiver's gap at that second change of sender (ns).
    #[serde(default)]
    pub retake_gap_ns: Option<u64>,
    /// Stall witnesses.
    pub stall: StallWitness,
    /// Times the trial was set up again because a server could not bind its ports.
    #[serde(default)]
    pub setup_retries: u32,
}

impl Trial {
    /// Computes the figures of one trial from what was observed.
    pub fn from_input(i: &TrialInput<'_>) -> Trial {
        let primary = i.live.first().map(|a| a.src);
        let switch_pos = primary.and_then(|p| i.live.iter().position(|a| a.src != p));
        let first_secondary = switch_pos.map(|k| i.live[k]);
        let last_primary = switch_pos.and_then(|k| {
            i.live[..k]
                .iter()
                .rev()
                .find(|a| Some(a.src) == primary)
                .copied()
        });
        let primary_after_switch = match (switch_pos, primary) {
            (Some(k), Some(p)) => i.live[k..].iter().filter(|a| a.src == p).count() as u64,
            _ => 0,
        };
        let outcome = if i.error.is_some() && first_secondary.is_none() {
            Outcome::Error
        } else if first_secondary.is_some() {
            Outcome::Switched
        } else {
            Outcome::NoSwitch
        };
        let declared_ns = i.declared.as_ref().map(|d| d.0);
        let first_rx = first_secondary.map(|a| a.rx_ns);
        let before_fault = first_rx.is_some_and(|f| f < i.fault_real_ns);
        let signed = |a: u64, b: u64| a as i64 - b as i64;
        let (datagrams_lost, ts_packets_lost, duplicates) = losses(i.report);
        // The stall windows centre on when the primary's output ended: the fault, or the
        // primary's last datagram when it had failed by itself before the fault.
        let anchor = if before_fault {
            last_primary.map_or(i.fault_real_ns, |a| a.rx_ns)
        } else {
            i.fault_real_ns
        };
        let stall = witness(i, anchor, primary, first_rx);
        Trial {
            n: i.n,
            outcome,
            error: i.error.clone(),
            fault_real_ns: i.fault_real_ns,
            phase_ns: i.phase_ns,
            declared_real_ns: declared_ns,
            declared_reason: i.declared.as_ref().map(|d| d.1.clone()),
            detection_ns: declared_ns
                .filter(|_| !before_fault)
                .map(|d| signed(d, i.fault_real_ns)),
            switch_ns: declared_ns.zip(first_rx).map(|(d, f)| signed(f, d)),
            switch_late_ns: i.switch_late_ns.filter(|_| !before_fault),
            last_primary_rx_ns: last_primary.map(|a| a.rx_ns),
            first_secondary_rx_ns: first_rx,
            gap_ns: last_primary
                .zip(first_rx)
                .map(|(l, f)| f.saturating_sub(l.rx_ns)),
            sender_changes: i.report.sender_changes.count,
            datagrams_lost,
            ts_packets_lost,
            cc_errors: i.report.tr101290.cc_error.count,
            duplicates,
            primary_after_switch,
            switched_before_fault: before_fault,
            primary_state_at_fault: i.primary_state_at_fault.clone(),
            primary_retook: i
                .primary_retook
                .as_ref()
                .filter(|(t, _)| first_rx.is_some_and(|f| *t >= f.saturating_sub(1_000_000)))
                .map(|(_, why)| why.clone()),
            retake_gap_ns: i
                .report
                .sender_changes
                .list
                .get(1)
                .map(|c| (c.gap_us * 1_000.0).round().max(0.0) as u64),
            secondary_state_at_fault: i.secondary_state_at_fault.clone(),
            stall,
            setup_retries: 0,
        }
    }

    /// Whether the switch landed inside one frame: switched, one change of sender, the
    /// primary silent on the live group afterwards, gap below `frame_ns`.
    pub fn inside_frame(&self, frame_ns: u64) -> bool {
        let clean = self.sender_changes == 1 && self.primary_after_switch == 0;
        self.outcome == Outcome::Switched
            && (clean || self.retook_inside_frame(frame_ns))
            && self.gap_ns.is_some_and(|g| g < frame_ns)
    }

    /// The primary came back only by a takeover by the rules (it declared the new owner
    /// failed), as the second and last change of sender, itself inside one frame.
    pub fn retook_inside_frame(&self, frame_ns: u64) -> bool {
        self.primary_retook.is_some()
            && self.sender_changes == 2
            && self.retake_gap_ns.is_some_and(|g| g < frame_ns)
    }
}

/// Datagrams lost, TS packets lost and duplicates: exact from RTP sequence numbers, else
/// the analyzer's PCR-rate estimate at the first change of sender.
fn losses(r: &Report) -> (Option<u64>, Option<u64>, Option<u64>) {
    if let Some(rtp) = &r.rtp {
        return (Some(rtp.lost), Some(rtp.lost * 7), Some(rtp.duplicates));
    }
    match r.sender_changes.list.first() {
        Some(c) => (
            c.datagrams_missing_est.map(|d| d.max(0) as u64),
            c.ts_packets_missing_est.map(|p| p.max(0) as u64),
            c.datagrams_missing_est.map(|d| (-d).max(0) as u64),
        ),
        None => (Some(0), Some(0), Some(0)),
    }
}

fn witness(
    i: &TrialInput<'_>,
    anchor: u64,
    primary: Option<SocketAddr>,
    first_rx: Option<u64>,
) -> StallWitness {
    let from = anchor.saturating_sub(i.frame_ns);
    let end = first_rx.unwrap_or(anchor + i.frame_ns);
    let machine_ns = i.machine_stalls.longest_in(from, end);
    let prim: Vec<u64> = i
        .live
        .iter()
        .filter(|a| Some(a.src) == primary && a.rx_ns <= anchor)
        .map(|a| a.rx_ns)
        .collect();
    let primary_ns = largest_gap_in(&prim, from, anchor).saturating_sub(i.datagram_ns);
    let secondary_ns = if i.muted_rx.is_empty() {
        0
    } else {
        // Up to the switch only: the muted stream ends there, and a later sender on the
        // muted group (the old primary resynchronising) is not this secondary.
        let upto = i.muted_rx.partition_point(|&t| t <= end);
        largest_gap_in(&i.muted_rx[..upto], from, end).saturating_sub(i.datagram_ns)
    };
    let th = i.stall_threshold_ns;
    StallWitness {
        machine_ns,
        primary_ns,
        secondary_ns,
        spoiled: machine_ns >= th || primary_ns >= th || secondary_ns >= th,
    }
}
