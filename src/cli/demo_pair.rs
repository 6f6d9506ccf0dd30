//! The failover demo behind `tandem demo` (see [`super::demo`]): primary and secondary as
//! two processes on loopback, a receiver on the live group, SIGKILL of the primary midway.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::demo::{locate_asset, watch_hint, ChildGuard, DemoArgs, DEMO_ASSET};
use super::status::field;
use super::{EXIT_BAD_INPUT, EXIT_RUNTIME};
use crate::failover::wire::{Key, SenderRole};
use crate::net::failover::client::Client;
use crate::net::recv_socket::{open_recv_socket, run_on, RecvConfig};
use crate::net::url::Dest;
use crate::recv::Report;

/// Sync-link and control addresses of the demo pair (loopback).
const P_SYNC: &str = "127.0.0.1:7401";
const S_SYNC: &str = "127.0.0.1:7402";
const P_CTRL: &str = "127.0.0.1:7411";
const S_CTRL: &str = "127.0.0.1:7412";

/// Runs the failover demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<i32> {
    let Some(asset) = locate_asset(args.asset.as_deref()) else {
        eprintln!("tandem demo: the bundled asset {DEMO_ASSET} was not found (run from the repository root or pass --asset FILE)");
        return Ok(EXIT_BAD_INPUT);
    };
    let (dest, muted) = match (args.dest.parse::<Dest>(), args.muted.parse::<Dest>()) {
        (Ok(d), Ok(m)) => (d, m),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("tandem demo: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if !(args.kill_after > 0.5 && args.seconds > args.kill_after + 0.5) {
        eprintln!("tandem demo: need 0.5 < --kill-after < --seconds - 0.5");
        return Ok(EXIT_BAD_INPUT);
    }
    let map = match crate::io::load_or_build(&asset, false) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tandem demo: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let frame_ms = map.frame_ticks().map_or(40.0, |t| t as f64 / 27_000.0);
    let sock = match open_recv_socket(&dest, Ipv4Addr::LOCALHOST) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tandem demo: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let logdir = std::env::temp_dir().join(format!("tandem-demo-{}", std::process::id()));
    std::fs::create_dir_all(&logdir)?;
    let a = asset.display().to_string();
    let common = |sync: &str, peer: &str, ctrl: &str| -> Vec<String> {
        [
            a.as_str(),
            "--dest",
            &dest.to_string(),
            "--muted",
            &muted.to_string(),
            "--loop",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            [
                "--sync-listen",
                sync,
                "--sync-peer",
                peer,
                "--control-listen",
                ctrl,
            ]
            .map(String::from),
        )
        .collect()
    };
    let mut p_args = vec!["primary".to_string()];
    p_args.extend(common(P_SYNC, S_SYNC, P_CTRL));
    let mut s_args = vec!["secondary".to_string()];
    s_args.extend(common(S_SYNC, P_SYNC, S_CTRL));
    println!("tandem demo: the failover method on loopback, asset {a} ({:.2} fps, one frame = {frame_ms:.2} ms)", 1000.0 / frame_ms);
    println!("  primary:   tandem {}", p_args.join(" "));
    println!("  secondary: tandem {}", s_args.join(" "));
    println!("  receiver:  tandem recv {dest}   (in this process, kernel timestamps)");
    println!("  server logs: {}", logdir.display());
    let mut primary = spawn_logged(&p_args, &logdir.join("primary.log"))?;
    let secondary = spawn_logged(&s_args, &logdir.join("secondary.log"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let cfg = RecvConfig {
        dest,
        iface: Ipv4Addr::LOCALHOST,
        duration: Some(Duration::from_secs_f64(args.seconds)),
        expect_datagrams: None,
        capture: None,
    };
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || run_on(sock, &cfg, &stop))
    };
    let started = Instant::now();
    let mut client = Client::new(SenderRole::Client, Key::derive_from_session(0), 0)?;
    let s_ctrl: SocketAddrV4 = S_CTRL.parse()?;
    let p_ctrl: SocketAddrV4 = P_CTRL.parse()?;
    // Wait until the secondary is in lockstep (or give up after 5 s).
    let mut synced = false;
    while started.elapsed() < Duration::from_secs(5) {
        if client
            .status(s_ctrl)
            .is_ok_and(|s| field(&s, &["state"]) == "Secondary_synchronized")
        {
            synced = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !synced {
        println!("  ! the secondary did not reach Secondary_synchronized within 5 s (see its log)");
    } else {
        println!("  {:6.3} s  secondary is Secondary_synchronized: sending the identical stream into {muted}", started.elapsed().as_secs_f64());
    }
    let p_status = client.status(p_ctrl).ok();
    let wait = Duration::from_secs_f64(args.kill_after).saturating_sub(started.elapsed());
    std::thread::sleep(wait);
    let _ = primary.0.kill();
    let _ = primary.0.wait();
    println!(
        "  {:6.3} s  primary killed with SIGKILL",
        started.elapsed().as_secs_f64()
    );
    let report: Report = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
    stop.store(true, Ordering::Release);
    let s_status = client.status(s_ctrl).ok();
    drop(secondary);

    println!("\nStates the servers went through:");
    print_states("primary", p_status.as_ref(), &logdir.join("primary.log"));
    print_states(
        "secondary",
        s_status.as_ref(),
        &logdir.join("secondary.log"),
    );
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("\nWhat the receiver saw on {dest}:");
        print!("{}", super::recv::human(&report));
    }
    let verdict = verdict(&report, frame_ms);
    println!("\n{verdict}");
    println!(
        "\nWatch it yourself: start the pair (the two commands above, or `tandem pair`), then\n{}",
        watch_hint(&dest)
    );
    Ok(if verdict.starts_with("PASS") {
        0
    } else {
        EXIT_RUNTIME
    })
}

/// Starts `tandem ARGS` with stdout/stderr into `log`.
fn spawn_logged(args: &[String], log: &Path) -> anyhow::Result<ChildGuard> {
    let exe = std::env::current_exe()?;
    let f = std::fs::File::create(log)?;
    let child = std::process::Command::new(exe)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()?;
    Ok(ChildGuard(child))
}

/// Prints a server's transitions: from its status when it answered, else from its log.
fn print_states(who: &str, status: Option<&serde_json::Value>, log: &Path) {
    let from_status: Vec<String> = status
        .and_then(|s| s.get("transitions").and_then(|t| t.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .map(|t| {
            format!(
                "{} -> {}: {}",
                field(t, &["from"]),
                field(t, &["to"]),
                field(t, &["detail"])
            )
        })
        .collect();
    let from_log: Vec<String> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(" state ").map(|(_, r)| r.trim().to_string()))
        .collect();
    // The log has every change up to the end (the primary's status was taken early).
    let lines = if from_log.len() >= from_status.len() {
        from_log
    } else {
        from_status
    };
    println!("  {who}:");
    for l in lines {
        println!("    {l}");
    }
}

/// One line: did the switch land inside one frame with nothing lost?
fn verdict(r: &Report, frame_ms: f64) -> String {
    let changes = &r.sender_changes;
    let Some(c) = changes.list.first() else {
        return "FAIL: the receiver saw no change of sender".into();
    };
    let gap_ms = c.gap_us / 1000.0;
    let inside = gap_ms < frame_ms;
    format!(
        "{}: {} change(s) of sender; gap at the switch {gap_ms:.2} ms against one frame of {frame_ms:.2} ms; CC errors at the switch {}, RTP sequence numbers missing {}; TR 101 290 CC errors in the whole run {}",
        if inside && changes.count == 1 { "PASS" } else { "FAIL" },
        changes.count,
        c.cc_errors,
        c.rtp_seq_missing.map_or("n/a".into(), |m| m.to_string()),
        r.tr101290.cc_error.count,
    )
}
