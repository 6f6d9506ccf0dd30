//! Asset analysis for `tandem probe`: turns one scan (`index::Built`) into the figures a
//! broadcast engineer checks before playing a file — programs and PIDs (ISO/IEC 13818-1
//! §2.4.4), the PCR PID and spacing (TR 101 290 2.3), bitrate from the PCR timeline, frame
//! rate, duration, and every problem found.
//!
//! [`analyse`] is pure; `io::asset::probe` reads the file.

use serde::Serialize;

use crate::index::report::{PcrSpacing, Problem};
use crate::index::Built;
use crate::ts::packet::{Pid, PACKET_SIZE};
use crate::ts::pcr::HZ;
use crate::ts::psi::stream_type_name;

/// One PID of the asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PidInfo {
    /// The PID.
    pub pid: u16,
    /// What it carries: "PAT", "PMT", "null", a stream type name, or "unknown".
    pub kind: String,
    /// `stream_type` from the PMT, for elementary streams.
    pub stream_type: Option<u8>,
    /// Packets in the file.
    pub packets: u64,
    /// Share of all packets, percent.
    pub percent: f64,
    /// Carries the PCRs of the timeline.
    pub pcr: bool,
}

/// One program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramOut {
    /// `program_number`.
    pub program_number: u16,
    /// PMT PID.
    pub pmt_pid: u16,
    /// PCR_PID of the PMT (None: 0x1FFF or PMT not found).
    pub pcr_pid: Option<u16>,
    /// Elementary streams: (PID, stream_type, name).
    pub streams: Vec<StreamOut>,
}

/// One elementary stream of a program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamOut {
    /// Elementary PID.
    pub pid: u16,
    /// `stream_type`.
    pub stream_type: u8,
    /// Its name.
    pub kind: &'static str,
}

/// A problem with its human message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemOut {
    /// The problem (tagged by `kind`).
    #[serde(flatten)]
    pub problem: Problem,
    /// One-line description.
    pub message: String,
}

/// Identity as printed: size and the hash in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityOut {
    /// Bytes.
    pub size: u64,
    /// XXH3-128, 32 hex digits.
    pub xxh3_128: String,
}

/// PCR spacing in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpacingMs {
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Largest.
    pub max: f64,
}

/// Everything `tandem probe` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// Size and hash.
    pub identity: IdentityOut,
    /// Valid TS packets.
    pub packets: u64,
    /// 7-packet datagrams per pass.
    pub datagrams: u64,
    /// Aligned runs of packets (more than one after a sync loss).
    pub segments: usize,
    /// Duration on the PCR timeline, seconds (`time(packets)`).
    pub duration_s: f64,
    /// Loop period (duration rounded up to a 90 kHz tick), 27 MHz ticks.
    pub loop_period_ticks: u64,
    /// Bits of all valid packets / duration.
    pub bitrate_bps: f64,
    /// Program followed.
    pub program: Option<u16>,
    /// All programs of the PAT.
    pub programs: Vec<ProgramOut>,
    /// PIDs seen, sorted.
    pub pids: Vec<PidInfo>,
    /// PID whose PCRs define the timeline.
    pub pcr_pid: u16,
    /// PCRs on it.
    pub pcr_count: usize,
    /// Spacing of consecutive PCRs (discontinuities excluded).
    pub pcr_spacing_ms: Option<SpacingMs>,
    /// Video PID.
    pub video_pid: Option<u16>,
    /// Video stream type name.
    pub video_kind: Option<&'static str>,
    /// Frames per second (e.g. 29.97002997).
    pub frame_rate: Option<f64>,
    /// The same as a rational (numerator, denominator).
    pub frame_rate_rational: Option<(u32, u32)>,
    /// Duration of one frame, ms.
    pub frame_duration_ms: Option<f64>,
    /// Frame starts (PES starts on the video PID).
    pub frames: u32,
    /// Problems found, in file order.
    pub problems: Vec<ProblemOut>,
    /// Problems beyond the kept maximum.
    pub problems_dropped: u64,
}

/// Reserved and DVB PIDs (ISO/IEC 13818-1 table 2-3, ETSI EN 300 468 §5.1.3).
fn well_known(pid: u16) -> &'static str {
    match pid {
        0x01 => "CAT",
        0x02 => "TSDT",
        0x10 => "NIT/ST (DVB)",
        0x11 => "SDT/BAT (DVB)",
        0x12 => "EIT (DVB)",
        0x13 => "RST (DVB)",
        0x14 => "TDT/TOT (DVB)",
        _ => "unknown (not in PMT)",
    }
}

fn ms(ticks: f64) -> f64 {
    ticks * 1000.0 / HZ as f64
}

/// The figures of one scan.
pub fn analyse(b: &Built) -> Probe {
    let m = &b.map;
    let r = &b.report;
    let time = m.packet_time(m.packets);
    let duration_s = time as f64 / HZ as f64;
    let bits = m.packets as f64 * (PACKET_SIZE * 8) as f64;
    let bitrate_bps = if duration_s > 0.0 {
        bits / duration_s
    } else {
        0.0
    };
    let streams: Vec<(u16, u8)> = r
        .programs
        .iter()
        .flat_map(|p| p.streams.iter().map(|s| (s.pid.value(), s.stream_type)))
        .collect();
    let pids = r
        .pids
        .iter()
        .map(|c| {
            let v = c.pid.value();
            let st = streams.iter().find(|s| s.0 == v).map(|s| s.1);
            let kind = if c.pid == Pid::PAT {
                "PAT".to_string()
            } else if c.pid == Pid::NULL {
                "null".to_string()
            } else if r.programs.iter().any(|p| p.pmt_pid == c.pid) {
                "PMT".to_string()
            } else if let Some(t) = st {
                stream_type_name(t).to_string()
            } else if c.pid == m.pcr_pid {
                "PCR only".to_string()
            } else {
                well_known(v).to_string()
            };
            PidInfo {
                pid: v,
                kind,
                stream_type: st,
                packets: c.packets,
                percent: 100.0 * c.packets as f64 / m.packets.max(1) as f64,
                pcr: c.pid == m.pcr_pid,
            }
        })
        .collect();
    let programs = r
        .programs
        .iter()
        .map(|p| ProgramOut {
            program_number: p.program_number,
            pmt_pid: p.pmt_pid.value(),
            pcr_pid: p.pcr_pid.map(|x| x.value()),
            streams: p
                .streams
                .iter()
                .map(|s| StreamOut {
                    pid: s.pid.value(),
                    stream_type: s.stream_type,
                    kind: s.kind(),
                })
                .collect(),
        })
        .collect();
    let video_kind = m.video_pid.and_then(|v| {
        streams
            .iter()
            .find(|s| s.0 == v.value())
            .map(|s| stream_type_name(s.1))
    });
    let fr = m.frame_rate.map(|(n, d)| n as f64 / d as f64);
    Probe {
        identity: IdentityOut {
            size: m.identity.size,
            xxh3_128: format!("{:032x}", m.identity.hash),
        },
        packets: m.packets,
        datagrams: m.datagram_count(),
        segments: m.segments.len(),
        duration_s,
        loop_period_ticks: m.loop_period,
        bitrate_bps,
        program: r.program,
        programs,
        pids,
        pcr_pid: m.pcr_pid.value(),
        pcr_count: m.anchors.len(),
        pcr_spacing_ms: r.pcr_spacing.map(|s: PcrSpacing| SpacingMs {
            min: ms(s.min as f64),
            mean: ms(s.mean),
            max: ms(s.max as f64),
        }),
        video_pid: m.video_pid.map(|p| p.value()),
        video_kind,
        frame_rate: fr,
        frame_rate_rational: m.frame_rate,
        frame_duration_ms: m.frame_rate.map(|(n, d)| 1000.0 * d as f64 / n as f64),
        frames: m.frames,
        problems: r
            .problems
            .iter()
            .map(|p| ProblemOut {
                problem: p.clone(),
                message: p.to_string(),
            })
            .collect(),
        problems_dropped: r.problems_dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::synth::{synth_ts, SynthOptions};
    use crate::index::{build_bytes, BuildOptions};

    #[test]
    fn figures_of_a_synthetic_stream() {
        let o = SynthOptions::default();
        let mut data = synth_ts(&o);
        data.splice(1000 * 188..1000 * 188, [0u8; 10]);
        let p = analyse(&build_bytes(&data, &BuildOptions::default()).unwrap());
        // 188 bytes every 18_048 ticks = 2.25 Mb/s exactly.
        assert!(
            (p.bitrate_bps - 2_250_000.0).abs() < 1e-6,
            "{}",
            p.bitrate_bps
        );
        assert!((p.duration_s - 2000.0 * 18_048.0 / 27e6).abs() < 1e-9);
        assert_eq!(p.frame_rate, Some(25.0));
        assert_eq!(p.frame_duration_ms, Some(40.0));
        assert_eq!(p.pcr_pid, 0x100);
        let sp = p.pcr_spacing_ms.unwrap();
        assert!((sp.mean - 20.0 * 18_048.0 / 27_000.0).abs() < 1e-9);
        let kinds: Vec<(u16, &str)> = p.pids.iter().map(|x| (x.pid, x.kind.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (0, "PAT"),
                (0x100, "H.264/AVC video"),
                (0x1000, "PMT"),
                (0x1FFF, "null")
            ]
        );
        assert_eq!(p.problems.len(), 1);
        assert_eq!(
            p.problems[0].message,
            "sync loss at byte 188000: 10 bytes skipped to the next aligned packet"
        );
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["problems"][0]["kind"], "sync_loss");
        assert_eq!(j["problems"][0]["byte_offset"], 188_000);
        assert_eq!(j["video_pid"], 256);
    }
}
