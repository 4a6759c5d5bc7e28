//! What other users of the machine can reach: the control socket and the
//! profile's files, with real `conclaved` and `conclavectl` processes.

mod common;

use std::{
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::{Daemon, CTL, DAEMON};

/// The unprivileged user the cross-user test connects as.
const NOBODY: u32 = 65_534;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `conclaved ARGS` that is expected to fail at start-up, and returns
/// its output (killed, and the test failed, if it is still up after 60 s).
fn daemon_that_fails(data_dir: &Path, extra: &[&str]) -> Output {
    let mut child = Command::new(DAEMON)
        .args(["--data-dir", data_dir.to_str().unwrap()])
        .args(["--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--no-mdns"])
        .args(["--signing-keys", "none"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("conclaved did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "conclaved must refuse to start");
    out
}

#[test]
fn a_regular_file_given_as_the_control_socket_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"my notes\n").unwrap();
    let out = daemon_that_fails(
        &dir.path().join("data"),
        &["--control", notes.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{} exists and is not a socket", notes.display()))
            && stderr.contains("pass another --control path"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&notes).unwrap(), b"my notes\n", "untouched");
}

#[test]
fn a_file_put_at_the_socket_path_while_the_daemon_runs_survives_its_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_with(dir.path(), &["--signing-keys", "none"]);
    let socket = dir.path().join("control.sock");
    // Another name for the socket, to reach the daemon once its path holds
    // a file.
    let other_name = dir.path().join("other.sock");
    std::fs::hard_link(&socket, &other_name).unwrap();
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, b"not a socket\n").unwrap();
    let out = daemon
        .ctl()
        .args(["--control", other_name.to_str().unwrap(), "shutdown"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(daemon.wait_exit(Duration::from_secs(30)).success());
    assert_eq!(std::fs::read(&socket).unwrap(), b"not a socket\n");
}

#[test]
fn another_user_is_refused_even_when_the_socket_lets_them_connect() {
    if effective_uid() != 0 {
        eprintln!("skipped: only root can connect as another user here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(dir.path(), &["--signing-keys", "none"]);
    let socket = dir.path().join("control.sock");
    // Widen everything on the way, as a mistaken chmod or a shared folder
    // would: only the credentials check is left to refuse.
    chmod(dir.path(), 0o755);
    chmod(&socket, 0o666);
    // The build folder may be closed to that user: run a copy.
    let ctl = dir.path().join("conclavectl");
    std::fs::copy(CTL, &ctl).unwrap();
    let as_nobody = Command::new(&ctl)
        .args(["--control", socket.to_str().unwrap(), "id"])
        .uid(NOBODY)
        .gid(NOBODY)
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&as_nobody.stderr);
    assert!(!as_nobody.status.success(), "uid {NOBODY} was served");
    assert!(
        stderr.contains(&format!("you are uid {NOBODY}"))
            && stderr.contains("run conclavectl as the user that runs conclaved"),
        "{stderr}"
    );
    // Its owner still is.
    assert_eq!(
        daemon.json(&["id"])["peer_id"].as_str(),
        Some(daemon.peer_id.as_str())
    );
}

/// This process's effective uid: the owner of a file it creates.
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid()
}

#[test]
fn the_profile_folders_and_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    // A folder made beforehand with the usual umask.
    chmod(dir.path(), 0o755);
    let daemon = Daemon::start_with(dir.path(), &["--signing-keys", "none"]);
    let stranger = conclave_node::PeerId::random().to_string();
    daemon.json(&["deny", &stranger]);

    assert_eq!(mode(dir.path()), 0o700, "the --data-dir");
    assert_eq!(mode(&dir.path().join("logs")), 0o700, "the log folder");
    assert_eq!(mode(&dir.path().join("policy.json")), 0o600, "policy.json");
    assert_eq!(mode(&dir.path().join("control.sock")), 0o600);
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!logs.is_empty(), "conclaved writes a log file");
    for log in logs {
        assert_eq!(mode(&log), 0o600, "{}", log.display());
    }
}

#[test]
fn a_damaged_policy_file_stops_the_daemon_naming_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    // What a save without fsync can leave after a power loss.
    std::fs::write(&policy, b"").unwrap();
    let out = daemon_that_fails(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("policy file {} is damaged", policy.display()))
            && stderr.contains("Restore the file from a backup, or delete it"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&policy).unwrap(), b"", "left for the user");
}
