//! The node's keys in a real Secret Service (gnome-keyring), driven through
//! `conclaved` and `conclavectl`. Runs inside `scripts/with-keyring.sh`,
//! which `make test` uses; skipped (with a message) anywhere else.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

const DAEMON: &str = env!("CARGO_BIN_EXE_conclaved");
const CTL: &str = env!("CARGO_BIN_EXE_conclavectl");

fn in_keyring_session() -> bool {
    if std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: run through scripts/with-keyring.sh (make test does) for a real keychain");
    false
}

/// The profile's data folder (inside the session's fresh XDG_DATA_HOME).
fn profile_dir(profile: &str) -> std::path::PathBuf {
    conclave_node::profile::Profile::resolve(profile, None)
        .unwrap()
        .data_dir()
        .to_path_buf()
}

/// Starts a daemon on `profile` (keys in the keychain: no --data-dir, no
/// --key-file), returns its PeerId once ready, and stops it.
fn daemon_peer_id(profile: &str) -> Result<String, String> {
    let mut child = Command::new(DAEMON)
        .args(["--profile", profile])
        .args(["--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--no-mdns"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    let ready: Value = serde_json::from_str(&line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    Ok(ready["peer_id"].as_str().unwrap().to_string())
}

fn ctl(args: &[&str]) -> std::process::Output {
    Command::new(CTL).args(args).output().unwrap()
}

#[test]
fn keys_live_in_the_keychain_survive_restarts_move_by_backup_and_fail_clearly_when_locked() {
    if !in_keyring_session() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        std::env::var("XDG_DATA_HOME").is_ok_and(|d| profile_dir("alice").starts_with(d)),
        "profiles live in the session's own XDG_DATA_HOME"
    );
    let dir_a = profile_dir("alice");

    // First start creates keys in the keychain; restart keeps the PeerId.
    let first = daemon_peer_id("alice").expect("first start");
    let again = daemon_peer_id("alice").expect("restart");
    assert_eq!(first, again, "the PeerId is stable across restarts");
    assert!(
        !dir_a.join("identity.key").exists(),
        "no key file next to a keychain identity"
    );
    let on_disk: Vec<_> = walk(&dir_a);
    assert!(on_disk.iter().all(|p| !p.ends_with(".key")), "{on_disk:?}");

    // Export under one profile, import under another: same PeerId there.
    let backup = tmp.path().join("alice.backup");
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "a long enough passphrase\n").unwrap();
    let out = ctl(&[
        "--profile",
        "alice",
        "identity",
        "export",
        backup.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(text.contains("conclave-identity-backup-v1") && text.contains("ciphertext"));

    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase").unwrap();
    let out = ctl(&[
        "--profile",
        "bob",
        "identity",
        "import",
        backup.to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));

    let out = ctl(&[
        "--profile",
        "bob",
        "identity",
        "import",
        backup.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = daemon_peer_id("bob").expect("bob starts");
    assert_eq!(bob, first, "the imported identity has the same PeerId");

    // A profile with other keys refuses an import without --force.
    daemon_peer_id("carol").expect("carol starts");
    let out = ctl(&[
        "--profile",
        "carol",
        "identity",
        "import",
        backup.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    // Locked keychain: a clear error, and nothing written in its place. It
    // runs in a keyring session of its own, so that no other test finds the
    // shared keyring locked.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/with-keyring.sh");
    let inner = r#"gdbus call --session --dest org.freedesktop.secrets --object-path /org/freedesktop/secrets --method org.freedesktop.Secret.Service.Lock "['/org/freedesktop/secrets/collection/login']" >/dev/null || exit 90
"$0" --profile dave --listen /ip4/127.0.0.1/udp/0/quic-v1 --no-mdns
code=$?
find "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" -type f | sed 's/^/FILE /'
exit $code"#;
    let started = std::time::Instant::now();
    let out = Command::new(script)
        .env_remove("CONCLAVE_KEYRING_SESSION")
        .args(["bash", "-c", inner, DAEMON])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(90),
        "locking the keychain failed: {err}"
    );
    assert!(
        !out.status.success(),
        "a locked keychain must stop the start: {stdout}"
    );
    assert!(err.contains("keychain"), "{err}");
    assert!(
        err.contains("locked") || err.contains("did not answer"),
        "{err}"
    );
    assert!(
        err.contains("--key-file"),
        "the error says what to do: {err}"
    );
    assert!(!stdout.contains("\"ready\""), "{stdout}");
    let keys: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("FILE ") && l.ends_with(".key"))
        .collect();
    assert!(keys.is_empty(), "no plaintext fallback: {keys:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
