//! The terminal table: p50, p90, p99, p99.9 and max of every metric, the gap against one
//! frame with a clear PASS/FAIL, and what spoiled or failed.

use super::summary::{BenchReport, Metric, Unit};

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

fn cell(m: &Metric, v: u64) -> String {
    match m.unit {
        Unit::Ns => ms(v),
        Unit::Count => v.to_string(),
    }
}

/// `25/1` -> `25`, `60000/1001` -> `59.94`.
pub fn fps(rate: &str) -> String {
    let Some((n, d)) = rate.split_once('/') else {
        return rate.to_string();
    };
    match (n.parse::<f64>(), d.parse::<f64>()) {
        (Ok(n), Ok(d)) if d > 0.0 => {
            let f = n / d;
            if (f - f.round()).abs() < 1e-9 {
                format!("{f:.0}")
            } else {
                format!("{f:.2}")
            }
        }
        _ => rate.to_string(),
    }
}

/// The table and verdict, as printed at the end of a run.
pub fn table(r: &BenchReport) -> String {
    let v = &r.verdict;
    let frame = r.asset.frame_ns;
    let mut o = String::new();
    o.push_str(&format!(
        "tandem bench failover: {} trials, fault {}, switch-at {}, {} ({} fps, frame {} ms), pair {}\n",
        v.trials,
        r.settings.fault.name(),
        r.settings.switch_at,
        r.asset.path,
        fps(&r.asset.frame_rate),
        ms(frame),
        r.settings.pair,
    ));
    o.push_str(&format!("machine: {}\n", r.machine.line()));
    if let Some(e) = &r.settings.effective {
        o.push_str(&format!(
            "heartbeat {} us x miss {} = detection window {} ms ({})\n",
            e.heartbeat_us,
            e.miss,
            ms(e.detection_window_us * 1000),
            if r.settings.heartbeat_us.is_none() && r.settings.miss.is_none() {
                "the servers' defaults for this frame rate"
            } else {
                "as given"
            }
        ));
    }
    o.push_str(&format!(
        "{:<33} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
        "metric (ms or count)", "n", "p50", "p90", "p99", "p99.9", "max", "vs one frame"
    ));
    for (name, label, m) in r.metrics.rows() {
        let against = match name {
            "gap" if m.samples > 0 => format!(
                "{} (max {} {} {} ms)",
                if m.max < frame { "PASS" } else { "FAIL" },
                ms(m.max),
                if m.max < frame { "<" } else { ">=" },
                ms(frame)
            ),
            "detection" | "switch" | "late" if m.samples > 0 => {
                format!(
                    "max = {:.0}% of a frame",
                    m.max as f64 * 100.0 / frame as f64
                )
            }
            _ => String::new(),
        };
        o.push_str(&format!(
            "{:<33} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}  {}\n",
            label,
            m.samples,
            cell(m, m.p50),
            cell(m, m.p90),
            cell(m, m.p99),
            cell(m, m.p999),
            cell(m, m.max),
            against
        ));
    }
    o.push_str(&format!(
        "trials: {} switched, {} no switch, {} errors; gap >= one frame: {}; gap >= a quarter frame ({} ms): {} (aim: p99 below it: {})\n",
        v.switched,
        v.not_switched,
        v.errors,
        v.over_frame,
        ms(v.aim_ns),
        v.over_aim,
        if v.aim_met { "met" } else { "not met" }
    ));
    o.push_str(&format!(
        "stalls: {} trial(s) had a stall >= {} ms (machine, primary or secondary), kept in the figures; {} of them over one frame; the watcher saw {} stall(s) over the run, longest {} ms\n",
        v.spoiled_by_stalls,
        ms(r.machine_stalls.threshold_ns),
        v.over_frame_spoiled,
        r.machine_stalls.count,
        ms(r.machine_stalls.max_ns)
    ));
    if v.switched_before_fault > 0 || v.secondary_not_ready > 0 {
        o.push_str(&format!(
            "self-failures: in {} trial(s) the primary failed by itself (e.g. its kernel after a stall) and the secondary took over before the fault; in {} the secondary was not synchronised at the fault (it had failed by itself)\n",
            v.switched_before_fault, v.secondary_not_ready
        ));
    }
    if v.retakes > 0 {
        o.push_str(&format!(
            "retakes: {} trial(s) where the new owner stalled or failed after the switch and the \
             original primary, by then its synchronised secondary, took the live group back by the \
             rules (not a return by itself; each change inside one frame)\n",
            v.retakes
        ));
        for l in &v.retake_lines {
            o.push_str(&format!("  {l}\n"));
        }
    }
    if v.extra_sender_changes > 0 {
        o.push_str(&format!(
            "sender: {} trial(s) where the receiver saw more than one change of sender or the primary came back\n",
            v.extra_sender_changes
        ));
    }
    for f in v.failures.iter().take(20) {
        o.push_str(&format!("  {f}\n"));
    }
    if v.failures.len() > 20 {
        o.push_str(&format!(
            "  ... {} more in the JSON\n",
            v.failures.len() - 20
        ));
    }
    o.push_str(&format!(
        "RESULT: {} ({} mode): {}\n",
        if v.pass { "PASS" } else { "FAIL" },
        r.settings.switch_at,
        if v.pass {
            format!("every one of {} switches landed inside one frame", v.trials)
        } else {
            format!(
                "{} of {} trials not inside one frame",
                v.failures.len(),
                v.trials
            )
        }
    ));
    o
}
