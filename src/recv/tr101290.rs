//! ETSI TR 101 290 checks on the received transport packets: priority 1 (1.1 sync loss,
//! 1.2 sync byte error, 1.3a PAT error, 1.4 continuity count error, 1.5a PMT error) and
//! the priority 2 checks a failover can trip (2.1 transport error, 2.2 CRC error,
//! 2.3a PCR repetition, 2.3b PCR discontinuity indicator error).
//!
//! Timing checks use receive times (`rx_ns`), as an IP probe does: PAT/PMT absence and PCR
//! repetition are the intervals a receiver experiences.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::{At, Check};
use crate::ts::packet::{Cc, Packet, PacketError, Pid, SYNC_BYTE};
use crate::ts::pcr::{Pcr, HZ};
use crate::ts::psi::{self, PsiError, SectionAssembler};

/// Consecutive correct sync bytes that acquire sync (TR 101 290 §5.2.1, 1.1: "five").
pub const SYNC_ACQUIRE: u32 = 5;
/// Consecutive corrupted sync bytes that lose sync (1.1: "two or more").
pub const SYNC_LOSE: u32 = 2;
/// 1.3a / 1.5a: PAT and each PMT must occur at least every 0.5 s.
pub const PSI_MAX_INTERVAL_NS: u64 = 500_000_000;
/// 2.3a: PCRs of one PID at most 40 ms apart.
pub const PCR_REPETITION_NS: u64 = 40_000_000;
/// 2.3b: a PCR step outside 0..=100 ms without `discontinuity_indicator` is an error.
pub const PCR_MAX_STEP_TICKS: u64 = HZ / 10;

/// Counts of every check, with the first occurrences (the JSON `tr101290` object).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tr101290 {
    /// 1.1 TS sync loss: two or more consecutive corrupted sync bytes after sync was held.
    pub sync_loss: Check,
    /// 1.2 Sync byte error: a packet whose first byte is not 0x47.
    pub sync_byte_error: Check,
    /// 1.3a PAT error: no PAT section for more than 0.5 s, a table_id other than 0x00 on
    /// PID 0, or a scrambled PID 0 packet.
    pub pat_error: Check,
    /// 1.4 Continuity count error: lost, out-of-order, or more-than-once repeated packet.
    pub cc_error: Check,
    /// 1.5a PMT error: no PMT section for more than 0.5 s on a PMT PID of the PAT, or a
    /// scrambled PMT packet.
    pub pmt_error: Check,
    /// 2.1 Transport error: `transport_error_indicator` set.
    pub transport_error: Check,
    /// 2.2 CRC error in a PAT or PMT section (also truncated sections).
    pub crc_error: Check,
    /// 2.3a PCR repetition error: more than 40 ms between PCR arrivals on one PID.
    pub pcr_repetition_error: Check,
    /// 2.3b PCR discontinuity indicator error: PCR step outside 0..100 ms, not flagged.
    pub pcr_discontinuity_error: Check,
    /// Not a TR 101 290 check: a packet with a sync byte whose `adaptation_field_length`
    /// runs past its end (ISO/IEC 13818-1 §2.4.3.5); it is skipped.
    pub malformed_packet: Check,
}

/// Per-PID statistics (the JSON `pids` array).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PidStats {
    /// The PID.
    pub pid: u16,
    /// Packets received.
    pub packets: u64,
    /// Continuity count errors.
    pub cc_errors: u64,
    /// Packets missing according to the counter (sum of CC gaps, a lower bound: mod 16).
    pub cc_lost_packets: u64,
    /// Packets carrying a PCR.
    pub pcrs: u64,
    /// Packets with `discontinuity_indicator` set.
    pub discontinuities: u64,
    /// Scrambled packets.
    pub scrambled: u64,
}

#[derive(Debug, Default)]
struct PidState {
    stats: PidStats,
    cc: Option<Cc>,
    repeats: u8,
    generation: u32,
    last_pcr: Option<(Pcr, u64)>,
}

/// What the analyzer needs to know about one checked packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSummary {
    /// PID of the packet.
    pub pid: Pid,
    /// Its PCR, if it carries one.
    pub pcr: Option<Pcr>,
    /// `discontinuity_indicator`.
    pub discontinuity: bool,
    /// A continuity count error was found; the number of packets the counter says are
    /// missing (0 for an out-of-order or repeated packet).
    pub cc_error_lost: Option<u8>,
    /// This was the first continuity check on the PID since the generation changed (the
    /// analyzer bumps the generation at each change of sender).
    pub first_since_generation: bool,
}

#[derive(Debug, Default)]
struct PsiWatch {
    asm: SectionAssembler,
    /// Last complete table of the expected kind, or when the watch started.
    last_ns: u64,
    flagged: bool,
}

/// The TR 101 290 state machine over all PIDs.
#[derive(Debug, Default)]
pub struct TsChecks {
    /// Results so far.
    pub report: Tr101290,
    in_sync: bool,
    good_run: u32,
    bad_run: u32,
    pids: BTreeMap<u16, PidState>,
    pat: Option<PsiWatch>,
    pmts: BTreeMap<u16, PsiWatch>,
}

impl TsChecks {
    /// Statistics of every PID seen, in PID order.
    pub fn pid_stats(&self) -> Vec<PidStats> {
        self.pids.values().map(|s| s.stats.clone()).collect()
    }

    /// PMT PIDs currently announced by the PAT.
    pub fn pmt_pids(&self) -> Vec<u16> {
        self.pmts.keys().copied().collect()
    }

    /// Checks one 188-byte chunk. Returns `None` when it has no valid header (bad sync
    /// byte, bad adaptation field length); `generation` is the analyzer's count of sender
    /// changes.
    pub fn packet(&mut self, chunk: &[u8], at: At, generation: u32) -> Option<PacketSummary> {
        // 1.1 / 1.2: sync state machine over consecutive packets.
        let first = chunk.first().copied().unwrap_or(0);
        if first != SYNC_BYTE {
            self.report
                .sync_byte_error
                .hit(at, None, || format!("sync byte 0x{first:02x}"));
            self.good_run = 0;
            self.bad_run += 1;
            if self.in_sync && self.bad_run >= SYNC_LOSE {
                self.in_sync = false;
                self.report.sync_loss.hit(at, None, || {
                    format!("{SYNC_LOSE} consecutive packets without sync byte")
                });
            }
            return None;
        }
        self.bad_run = 0;
        self.good_run += 1;
        if self.good_run >= SYNC_ACQUIRE {
            self.in_sync = true;
        }
        let pkt = match Packet::new_checked(chunk) {
            Ok(p) => p,
            Err(PacketError::BadAdaptationLength(n)) => {
                self.report.malformed_packet.hit(at, None, || {
                    format!("adaptation_field_length {n} exceeds the packet")
                });
                return None;
            }
            Err(_) => return None,
        };
        let pid = pkt.pid();
        if pkt.tei() {
            self.report.transport_error.hit(at, Some(pid.value()), || {
                "transport_error_indicator set".into()
            });
        }
        let st = self.pids.entry(pid.value()).or_default();
        st.stats.pid = pid.value();
        st.stats.packets += 1;
        let discontinuity = pkt.discontinuity();
        if discontinuity {
            st.stats.discontinuities += 1;
        }
        if pkt.scrambled() {
            st.stats.scrambled += 1;
        }
        let (cc_error_lost, first_since_generation) =
            check_cc(st, &pkt, generation, at, &mut self.report.cc_error);
        let pcr = pkt.pcr();
        if let Some(pcr) = pcr {
            st.stats.pcrs += 1;
            check_pcr(st, pid, pcr, discontinuity, at, &mut self.report);
        }
        self.psi(&pkt, at);
        Some(PacketSummary {
            pid,
            pcr,
            discontinuity,
            cc_error_lost,
            first_since_generation,
        })
    }

    /// PAT and PMT assembly (1.3a, 1.5a, 2.2).
    fn psi(&mut self, pkt: &Packet<'_>, at: At) {
        let pid = pkt.pid();
        if pid == Pid::PAT {
            if pkt.scrambled() {
                self.report
                    .pat_error
                    .hit(at, Some(0), || "scrambled packet on PID 0".into());
                return;
            }
            let watch = self.pat.get_or_insert_with(|| PsiWatch {
                last_ns: at.rx_ns,
                ..Default::default()
            });
            for sec in watch.asm.push(pkt) {
                match psi::parse_pat(&sec) {
                    Ok(entries) => {
                        watch.last_ns = at.rx_ns;
                        watch.flagged = false;
                        let wanted: Vec<u16> = entries
                            .iter()
                            .filter(|e| e.program_number != 0)
                            .map(|e| e.pid.value())
                            .collect();
                        self.pmts.retain(|p, _| wanted.contains(p));
                        for p in wanted {
                            self.pmts.entry(p).or_insert_with(|| PsiWatch {
                                last_ns: at.rx_ns,
                                ..Default::default()
                            });
                        }
                    }
                    Err(PsiError::TableId(t)) => self
                        .report
                        .pat_error
                        .hit(at, Some(0), || format!("table_id 0x{t:02x} on PID 0")),
                    Err(e) => self
                        .report
                        .crc_error
                        .hit(at, Some(0), || format!("PAT section: {e}")),
                }
            }
            return;
        }
        let Some(watch) = self.pmts.get_mut(&pid.value()) else {
            return;
        };
        if pkt.scrambled() {
            self.report
                .pmt_error
                .hit(at, Some(pid.value()), || "scrambled PMT packet".into());
            return;
        }
        for sec in watch.asm.push(pkt) {
            if sec.first() != Some(&psi::TABLE_PMT) {
                continue; // other tables may share the PID
            }
            match psi::parse_pmt(&sec) {
                Ok(_) => {
                    watch.last_ns = at.rx_ns;
                    watch.flagged = false;
                }
                Err(e) => self
                    .report
                    .crc_error
                    .hit(at, Some(pid.value()), || format!("PMT section: {e}")),
            }
        }
    }

    /// 1.3a / 1.5a absence checks at receive time `at.rx_ns`; call once per datagram.
    /// `start_ns` is the first datagram's receive time (a PAT must come within 0.5 s).
    pub fn check_psi_intervals(&mut self, at: At, start_ns: u64) {
        let pat = self.pat.get_or_insert_with(|| PsiWatch {
            last_ns: start_ns,
            ..Default::default()
        });
        let since = at.rx_ns.saturating_sub(pat.last_ns);
        if since > PSI_MAX_INTERVAL_NS && !pat.flagged {
            pat.flagged = true;
            self.report.pat_error.hit(at, Some(0), || {
                format!("no PAT for {:.0} ms", since as f64 / 1e6)
            });
        }
        for (pid, w) in self.pmts.iter_mut() {
            let since = at.rx_ns.saturating_sub(w.last_ns);
            if since > PSI_MAX_INTERVAL_NS && !w.flagged {
                w.flagged = true;
                self.report.pmt_error.hit(at, Some(*pid), || {
                    format!("no PMT for {:.0} ms", since as f64 / 1e6)
                });
            }
        }
    }
}

/// 1.4 (ISO/IEC 13818-1 §2.4.3.3): the counter increments by one per packet with payload
/// of the PID; it does not increment on adaptation-only packets; one repetition of a
/// packet is allowed ("may be transmitted twice"); `discontinuity_indicator` (§2.4.3.5)
/// allows any value. The null PID is not checked.
fn check_cc(
    st: &mut PidState,
    pkt: &Packet<'_>,
    generation: u32,
    at: At,
    check: &mut Check,
) -> (Option<u8>, bool) {
    let pid = pkt.pid();
    if pid == Pid::NULL {
        return (None, false);
    }
    let cc = pkt.cc();
    if pkt.discontinuity() {
        if pkt.has_payload() || st.cc.is_none() {
            st.cc = Some(cc);
        }
        st.repeats = 0;
        return (None, false);
    }
    if !pkt.has_payload() {
        return (None, false);
    }
    let first = st.generation != generation;
    st.generation = generation;
    let Some(prev) = st.cc else {
        st.cc = Some(cc);
        return (None, first);
    };
    let lost = if cc == prev {
        st.repeats += 1;
        if st.repeats <= 1 {
            return (None, first);
        }
        check.hit(at, Some(pid.value()), || {
            format!("CC {} repeated more than once", cc.value())
        });
        0
    } else if cc.follows(prev) {
        st.repeats = 0;
        st.cc = Some(cc);
        return (None, first);
    } else {
        let lost = cc.since(prev) - 1;
        check.hit(at, Some(pid.value()), || {
            format!(
                "expected CC {}, got {} ({} packets missing or out of order)",
                prev.add(1).value(),
                cc.value(),
                lost
            )
        });
        st.repeats = 0;
        st.cc = Some(cc);
        lost
    };
    st.stats.cc_errors += 1;
    st.stats.cc_lost_packets += lost as u64;
    (Some(lost), first)
}

/// 2.3a (arrival interval) and 2.3b (value step) for one PCR.
fn check_pcr(st: &mut PidState, pid: Pid, pcr: Pcr, disc: bool, at: At, r: &mut Tr101290) {
    if let Some((prev, prev_ns)) = st.last_pcr {
        let interval = at.rx_ns.saturating_sub(prev_ns);
        if interval > PCR_REPETITION_NS {
            r.pcr_repetition_error.hit(at, Some(pid.value()), || {
                format!("{:.1} ms since the previous PCR", interval as f64 / 1e6)
            });
        }
        let step = pcr.ticks_since(prev);
        if !disc && step > PCR_MAX_STEP_TICKS {
            r.pcr_discontinuity_error.hit(at, Some(pid.value()), || {
                let ms = if step > crate::ts::pcr::PCR_MODULUS / 2 {
                    -((prev.ticks_since(pcr)) as f64) / 27_000.0
                } else {
                    step as f64 / 27_000.0
                };
                format!("PCR step {ms:.1} ms without discontinuity_indicator")
            });
        }
    }
    st.last_pcr = Some((pcr, at.rx_ns));
}
