//! Small statistics helpers shared by the analyzer: counted events with their first
//! occurrences, exact percentiles over stored samples, and the inter-arrival histogram.

use serde::Serialize;

/// How many occurrences of each event are kept with their details.
pub const MAX_OCCURRENCES: usize = 8;

/// One occurrence of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Occurrence {
    /// Seconds since the first datagram of the run.
    pub t_s: f64,
    /// Receive time of the datagram that showed it (ns, receive clock).
    pub rx_ns: u64,
    /// Index of that datagram in the run (0-based).
    pub datagram: u64,
    /// PID concerned, when the event is about one PID.
    pub pid: Option<u16>,
    /// What was seen, for a human.
    pub detail: String,
}

/// A counted event with the first [`MAX_OCCURRENCES`] occurrences.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Check {
    /// Number of occurrences.
    pub count: u64,
    /// The first occurrences, in order.
    pub first: Vec<Occurrence>,
}

impl Check {
    /// Counts one occurrence; `detail` is only evaluated while the list has room.
    pub fn hit(&mut self, at: At, pid: Option<u16>, detail: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.len() < MAX_OCCURRENCES {
            self.first.push(Occurrence {
                t_s: at.t_s,
                rx_ns: at.rx_ns,
                datagram: at.datagram,
                pid,
                detail: detail(),
            });
        }
    }
}

/// Where in the run something happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct At {
    /// Receive time (ns).
    pub rx_ns: u64,
    /// Seconds since the first datagram.
    pub t_s: f64,
    /// Datagram index.
    pub datagram: u64,
}

/// Percentiles of a set of durations, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

/// Nearest-rank percentile `q` (0..=1) of sorted samples.
pub fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median of samples (mean of the two middle ones for an even count), in their unit.
pub fn median(values: &mut [i64]) -> i64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        ((values[n / 2 - 1] as i128 + values[n / 2] as i128) / 2) as i64
    }
}

/// Percentiles of nanosecond samples, reported in microseconds.
pub fn percentiles_ns(mut values: Vec<i64>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_unstable();
    let us = |ns: i64| ns as f64 / 1000.0;
    Percentiles {
        samples: values.len() as u64,
        p50_us: us(nearest_rank(&values, 0.50)),
        p90_us: us(nearest_rank(&values, 0.90)),
        p99_us: us(nearest_rank(&values, 0.99)),
        p999_us: us(nearest_rank(&values, 0.999)),
        max_us: us(*values.last().unwrap_or(&0)),
    }
}

/// `|x - median|` of each segment's samples, each segment with its own median removed;
/// `starts` are the indices where segments begin (the first is 0 or absent).
pub fn deviations_from_segment_medians(values: &[i64], starts: &[usize]) -> Vec<i64> {
    let mut out = Vec::with_capacity(values.len());
    let mut bounds: Vec<usize> = starts.iter().copied().filter(|&s| s > 0).collect();
    bounds.push(values.len());
    let mut from = 0;
    for to in bounds {
        let to = to.min(values.len());
        if to <= from {
            continue;
        }
        let seg = &values[from..to];
        let m = median(&mut seg.to_vec());
        out.extend(
            seg.iter()
                .map(|&v| (v as i128 - m as i128).unsigned_abs() as i64),
        );
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_definition() {
        let v: Vec<i64> = (1..=1000).collect();
        assert_eq!(nearest_rank(&v, 0.5), 500);
        assert_eq!(nearest_rank(&v, 0.9), 900);
        assert_eq!(nearest_rank(&v, 0.999), 999);
        assert_eq!(nearest_rank(&v, 1.0), 1000);
        assert_eq!(nearest_rank(&[7], 0.5), 7);
        assert_eq!(nearest_rank(&[], 0.5), 0);
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&mut [3, 1, 2]), 2);
        assert_eq!(median(&mut [4, 1, 3, 2]), 2);
        assert_eq!(median(&mut [-100, 100]), 0);
    }

    #[test]
    fn segment_medians_are_removed_separately() {
        let v = [10, 12, 14, 1000, 1002, 1004];
        let d = deviations_from_segment_medians(&v, &[0, 3]);
        assert_eq!(d, vec![2, 0, 2, 2, 0, 2]);
    }

    #[test]
    fn check_keeps_first_occurrences() {
        let mut c = Check::default();
        let at = At {
            rx_ns: 1,
            t_s: 0.0,
            datagram: 0,
        };
        for i in 0..20 {
            c.hit(at, Some(i), || format!("#{i}"));
        }
        assert_eq!(c.count, 20);
        assert_eq!(c.first.len(), MAX_OCCURRENCES);
        assert_eq!(c.first[7].detail, "#7");
    }
}
