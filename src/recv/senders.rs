//! Who sent the datagrams: source addresses seen and each change of sender, with the gap
//! at the change and the loss around it (what a failover looks like to a receiver).

use std::net::SocketAddr;

use serde::Serialize;

use super::stats::At;

/// Distinct source addresses kept with statistics; more are only counted.
pub const MAX_SOURCES: usize = 32;
/// Sender changes kept in the list; more are only counted.
pub const MAX_CHANGES: usize = 100;

/// One source address (the JSON `sources` array).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// `ip:port` of the sender.
    pub addr: String,
    /// Datagrams from it.
    pub datagrams: u64,
    /// Seconds since the run's first datagram of its first and last datagram.
    pub first_s: f64,
    /// See `first_s`.
    pub last_s: f64,
}

/// One change of sender (the JSON `sender_changes.list` array).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SenderChange {
    /// Seconds since the first datagram, of the first datagram from the new sender.
    pub t_s: f64,
    /// Its receive time (ns).
    pub rx_ns: u64,
    /// Its index in the run.
    pub datagram: u64,
    /// Previous sender `ip:port`.
    pub from: String,
    /// New sender `ip:port`.
    pub to: String,
    /// Receive time of the first datagram from `to` minus that of the last from `from` (us).
    pub gap_us: f64,
    /// RTP only, same SSRC: sequence numbers skipped at the change (negative: the new
    /// sender repeated that many already received).
    pub rtp_seq_missing: Option<i32>,
    /// Continuity count errors found on the first packet of each PID after the change.
    pub cc_errors: u64,
    /// TS packets the counters say are missing there (lower bound: modulo 16 per PID).
    pub cc_lost_packets: u64,
    /// PIDs with such an error.
    pub cc_error_pids: Vec<u16>,
    /// TS packets missing in the PCR interval spanning the change, estimated from the
    /// stream's rate (CBR streams; negative: repeated). Null until that interval closes.
    pub ts_packets_missing_est: Option<i64>,
    /// The same in datagrams of 7 packets, rounded.
    pub datagrams_missing_est: Option<i64>,
}

/// The JSON `sender_changes` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SenderChanges {
    /// Number of changes.
    pub count: u64,
    /// The first [`MAX_CHANGES`] changes.
    pub list: Vec<SenderChange>,
}

/// Tracks sources and changes of sender.
#[derive(Debug, Default)]
pub struct Senders {
    last: Option<(SocketAddr, u64)>,
    sources: Vec<(SocketAddr, Source)>,
    /// Datagrams from sources beyond [`MAX_SOURCES`].
    pub other_datagrams: u64,
    /// The changes so far.
    pub changes: SenderChanges,
}

impl Senders {
    /// Counts a datagram from `src`; returns the gap (ns) when it is a change of sender,
    /// after recording the change (extend it with [`Senders::last_change_mut`]).
    pub fn datagram(&mut self, src: SocketAddr, at: At) -> Option<u64> {
        let n = self.sources.len();
        match self.sources.iter_mut().find(|(a, _)| *a == src) {
            Some((_, s)) => {
                s.datagrams += 1;
                s.last_s = at.t_s;
            }
            None if n < MAX_SOURCES => self.sources.push((
                src,
                Source {
                    addr: src.to_string(),
                    datagrams: 1,
                    first_s: at.t_s,
                    last_s: at.t_s,
                },
            )),
            None => self.other_datagrams += 1,
        }
        let prev = self.last.replace((src, at.rx_ns));
        let (from, prev_ns) = prev?;
        if from == src {
            return None;
        }
        let gap = at.rx_ns.saturating_sub(prev_ns);
        self.changes.count += 1;
        if self.changes.list.len() < MAX_CHANGES {
            self.changes.list.push(SenderChange {
                t_s: at.t_s,
                rx_ns: at.rx_ns,
                datagram: at.datagram,
                from: from.to_string(),
                to: src.to_string(),
                gap_us: gap as f64 / 1000.0,
                rtp_seq_missing: None,
                cc_errors: 0,
                cc_lost_packets: 0,
                cc_error_pids: Vec::new(),
                ts_packets_missing_est: None,
                datagrams_missing_est: None,
            });
        }
        Some(gap)
    }

    /// The most recent change, if it is still in the kept list.
    pub fn last_change_mut(&mut self) -> Option<&mut SenderChange> {
        if self.changes.count as usize > self.changes.list.len() {
            return None;
        }
        self.changes.list.last_mut()
    }

    /// Sources in order of first appearance.
    pub fn sources(&self) -> Vec<Source> {
        self.sources.iter().map(|(_, s)| s.clone()).collect()
    }

    /// Number of changes so far (the analyzer's generation counter).
    pub fn generation(&self) -> u32 {
        self.changes.count as u32
    }
}
