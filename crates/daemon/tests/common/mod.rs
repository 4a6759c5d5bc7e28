//! `conclaved` children on 127.0.0.1 for the cross-process tests, driven
//! through `conclavectl`.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::Value;

pub const DAEMON: &str = env!("CARGO_BIN_EXE_conclaved");
pub const CTL: &str = env!("CARGO_BIN_EXE_conclavectl");
/// Each daemon's stderr, in its directory: a failing test prints its tail.
const LOG_FILE: &str = "conclaved.log";
/// What the daemons log unless CONCLAVE_TEST_DAEMON_LOG says otherwise.
const DAEMON_LOG: &str = "warn,conclave_coinjoin=debug,conclave_rooms=debug";
/// Lines of each daemon's log a failing test prints.
const LOG_TAIL_LINES: usize = 200;

/// A daemon child process, killed on drop.
pub struct Daemon {
    child: Child,
    pub dir: PathBuf,
    pub peer_id: String,
    pub quic_addr: String,
}

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        Self::start_with(dir, &[])
    }

    /// Starts a daemon with extra arguments.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Daemon {
        std::fs::create_dir_all(dir).expect("the daemon's directory");
        let log = std::fs::File::create(dir.join(LOG_FILE)).expect("the daemon's log file");
        let mut child = Command::new(DAEMON)
            .args(["--data-dir", dir.to_str().unwrap()])
            .args([
                "--listen",
                "/ip4/127.0.0.1/udp/0/quic-v1",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ])
            .arg("--no-mdns")
            .args(extra)
            .env("P2P_MIN_CONNECTIONS", "0")
            .env(
                "RUST_LOG",
                std::env::var("CONCLAVE_TEST_DAEMON_LOG").unwrap_or_else(|_| DAEMON_LOG.into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("conclaved starts");
        // The daemon prints one JSON line once it is ready.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        assert_eq!(ready["event"], "ready");
        let quic_addr = ready["listen_addrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .find(|a| a.contains("/quic-v1/"))
            .expect("a QUIC listen address");
        Daemon {
            child,
            dir: dir.to_path_buf(),
            peer_id: ready["peer_id"].as_str().unwrap().to_string(),
            quic_addr,
        }
    }

    pub fn ctl(&self) -> Command {
        let mut cmd = Command::new(CTL);
        cmd.args(["--data-dir", self.dir.to_str().unwrap()]);
        cmd
    }

    /// Runs `conclavectl --json ARGS` and parses its output; panics on failure.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ctl().arg("--json").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "conclavectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
}

impl Daemon {
    /// Kills the daemon at once (SIGKILL: no shutdown, nothing flushed).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the daemon to exit by itself.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "conclaved did not exit"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The test harness shows a failed test's output: the daemons' last
        // words are what explains a failure seen only on a loaded CI run.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join(LOG_FILE)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- the last {} lines of conclaved {} ({}) ---\n{}",
                tail.len(),
                self.peer_id,
                self.dir.display(),
                tail.join("\n")
            );
        }
    }
}
