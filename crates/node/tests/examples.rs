//! The examples in `crates/node/examples` run as a newcomer would run them:
//! one copy waits, a second copy is given its address and does its part, and
//! both print what the example promises. `cargo test --all-targets` builds
//! the examples next to this test, so they cannot rot unnoticed.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Long enough for two debug-build nodes to start, connect and talk.
const LIMIT: Duration = Duration::from_secs(30);

/// An example binary: next to this test's `deps/` folder.
fn example(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("test binary path");
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build with cargo test --all-targets",
        path.display()
    );
    path
}

/// A running example whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Self {
        let mut child = Command::new(example(name))
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting example {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that `matches` accepts.
    fn line_where(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no {what} within {LIMIT:?}; printed: {:#?}", self.seen),
            }
        }
    }

    /// The value after `prefix` on the first line that starts with it.
    fn value_after(&mut self, prefix: &str) -> String {
        let line = self.line_where(prefix, |l| l.starts_with(prefix));
        line[prefix.len()..].to_string()
    }

    /// The address it listens on over QUIC.
    fn quic_addr(&mut self) -> String {
        let line = self.line_where("QUIC listen address", |l| {
            l.starts_with("listening on ") && l.contains("/quic-v1/")
        });
        line["listening on ".len()..].to_string()
    }

    /// Waits for it to exit on its own; panics unless it succeeded.
    fn finish(mut self) -> Vec<String> {
        let deadline = std::time::Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("example status") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not finish within {LIMIT:?}; printed: {:#?}", self.seen);
            }
            // Reading lines as they come also paces the loop.
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        };
        self.seen.extend(self.lines.try_iter());
        assert!(status.success(), "{status}; printed: {:#?}", self.seen);
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn basic_connects_broadcasts_and_discovers_the_other_nodes_resource() {
    let mut waiting = Running::start("basic", &[]);
    let waiting_id = waiting.value_after("peer id ");
    let addr = waiting.quic_addr();

    let mut greeting = Running::start("basic", &[&addr]);
    let greeting_id = greeting.value_after("peer id ");
    let printed = greeting.finish();
    let wanted = format!("resource example-greeter/greeter from {waiting_id}: ");
    assert!(
        printed.iter().any(|l| l.starts_with(&wanted)),
        "the second run lists the first one's resource: {printed:#?}"
    );
    assert!(printed
        .iter()
        .any(|l| l == &format!("connected to {waiting_id}")));

    waiting.line_where("the greeting's peer event", |l| {
        l.starts_with(&format!("peer connected {greeting_id}"))
    });
    waiting.line_where("the greeting message", |l| {
        l == format!("message on conclave-example from {greeting_id}: hello")
    });
}

#[test]
fn protocol_extension_answers_in_capitals_and_sees_the_peer() {
    let mut serving = Running::start("protocol_extension", &[]);
    let addr = serving.quic_addr();
    let serving_id = addr
        .rsplit('/')
        .next()
        .expect("address ends in the peer id");

    let asking = Running::start("protocol_extension", &[&addr, "hello there"]);
    let printed = asking.finish();
    assert!(
        printed
            .iter()
            .any(|l| l == &format!("reply from {serving_id}: HELLO THERE")),
        "{printed:#?}"
    );
    let connected = serving.line_where("the peer-connected callback", |l| {
        l.starts_with("peer connected ") && l.ends_with("(1 connected)")
    });
    let asker = connected["peer connected ".len()..]
        .split(' ')
        .next()
        .expect("a peer id")
        .to_string();
    serving.line_where("the request", |l| {
        l == format!("request from {asker}: hello there")
    });
}
