//! The figures over all trials: one hdrhistogram per metric (3 significant digits), its
//! percentile table, the raw per-trial values and the histogram's serialised form
//! (HdrHistogram V2 + DEFLATE, base64: what `HistogramLogProcessor` and other hdrhistogram
//! ports read), and the verdict against "inside one frame".

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::machine::MachineInfo;
use super::stall::StallLog;
use super::trial::{Outcome, Trial};
use super::{AssetInfo, Settings, SCHEMA};

/// Largest value a histogram records: one hour in ns (longer values saturate).
const HIST_MAX: u64 = 3_600_000_000_000;

/// The unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Nanoseconds (durations).
    Ns,
    /// Plain counts.
    Count,
}

/// One metric over all trials (the JSON `metrics.*` objects).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Unit of every value below.
    pub unit: Unit,
    /// Trials with a value.
    pub samples: u64,
    /// Values below zero (recorded as 0 in the histogram; e.g. a declaration stamped before
    /// the fault's own timestamp).
    pub negative: u64,
    /// Median (histogram value).
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value, exact.
    pub max: u64,
    /// Mean (histogram).
    pub mean: f64,
    /// Per-trial values in trial order (null: not measured in that trial).
    pub values: Vec<Option<i64>>,
    /// The histogram, HdrHistogram V2 + DEFLATE, base64.
    pub hdr: String,
}

impl Metric {
    /// No samples (a report written before the metric existed).
    pub fn empty() -> Metric {
        Metric::from_values(Unit::Ns, Vec::new())
    }

    /// Builds the metric from per-trial values.
    pub fn from_values(unit: Unit, values: Vec<Option<i64>>) -> Metric {
        let mut h = Histogram::<u64>::new_with_bounds(1, HIST_MAX, 3)
            .expect("constant histogram bounds are valid");
        let mut negative = 0;
        let mut max = 0u64;
        for v in values.iter().flatten() {
            if *v < 0 {
                negative += 1;
            }
            let v = (*v).max(0) as u64;
            max = max.max(v);
            h.saturating_record(v);
        }
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                // A bucket's highest equivalent value: never report above the exact max.
                h.value_at_quantile(p).min(max)
            }
        };
        let mut buf = Vec::new();
        let hdr = match V2DeflateSerializer::new().serialize(&h, &mut buf) {
            Ok(_) => base64::engine::general_purpose::STANDARD.encode(&buf),
            Err(_) => String::new(),
        };
        Metric {
            unit,
            samples: h.len(),
            negative,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max,
            mean: if h.is_empty() { 0.0 } else { h.mean() },
            values,
            hdr,
        }
    }

    /// Decodes [`Metric::hdr`] back into a histogram (for tools and tests).
    pub fn histogram(&self) -> Option<Histogram<u64>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.hdr)
            .ok()?;
        hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .ok()
    }
}

/// The eight metrics (the JSON `metrics` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Fault -> failure declared.
    pub detection: Metric,
    /// Declared -> first datagram of the secondary on the live group.
    pub switch: Metric,
    /// The secondary's first live datagram against its due time.
    #[serde(default = "Metric::empty")]
    pub late: Metric,
    /// The receiver's gap: primary's last datagram -> secondary's first.
    pub gap: Metric,
    /// Datagrams lost per trial.
    pub datagrams_lost: Metric,
    /// TS packets lost per trial.
    pub ts_packets_lost: Metric,
    /// CC errors per trial.
    pub cc_errors: Metric,
    /// Duplicate datagrams per trial.
    pub duplicates: Metric,
}

impl Metrics {
    /// Builds every metric from the trials.
    pub fn from_trials(trials: &[Trial]) -> Metrics {
        let ns = |f: &dyn Fn(&Trial) -> Option<i64>| {
            Metric::from_values(Unit::Ns, trials.iter().map(f).collect())
        };
        let count = |f: &dyn Fn(&Trial) -> Option<u64>| {
            Metric::from_values(
                Unit::Count,
                trials.iter().map(|t| f(t).map(|v| v as i64)).collect(),
            )
        };
        Metrics {
            detection: ns(&|t| t.detection_ns),
            switch: ns(&|t| t.switch_ns),
            late: ns(&|t| t.switch_late_ns),
            gap: ns(&|t| t.gap_ns.map(|g| g as i64)),
            datagrams_lost: count(&|t| t.datagrams_lost),
            ts_packets_lost: count(&|t| t.ts_packets_lost),
            cc_errors: count(&|t| (t.outcome != Outcome::Error).then_some(t.cc_errors)),
            duplicates: count(&|t| t.duplicates),
        }
    }

    /// `(name, label, metric)` in table order.
    pub fn rows(&self) -> [(&'static str, &'static str, &Metric); 8] {
        [
            (
                "detection",
                "detection (fault -> declared)",
                &self.detection,
            ),
            ("switch", "switch (declared -> first live)", &self.switch),
            ("late", "first live vs its due time", &self.late),
            ("gap", "gap at the receiver", &self.gap),
            ("datagrams_lost", "datagrams lost", &self.datagrams_lost),
            ("ts_packets_lost", "TS packets lost", &self.ts_packets_lost),
            ("cc_errors", "CC errors", &self.cc_errors),
            ("duplicates", "duplicate datagrams", &self.duplicates),
        ]
    }
}

/// The verdict (the JSON `verdict` object): PASS when every trial switched, with one change
/// of sender, the primary silent afterwards, and a gap below one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every trial inside one frame.
    pub pass: bool,
    /// One frame of the asset (ns).
    pub frame_ns: u64,
    /// The limit every gap must stay under (= one frame).
    pub limit_ns: u64,
    /// The aim for p99 of the gap: a quarter of a frame.
    pub aim_ns: u64,
    /// Whether p99 of the gap is under the aim.
    pub aim_met: bool,
    /// Trials run.
    pub trials: u32,
    /// Trials where the secondary took over.
    pub switched: u32,
    /// Trials where nobody took over.
    pub not_switched: u32,
    /// Trials that could not be run to the fault.
    pub errors: u32,
    /// Switched trials whose gap reached one frame.
    pub over_frame: u32,
    /// Switched trials whose gap reached a quarter of a frame.
    pub over_aim: u32,
    /// Trials where the receiver saw more than one change of sender, or the primary again
    /// after the switch.
    pub extra_sender_changes: u32,
    /// Trials where, after the switch, the original primary took the group back by the rules
    /// (the new owner stalled or failed); each change inside one frame. Not failures.
    #[serde(default)]
    pub retakes: u32,
    /// One line per such trial.
    #[serde(default)]
    pub retake_lines: Vec<String>,
    /// Trials with a stall of at least the threshold (they stay in every figure).
    pub spoiled_by_stalls: u32,
    /// Of the trials over one frame, those with such a stall.
    pub over_frame_spoiled: u32,
    /// Trials where the primary had already failed by itself (a real stall) and the
    /// secondary was on air before the fault was injected.
    pub switched_before_fault: u32,
    /// Trials where the secondary was not `Secondary_synchronized` at the fault (it had
    /// failed or lost its lock by itself), so nobody could take over.
    pub secondary_not_ready: u32,
    /// One line per failed trial.
    pub failures: Vec<String>,
}

impl Verdict {
    /// Judges the trials against one frame.
    pub fn judge(trials: &[Trial], frame_ns: u64, gap: &Metric) -> Verdict {
        let aim_ns = frame_ns / 4;
        let mut v = Verdict {
            pass: !trials.is_empty(),
            frame_ns,
            limit_ns: frame_ns,
            aim_ns,
            aim_met: gap.samples > 0 && gap.p99 < aim_ns,
            trials: trials.len() as u32,
            switched: 0,
            not_switched: 0,
            errors: 0,
            over_frame: 0,
            over_aim: 0,
            extra_sender_changes: 0,
            retakes: 0,
            retake_lines: Vec::new(),
            spoiled_by_stalls: 0,
            over_frame_spoiled: 0,
            switched_before_fault: 0,
            secondary_not_ready: 0,
            failures: Vec::new(),
        };
        for t in trials {
            if t.stall.spoiled {
                v.spoiled_by_stalls += 1;
            }
            if t.switched_before_fault {
                v.switched_before_fault += 1;
            }
            if !t.switched_before_fault
                && t.outcome != Outcome::Error
                && t.secondary_state_at_fault
                    .as_deref()
                    .is_some_and(|s| s != "Secondary_synchronized")
            {
                v.secondary_not_ready += 1;
            }
            match t.outcome {
                Outcome::Switched => v.switched += 1,
                Outcome::NoSwitch => v.not_switched += 1,
                Outcome::Error => v.errors += 1,
            }
            let gap = t.gap_ns.unwrap_or(u64::MAX);
            if t.outcome == Outcome::Switched {
                if gap >= frame_ns {
                    v.over_frame += 1;
                    if t.stall.spoiled {
                        v.over_frame_spoiled += 1;
                    }
                }
                if gap >= aim_ns {
                    v.over_aim += 1;
                }
            }
            if t.outcome != Outcome::Error && (t.sender_changes != 1 || t.primary_after_switch > 0)
            {
                if t.retook_inside_frame(frame_ns) {
                    v.retakes += 1;
                    v.retake_lines.push(format!(
                        "trial {}: the new owner was declared failed by the original primary \
                         (by then its synchronised secondary), gap {:.3} ms: {}",
                        t.n,
                        t.retake_gap_ns.unwrap_or(0) as f64 / 1e6,
                        t.primary_retook.as_deref().unwrap_or("")
                    ));
                } else {
                    v.extra_sender_changes += 1;
                }
            }
            if !t.inside_frame(frame_ns) {
                v.pass = false;
                v.failures.push(failure_line(t, frame_ns));
            }
        }
        v
    }
}

fn failure_line(t: &Trial, frame_ns: u64) -> String {
    let stall = if t.stall.spoiled {
        format!(
            " (stall: machine {:.1} ms, primary {:.1} ms, secondary {:.1} ms)",
            t.stall.machine_ns as f64 / 1e6,
            t.stall.primary_ns as f64 / 1e6,
            t.stall.secondary_ns as f64 / 1e6
        )
    } else {
        String::new()
    };
    let what = match t.outcome {
        Outcome::Error => format!("error: {}", t.error.as_deref().unwrap_or("?")),
        Outcome::NoSwitch => match t.secondary_state_at_fault.as_deref() {
            Some(st) if st != "Secondary_synchronized" => format!(
                "no switch: the secondary was {st} at the fault, not Secondary_synchronized"
            ),
            _ => "no switch: no other sender on the live group".into(),
        },
        Outcome::Switched => {
            let mut parts = Vec::new();
            if let Some(g) = t.gap_ns.filter(|&g| g >= frame_ns) {
                parts.push(format!(
                    "gap {:.3} ms >= frame {:.3} ms",
                    g as f64 / 1e6,
                    frame_ns as f64 / 1e6
                ));
            }
            if t.gap_ns.is_none() {
                parts.push("no primary datagram before the switch".into());
            }
            if t.sender_changes != 1 {
                parts.push(format!("{} changes of sender", t.sender_changes));
            }
            if t.primary_after_switch > 0 {
                parts.push(format!(
                    "primary sent {} datagrams on the live group after the switch",
                    t.primary_after_switch
                ));
            }
            parts.join(", ")
        }
    };
    format!("trial {}: {what}{stall}", t.n)
}

/// Summary of the watcher's stalls (the JSON `machine_stalls` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallSummary {
    /// Threshold (ns).
    pub threshold_ns: u64,
    /// Stalls of at least the threshold during the whole run.
    pub count: u64,
    /// The longest (ns).
    pub max_ns: u64,
    /// Their sum (ns).
    pub total_ns: u64,
}

/// The whole report: the JSON file, and what the table and the HTML page show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// tandem's version.
    pub version: String,
    /// When the run started (unix ns).
    pub started_unix_ns: u64,
    /// When it finished (unix ns).
    pub finished_unix_ns: u64,
    /// Settings.
    pub settings: Settings,
    /// The asset.
    pub asset: AssetInfo,
    /// The machine.
    pub machine: MachineInfo,
    /// Every trial, none filtered.
    pub trials: Vec<Trial>,
    /// Histograms and percentiles.
    pub metrics: Metrics,
    /// PASS/FAIL.
    pub verdict: Verdict,
    /// The machine's stalls over the whole run.
    pub machine_stalls: StallSummary,
}

impl BenchReport {
    /// Assembles the report from the trials.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        asset: AssetInfo,
        machine: MachineInfo,
        trials: Vec<Trial>,
        stalls: &StallLog,
        stall_threshold_ns: u64,
        started_unix_ns: u64,
        finished_unix_ns: u64,
    ) -> BenchReport {
        let metrics = Metrics::from_trials(&trials);
        let verdict = Verdict::judge(&trials, asset.frame_ns, &metrics.gap);
        BenchReport {
            schema: SCHEMA.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_unix_ns,
            finished_unix_ns,
            settings,
            asset,
            machine,
            trials,
            metrics,
            verdict,
            machine_stalls: StallSummary {
                threshold_ns: stall_threshold_ns,
                count: stalls.count,
                max_ns: stalls.max_ns,
                total_ns: stalls.total_ns,
            },
        }
    }
}
