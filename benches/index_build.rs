//! Index build speed: tandem's streaming scan vs multicat's `ingests` on the same ~100 MB
//! CBR file, warm page cache, several runs each; prints medians and the ratio.
//!
//!   cargo bench --bench index_build
//!
//! The file comes from tools/make-bigfile.sh (run automatically when missing), or from
//! `TANDEM_BENCH_FILE`. `TANDEM_BENCH_RUNS` sets the number of runs (default 15).
//! Figures are reported, not asserted (shared, noisy machine).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tandem::index::BuildOptions;
use tandem::io::asset::{build, hash_file};
use tandem::io::index_file;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_runs(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(name: &str, v: &[Duration], bytes: u64) -> Duration {
    let m = median(v.to_vec());
    let lo = v.iter().min().copied().unwrap_or_default();
    let hi = v.iter().max().copied().unwrap_or_default();
    println!(
        "{name:<34} median {:>8.2} ms  (min {:>7.2}, max {:>7.2})  {:>6.2} GB/s",
        ms(m),
        ms(lo),
        ms(hi),
        bytes as f64 / m.as_secs_f64() / 1e9
    );
    m
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = std::env::var_os("TANDEM_BENCH_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench/bigfile-14mbps.ts"));
    if !file.exists() {
        let ok = Command::new(root.join("tools/make-bigfile.sh"))
            .arg(&file)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "index_build: cannot make {} (needs ffmpeg); skipped",
                file.display()
            );
            return;
        }
    }
    let runs: usize = std::env::var("TANDEM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
        .max(1);
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    // Warm the page cache and learn the PCR PID.
    let _ = std::fs::read(&file);
    let no_hash = BuildOptions {
        hash: false,
        ..BuildOptions::default()
    };
    let first = match build(&file, &no_hash, false) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("index_build: {e}");
            return;
        }
    };
    let pcr_pid = first.map.pcr_pid.value();
    println!(
        "file {} ({bytes} bytes, {} packets, {} datagrams, {:.1} s, PCR PID {pcr_pid}), {runs} runs each, warm cache",
        file.display(),
        first.map.packets,
        first.map.datagram_count(),
        first.map.loop_period as f64 / 27e6
    );

    let ingests_ok = Command::new("ingests").arg("-h").output().is_ok();
    // Interleaved rounds (ours, hash, both, load, ingests) so that machine noise hits all
    // contenders alike.
    let (mut ours, mut hash, mut both, mut load, mut ing) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let saved =
        std::env::temp_dir().join(format!("tandem-bench-{}.tandem-index", std::process::id()));
    let stamp = index_file::stamp_of(&file).expect("stat");
    index_file::save_to(&first.map, &stamp, &saved).expect("save");
    let index_bytes = std::fs::metadata(&saved).map(|m| m.len()).unwrap_or(0);
    for _ in 0..runs {
        ours.extend(time_runs(1, || {
            std::hint::black_box(build(&file, &no_hash, false).expect("build"));
        }));
        hash.extend(time_runs(1, || {
            std::hint::black_box(hash_file(&file).expect("hash"));
        }));
        both.extend(time_runs(1, || {
            std::hint::black_box(build(&file, &BuildOptions::default(), false).expect("build"));
        }));
        load.extend(time_runs(1, || {
            std::hint::black_box(index_file::load(&saved).expect("load"));
        }));
        if ingests_ok {
            ing.extend(time_runs(1, || {
                let st = Command::new("ingests")
                    .args(["-p", &pcr_pid.to_string()])
                    .arg(&file)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .expect("ingests");
                assert!(st.success(), "ingests failed");
            }));
        }
    }
    let _ = std::fs::remove_file(&saved);
    let ing = ingests_ok.then_some(ing);

    let m_ours = report("tandem build (no hash)", &ours, bytes);
    report("xxh3-128 of the file alone", &hash, bytes);
    let m_both = report("tandem build + hash (one pass)", &both, bytes);
    report(
        &format!("load saved index ({index_bytes} B)"),
        &load,
        index_bytes,
    );
    match ing {
        Some(v) => {
            let m_ing = report(&format!("ingests -p {pcr_pid} (process)"), &v, bytes);
            println!(
                "ratio tandem(no hash)/ingests = {:.2}, tandem(+hash)/ingests = {:.2}",
                m_ours.as_secs_f64() / m_ing.as_secs_f64(),
                m_both.as_secs_f64() / m_ing.as_secs_f64()
            );
            let mut aux = file.clone().into_os_string();
            aux.push(".aux");
            let aux = PathBuf::from(aux);
            let aux = if aux.exists() {
                aux
            } else {
                file.with_extension("aux")
            };
            let _ = std::fs::remove_file(aux);
        }
        None => println!("ingests not installed: no comparison"),
    }
}
