//! The failures people meet first, through `conclaved` and `conclavectl`
//! as they would meet them: no keychain, a locked keychain, a port in use,
//! a bad multiaddr or peer id, an unreachable peer, an unknown session, no
//! daemon. Each message names every cause once, in order, on one line, and
//! ends with what to do. Runs inside `scripts/with-keyring.sh` (a real
//! Secret Service, which the signing service needs); skipped elsewhere.

mod common;

use std::{
    net::TcpListener,
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use common::{Daemon, CTL, DAEMON};
use conclave_node::error::reads_well;

fn in_keyring_session() -> bool {
    if std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: run through scripts/with-keyring.sh (make test does) for a real keychain");
    false
}

fn assert_reads_well(case: &str, message: &str, advice: &str) {
    if let Err(why) = reads_well(message, advice) {
        panic!("{case}: {why}");
    }
}

/// What a failed command printed on stderr (it must have failed).
fn failure(case: &str, out: Output) -> String {
    assert!(!out.status.success(), "{case}: it succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Log lines (RUST_LOG=warn) are not the message; the last line is.
    stderr.lines().last().unwrap_or_default().to_string()
}

/// A daemon command line on 127.0.0.1 only, logging warnings at most.
fn conclaved(dir: &Path, listen: &str) -> Command {
    let mut cmd = Command::new(DAEMON);
    cmd.args(["--data-dir", dir.to_str().unwrap()])
        .args(["--listen", listen, "--no-mdns", "--signing-keys", "none"])
        .env("RUST_LOG", "error")
        .env_remove("RUST_BACKTRACE");
    cmd
}

#[test]
fn common_failures_name_each_cause_once_and_say_what_to_do() {
    if !in_keyring_session() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let mut check = |case: &str, message: String, advice: &str| {
        assert_reads_well(case, &message, advice);
        seen.push(format!("{case}: {message}"));
    };

    // No keychain at all: the session bus is somewhere that does not exist.
    let out = Command::new(DAEMON)
        .args(["--profile", "no-keychain", "--no-mdns"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env("RUST_LOG", "error")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    check(
        "no keychain",
        failure("no keychain", out),
        "or pass --key-file",
    );

    // A port another program holds.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = conclaved(
        &scratch.path().join("port"),
        &format!("/ip4/127.0.0.1/tcp/{port}"),
    )
    .output()
    .unwrap();
    check(
        "port in use",
        failure("port in use", out),
        "or stop what holds it",
    );
    drop(held);

    // A port nothing listens on: bound, then released.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let daemon = Daemon::start(&scratch.path().join("signer"));
    let ctl = |args: &[&str]| daemon.ctl().args(args).output().unwrap();
    check(
        "bad multiaddr",
        failure("bad multiaddr", ctl(&["connect", "/ip4/127.0.0.1/tcpx/1"])),
        "write it like /ip4/",
    );
    check(
        "bad peer id",
        failure("bad peer id", ctl(&["disconnect", "12D3Koo"])),
        "copy it whole",
    );
    // Some other peer's id (the daemon refuses to dial its own).
    let stranger = "12D3KooWGBfK8wqydXUoqdmdB5vUuVuj6hsuFFDcW1jfsZqTmF3k";
    let unreachable = format!("/ip4/127.0.0.1/tcp/{closed}/p2p/{stranger}");
    let message = failure("unreachable peer", ctl(&["connect", &unreachable]));
    assert_eq!(
        message.matches(&unreachable).count(),
        1,
        "the address once: {message}"
    );
    check(
        "unreachable peer",
        message,
        "check that the peer is running",
    );
    check(
        "unknown session",
        failure(
            "unknown session",
            ctl(&["musig2", "status", &"ab".repeat(16)]),
        ),
        "musig2 list",
    );
    let out = Command::new(CTL)
        .args([
            "--control",
            scratch.path().join("none.sock").to_str().unwrap(),
        ])
        .arg("peers")
        .output()
        .unwrap();
    check("no daemon", failure("no daemon", out), "point --control at");

    // A locked keychain, in a keyring session of its own so that no other
    // test finds the shared one locked.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/with-keyring.sh");
    let inner = r#"gdbus call --session --dest org.freedesktop.secrets --object-path /org/freedesktop/secrets --method org.freedesktop.Secret.Service.Lock "['/org/freedesktop/secrets/collection/login']" >/dev/null || exit 90
exec "$0" --profile locked --listen /ip4/127.0.0.1/tcp/0 --no-mdns"#;
    let started = std::time::Instant::now();
    let out = Command::new(script)
        .env_remove("CONCLAVE_KEYRING_SESSION")
        .env_remove("RUST_BACKTRACE")
        .args(["bash", "-c", inner, DAEMON])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_ne!(out.status.code(), Some(90), "locking the keychain failed");
    check(
        "locked keychain",
        failure("locked keychain", out),
        "--key-file",
    );

    // The figures for the record (cargo test shows them with --nocapture).
    for line in &seen {
        println!("{line}");
    }
}
