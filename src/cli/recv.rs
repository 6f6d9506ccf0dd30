//! `tandem recv URL`: receive a stream and measure it (the project's instrument).
//!
//! ```text
//! tandem recv udp://239.1.1.1:5000 --seconds 10 --json > report.json
//! tandem recv rtp://239.1.1.1:5000 --iface 127.0.0.1 --capture out.ts
//! ```
//! The JSON layout is documented in [`crate::recv`].

use std::path::PathBuf;
use std::time::Duration;

use crate::net::recv_socket::{open_recv_socket, run_on, stop_on_signals, RecvConfig};
use crate::net::sockets::resolve_iface;
use crate::net::url::Dest;
use crate::recv::stats::{Check, Percentiles};
use crate::recv::Report;

use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};

/// Flags of `tandem recv`.
#[derive(Debug, clap::Args)]
pub struct RecvArgs {
    /// What to receive: udp://GROUP:PORT (raw TS) or rtp://GROUP:PORT (RFC 2250).
    pub url: String,
    /// Interface to join the group on: an IPv4 address of this host or a name (lo, eth0).
    #[arg(long, default_value = "127.0.0.1", value_name = "NAME|ADDR")]
    pub iface: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Print one JSON object (schema tandem.recv/1) instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Write the received TS (RTP headers removed) to FILE.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// Stop as soon as N datagrams arrived; exit 1 if the run ends with fewer.
    #[arg(long, value_name = "N")]
    pub expect_datagrams: Option<u64>,
}

/// Runs `tandem recv`; returns the exit code (2: bad URL/group/port/interface/file,
/// 1: receive failure or fewer datagrams than `--expect-datagrams`).
pub fn run(args: RecvArgs) -> anyhow::Result<i32> {
    let dest: Dest = match args.url.parse() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tandem recv: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let duration = match args.seconds {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            eprintln!("tandem recv: --seconds {s}: must be a positive number of seconds");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let iface = match resolve_iface(&args.iface) {
        Ok(ip) => ip,
        Err(e) => {
            eprintln!(
                "tandem recv: cannot receive {dest}: --iface {}: {e}",
                args.iface
            );
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let cfg = RecvConfig {
        dest,
        iface,
        duration,
        expect_datagrams: args.expect_datagrams,
        capture: args.capture,
    };
    let stop = stop_on_signals();
    // Joined before anything is said: whoever waits for this line may start sending.
    let report = match open_recv_socket(&cfg.dest, cfg.iface).and_then(|sock| {
        tracing::info!(dest = %cfg.dest, iface = %cfg.iface, "joined, receiving");
        run_on(sock, &cfg, stop)
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tandem recv: {e}");
            return Ok(if e.is_bad_input() {
                EXIT_BAD_INPUT
            } else {
                EXIT_RUNTIME
            });
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", human(&report));
    }
    let short = report
        .run
        .as_ref()
        .and_then(|r| r.expect_met)
        .is_some_and(|met| !met);
    Ok(if short { EXIT_RUNTIME } else { 0 })
}

fn pct(p: &Percentiles) -> String {
    if p.samples == 0 {
        return "n/a".into();
    }
    format!(
        "p50 {:.1} / p90 {:.1} / p99 {:.1} / p99.9 {:.1} / max {:.1} us ({} samples)",
        p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.max_us, p.samples
    )
}

fn check_line(out: &mut String, name: &str, c: &Check) {
    out.push_str(&format!("  {name:<34} {}\n", c.count));
    for o in c.first.iter().take(3) {
        let pid = o.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
        out.push_str(&format!("      at {:.3} s{pid}: {}\n", o.t_s, o.detail));
    }
}

/// The human-readable report.
pub fn human(r: &Report) -> String {
    let mut o = String::new();
    if let Some(run) = &r.run {
        o.push_str(&format!(
            "tandem recv {} on {} ({} clock, ended by {:?})\n",
            run.url,
            run.iface,
            match run.clock {
                crate::recv::ClockSource::Kernel => "kernel",
                crate::recv::ClockSource::User => "user",
            },
            run.ended_by
        ));
    }
    o.push_str(&format!(
        "datagrams {}  TS packets {}  bytes {}  over {:.3} s\n",
        r.datagrams, r.ts_packets, r.ts_bytes, r.duration_s
    ));
    let sizes: Vec<String> = r
        .datagram_sizes
        .sizes
        .iter()
        .map(|(b, n)| format!("{b} B x{n}"))
        .collect();
    o.push_str(&format!(
        "sizes: {} (not 1316: {})\n",
        sizes.join(", "),
        r.datagram_sizes.non_1316
    ));
    for s in &r.sources {
        o.push_str(&format!(
            "source {}: {} datagrams, {:.3}..{:.3} s\n",
            s.addr, s.datagrams, s.first_s, s.last_s
        ));
    }
    o.push_str(&format!("sender changes: {}\n", r.sender_changes.count));
    for c in &r.sender_changes.list {
        o.push_str(&format!(
            "  at {:.3} s {} -> {}: gap {:.1} us, CC errors {} (pids {:?}, >= {} packets lost), missing ~{} datagrams{}\n",
            c.t_s,
            c.from,
            c.to,
            c.gap_us,
            c.cc_errors,
            c.cc_error_pids,
            c.cc_lost_packets,
            c.datagrams_missing_est
                .map_or("?".into(), |d| d.to_string()),
            c.rtp_seq_missing
                .map(|m| format!(", RTP seq missing {m}"))
                .unwrap_or_default()
        ));
    }
    let g = &r.gaps;
    o.push_str(&format!(
        "gaps: p50 {:.0} / p90 {:.0} / p99 {:.0} / p99.9 {:.0} us, max {:.1} us at {:.3} s; >=5 ms {}, >=10 ms {}, >=20 ms {}\n",
        g.p50_us, g.p90_us, g.p99_us, g.p999_us, g.max_us, g.max_at_s.unwrap_or(0.0), g.over_5ms, g.over_10ms, g.over_20ms
    ));
    let p = &r.pacing;
    o.push_str(&format!(
        "pacing (PCR PID {}, {} segment(s), {:.0} bit/s):\n  departure error  {}\n  PCR jitter       {}\n  unmeasured datagrams {}\n",
        p.timeline.pcr_pid.map_or("none".into(), |v| v.to_string()),
        p.timeline.segments,
        p.timeline.bitrate_bps.unwrap_or(0.0),
        pct(&p.timeline.departure_error),
        pct(&p.timeline.pcr_jitter),
        p.timeline.unmeasured_datagrams
    ));
    o.push_str(&format!(
        "  MDI: DF max {} ms, mean {} ms over {} s; MLR max {} packets/s, {} lost\n",
        p.mdi.df_max_ms.map_or("n/a".into(), |v| format!("{v:.2}")),
        p.mdi.df_mean_ms.map_or("n/a".into(), |v| format!("{v:.2}")),
        p.mdi.intervals,
        p.mdi.mlr_max,
        p.mdi.lost_packets
    ));
    let t = &r.tr101290;
    o.push_str("TR 101 290:\n");
    check_line(&mut o, "1.1 TS sync loss", &t.sync_loss);
    check_line(&mut o, "1.2 sync byte error", &t.sync_byte_error);
    check_line(&mut o, "1.3a PAT error", &t.pat_error);
    check_line(&mut o, "1.4 continuity count error", &t.cc_error);
    check_line(&mut o, "1.5a PMT error", &t.pmt_error);
    check_line(&mut o, "2.1 transport error", &t.transport_error);
    check_line(&mut o, "2.2 CRC error", &t.crc_error);
    check_line(&mut o, "2.3a PCR repetition error", &t.pcr_repetition_error);
    check_line(
        &mut o,
        "2.3b PCR discontinuity error",
        &t.pcr_discontinuity_error,
    );
    if t.malformed_packet.count > 0 {
        check_line(&mut o, "malformed packets", &t.malformed_packet);
    }
    for pid in &r.pids {
        o.push_str(&format!(
            "  pid {:>5}: {} packets, {} CC errors, {} PCRs\n",
            pid.pid, pid.packets, pid.cc_errors, pid.pcrs
        ));
    }
    if let Some(rtp) = &r.rtp {
        o.push_str(&format!(
            "RTP: {} packets, expected {}, lost {}, duplicates {}, reordered {}, resyncs {}, SSRC {} ({} changes), wrong PT {}, invalid {}, jitter {:.1} us (max {:.1})\n",
            rtp.packets,
            rtp.expected,
            rtp.lost,
            rtp.duplicates,
            rtp.reordered,
            rtp.resyncs,
            rtp.ssrc.map_or("none".into(), |s| format!("0x{s:08x}")),
            rtp.ssrc_change_count,
            rtp.wrong_payload_type.count,
            rtp.parse_errors.count,
            rtp.interarrival_jitter_us,
            rtp.interarrival_jitter_max_us
        ));
    }
    if let Some(d) = r.run.as_ref().and_then(|r| r.socket_drops) {
        o.push_str(&format!("socket drops: {d}\n"));
    }
    for w in &r.warnings {
        o.push_str(&format!("warning: {w}\n"));
    }
    o
}
