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
//! # The live-path rule
//! The heartbeat rule cannot see a primary whose *live* path broke while its sync link still
//! works (its port on the live network down, a cable, a switch port): heartbeats keep
//! arriving, so no heartbeat is ever missed, yet viewers get nothing. With
//! [`DetectorConfig::path_rule`] on and live watching, a failure is also declared when
//! - the live group has carried the primary's datagrams since the last reset (this server's
//!   own ears on the live network are proven), and
//! - heartbeats report datagrams the live group never carried: their `last_index` is beyond
//!   the last index seen on the live group, for at least one heartbeat period, and
//! - the live group has been silent for the live window.
//!
//! A primary that simply has nothing to send (end of a finite session, a pause) reports no new
//! index, so it is never declared by this rule; nor is one whose pacer hung (its kernel's
//! business, claims 14-16). Seen from one server, "the primary's live port is down" and "my
//! own live port is down" look the same; the rule trusts this server's ears once they have
//! heard the primary (see `docs/failover.md`, limits, and `--no-live-path-rule`).
//!
//! # The schedule
//! A fixed live window must be at least the asset's largest gap between two datagrams (a VBR
//! asset, or a playlist with a VBR clip, can be silent 50-80 ms by itself), which slows every
//! detection by as much. Where the driver knows when the datagram after the last one heard is
//! due ([`Detector::on_live_scheduled`]), the live rule follows the schedule instead: the live
//! group is silent once `w` has passed since the last arrival and `w / 2` since that due
//! time ([`DetectorConfig::scheduled_window_ns`]); in a constant-rate stream that is the same
//! instant as before, in a gap it waits for the gap.
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
    /// Also declare a failure when heartbeats report datagrams the live group never carried
    /// (the live-path rule, see the module docs). Needs [`LiveWatch::Watch`].
    pub path_rule: bool,
    /// The live window when the schedule is known (see "The schedule" in the module docs):
    /// with each arrival the driver says when the next datagram is due, and the live group
    /// counts as silent `w` after the last arrival and `w / 2` after that due time, whichever
    /// is later; [`LiveWatch::Watch`]'s fixed window (at least the asset's largest gap)
    /// stands in while the due time is not known. `None`: the fixed window only.
    pub scheduled_window_ns: Option<u64>,
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
            path_rule: true,
            scheduled_window_ns: None,
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

/// Which rule declared a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// `miss` heartbeats in a row missing (and the live group silent, when watched).
    HeartbeatsMissing,
    /// Heartbeats keep coming but report datagrams the live group never carried.
    LivePathSilent,
}

/// Why a failure was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// The rule that fired.
    pub cause: Cause,
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
        match self.reason.cause {
            Cause::HeartbeatsMissing => write!(
                f,
                "{} heartbeats missed ({} us silent)",
                self.reason.missed,
                self.reason.heartbeat_silent_ns / 1_000
            )?,
            Cause::LivePathSilent => write!(
                f,
                "live path broken: heartbeats still arrive (last {} us ago) but report \
                 datagrams the live group never carried",
                self.reason.heartbeat_silent_ns / 1_000
            )?,
        }
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
    /// When the datagram after the last one heard is due (see "The schedule").
    next_due: Option<u64>,
    last_index: Option<u64>,
    /// Highest index reported by heartbeats.
    reported: Option<u64>,
    /// Highest index seen on the live group.
    live_index: Option<u64>,
    /// `reported` when the last live datagram arrived (for live datagrams of unknown index).
    reported_at_live: Option<u64>,
    /// Arrival of the first heartbeat that reported an index the live group has not carried.
    unconfirmed_since: Option<u64>,
    /// The live group carried something since the detector was (re)armed.
    live_heard: bool,
    declared: bool,
}

impl Detector {
    /// A disarmed detector.
    pub fn new(config: DetectorConfig) -> Detector {
        Detector {
            config,
            last_heartbeat: None,
            last_live: None,
            next_due: None,
            last_index: None,
            reported: None,
            live_index: None,
            reported_at_live: None,
            unconfirmed_since: None,
            live_heard: false,
            declared: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Turns the live-path rule on or off.
    pub fn set_path_rule(&mut self, on: bool) {
        self.config.path_rule = on;
    }

    /// A heartbeat (or any authenticated message from the primary) arrived at kernel time
    /// `rx_ns`; `last_index` is the last datagram it says it sent. Arms the detector.
    pub fn on_heartbeat(&mut self, rx_ns: u64, last_index: Option<u64>) {
        match self.last_heartbeat {
            Some(t) if rx_ns <= t => {}
            Some(_) => {
                // A newer heartbeat re-arms after a declaration; the live-path rule then
                // wants fresh evidence (the live group heard again).
                if self.declared {
                    self.live_heard = false;
                    self.unconfirmed_since = None;
                }
                self.declared = false;
                self.last_heartbeat = Some(rx_ns);
            }
            None => self.last_heartbeat = Some(rx_ns),
        }
        self.note_index(last_index);
        if let Some(i) = last_index {
            self.reported = Some(self.reported.map_or(i, |r| r.max(i)));
            if self.unconfirmed_since.is_none() && !self.confirmed(i) {
                self.unconfirmed_since = Some(rx_ns);
            }
        }
    }

    /// Whether the live group carried datagram `i` (or, for live datagrams of unknown index,
    /// whether heartbeats had reported it before the last live arrival, with one datagram of
    /// slack for a heartbeat overtaking its datagram).
    fn confirmed(&self, i: u64) -> bool {
        let by_index = self.live_index.is_some_and(|l| i <= l);
        let by_time = self.reported_at_live.is_some_and(|r| i <= r + 1);
        by_index || by_time
    }

    /// A datagram of the primary arrived on the live group at kernel time `rx_ns`, with its
    /// datagram index if the driver could tell it (e.g. from the RTP sequence number).
    pub fn on_live(&mut self, rx_ns: u64, index: Option<u64>) {
        self.on_live_scheduled(rx_ns, index, None);
    }

    /// [`Self::on_live`] with the time the datagram after this one is due on the live group
    /// (same clock as `rx_ns`), when the driver knows it (see "The schedule").
    pub fn on_live_scheduled(&mut self, rx_ns: u64, index: Option<u64>, next_due: Option<u64>) {
        if self.last_live.map_or(true, |t| rx_ns > t) {
            self.last_live = Some(rx_ns);
            self.next_due = next_due;
            self.reported_at_live = self.reported;
        }
        self.live_heard = true;
        self.note_index(index);
        if let Some(i) = index {
            self.live_index = Some(self.live_index.map_or(i, |l| l.max(i)));
        }
        if self.unconfirmed_since.is_some() {
            if self.reported.map_or(true, |r| self.confirmed(r)) {
                self.unconfirmed_since = None;
            } else {
                // Still behind what heartbeats reported: count from this arrival.
                self.unconfirmed_since = Some(rx_ns);
            }
        }
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
        self.deadlines().map(|(d, _)| d)
    }

    fn path_armed(&self) -> bool {
        self.config.path_rule && self.live_heard
    }

    /// The earliest declaration instant and the rule that gives it.
    fn deadlines(&self) -> Option<(u64, Cause)> {
        let hb = self.last_heartbeat?;
        let hb_deadline = hb.saturating_add(self.config.heartbeat_window());
        let LiveWatch::Watch { window_ns } = self.config.live else {
            return Some((hb_deadline, Cause::HeartbeatsMissing));
        };
        let live = self.last_live.unwrap_or(hb);
        let live_deadline = match (self.config.scheduled_window_ns, self.next_due) {
            (Some(w), Some(due)) => live.saturating_add(w).max(due.saturating_add(w / 2)),
            _ => live.saturating_add(window_ns),
        };
        let by_heartbeats = hb_deadline.max(live_deadline);
        let by_path = match (self.path_armed(), self.last_live, self.unconfirmed_since) {
            (true, Some(last_live), Some(since)) => Some(
                last_live
                    .saturating_add(window_ns)
                    .max(since.saturating_add(self.config.period_ns)),
            ),
            _ => None,
        };
        Some(match by_path {
            Some(p) if p < by_heartbeats => (p, Cause::LivePathSilent),
            _ => (by_heartbeats, Cause::HeartbeatsMissing),
        })
    }

    /// Declares a failure if the rule holds at `now` (once per arming). Call after feeding
    /// every arrival the sockets hold.
    pub fn poll(&mut self, now: u64) -> Option<Declaration> {
        if self.declared {
            return None;
        }
        let (deadline, cause) = self.deadlines()?;
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
                cause,
                missed: heartbeat_silent_ns / self.config.period_ns.max(1),
                heartbeat_silent_ns,
                live_silent_ns,
            },
            // A broken live path: viewers got only what the live group carried, so the
            // switch continues from there (heartbeats report datagrams that never arrived).
            last_index: match cause {
                Cause::HeartbeatsMissing => self.last_index,
                Cause::LivePathSilent => self.live_index.or(self.reported_at_live),
            },
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
            path_rule: true,
            scheduled_window_ns: None,
        }
    }

    /// With the schedule known, a gap in the stream is waited out but no more: the live
    /// group counts as silent `w` after the last arrival or `w / 2` after the next datagram's
    /// due time, whichever is later; without a due time the fixed window stands in.
    #[test]
    fn the_schedule_waits_out_a_gap_and_no_more() {
        let mut c = cfg(LiveWatch::Watch { window_ns: 80 * MS });
        c.scheduled_window_ns = Some(6 * MS);
        // Constant rate: the next datagram due 2 ms after the last: silent at last + 6 ms.
        let mut d = Detector::new(c);
        d.on_heartbeat(0, Some(1));
        d.on_live_scheduled(MS, Some(1), Some(3 * MS));
        assert_eq!(d.next_deadline(), Some(7 * MS));
        assert!(d.poll(7 * MS - 1).is_none());
        assert!(d.poll(7 * MS).is_some());
        // A 50 ms gap: silent 3 ms after the next datagram was due.
        let mut d = Detector::new(c);
        d.on_heartbeat(0, Some(1));
        d.on_live_scheduled(MS, Some(1), Some(51 * MS));
        assert_eq!(d.next_deadline(), Some(54 * MS));
        assert!(d.poll(53 * MS).is_none());
        // The datagram arrives late but within the window: nothing declared, re-armed on it.
        d.on_heartbeat(52 * MS, Some(2));
        d.on_live_scheduled(53 * MS, Some(2), Some(55 * MS));
        assert!(d.poll(56 * MS).is_none());
        // No due time known: the fixed window.
        let mut d = Detector::new(c);
        d.on_heartbeat(0, Some(1));
        d.on_live(MS, Some(1));
        assert_eq!(d.next_deadline(), Some(81 * MS));
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

    fn watch() -> Detector {
        Detector::new(cfg(LiveWatch::Watch { window_ns: 6 * MS }))
    }

    /// Heartbeats every 2 ms and live datagrams every 1 ms (index k) until `cut_ms`; after
    /// it heartbeats keep coming (reporting ever newer indices) but the live group is silent.
    fn broken_live_path(
        d: &mut Detector,
        cut_ms: u64,
        until_ms: u64,
    ) -> Option<(u64, Declaration)> {
        for t in 0..=until_ms {
            if t <= cut_ms {
                d.on_live(t * MS, Some(t));
            }
            if t % 2 == 0 {
                d.on_heartbeat(t * MS + 10_000, Some(t));
            }
            if let Some(decl) = d.poll(t * MS + 20_000) {
                return Some((t, decl));
            }
        }
        None
    }

    #[test]
    fn live_path_rule_declares_a_primary_whose_live_path_broke() {
        let mut d = watch();
        let (t, decl) = broken_live_path(&mut d, 100, 200).expect("declared");
        // Live silent from 100 ms: declared at 106 ms (window 6 ms), heartbeats never missed.
        assert_eq!(t, 106);
        assert_eq!(decl.reason.cause, Cause::LivePathSilent);
        assert_eq!(decl.reason.live_silent_ns, Some(6 * MS + 20_000));
        assert!(decl.reason.heartbeat_silent_ns < 2 * MS);
        // Viewers got up to datagram 100: the switch continues from there, not from what
        // the heartbeats say the primary sent into its dead port.
        assert_eq!(decl.last_index, Some(100));
        assert!(decl.to_string().contains("live path broken"), "{decl}");
    }

    #[test]
    fn live_path_rule_can_be_turned_off() {
        let mut c = cfg(LiveWatch::Watch { window_ns: 6 * MS });
        c.path_rule = false;
        let mut d = Detector::new(c);
        assert_eq!(broken_live_path(&mut d, 100, 300), None);
        // Without live watching the rule has nothing to judge by.
        let mut d = Detector::new(cfg(LiveWatch::Unavailable));
        assert_eq!(broken_live_path(&mut d, 100, 300), None);
    }

    #[test]
    fn a_primary_with_nothing_to_send_is_not_declared() {
        // Live datagrams stop at 100 ms and heartbeats keep reporting index 100: the end of a
        // finite session, or a pacer hang (the primary kernel's business).
        let mut d = watch();
        for t in 0..=300u64 {
            if t <= 100 {
                d.on_live(t * MS, Some(t));
            }
            if t % 2 == 0 {
                d.on_heartbeat(t * MS + 10_000, Some(t.min(100)));
            }
            assert_eq!(d.poll(t * MS + 20_000), None, "t={t}");
        }
    }

    #[test]
    fn the_rule_needs_ears_proven_on_the_live_group() {
        // A secondary that never heard the live group (its own path may be the broken one)
        // does not use the rule.
        let mut d = watch();
        for t in 0..=300u64 {
            if t % 2 == 0 {
                d.on_heartbeat(t * MS, Some(t));
            }
            assert_eq!(d.poll(t * MS + 20_000), None, "t={t}");
        }
    }

    #[test]
    fn a_late_datagram_inside_the_window_is_not_a_broken_path() {
        // The heartbeat reporting 101 arrives at 100.01 ms; datagram 101 arrives 5 ms late.
        let mut d = watch();
        for t in 0..=100u64 {
            d.on_live(t * MS, Some(t));
            if t % 2 == 0 {
                d.on_heartbeat(t * MS + 10_000, Some(t));
            }
        }
        d.on_heartbeat(100 * MS + 10_000, Some(101));
        assert_eq!(d.poll(105 * MS), None);
        d.on_live(105 * MS, Some(101));
        assert_eq!(d.poll(110 * MS), None);
        for t in 106..=300u64 {
            d.on_live(t * MS, Some(t - 4));
            if t % 2 == 0 {
                d.on_heartbeat(t * MS + 10_000, Some(t - 4));
            }
            assert_eq!(d.poll(t * MS + 20_000), None, "t={t}");
        }
    }

    #[test]
    fn live_datagrams_of_unknown_index_still_count() {
        // Raw UDP datagrams the driver could not index (index None): the rule falls back on
        // what heartbeats had reported when the last live datagram arrived.
        let mut d = watch();
        for t in 0..=100u64 {
            d.on_live(t * MS, None);
            if t % 2 == 0 {
                d.on_heartbeat(t * MS + 10_000, Some(t));
            }
            assert_eq!(d.poll(t * MS + 20_000), None, "t={t}");
        }
        let mut declared = None;
        for t in 101..=200u64 {
            if t % 2 == 0 {
                d.on_heartbeat(t * MS + 10_000, Some(t));
            }
            if let Some(x) = d.poll(t * MS + 20_000) {
                declared = Some((t, x.reason.cause));
                break;
            }
        }
        assert_eq!(declared, Some((106, Cause::LivePathSilent)));
    }

    #[test]
    fn after_a_declaration_the_rule_wants_the_live_group_heard_again() {
        let mut d = watch();
        let (t, _) = broken_live_path(&mut d, 100, 200).expect("declared");
        // Heartbeats keep re-arming; the live group stays silent: no second declaration.
        for k in t + 1..=400 {
            if k % 2 == 0 {
                d.on_heartbeat(k * MS + 10_000, Some(k));
            }
            assert_eq!(d.poll(k * MS + 20_000), None, "k={k}");
        }
        // Heard again, then broken again: declared again.
        d.on_live(401 * MS, Some(401));
        d.on_heartbeat(402 * MS, Some(410));
        let decl = d.poll(407 * MS + 1).expect("declared again");
        assert_eq!(decl.reason.cause, Cause::LivePathSilent);
    }

    #[test]
    fn a_killed_primary_is_still_declared_by_missed_heartbeats() {
        let mut d = watch();
        for t in 0..=100u64 {
            d.on_live(t * MS, Some(t));
            if t % 2 == 0 {
                d.on_heartbeat(t * MS + 10_000, Some(t));
            }
        }
        let decl = d.poll(106 * MS + 10_000).expect("declared");
        assert_eq!(decl.reason.cause, Cause::HeartbeatsMissing);
        assert_eq!(decl.reason.missed, 3);
    }
}
