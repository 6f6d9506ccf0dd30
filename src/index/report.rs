//! What a scan found besides the offset map: the program structure, per-PID packet counts,
//! PCR spacing, and the non-fatal problems (ETSI TR 101 290 priority 1/2 style) that
//! `tandem probe` reports.

use serde::Serialize;

use crate::ts::packet::Pid;

/// At most this many problems are kept per scan; the rest are only counted.
pub const MAX_PROBLEMS: usize = 10_000;

fn ser_pid<S: serde::Serializer>(p: &Pid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(p.value())
}

fn ser_opt_pid<S: serde::Serializer>(p: &Option<Pid>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&p.value()),
        None => s.serialize_none(),
    }
}

/// A non-fatal defect of the asset. Byte offsets are file offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Sync lost (TR 101 290 1.1/1.2): the 188-byte alignment broke at `byte_offset`;
    /// `skipped` bytes were dropped until packets were aligned again (or the file ended).
    SyncLoss {
        /// Where the expected sync byte was missing.
        byte_offset: u64,
        /// Bytes skipped before the next aligned packet.
        skipped: u64,
    },
    /// The file ends with a partial packet of `bytes` bytes at `byte_offset` (dropped).
    Truncated {
        /// Offset of the partial packet.
        byte_offset: u64,
        /// Its length.
        bytes: u64,
    },
    /// Continuity-counter error (TR 101 290 1.4, ISO/IEC 13818-1 §2.4.3.3).
    CcError {
        /// The PID.
        #[serde(serialize_with = "ser_pid")]
        pid: Pid,
        /// Offset of the packet with the unexpected CC.
        byte_offset: u64,
        /// Index of that packet among valid packets.
        packet: u64,
        /// The CC that should have followed.
        expected: u8,
        /// The CC found.
        found: u8,
    },
    /// PCR discontinuity (TR 101 290 2.3b): a step outside 0..=100 ms, or a PCR flagged
    /// by `discontinuity_indicator` (ISO/IEC 13818-1 §2.4.3.5). The timeline is carried
    /// across it at the previous rate.
    PcrDiscontinuity {
        /// The PCR PID.
        #[serde(serialize_with = "ser_pid")]
        pid: Pid,
        /// Offset of the packet with the new PCR.
        byte_offset: u64,
        /// Its index among valid packets.
        packet: u64,
        /// `discontinuity_indicator` was set.
        flagged: bool,
        /// PCR step from the previous PCR, 27 MHz ticks (negative: backwards).
        step_ticks: i64,
    },
    /// An `adaptation_field_length` larger than the packet (§2.4.3.5); the packet is kept
    /// as is but not parsed.
    BadAdaptationField {
        /// The PID.
        #[serde(serialize_with = "ser_pid")]
        pid: Pid,
        /// Offset of the packet.
        byte_offset: u64,
    },
    /// A PAT/PMT section that failed to parse (CRC, length).
    Psi {
        /// The PID.
        #[serde(serialize_with = "ser_pid")]
        pid: Pid,
        /// Offset of the packet completing the section.
        byte_offset: u64,
        /// What was wrong.
        message: String,
    },
    /// A PAT or PMT that differs from the one in force (a new `version_number`, ISO/IEC
    /// 13818-1 §2.4.4.3 / §2.4.4.8, or new content under the old one): not an error of
    /// the stream, but what changed and where (the played program's new video PID takes
    /// the frame starts from here).
    PsiChange {
        /// The PAT or PMT PID.
        #[serde(serialize_with = "ser_pid")]
        pid: Pid,
        /// Offset of the packet completing the new section.
        byte_offset: u64,
        /// "PAT" or "PMT".
        table: String,
        /// The program (PMT).
        program: Option<u16>,
        /// `version_number` before.
        version_from: u8,
        /// `version_number` now.
        version_to: u8,
        /// What changed.
        detail: String,
    },
    /// The PMT's PCR_PID carries fewer than two PCRs; another PID's PCRs were used.
    PcrPidFallback {
        /// PCR_PID named by the PMT (absent when there is no PMT or it says 0x1FFF).
        #[serde(serialize_with = "ser_opt_pid")]
        pmt_pcr_pid: Option<Pid>,
        /// The PID whose PCRs define the timeline.
        #[serde(serialize_with = "ser_pid")]
        used: Pid,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::SyncLoss {
                byte_offset,
                skipped,
            } => write!(
                f,
                "sync loss at byte {byte_offset}: {skipped} bytes skipped to the next aligned packet"
            ),
            Problem::Truncated { byte_offset, bytes } => write!(
                f,
                "truncated tail: partial packet of {bytes} bytes at byte {byte_offset} dropped"
            ),
            Problem::CcError {
                pid,
                byte_offset,
                expected,
                found,
                ..
            } => write!(
                f,
                "CC error on PID {pid} at byte {byte_offset}: expected {expected}, found {found}"
            ),
            Problem::PcrDiscontinuity {
                pid,
                byte_offset,
                flagged,
                step_ticks,
                ..
            } => write!(
                f,
                "PCR discontinuity on PID {pid} at byte {byte_offset}: step {:.3} ms{}",
                *step_ticks as f64 / 27_000.0,
                if *flagged {
                    " (discontinuity_indicator set)"
                } else {
                    ""
                }
            ),
            Problem::BadAdaptationField { pid, byte_offset } => write!(
                f,
                "bad adaptation_field_length on PID {pid} at byte {byte_offset}"
            ),
            Problem::Psi {
                pid,
                byte_offset,
                message,
            } => write!(f, "PSI error on PID {pid} at byte {byte_offset}: {message}"),
            Problem::PsiChange {
                pid,
                byte_offset,
                table,
                program,
                version_from,
                version_to,
                detail,
            } => {
                write!(f, "{table}")?;
                if let Some(p) = program {
                    write!(f, " of program {p}")?;
                }
                write!(
                    f,
                    " (PID {pid}) changed at byte {byte_offset}: version {version_from} -> {version_to}"
                )?;
                if !detail.is_empty() {
                    write!(f, "; {detail}")?;
                }
                Ok(())
            }
            Problem::PcrPidFallback { pmt_pcr_pid, used } => match pmt_pcr_pid {
                Some(p) => write!(
                    f,
                    "PMT PCR_PID {p} carries no usable PCR; using the PCRs of PID {used}"
                ),
                None => write!(
                    f,
                    "no PCR_PID in the PMT; using the PCRs of PID {used} (first PID carrying PCRs)"
                ),
            },
        }
    }
}

/// One program of the PAT with its PMT (ISO/IEC 13818-1 §2.4.4.3, §2.4.4.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramInfo {
    /// `program_number`.
    pub program_number: u16,
    /// PID of its PMT.
    #[serde(serialize_with = "ser_pid")]
    pub pmt_pid: Pid,
    /// `PCR_PID` from the PMT (None until the PMT was seen, or when it says 0x1FFF).
    #[serde(serialize_with = "ser_opt_pid")]
    pub pcr_pid: Option<Pid>,
    /// Elementary streams: every stream its PMT listed, in order of first appearance (a
    /// later PMT version adds its new streams; empty when the PMT was never seen).
    pub streams: Vec<crate::ts::psi::EsInfo>,
}

/// Packets seen on one PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PidCount {
    /// The PID.
    #[serde(serialize_with = "ser_pid")]
    pub pid: Pid,
    /// Packets in one pass.
    pub packets: u64,
}

/// Spacing of consecutive PCRs on the PCR PID (continuous steps only), 27 MHz ticks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PcrSpacing {
    /// Smallest step.
    pub min: u64,
    /// Mean step.
    pub mean: f64,
    /// Largest step.
    pub max: u64,
}

/// Everything a scan found besides the map itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Bytes scanned (the file size).
    pub bytes: u64,
    /// Programs of the PAT in order (empty when no PAT was found).
    pub programs: Vec<ProgramInfo>,
    /// Program whose PCR/video were used, if a PMT was found.
    pub program: Option<u16>,
    /// Packet count per PID, sorted by PID.
    pub pids: Vec<PidCount>,
    /// PCR spacing on the PCR PID.
    pub pcr_spacing: Option<PcrSpacing>,
    /// Median spacing of video PES timestamps (DTS, else PTS), 90 kHz ticks.
    pub frame_delta_90k: Option<u64>,
    /// Problems found, in file order per kind (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`] (counted, not kept).
    pub problems_dropped: u64,
}
