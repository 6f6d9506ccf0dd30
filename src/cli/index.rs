//! `tandem index ASSET [--force]`: builds (or loads) the offset map and saves it beside the
//! asset, printing a summary.

use std::path::PathBuf;
use std::time::Instant;

use crate::io::{load_or_build_with, LoadOptions, Origin};
use crate::ts::pcr::HZ;

/// Arguments of `tandem index`.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// The MPEG-TS asset.
    pub asset: PathBuf,
    /// Rebuild even when a valid index exists.
    #[arg(long)]
    pub force: bool,
    /// Program number to follow (default: the first program of the PAT).
    #[arg(long)]
    pub program: Option<u16>,
    #[command(flatten)]
    pub quiet: super::startup::QuietArgs,
}

/// Runs the command; bad input prints one line and returns exit code 2.
pub fn run(args: &IndexArgs) -> anyhow::Result<i32> {
    args.quiet.apply(None);
    let started = Instant::now();
    let opts = LoadOptions {
        progress: true,
        force: args.force,
        program: args.program,
    };
    let loaded =
        match crate::net::priority::quietly("index", || load_or_build_with(&args.asset, &opts)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tandem: {e}");
                return Ok(super::EXIT_BAD_INPUT);
            }
        };
    let elapsed = started.elapsed();
    let m = &loaded.map;
    let secs = m.loop_period as f64 / HZ as f64;
    println!("asset      {}", args.asset.display());
    println!("identity   {}", m.identity);
    println!(
        "packets    {} in {} datagrams of 7 ({} segment{})",
        m.packets,
        m.datagram_count(),
        m.segments.len(),
        if m.segments.len() == 1 { "" } else { "s" }
    );
    println!("duration   {secs:.3} s (byte span {} ticks)", m.loop_period);
    let plan = match std::fs::File::open(&args.asset) {
        Ok(f) => crate::stream::LoopPlan::for_asset(m, &f),
        Err(_) => crate::stream::LoopPlan::for_map(m, None),
    };
    let ms = |t: u64| t as f64 * 1e3 / HZ as f64;
    if plan.cadence {
        println!(
            "loop       by the video cadence: every {:.3} s ({} frames); the next pass's head re-timed over {} packets ({:.1} ms overlap, {} null packets dropped)",
            plan.period as f64 / HZ as f64,
            m.frames,
            plan.head_len(),
            ms(plan.overlap(m)),
            plan.dropped()
        );
    } else {
        println!(
            "loop       by the byte span (no video cadence: no frame rate, or the frame count does not fit the span)"
        );
    }
    if let Ok(f) = std::fs::File::open(&args.asset) {
        let trim = crate::stream::trim::AudioTrim::plan(m, plan.period, &f);
        for (pid, frames, gap) in trim.report() {
            println!(
                "audio      PID {pid}: {frames} AAC frame(s) cut at each loop point, the join {:+.1} ms (negative: overlap)",
                *gap as f64 / 90.0
            );
        }
    }
    println!("pcr pid    {} ({} PCRs)", m.pcr_pid, m.anchors.len());
    match (m.video_pid, m.frame_rate) {
        (Some(v), Some((n, d))) => println!(
            "video      PID {v}, {} frames at {:.3} fps ({n}/{d})",
            m.frames,
            n as f64 / d as f64
        ),
        (Some(v), None) => println!("video      PID {v}, {} frames, rate unknown", m.frames),
        (None, _) => println!("video      none"),
    }
    match &loaded.origin {
        Origin::Loaded(p) => println!("index      loaded from {} (up to date)", p.display()),
        Origin::Built { saved: Some(p) } => println!("index      built, saved to {}", p.display()),
        Origin::Built { saved: None } => println!("index      built, NOT saved (see warning)"),
    }
    println!("time       {:.1} ms", elapsed.as_secs_f64() * 1e3);
    Ok(0)
}
