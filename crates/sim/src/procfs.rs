//! CPU time and resident memory of processes, and loopback traffic, from
//! Linux `/proc`. Parsing is pure; the readers are thin.

use std::{io, path::PathBuf};

/// Clock ticks (utime + stime) from the text of `/proc/PID/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. Field 3 (state) is the first after it; utime is field
    // 14 and stime field 15.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A memory field (`VmRSS`, `RssAnon`, ...) in bytes from the text of
/// `/proc/PID/status`.
pub fn parse_status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident memory of a process: all of it, and the private (anonymous)
/// part. The rest is file-backed, mostly pages of the executable, which
/// processes running the same binary share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// `VmRSS`.
    pub total: u64,
    /// `RssAnon`.
    pub anonymous: u64,
    /// `Pss` from `smaps_rollup`: private pages plus each shared page
    /// divided by the processes sharing it, so daemons running one
    /// executable are not each charged for all of it. `None` where the
    /// kernel does not offer `smaps_rollup`.
    pub proportional: Option<u64>,
}

/// Received bytes of the loopback interface from the text of
/// `/proc/net/dev`.
pub fn parse_loopback_rx_bytes(net_dev: &str) -> Option<u64> {
    let line = net_dev
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))?;
    let (_, counters) = line.split_once(':')?;
    counters.split_whitespace().next()?.parse().ok()
}

/// Busy ticks of the whole machine (all CPUs) from the text of
/// `/proc/stat`: user, nice, system, irq, softirq and steal time.
pub fn parse_machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7).unwrap_or(&0))
}

fn proc_path(pid: Option<u32>, file: &str) -> PathBuf {
    match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/{file}")),
        None => PathBuf::from(format!("/proc/self/{file}")),
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected {what} format"),
    )
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds used so far by process `pid` (this process for `None`).
pub fn cpu_seconds(pid: Option<u32>, ticks_per_second: f64) -> io::Result<f64> {
    let text = std::fs::read_to_string(proc_path(pid, "stat"))?;
    let ticks = parse_stat_cpu_ticks(&text).ok_or_else(|| malformed("/proc/PID/stat"))?;
    Ok(ticks as f64 / ticks_per_second)
}

/// Resident memory of process `pid` (this process for `None`).
pub fn resident(pid: Option<u32>) -> io::Result<Resident> {
    let text = std::fs::read_to_string(proc_path(pid, "status"))?;
    Ok(Resident {
        total: parse_status_bytes(&text, "VmRSS").ok_or_else(|| malformed("/proc/PID/status"))?,
        anonymous: parse_status_bytes(&text, "RssAnon").unwrap_or(0),
        proportional: std::fs::read_to_string(proc_path(pid, "smaps_rollup"))
            .ok()
            .and_then(|rollup| parse_status_bytes(&rollup, "Pss")),
    })
}

/// CPU seconds the whole machine has been busy since boot (all processes).
pub fn machine_busy_seconds(ticks_per_second: f64) -> io::Result<f64> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let ticks = parse_machine_busy_ticks(&text).ok_or_else(|| malformed("/proc/stat"))?;
    Ok(ticks as f64 / ticks_per_second)
}

/// Bytes received on the loopback interface since boot (every process's
/// loopback traffic, ours included).
pub fn loopback_rx_bytes() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/net/dev")?;
    parse_loopback_rx_bytes(&text).ok_or_else(|| malformed("/proc/net/dev"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parentheses_in_the_name() {
        let stat = "4242 (conclave (x) d) S 1 4242 4242 0 -1 4194560 3061 0 0 0 170 35 0 0 20 0 9 0 123 1000 500";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(205));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_rss() {
        let status = "Name:\tconclaved\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nRssAnon:\t  8192 kB\nThreads:\t5\n";
        assert_eq!(parse_status_bytes(status, "VmRSS"), Some(20 * 1024 * 1024));
        assert_eq!(parse_status_bytes(status, "RssAnon"), Some(8 * 1024 * 1024));
        assert_eq!(parse_status_bytes(status, "Vm"), None);
        assert_eq!(parse_status_bytes("Name: x\n", "VmRSS"), None);
        let rollup = "5583e6a0e000-7ffc1b1f5000 ---p 00000000 00:00 0  [rollup]\nRss:\t  33000 kB\nPss:\t  16000 kB\nPss_Anon:\t  14000 kB\n";
        assert_eq!(parse_status_bytes(rollup, "Pss"), Some(16000 * 1024));
    }

    #[test]
    fn loopback_line() {
        let dev = "Inter-|   Receive\n face |bytes    packets\n  eth0: 999 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n    lo: 123456 789 0 0 0 0 0 0 123456 789 0 0 0 0 0 0\n";
        assert_eq!(parse_loopback_rx_bytes(dev), Some(123456));
    }

    #[test]
    fn machine_busy_ticks() {
        let stat = "cpu  100 5 50 9000 20 3 2 1 0 0\ncpu0 50 2 25 4500 10 1 1 0 0 0\n";
        assert_eq!(parse_machine_busy_ticks(stat), Some(161));
        assert_eq!(parse_machine_busy_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn this_process_is_readable() {
        assert!(cpu_seconds(None, clock_ticks_per_second()).unwrap() >= 0.0);
        let resident = resident(None).unwrap();
        assert!(resident.total > 0);
        assert!(resident.proportional.is_some_and(|pss| pss > 0));
        assert!(machine_busy_seconds(clock_ticks_per_second()).unwrap() > 0.0);
    }
}
