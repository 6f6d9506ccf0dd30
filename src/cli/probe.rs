//! `tandem probe ASSET [--json]`: programs, PIDs, PCR, bitrate, frame rate, duration and
//! every problem of an asset, as a table or as JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::io::asset::probe;
use crate::probe::Probe;

/// Arguments of `tandem probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The MPEG-TS asset.
    pub asset: PathBuf,
    /// Machine-readable output (one JSON object on stdout).
    #[arg(long)]
    pub json: bool,
    /// Program number to follow (default: the first program of the PAT).
    #[arg(long)]
    pub program: Option<u16>,
}

/// Runs the command; bad input prints one line and returns exit code 2.
pub fn run(args: &ProbeArgs) -> anyhow::Result<i32> {
    let p = match probe(&args.asset, args.program) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tandem: {e}");
            return Ok(super::EXIT_BAD_INPUT);
        }
    };
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            file: String,
            #[serde(flatten)]
            probe: &'a Probe,
        }
        let out = Out {
            file: args.asset.display().to_string(),
            probe: &p,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&args.asset.display().to_string(), &p));
    }
    Ok(0)
}

/// The human table.
pub fn render(file: &str, p: &Probe) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "file        {file}");
    let _ = writeln!(
        s,
        "identity    {} bytes, xxh3-128 {}",
        p.identity.size, p.identity.xxh3_128
    );
    let _ = writeln!(
        s,
        "packets     {} ({} datagrams of 7, {} segment{})",
        p.packets,
        p.datagrams,
        p.segments,
        if p.segments == 1 { "" } else { "s" }
    );
    let _ = writeln!(s, "duration    {:.3} s", p.duration_s);
    let _ = writeln!(
        s,
        "bitrate     {:.3} Mb/s ({:.0} b/s, from the PCR timeline)",
        p.bitrate_bps / 1e6,
        p.bitrate_bps
    );
    let spacing = p.pcr_spacing_ms.map_or(String::new(), |sp| {
        format!(
            ", spacing min {:.2} / mean {:.2} / max {:.2} ms",
            sp.min, sp.mean, sp.max
        )
    });
    let _ = writeln!(
        s,
        "PCR         PID {}, {} PCRs{spacing}",
        p.pcr_pid, p.pcr_count
    );
    match p.video_pid {
        Some(v) => {
            let rate = match (p.frame_rate, p.frame_rate_rational, p.frame_duration_ms) {
                (Some(f), Some((n, d)), Some(ms)) => {
                    format!("{} fps ({n}/{d}), frame {ms:.3} ms", trim(f))
                }
                _ => "frame rate unknown".to_string(),
            };
            let _ = writeln!(
                s,
                "video       PID {v} ({}), {rate}, {} frames",
                p.video_kind.unwrap_or("video"),
                p.frames
            );
        }
        None => {
            let _ = writeln!(s, "video       none");
        }
    }
    for prog in &p.programs {
        let _ = writeln!(
            s,
            "program     {}{} (PMT PID {}, PCR PID {})",
            prog.program_number,
            if Some(prog.program_number) == p.program {
                " [played]"
            } else {
                ""
            },
            prog.pmt_pid,
            prog.pcr_pid.map_or("none".to_string(), |x| x.to_string())
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {:>6}  {:>6}  {:<26} {:>10} {:>7}",
        "PID", "hex", "content", "packets", "share"
    );
    for x in &p.pids {
        let kind = match x.stream_type {
            Some(t) => format!("{} [0x{t:02x}]", x.kind),
            None => x.kind.clone(),
        };
        let _ = writeln!(
            s,
            "  {:>6}  {:>#6x}  {:<26} {:>10} {:>6.2}%{}",
            x.pid,
            x.pid,
            kind,
            x.packets,
            x.percent,
            if x.pcr { "  PCR" } else { "" }
        );
    }
    let _ = writeln!(s);
    if p.problems.is_empty() {
        let _ = writeln!(s, "problems    none");
    } else {
        let _ = writeln!(
            s,
            "problems    {}",
            p.problems.len() as u64 + p.problems_dropped
        );
        for pr in &p.problems {
            let _ = writeln!(s, "  - {}", pr.message);
        }
        if p.problems_dropped > 0 {
            let _ = writeln!(s, "  ... and {} more", p.problems_dropped);
        }
    }
    s
}

/// 25 -> "25", 29.97002997 -> "29.97".
fn trim(f: f64) -> String {
    let t = format!("{f:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}
