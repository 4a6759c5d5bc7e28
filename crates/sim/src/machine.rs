//! The machine a run measured: CPU model, cores, memory. Parsing is pure.

use serde::Serialize;

/// What the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Total memory in MiB.
    pub memory_mib: u64,
}

/// The first `model name` in `/proc/cpuinfo` text.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `MemTotal` in MiB from `/proc/meminfo` text.
pub fn parse_mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

impl Machine {
    /// Describes this machine (unknown parts are left empty or zero).
    pub fn detect() -> Self {
        let read = |p| std::fs::read_to_string(p).unwrap_or_default();
        Self {
            cpu_model: parse_cpu_model(&read("/proc/cpuinfo")).unwrap_or_default(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_mib: parse_mem_total_mib(&read("/proc/meminfo")).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_and_memory() {
        let cpuinfo =
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n";
        assert_eq!(
            parse_cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(
            parse_mem_total_mib("MemTotal:       24684544 kB\n"),
            Some(24106)
        );
    }
}
