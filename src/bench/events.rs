//! The servers' event logs (`tandem primary|secondary --event-log FILE`): one JSON object
//! per line, written when it happens. The benchmark reads two kinds:
//! ```text
//! {"event":"transition","t_real_ns":N,"t_mono_ns":N,"from":"Secondary_synchronized",
//!  "to":"Secondary_no_primary","trigger":"FailureDeclared","reason":"...","epoch":N,
//!  "last_index":N}
//! {"event":"inject","t_real_ns":N,"kind":"pacer-hang"}      (a --inject fault fired)
//! {"event":"switch","t_real_ns":N,"late_ms":F,...}   (the new owner's first datagram)
//! ```
//! Unknown events and fields are ignored; a line that does not parse is skipped (a log
//! read while it is being written may end in half a line).

use serde::Deserialize;

/// One line of an event log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    /// `transition`, `inject`, ...
    #[serde(default)]
    pub event: String,
    /// When it happened (unix ns, the server's CLOCK_REALTIME).
    #[serde(default)]
    pub t_real_ns: u64,
    /// Previous state (transitions).
    #[serde(default)]
    pub from: Option<String>,
    /// New state (transitions).
    #[serde(default)]
    pub to: Option<String>,
    /// The machine event that caused it.
    #[serde(default)]
    pub trigger: Option<String>,
    /// Why, for a human.
    #[serde(default)]
    pub reason: Option<String>,
    /// The fault that fired (`inject`).
    #[serde(default)]
    pub kind: Option<String>,
    /// The new owner's first live datagram, on arrival back at its own socket, after its
    /// due time (ms; `switch`).
    #[serde(default)]
    pub late_ms: Option<f64>,
}

/// The first switch's lateness: the new owner's first live datagram against its due time
/// (ns), from its `switch` event.
pub fn switch_late_ns(events: &[Event]) -> Option<i64> {
    events
        .iter()
        .find(|e| e.event == "switch")
        .and_then(|e| e.late_ms)
        .map(|ms| (ms * 1e6).round() as i64)
}

/// Parses every complete line of an event log.
pub fn parse(text: &str) -> Vec<Event> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Event>(l.trim()).ok())
        .collect()
}

/// The first transition into `state`.
pub fn entered<'a>(events: &'a [Event], state: &str) -> Option<&'a Event> {
    events
        .iter()
        .find(|e| e.event == "transition" && e.to.as_deref() == Some(state))
}

/// The secondary's declaration of the primary's failure: the first transition
/// `Secondary_synchronized -> Secondary_no_primary`; returns its instant and
/// `"trigger: reason"`.
pub fn declared(events: &[Event]) -> Option<(u64, String)> {
    events
        .iter()
        .find(|e| {
            e.event == "transition"
                && e.from.as_deref() == Some("Secondary_synchronized")
                && e.to.as_deref() == Some("Secondary_no_primary")
        })
        .map(|e| {
            let why = match (&e.trigger, &e.reason) {
                (Some(t), Some(r)) if !r.is_empty() => format!("{t}: {r}"),
                (Some(t), _) => t.clone(),
                (None, Some(r)) => r.clone(),
                (None, None) => String::new(),
            };
            (e.t_real_ns, why)
        })
}

/// The state a server was in at instant `t` (unix ns): the target of its last transition
/// at or before `t`.
pub fn state_at(events: &[Event], t: u64) -> Option<String> {
    events
        .iter()
        .rev()
        .find(|e| e.event == "transition" && e.t_real_ns <= t)
        .and_then(|e| e.to.clone())
}

/// When an injected fault fired.
pub fn injected(events: &[Event]) -> Option<u64> {
    events
        .iter()
        .find(|e| e.event == "inject")
        .map(|e| e.t_real_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_transitions_declaration_and_injection() {
        let log = r#"{"event":"transition","t_real_ns":100,"from":"Secondary_offline","to":"Secondary","trigger":"PrimaryHeard","reason":""}
{"event":"transition","t_real_ns":200,"from":"Secondary_synchronizing","to":"Secondary_synchronized","trigger":"InStep","reason":"in step","epoch":1,"last_index":7}
not json
{"event":"transition","t_real_ns":300,"from":"Secondary_synchronized","to":"Secondary_no_primary","trigger":"FailureDeclared","reason":"3 heartbeats missed, live silent","epoch":2}
{"event":"inject","t_real_ns":250,"kind":"pacer-hang"}
{"event":"switch","t_real_ns":300,"channel":"main","reason":"FailureDeclared","gap_ms":14.2,"late_ms":2.5}
{"event":"transition","t_real_ns":4"#;
        let ev = parse(log);
        assert_eq!(ev.len(), 5);
        assert_eq!(switch_late_ns(&ev), Some(2_500_000));
        assert_eq!(switch_late_ns(&ev[..4]), None);
        assert_eq!(
            entered(&ev, "Secondary_synchronized").unwrap().t_real_ns,
            200
        );
        assert_eq!(entered(&ev, "Primary"), None);
        assert_eq!(
            declared(&ev),
            Some((
                300,
                "FailureDeclared: 3 heartbeats missed, live silent".to_string()
            ))
        );
        assert_eq!(injected(&ev), Some(250));
        assert_eq!(state_at(&ev, 99), None);
        assert_eq!(
            state_at(&ev, 250).as_deref(),
            Some("Secondary_synchronized")
        );
        assert_eq!(state_at(&ev, 300).as_deref(), Some("Secondary_no_primary"));
        assert_eq!(declared(&ev[..2]), None);
    }
}
