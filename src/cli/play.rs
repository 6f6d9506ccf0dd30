//! `tandem play ASSET --dest udp://GROUP:PORT|rtp://GROUP:PORT [--iface ADDR] [--ttl N]
//! [--loop[=N]] [--start-at UNIX_MS] [--session-id ID] [--sdp FILE]`: plays an asset onto
//! multicast, paced by its PCR timeline, until the session ends or SIGINT/SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::signals::Signals;
use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::io::playlist::Source;
use crate::net::clock::{mono_ns, real_ns, real_to_mono, set_clock_offset_ms};
use crate::net::engine::{Engine, EngineConfig, EngineStats, Sink, Target};
use crate::net::sockets::{resolve_iface, sender, SenderOptions};
use crate::net::url::{Dest, Framing};
use crate::stream::sdp::{self, SdpSession};
use crate::stream::{OutputStream, SessionParams};
use crate::ts::pcr::{ns_to_ticks, HZ};

/// Lead between starting the engine and its first datagram when `--start-at` is not given
/// (time for the reader to fill the ring).
const START_LEAD_NS: u64 = 100_000_000;

/// Arguments of `tandem play`.
#[derive(Debug, clap::Args)]
pub struct PlayArgs {
    /// The MPEG-TS asset (its offset map is loaded or built first), or a playlist (JSON or
    /// M3U, docs/playlists.md) whose clips play one after another as one stream.
    pub asset: PathBuf,
    /// Destination: udp://GROUP:PORT (7 TS packets per datagram) or rtp://GROUP:PORT
    /// (RFC 2250, payload type 33).
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// Outgoing interface: an IPv4 address of this host or an interface name (lo, eth0).
    #[arg(long, value_name = "NAME|ADDR", default_value = "127.0.0.1")]
    pub iface: String,
    /// Multicast TTL.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,
    /// Loop the asset: `--loop` (or `--loop=0`) plays endlessly, `--loop=N` plays N passes.
    #[arg(long = "loop", value_name = "N", num_args = 0..=1, require_equals = true,
          default_missing_value = "0")]
    pub loops: Option<u64>,
    /// Origin of the timeline as a Unix time in milliseconds: two engines given the same
    /// value send in lockstep. In the past: joins the session in progress.
    #[arg(long, value_name = "UNIX_MS")]
    pub start_at: Option<u64>,
    /// Session id: RTP SSRC, first sequence number and timestamp derive from it
    /// (default: derived from the asset's content hash and the destination).
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,
    /// Write an SDP file describing the RTP output (RFC 4566; for VLC/ffplay).
    #[arg(long, value_name = "FILE")]
    pub sdp: Option<PathBuf>,
    /// Count a send as a late wake when it is decided more than this many microseconds
    /// after its allowed time.
    #[arg(long, value_name = "US", default_value_t = 1000)]
    pub late_us: u64,
    /// Skew added to every realtime clock reading (lab use).
    #[arg(long, value_name = "MS", hide = true, allow_hyphen_values = true)]
    pub clock_offset_ms: Option<i64>,
    #[command(flatten)]
    pub startup: super::startup::StartupArgs,
}

/// A bad-input failure: printed on one line, exit code 2.
struct BadInput(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for BadInput {
    fn from(e: E) -> BadInput {
        BadInput(e.into())
    }
}

/// Everything validated, ready to start.
struct Plan {
    stream: Arc<OutputStream>,
    clips: Vec<std::fs::File>,
    dest: Dest,
    iface: std::net::Ipv4Addr,
    sink: Sink,
    origin_mono: i64,
    origin_real: u64,
    start_index: u64,
}

/// Runs the command.
pub fn run(args: &PlayArgs) -> anyhow::Result<i32> {
    if let Some(ms) = args.clock_offset_ms {
        set_clock_offset_ms(ms);
    }
    args.startup.apply();
    // Blocked first: a stop asked while the asset is still being prepared is honoured (a
    // clean stop with a summary) instead of killing the process.
    let signals = Signals::block()?;
    let plan = match prepare(args) {
        Ok(p) => p,
        Err(BadInput(e)) => {
            eprintln!("tandem: {e:#}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    play(args, plan, signals)
}

fn prepare(args: &PlayArgs) -> Result<Plan, BadInput> {
    let dest: Dest = args.dest.parse()?;
    let iface = resolve_iface(&args.iface)?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let source =
        crate::net::priority::quietly("offset map", || Source::load(&args.asset, progress))?;
    let clips = source.open()?;
    let session_id = args
        .session_id
        .clone()
        .unwrap_or_else(|| format!("{:032x}@{}", source.identity().hash, dest.addr));
    let stream = source.stream(
        &clips,
        SessionParams {
            session_id,
            framing: dest.framing,
            loops: source.loops(args.loops),
        },
    )?;
    if source.is_playlist() {
        tracing::info!(
            playlist = %args.asset.display(),
            clips = source.clips.len(),
            "playing a playlist: its clips one after another as one stream"
        );
    }
    let opts = SenderOptions {
        ttl: args.ttl,
        ..SenderOptions::new(iface)
    };
    let socket = sender(dest.addr, &opts)?;
    if let Some(path) = &args.sdp {
        write_sdp(args, path, &stream, &dest, iface)?;
    }
    let (origin_mono, origin_real, start_index) = match args.start_at {
        Some(ms) => {
            let real = ms.saturating_mul(1_000_000);
            let mono = real_to_mono(real);
            // Join in progress when the origin has passed: the first datagram due after a
            // short lead (measured on the realtime clock, so an origin before this
            // machine's boot works too).
            let now = real_ns() + START_LEAD_NS / 10;
            let start = if real >= now {
                0
            } else {
                stream.index_at(ns_to_ticks(now - real))
            };
            if stream.datagram_count().is_some_and(|c| start >= c) {
                return Err(BadInput(anyhow::anyhow!(
                    "--start-at {ms}: the session started at that time is already over"
                )));
            }
            (mono, real, start)
        }
        None => (
            (mono_ns() + START_LEAD_NS) as i64,
            real_ns() + START_LEAD_NS,
            0,
        ),
    };
    Ok(Plan {
        stream: Arc::new(stream),
        clips,
        dest,
        iface,
        sink: Sink {
            socket,
            dest: dest.addr,
        },
        origin_mono,
        origin_real,
        start_index,
    })
}

fn write_sdp(
    args: &PlayArgs,
    path: &std::path::Path,
    stream: &OutputStream,
    dest: &Dest,
    iface: std::net::Ipv4Addr,
) -> Result<(), BadInput> {
    if dest.framing != Framing::Rtp {
        return Err(BadInput(anyhow::anyhow!(
            "--sdp describes RTP sessions; use an rtp:// destination (raw UDP receivers open udp://@{} directly)",
            dest.addr
        )));
    }
    let name = args
        .asset
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = xxhash_rust::xxh3::xxh3_64(stream.params().session_id.as_bytes()) >> 1;
    let text = sdp::render(&SdpSession {
        name: &name,
        session_id: id,
        origin_addr: iface,
        dest: dest.addr,
        ttl: args.ttl,
    });
    std::fs::write(path, text).with_context(|| format!("{}: cannot write SDP", path.display()))?;
    Ok(())
}

fn play(args: &PlayArgs, plan: Plan, signals: Signals) -> anyhow::Result<i32> {
    let s = &plan.stream;
    tracing::info!(
        asset = %args.asset.display(),
        dest = %plan.dest,
        iface = %plan.iface,
        ttl = args.ttl,
        bitrate_kbps = (s.bitrate() / 1000.0).round() as u64,
        duration_s = format_args!("{:.3}", s.period() as f64 / HZ as f64),
        loops = %s.params().loops.map_or("endless".to_string(), |l| l.to_string()),
        session = %s.params().session_id,
        ssrc = %s.rtp_session().map_or("-".to_string(), |r| format!("{:08x}", r.ssrc)),
        start_unix_ms = plan.origin_real / 1_000_000,
        start_index = plan.start_index,
        "playing"
    );
    if plan.start_index > 0 {
        tracing::info!(
            index = plan.start_index,
            "--start-at is in the past: joining the session in progress"
        );
    }
    let mut cfg = EngineConfig::new(plan.stream.clone(), plan.clips, plan.origin_mono);
    cfg.start_index = plan.start_index;
    cfg.live = Some(plan.sink);
    cfg.initial_target = Target::Live;
    cfg.late_threshold_ns = args.late_us.saturating_mul(1000);
    // `play` never rewinds: a short history keeps the ring (and its memory) small.
    cfg.history_ns = 100_000_000;
    // One second rendered ahead: rides through short storage stalls without rendering
    // seconds of datagrams a short run never sends (the failover servers keep 3 s: two
    // servers reading one file stall together).
    cfg.ahead_ns = 1_000_000_000;
    // Nothing switches a plain playout: the pacer sleeps with clock_nanosleep, cheaper per
    // wake than the switchable futex sleep (CHANGELOG.md, session 3).
    cfg.interruptible = false;
    let handle = Engine::start(cfg).context("starting the engine")?;
    // The main thread only waits for a signal or the end of the session: it wakes shortly
    // after the last datagram is due, or once a second (an engine that stopped on an
    // error is noticed within a second), not more often.
    let last_due = s.datagram_count().map(|c| handle.due_mono_ns(c - 1));
    let mut interrupted = None;
    while !handle.is_finished() {
        let left = last_due.map_or(i128::MAX, |d| d as i128 - mono_ns() as i128);
        let wait = left
            .saturating_add(2_000_000)
            .clamp(1_000_000, 1_000_000_000) as u64;
        if let Some(sig) = signals.wait(Duration::from_nanos(wait)) {
            interrupted = Some(sig);
            handle.stop();
            break;
        }
    }
    let stats = handle.join();
    let stats = match stats {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tandem: {e}");
            return Ok(EXIT_RUNTIME);
        }
    };
    if let Some(sig) = interrupted {
        tracing::info!(signal = sig, "stopped by signal");
    }
    summary(&stats);
    Ok(if stats.send_errors > 0 {
        EXIT_RUNTIME
    } else {
        0
    })
}

fn summary(st: &EngineStats) {
    let p = &st.pacer;
    tracing::info!(
        sent = st.sent_live + st.sent_muted,
        scheduled = p.sent,
        late_wakes = p.late_wakes,
        max_lateness_us = p.max_lateness_ns / 1000,
        max_behind_us = p.max_behind_ns / 1000,
        catch_up = p.catch_up,
        send_errors = st.send_errors,
        underruns = st.underruns,
        "done"
    );
    println!(
        "sent {} datagrams ({} scheduled), late wakes {}, max lateness {} us, max behind {} us, catch-up sends {}, send errors {}, reader underruns {}",
        st.sent_live + st.sent_muted,
        p.sent,
        p.late_wakes,
        p.max_lateness_ns / 1000,
        p.max_behind_ns / 1000,
        p.catch_up,
        st.send_errors,
        st.underruns
    );
}
