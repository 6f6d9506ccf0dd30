//! The channel's stream layout: what the clips of a playlist must share to be played one
//! after another (tandem does not remap PIDs yet: docs/playlists.md, "Playing a playlist").

use std::collections::BTreeSet;

use crate::index::OffsetMap;
use crate::ts::packet::Pid;

/// What a clip is, for comparing clips with each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Streams {
    video: Option<Pid>,
    pcr: Pid,
    frame_rate: Option<(u32, u32)>,
    pids: BTreeSet<u16>,
}

impl Streams {
    /// The layout of the clip `m` describes.
    pub fn of(m: &OffsetMap) -> Streams {
        Streams {
            video: m.video_pid,
            pcr: m.pcr_pid,
            frame_rate: m.frame_rate,
            pids: m
                .pid_cc
                .iter()
                .map(|e| e.pid.value())
                .filter(|&p| p != Pid::NULL.value())
                .collect(),
        }
    }

    /// How `self` differs from `first`, in words (empty: the same).
    pub fn differences(&self, first: &Streams) -> Vec<String> {
        let mut d = Vec::new();
        if self.video != first.video {
            d.push(format!(
                "video PID {:?} (item 1: {:?})",
                self.video, first.video
            ));
        }
        if self.pcr != first.pcr {
            d.push(format!("PCR PID {} (item 1: {})", self.pcr, first.pcr));
        }
        if self.frame_rate != first.frame_rate {
            let r = |x: Option<(u32, u32)>| {
                x.map_or("unknown".to_string(), |(n, d)| {
                    format!("{:.3} fps", n as f64 / d as f64)
                })
            };
            d.push(format!(
                "frame rate {} (item 1: {})",
                r(self.frame_rate),
                r(first.frame_rate)
            ));
        }
        if self.pids != first.pids {
            d.push(format!("PIDs {:?} (item 1: {:?})", self.pids, first.pids));
        }
        d
    }
}
