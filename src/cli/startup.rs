//! Start-up priority flags (issue 13, docs/startup.md): `--quiet-startup` (the default) /
//! `--no-quiet-startup`, and `--rt-priority N` for the pacer. Shared by `play`, `primary`,
//! `secondary` and `pair` (which hands them to both servers); `index` takes the first two.

use crate::net::priority;

/// `--quiet-startup` / `--no-quiet-startup`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct QuietArgs {
    /// Do the start-up work (loading or building the offset map, hashing the asset, the
    /// first fill of the read-ahead ring) at idle CPU and I/O priority (SCHED_IDLE,
    /// IOPRIO_CLASS_IDLE), so that it cannot stall a live output on the same host. The
    /// default.
    #[arg(long, overrides_with = "no_quiet_startup")]
    pub quiet_startup: bool,
    /// Do the start-up work at normal priority (faster on a busy host; may stall another
    /// process's output there).
    #[arg(long, overrides_with = "quiet_startup")]
    pub no_quiet_startup: bool,
    /// How quiet start-up lowers CPU priority: idle = SCHED_IDLE, nice = SCHED_BATCH at
    /// nice 19 (docs/startup.md says which this host prefers and why).
    #[arg(long, value_enum, value_name = "HOW", default_value_t = priority::QuietCpu::Idle)]
    pub quiet_cpu: priority::QuietCpu,
}

impl QuietArgs {
    /// Whether start-up work runs quietly.
    pub fn quiet(&self) -> bool {
        !self.no_quiet_startup
    }

    /// Makes these the process's settings (`net::priority`).
    pub fn apply(&self, rt_priority: Option<u8>) {
        priority::set_quiet_cpu(self.quiet_cpu);
        priority::configure(self.quiet(), rt_priority);
    }
}

/// [`QuietArgs`] and `--rt-priority N`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StartupArgs {
    #[command(flatten)]
    pub quiet: QuietArgs,
    /// Run the pacer thread at SCHED_FIFO priority N (1-99) where permitted (CAP_SYS_NICE
    /// or RLIMIT_RTPRIO >= N); refused: a warning, and it runs at normal priority. The
    /// pacer sleeps between every two datagrams, so it cannot lock up a core. Default: off.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub rt_priority: Option<u8>,
}

impl StartupArgs {
    /// Makes these the process's settings (`net::priority::configure`).
    pub fn apply(&self) {
        self.quiet.apply(self.rt_priority);
    }

    /// The same flags for a child process's command line.
    pub fn forward(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.quiet.quiet() {
            v.push("--no-quiet-startup".to_string());
        }
        if self.quiet.quiet_cpu != priority::QuietCpu::Idle {
            v.push("--quiet-cpu=nice".to_string());
        }
        if let Some(p) = self.rt_priority {
            v.push(format!("--rt-priority={p}"));
        }
        v
    }
}
