//! Failover benchmark entry: runs `tandem bench failover` (real pair, real sockets, the
//! fault at random phases) for a small number of trials per fault and asset and prints its
//! tables. The full runs of the README use the command directly (see README.md, "Failover
//! benchmark").
//!
//! ```text
//! cargo bench --bench failover
//! FAILOVER_TRIALS=50 FAILOVER_FAULTS=kill,stop,kernel FAILOVER_ASSETS=fixtures/cbr-59.94fps.ts \
//!   FAILOVER_SWITCH_AT=pcr cargo bench --bench failover
//! ```
//! The `link` fault needs root (namespace lab); it is skipped with a message otherwise.
//! Figures are reported, not asserted; the exit code is non-zero when a run's verdict is
//! FAIL (a gap of one frame or more).

use std::path::PathBuf;
use std::process::Command;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

// An entry point: its main() may exit (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let trials = env_or("FAILOVER_TRIALS", "10");
    let faults = env_or("FAILOVER_FAULTS", "kill,stop,kernel");
    let assets = env_or(
        "FAILOVER_ASSETS",
        "fixtures/cbr-25fps.ts,fixtures/cbr-59.94fps.ts",
    );
    let modes = env_or("FAILOVER_SWITCH_AT", "seamless");
    let out_dir =
        std::env::temp_dir().join(format!("tandem-failover-bench-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("output directory");
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let root_user = unsafe { libc::geteuid() } == 0;
    let mut failed = 0;
    for asset in assets.split(',') {
        for fault in faults.split(',') {
            if fault == "link" && !root_user {
                println!("skipping --fault link: needs root (namespace lab)");
                continue;
            }
            for mode in modes.split(',') {
                let stem = format!(
                    "{}-{fault}-{mode}",
                    asset
                        .rsplit('/')
                        .next()
                        .unwrap_or(asset)
                        .trim_end_matches(".ts")
                );
                let json = out_dir.join(format!("{stem}.json"));
                let html = out_dir.join(format!("{stem}.html"));
                println!("== tandem bench failover {asset} --trials {trials} --fault {fault} --switch-at {mode}");
                let status = Command::new(env!("CARGO_BIN_EXE_tandem"))
                    .current_dir(&root)
                    .args([
                        "bench", "failover", asset, "--trials", &trials, "--fault", fault,
                    ])
                    .args(["--switch-at", mode, "--json"])
                    .arg(&json)
                    .arg("--report")
                    .arg(&html)
                    .status()
                    .expect("running tandem bench failover");
                if !status.success() {
                    failed += 1;
                }
            }
        }
    }
    println!("reports in {}", out_dir.display());
    if failed > 0 {
        eprintln!("{failed} run(s) with verdict FAIL or an error");
        std::process::exit(1);
    }
}
