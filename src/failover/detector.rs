//! The heartbeat-miss failure detector of the secondary (claims 7-11).
//!
//! Claim 7: failure detection monitors *a plurality of signals* sent by the primary during one
//! interval. Claim 8: they are sent more often than once per interval (one video frame,
//! claim 9). Claim 10: a failure is declared when a predefined number `miss` of them in a row
//! is not received.
//!
//! Two kinds of signal are watched:
//! - the primary's heartbeats on the sync link, every `period` ns;
//! - (optionally) the primary's datagrams on the live group.
//!
//! # Rule
//! With `W = miss x period + grace`, a failure is declared at `now` when the detector is
//! armed (one heartbeat seen since the last reset) and
//! - `now >= last_heartbeat_rx + W` (the next `miss` heartbeats are all missing), and
//! - with live watching: `now >= last_live_rx + live_window` (the live group has been silent
//!   too). Before any live datagram is seen the arming heartbeat's time stands in.
//!
//! Without live watching ([`LiveWatch::Unavailable`]) the heartbeat rule alone decides; a
//! broken sync link then looks like a dead primary (see `docs/failover.md`, limits).
//!
//! # Whose clock
//! Arrivals are judged by their *kernel receive timestamps* (`rx_ns`, SO_TIMESTAMPNS), not by
//! when the secondary got round to reading them, so a stall of the secondary itself does not
//! count against the primary. The driver must drain its sockets (feeding every arrival) and
//! only then call [`Detector::poll`]. `rx_ns` and `now` must be on the same clock (the
//! driver converts SO_TIMESTAMPNS' CLOCK_REALTIME to its own `now` clock if they differ).
//!
//! A declaration is given once; the detector declares again only after a new heartbeat has
//! re-armed it.

/// How the live group is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveWatch {
    /// The secondary cannot hear the live group: heartbeats alone decide.
    Unavailable,
    /// The live group must also be silent for `window_ns` before a failure is declared.
    /// Choose it at least as long as the asset's largest gap between two datagrams.
    Watch {
        /// Silence needed on the live group, ns.
        window_ns: u64,
    },
}

/// Settings of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Heartbeat period of the primary, ns.
    pub period_ns: u64,
    /// Consecutive missing heartbeats that make a failure (claim 10), at least 1.
    pub miss: u32,
    /// Extra allowance for heartbeat jitter, ns (added once to `miss x period`).
    pub grace_ns: u64,
    /// Live-group watching.
    pub live: LiveWatch,
}

impl DetectorConfig {
    /// Heartbeat window `W = miss x period + grace`.
    pub fn heartbeat_window(&self) -> u64 {
        (self.miss.max(1) as u64)
            .saturating_mul(self.period_ns)
            .saturating_add(self.grace_ns)
    }

    /// Settings for a frame duration: period from [`default_heartbeat`], no grace, live
    /// silence window equal to the heartbeat window.
    pub fn for_frame(frame_ns: u64, miss: u32) -> DetectorConfig {
        let period_ns = default_heartbeat(frame_ns, miss);
        let miss = miss.max(1);
        DetectorConfig {
            period_ns,
            miss,
            grace_ns: 0,
            live: LiveWatch::Watch {
                window_ns: period_ns * miss as u64,
            },
        }
    }
}

/// The heartbeat period for a frame duration and a miss count: the largest period with
/// `miss x period <= frame / 3`, so that detection uses at most a third of the frame and the
/// switch has the rest (claims 2-3). Its frequency is above `1 / frame` (claim 8).
///
/// ```
/// use tandem::failover::detector::default_heartbeat;
/// // 59.94 fps: 16_683_350 ns per frame, 3 misses -> 1_853_705 ns.
/// assert_eq!(default_heartbeat(16_683_350, 3), 1_853_705);
/// ```
pub fn default_heartbeat(frame_ns: u64, miss: u32) -> u64 {
    let miss = miss.max(1) as u64;
    (frame_ns / (3 * miss)).max(1)
}

/// Why a failure was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// Heartbeats missed in a row (`(now - last_rx) / period`).
    pub missed: u64,
    /// Time since the last heartbeat arrived, ns.
    pub heartbeat_silent_ns: u64,
    /// Time since the last live datagram arrived, ns (`None` without live watching).
    pub live_silent_ns: Option<u64>,
}

/// A failure declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    /// The silence that caused it.
    pub reason: Silence,
    /// Index of the last datagram the primary is known to have sent (heartbeats' `last_index`
    /// and live datagrams seen), `None` if unknown.
    pub last_index: Option<u64>,
    /// The last sign of life: the latest arrival of a heartbeat or (watched) live datagram.
    pub silent_since: u64,
}

impl std::fmt::Display for Declaration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} heartbeats missed ({} us silent)",
            self.reason.missed,
            self.reason.heartbeat_silent_ns / 1_000
        )?;
        if let Some(l) = self.reason.live_silent_ns {
            write!(f, ", live group silent {} us", l / 1_000)?;
        }
        match self.last_index {
            Some(i) => write!(f, ", last datagram {i}"),
            None => write!(f, ", last datagram unknown"),
        }
    }
}

/// The detector. Feed it arrivals, then [`poll`](Detector::poll) it.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    last_heartbeat: Option<u64>,
    last_live: Option<u64>,
    last_index: Option<u64>,
    declared: bool,
}

impl Detector {
    /// A disarmed detector.
    pub fn new(config: DetectorConfig) -> Detector {
        Detector {
            config,
            last_heartbeat: None,
            last_live: None,
            last_index: None,
            declared: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// A heartbeat (or any authenticated message from the primary) arrived at kernel time
    /// `rx_ns`; `last_index` is the last datagram it says it sent. Arms the detector.
    pub fn on_heartbeat(&mut self, rx_ns: u64, last_index: Option<u64>) {
        match self.last_heartbeat {
            Some(t) if rx_ns <= t => {}
            Some(_) => {
                // A newer heartbeat re-arms after a declaration.
                self.declared = false;
                self.last_heartbeat = Some(rx_ns);
            }
            None => self.last_heartbeat = Some(rx_ns),
        }
        self.note_index(last_index);
    }

    /// A datagram of the primary arrived on the live group at kernel time `rx_ns`, with its
    /// datagram index if the driver could tell it (e.g. from the RTP sequence number).
    pub fn on_live(&mut self, rx_ns: u64, index: Option<u64>) {
        if self.last_live.map_or(true, |t| rx_ns > t) {
            self.last_live = Some(rx_ns);
        }
        self.note_index(index);
    }

    fn note_index(&mut self, index: Option<u64>) {
        if let Some(i) = index {
            self.last_index = Some(self.last_index.map_or(i, |l| l.max(i)));
        }
    }

    /// Index of the last datagram the primary is known to have sent.
    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }

    /// Arrival time of the last heartbeat.
    pub fn last_heartbeat(&self) -> Option<u64> {
        self.last_heartbeat
    }

    /// Whether a heartbeat has armed the detector.
    pub fn armed(&self) -> bool {
        self.last_heartbeat.is_some()
    }

    /// Disarms: forgets every arrival and the known index (a new session, or the primary
    /// role moved).
    pub fn reset(&mut self) {
        *self = Detector::new(self.config);
    }

    /// The instant from which a failure will be declared if nothing more arrives; `None` when
    /// disarmed or already declared.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.declared {
            return None;
        }
        let hb = self.last_heartbeat?;
        let hb_deadline = hb.saturating_add(self.config.heartbeat_window());
        Some(match self.config.live {
            LiveWatch::Unavailable => hb_deadline,
            LiveWatch::Watch { window_ns } => {
                let live = self.last_live.unwrap_or(hb);
                hb_deadline.max(live.saturating_add(window_ns))
            }
        })
    }

    /// Declares a failure if the rule holds at `now` (once per arming). Call after feeding
    /// every arrival the sockets hold.
    pub fn poll(&mut self, now: u64) -> Option<Declaration> {
        let deadline = self.next_deadline()?;
        if now < deadline {
            return None;
        }
        let hb = self.last_heartbeat?;
        self.declared = true;
        let heartbeat_silent_ns = now.saturating_sub(hb);
        let live_silent_ns = match self.config.live {
            LiveWatch::Unavailable => None,
            LiveWatch::Watch { .. } => Some(now.saturating_sub(self.last_live.unwrap_or(hb))),
        };
        let silent_since = match self.config.live {
            LiveWatch::Unavailable => hb,
            LiveWatch::Watch { .. } => hb.max(self.last_live.unwrap_or(hb)),
        };
        Some(Declaration {
            reason: Silence {
                missed: heartbeat_silent_ns / self.config.period_ns.max(1),
                heartbeat_silent_ns,
                live_silent_ns,
            },
            last_index: self.last_index,
            silent_since,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn cfg(live: LiveWatch) -> DetectorConfig {
        DetectorConfig {
            period_ns: 2 * MS,
            miss: 3,
            grace_ns: 0,
            live,
        }
    }

    #[test]
    fn default_heartbeat_fits_a_third_of_a_frame() {
        for (frame, miss) in [(40 * MS, 3), (16_683_350, 3), (20 * MS, 1), (33_366_700, 5)] {
            let p = default_heartbeat(frame, miss);
            assert!(p * miss as u64 <= frame / 3, "{frame} {miss} {p}");
            assert!((p + 1) * miss as u64 > frame / 3, "largest such period");
            assert!(p < frame, "claim 8: frequency > 1/frame");
        }
        assert_eq!(default_heartbeat(40 * MS, 3), 4_444_444);
        assert_eq!(default_heartbeat(40 * MS, 0), 13_333_333);
        let c = DetectorConfig::for_frame(40 * MS, 3);
        assert_eq!(c.heartbeat_window(), 13_333_332);
        assert_eq!(
            c.live,
            LiveWatch::Watch {
                window_ns: 13_333_332
            }
        );
    }

    #[test]
    fn disarmed_never_declares() {
        let mut d = Detector::new(cfg(LiveWatch::Unavailable));
        assert_eq!(d.next_deadline(), None);
        assert_eq!(d.poll(u64::MAX), None);
        d.on_live(5, Some(1));
        assert_eq!(d.poll(u64::MAX), None);
    }

    #[test]
    fn heartbeats_only_declares_after_miss_periods() {
        let mut d = Detector::new(cfg(LiveWatch::Unavailable));
        for k in 0..10 {
            d.on_heartbeat(100 * MS + k * 2 * MS, Some(k * 10));
        }
        let last = 118 * MS;
        assert_eq!(d.next_deadline(), Some(last + 6 * MS));
        assert_eq!(d.poll(last + 6 * MS - 1), None);
        let decl = d.poll(last + 6 * MS).expect("declared");
        assert_eq!(decl.reason.missed, 3);
        assert_eq!(decl.reason.heartbeat_silent_ns, 6 * MS);
        assert_eq!(decl.reason.live_silent_ns, None);
        assert_eq!(decl.last_index, Some(90));
        assert_eq!(decl.silent_since, last);
        // Once only.
        assert_eq!(d.poll(last + 60 * MS), None);
        assert_eq!(d.next_deadline(), None);
        // A new heartbeat re-arms.
        d.on_heartbeat(200 * MS, Some(95));
        assert_eq!(d.next_deadline(), Some(206 * MS));
        assert!(d.poll(206 * MS).is_some());
    }

    #[test]
    fn live_traffic_prevents_declaration() {
        let mut d = Detector::new(cfg(LiveWatch::Watch { window_ns: 6 * MS }));
        d.on_heartbeat(100 * MS, Some(7));
        // Heartbeats stop but the live group carries datagrams until 120 ms.
        for k in 0..=20 {
            d.on_live(100 * MS + k * MS, Some(8 + k));
        }
        assert_eq!(d.poll(110 * MS), None, "heartbeats missing, live alive");
        assert_eq!(d.next_deadline(), Some(126 * MS));
        assert_eq!(d.poll(125 * MS), None);
        let decl = d.poll(126 * MS).unwrap();
        assert_eq!(decl.last_index, Some(28));
        assert_eq!(decl.silent_since, 120 * MS);
        assert_eq!(decl.reason.live_silent_ns, Some(6 * MS));
        assert_eq!(decl.reason.heartbeat_silent_ns, 26 * MS);
    }

    #[test]
    fn live_silence_alone_is_not_enough() {
        let mut d = Detector::new(cfg(LiveWatch::Watch { window_ns: 6 * MS }));
        for k in 0..50 {
            d.on_heartbeat(k * 2 * MS, None);
            assert_eq!(d.poll(k * 2 * MS + MS), None);
        }
    }

    #[test]
    fn own_stall_does_not_count_against_primary() {
        // The secondary stalls from 100 to 150 ms; heartbeats kept arriving (kernel stamps)
        // and are drained at 150 ms before polling.
        let mut d = Detector::new(cfg(LiveWatch::Unavailable));
        d.on_heartbeat(100 * MS, Some(1));
        for k in 1..=25 {
            d.on_heartbeat(100 * MS + k * 2 * MS, Some(1 + k));
        }
        assert_eq!(d.poll(150 * MS), None);
        assert_eq!(d.last_index(), Some(26));
    }

    #[test]
    fn out_of_order_arrivals_keep_the_latest() {
        let mut d = Detector::new(cfg(LiveWatch::Unavailable));
        d.on_heartbeat(10 * MS, Some(5));
        d.on_heartbeat(8 * MS, Some(3));
        assert_eq!(d.last_heartbeat(), Some(10 * MS));
        assert_eq!(d.last_index(), Some(5));
        d.reset();
        assert!(!d.armed());
        assert_eq!(d.last_index(), None);
    }
}
