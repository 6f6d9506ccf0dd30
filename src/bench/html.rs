//! The self-contained HTML report: the verdict, the percentile table, inline SVG plots (the
//! cumulative distribution of detection, switch and gap against one frame, a histogram of
//! the gaps, the gap against the fault's phase within the frame), the asset, the settings,
//! the machine and every trial. No script, no external file.

use std::fmt::Write as _;

use super::summary::{BenchReport, Unit};
use super::trial::Outcome;

const W: f64 = 720.0;
const H: f64 = 300.0;
const ML: f64 = 56.0;
const MR: f64 = 16.0;
const MT: f64 = 30.0;
const MB: f64 = 44.0;
const COLORS: [&str; 3] = ["#1f77b4", "#ff7f0e", "#2ca02c"];

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// Plot frame: axes from 0 to `xmax` (ms) and `ymax`, with ticks and labels.
fn axes(
    svg: &mut String,
    xmax: f64,
    ymax: f64,
    xlabel: &str,
    ylabel: &str,
    yfmt: &dyn Fn(f64) -> String,
) {
    let (x0, y0, x1, y1) = (ML, H - MB, W - MR, MT);
    let _ = write!(
        svg,
        r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>"##
    );
    for k in 0..=5 {
        let f = k as f64 / 5.0;
        let x = x0 + f * (x1 - x0);
        let y = y0 - f * (y0 - y1);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{:.2}</text>"##,
            y0 + 4.0,
            y0 + 16.0,
            f * xmax
        );
        let _ = write!(
            svg,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            yfmt(f * ymax)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text><text x="14" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"##,
        (x0 + x1) / 2.0,
        H - 8.0,
        esc(xlabel),
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(ylabel)
    );
}

fn px(v: f64, max: f64) -> f64 {
    ML + (v / max).clamp(0.0, 1.0) * (W - ML - MR)
}

fn py(v: f64, max: f64) -> f64 {
    (H - MB) - (v / max).clamp(0.0, 1.0) * (H - MB - MT)
}

fn vline(svg: &mut String, x_ms: f64, xmax: f64, label: &str, color: &str) {
    if x_ms > xmax {
        return;
    }
    let x = px(x_ms, xmax);
    let (tx, anchor) = if x > W - 120.0 {
        (x - 3.0, "end")
    } else {
        (x + 3.0, "start")
    };
    let _ = write!(
        svg,
        r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="{color}" stroke-dasharray="5,4"/><text x="{tx:.1}" y="{}" font-size="11" fill="{color}" text-anchor="{anchor}">{}</text>"##,
        H - MB,
        MT,
        MT + 10.0,
        esc(label)
    );
}

/// Empirical CDFs (ms) of several series, with one frame and a quarter frame marked.
fn cdf_svg(series: &[(&str, Vec<f64>)], frame_ms: f64) -> String {
    let data_max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    let xmax = (data_max.max(frame_ms) * 1.05).max(0.001);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">"##
    );
    axes(
        &mut svg,
        xmax,
        1.0,
        "milliseconds",
        "fraction of trials",
        &|v| format!("{v:.1}"),
    );
    vline(&mut svg, frame_ms, xmax, "one frame", "#d62728");
    vline(&mut svg, frame_ms / 4.0, xmax, "1/4 frame", "#9467bd");
    for (k, (name, vals)) in series.iter().enumerate() {
        let mut v = vals.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            continue;
        }
        let mut path = format!("M{:.1},{:.1}", px(v[0], xmax), py(0.0, 1.0));
        for (i, x) in v.iter().enumerate() {
            let _ = write!(
                path,
                " L{:.1},{:.1} L{:.1},{:.1}",
                px(*x, xmax),
                py(i as f64 / n as f64, 1.0),
                px(*x, xmax),
                py((i + 1) as f64 / n as f64, 1.0)
            );
        }
        let c = COLORS[k % COLORS.len()];
        let _ = write!(
            svg,
            r##"<path d="{path}" fill="none" stroke="{c}" stroke-width="1.6"/><rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
            ML + 220.0 * k as f64,
            8.0,
            ML + 14.0 + 220.0 * k as f64,
            17.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of values (ms) in 40 bins up to max(largest, one frame).
fn hist_svg(vals: &[f64], frame_ms: f64) -> String {
    let data_max = vals.iter().copied().fold(0.0f64, f64::max);
    let xmax = (data_max.max(frame_ms) * 1.05).max(0.001);
    let bins = 40usize;
    let mut counts = vec![0u64; bins];
    for v in vals {
        let b = ((v / xmax) * bins as f64) as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let ymax = (*counts.iter().max().unwrap_or(&1)).max(1) as f64;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">"##
    );
    axes(
        &mut svg,
        xmax,
        ymax,
        "gap at the receiver (ms)",
        "trials",
        &|v| format!("{v:.0}"),
    );
    let bw = (W - ML - MR) / bins as f64;
    for (b, c) in counts.iter().enumerate() {
        if *c == 0 {
            continue;
        }
        let y = py(*c as f64, ymax);
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{c} trials</title></rect>"##,
            ML + b as f64 * bw + 0.5,
            (bw - 1.0).max(0.5),
            (H - MB) - y,
            COLORS[2]
        );
    }
    vline(&mut svg, frame_ms, xmax, "one frame", "#d62728");
    vline(&mut svg, frame_ms / 4.0, xmax, "1/4 frame", "#9467bd");
    svg.push_str("</svg>");
    svg
}

/// Gap (ms) against the fault's phase in the frame (ms).
fn phase_svg(points: &[(f64, f64, bool)], frame_ms: f64) -> String {
    let ymax = points.iter().map(|p| p.1).fold(frame_ms, f64::max) * 1.05;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">"##
    );
    axes(
        &mut svg,
        frame_ms,
        ymax,
        "phase of the fault within the frame (ms)",
        "gap (ms)",
        &|v| format!("{v:.1}"),
    );
    let y = py(frame_ms, ymax);
    let _ = write!(
        svg,
        r##"<line x1="{ML}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#d62728" stroke-dasharray="5,4"/>"##,
        W - MR
    );
    for (x, g, spoiled) in points {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"##,
            px(*x, frame_ms),
            py(*g, ymax),
            if *spoiled { "#d62728" } else { COLORS[0] }
        );
    }
    svg.push_str("</svg>");
    svg
}

fn row(o: &mut String, k: &str, v: &str) {
    let _ = write!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
}

fn opt_ms(v: Option<i64>) -> String {
    v.map_or("-".into(), |v| format!("{:.3}", v as f64 / 1e6))
}

/// The whole page.
pub fn page(r: &BenchReport) -> String {
    let v = &r.verdict;
    let frame_ms = r.asset.frame_ns as f64 / 1e6;
    let mut o = String::new();
    let title = format!(
        "tandem failover benchmark: {} x {}, {} mode, {}",
        v.trials,
        r.settings.fault.name(),
        r.settings.switch_at,
        r.asset.path
    );
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}\
table{{border-collapse:collapse;margin:.6em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
th{{background:#f4f4f4;text-align:left}}.pass{{color:#fff;background:#2a2;padding:2px 8px}}\
.fail{{color:#fff;background:#c22;padding:2px 8px}}code{{background:#f4f4f4;padding:1px 4px}}\
.small{{font-size:85%}}</style></head><body>",
        esc(&title)
    );
    let _ = write!(
        o,
        "<h1>{}</h1><p><span class=\"{}\">{}</span> {} of {} trials switched inside one frame ({} ms); \
p99 of the gap {} ms against the aim of a quarter frame ({} ms): {}.</p>",
        esc(&title),
        if v.pass { "pass" } else { "fail" },
        if v.pass { "PASS" } else { "FAIL" },
        v.trials as usize - v.failures.len(),
        v.trials,
        ms(r.asset.frame_ns),
        ms(r.metrics.gap.p99),
        ms(v.aim_ns),
        if v.aim_met { "met" } else { "not met" }
    );
    o.push_str("<h2>Percentiles</h2><table><tr><th>metric</th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>");
    for (_, label, m) in r.metrics.rows() {
        let f = |x: u64| match m.unit {
            Unit::Ns => format!("{} ms", ms(x)),
            Unit::Count => x.to_string(),
        };
        let mean = match m.unit {
            Unit::Ns => format!("{:.3} ms", m.mean / 1e6),
            Unit::Count => format!("{:.2}", m.mean),
        };
        let _ = write!(
            o,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(label),
            m.samples,
            f(m.p50),
            f(m.p90),
            f(m.p99),
            f(m.p999),
            f(m.max),
            mean
        );
    }
    o.push_str("</table>");
    let _ = write!(
        o,
        "<p>Trials: {} switched, {} without a switch, {} errors; gap of one frame or more: {}; \
more than one change of sender or the primary back on the live group: {}; the original primary \
taking the group back by the rules after the new owner stalled (not a failure): {}; \
the primary failed by itself before the fault (the secondary took over then): {}; the secondary \
not synchronised at the fault: {}. \
Trials with a stall of at least {} ms (the benchmark's watcher, the primary's or the secondary's \
datagrams): {} ({} of them over one frame); they are kept in every figure. The watcher saw {} \
stalls over the run, the longest {} ms.</p>",
        v.switched,
        v.not_switched,
        v.errors,
        v.over_frame,
        v.extra_sender_changes,
        v.retakes,
        v.switched_before_fault,
        v.secondary_not_ready,
        ms(r.machine_stalls.threshold_ns),
        v.spoiled_by_stalls,
        v.over_frame_spoiled,
        r.machine_stalls.count,
        ms(r.machine_stalls.max_ns)
    );
    let series = |vals: &Vec<Option<i64>>| -> Vec<f64> {
        vals.iter().flatten().map(|v| *v as f64 / 1e6).collect()
    };
    o.push_str("<h2>Cumulative distribution</h2>");
    o.push_str(&cdf_svg(
        &[
            (
                "detection (fault -> declared)",
                series(&r.metrics.detection.values),
            ),
            (
                "switch (declared -> first live)",
                series(&r.metrics.switch.values),
            ),
            ("gap at the receiver", series(&r.metrics.gap.values)),
        ],
        frame_ms,
    ));
    o.push_str("<h2>Gaps</h2>");
    o.push_str(&hist_svg(&series(&r.metrics.gap.values), frame_ms));
    let phase: Vec<(f64, f64, bool)> = r
        .trials
        .iter()
        .filter_map(|t| {
            Some((
                t.phase_ns? as f64 / 1e6,
                t.gap_ns? as f64 / 1e6,
                t.stall.spoiled,
            ))
        })
        .collect();
    if !phase.is_empty() {
        o.push_str("<h2>Gap against the fault's phase in the frame</h2><p class=\"small\">Red: trials with a stall.</p>");
        o.push_str(&phase_svg(&phase, frame_ms));
    }
    if !v.failures.is_empty() {
        o.push_str("<h2>Trials not inside one frame</h2><ul>");
        for f in &v.failures {
            let _ = write!(o, "<li>{}</li>", esc(f));
        }
        o.push_str("</ul>");
    }
    o.push_str("<h2>Asset</h2><table>");
    let a = &r.asset;
    row(&mut o, "path", &a.path);
    row(&mut o, "size", &format!("{} bytes", a.size));
    row(&mut o, "XXH3-128", &a.hash);
    row(&mut o, "frame rate", &a.frame_rate);
    row(&mut o, "frame", &format!("{} ms", ms(a.frame_ns)));
    row(
        &mut o,
        "datagram interval",
        &format!("{} ms", ms(a.datagram_ns)),
    );
    row(&mut o, "duration", &format!("{:.3} s", a.duration_s));
    o.push_str("</table><h2>Settings</h2><table>");
    let s = &r.settings;
    row(&mut o, "command", &s.command);
    row(&mut o, "fault", s.fault.name());
    row(&mut o, "switch at", &s.switch_at);
    row(&mut o, "trials", &s.trials.to_string());
    row(
        &mut o,
        "miss",
        &s.miss.map_or("pair default".into(), |m| m.to_string()),
    );
    row(
        &mut o,
        "heartbeat",
        &s.heartbeat_us
            .map_or("pair default".into(), |h| format!("{h} us")),
    );
    if let Some(e) = &s.effective {
        row(
            &mut o,
            "effective heartbeat",
            &format!(
                "{} us x miss {} = detection window {} ms",
                e.heartbeat_us,
                e.miss,
                ms(e.detection_window_us * 1000)
            ),
        );
    }
    row(&mut o, "framing", &s.framing);
    row(&mut o, "pair", &s.pair);
    if let Some(i) = &s.inject {
        row(&mut o, "inject", i);
    }
    if let Some(l) = &s.lab {
        row(&mut o, "namespace lab", l);
    }
    row(&mut o, "seed", &s.seed.to_string());
    row(
        &mut o,
        "stall threshold",
        &format!("{} us", s.stall_threshold_us),
    );
    o.push_str("</table><h2>Machine</h2><table>");
    let m = &r.machine;
    row(&mut o, "CPU", &m.cpu_model);
    row(&mut o, "cores", &m.cores.to_string());
    row(&mut o, "kernel", &m.kernel);
    row(
        &mut o,
        "load average",
        &format!(
            "{:.2} {:.2} {:.2}",
            m.load_avg[0], m.load_avg[1], m.load_avg[2]
        ),
    );
    row(&mut o, "host", &m.hostname);
    row(&mut o, "tandem", &r.version);
    o.push_str("</table><h2>Every trial</h2><table class=\"small\"><tr><th>n</th><th>outcome</th><th>phase ms</th><th>detection ms</th><th>switch ms</th><th>gap ms</th><th>changes</th><th>lost dgrams</th><th>CC err</th><th>dups</th><th>stall ms (mach/pri/sec)</th><th>declared by</th></tr>");
    for t in &r.trials {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.n,
            match t.outcome {
                Outcome::Switched => "switched",
                Outcome::NoSwitch => "no switch",
                Outcome::Error => "error",
            },
            opt_ms(t.phase_ns.map(|p| p as i64)),
            opt_ms(t.detection_ns),
            opt_ms(t.switch_ns),
            opt_ms(t.gap_ns.map(|g| g as i64)),
            t.sender_changes,
            t.datagrams_lost.map_or("-".into(), |d| d.to_string()),
            t.cc_errors,
            t.duplicates.map_or("-".into(), |d| d.to_string()),
            esc(&format!(
                "{}{}/{}/{}",
                if t.stall.spoiled { "! " } else { "" },
                ms(t.stall.machine_ns),
                ms(t.stall.primary_ns),
                ms(t.stall.secondary_ns)
            )),
            esc(t.declared_reason.as_deref().or(t.error.as_deref()).unwrap_or("-")),
        );
    }
    o.push_str("</table><p class=\"small\">Generated by <code>tandem bench failover</code>. Times: CLOCK_REALTIME; receive times are kernel timestamps (SO_TIMESTAMPNS). The JSON file beside this page holds the raw values and the histograms (HdrHistogram V2 + DEFLATE, base64).</p></body></html>\n");
    o
}
