//! The machine a benchmark ran on (the JSON `machine` object), parsed from the texts of
//! `/proc/cpuinfo`, `/proc/loadavg`, `/proc/sys/kernel/osrelease` and the hostname. The
//! caller reads the files (src/cli/bench/); parsing never fails, unknown fields stay empty.

use serde::{Deserialize, Serialize};

/// Cores, CPU, kernel and load of the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Logical CPUs (`processor` entries of /proc/cpuinfo, else the caller's count).
    pub cores: u32,
    /// `model name` of the first CPU.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// 1, 5 and 15 minute load averages when the run started.
    pub load_avg: [f64; 3],
    /// Host name.
    pub hostname: String,
}

impl MachineInfo {
    /// Parses the texts; `fallback_cores` is used when /proc/cpuinfo lists no processor.
    pub fn parse(
        cpuinfo: &str,
        loadavg: &str,
        osrelease: &str,
        hostname: &str,
        fallback_cores: u32,
    ) -> MachineInfo {
        let mut cores = 0;
        let mut model = String::new();
        for line in cpuinfo.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k.trim() {
                "processor" => cores += 1,
                "model name" | "Model" | "cpu model" if model.is_empty() => {
                    model = v.trim().to_string()
                }
                _ => {}
            }
        }
        let mut load_avg = [0.0; 3];
        for (slot, field) in load_avg.iter_mut().zip(loadavg.split_whitespace()) {
            *slot = field.parse().unwrap_or(0.0);
        }
        MachineInfo {
            cores: if cores == 0 { fallback_cores } else { cores },
            cpu_model: model,
            kernel: osrelease.trim().to_string(),
            load_avg,
            hostname: hostname.trim().to_string(),
        }
    }

    /// One line for the terminal and the HTML page.
    pub fn line(&self) -> String {
        format!(
            "{} x {}, Linux {}, load {:.2} {:.2} {:.2}{}",
            self.cores,
            if self.cpu_model.is_empty() {
                "unknown CPU"
            } else {
                &self.cpu_model
            },
            self.kernel,
            self.load_avg[0],
            self.load_avg[1],
            self.load_avg[2],
            if self.hostname.is_empty() {
                String::new()
            } else {
                format!(", host {}", self.hostname)
            }
        )
    }
}
