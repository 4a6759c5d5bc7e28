//! MuSig2 sessions between three `conclaved` processes, driven only through
//! `conclavectl wallet` and `conclavectl musig2`, with signing keys in a real
//! Secret Service (gnome-keyring). Runs inside `scripts/with-keyring.sh`,
//! which `make test` uses; skipped (with a message) anywhere else.

mod common;

use std::time::Instant;

use common::Daemon;
use conclave_signing::SignerKey;
use musig2::{secp::Point, KeyAggContext};
use serde_json::Value;

fn in_keyring_session() -> bool {
    if std::env::var("CONCLAVE_KEYRING_TEST").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: run through scripts/with-keyring.sh (make test does) for a real keychain");
    false
}

/// `conclavectl ARGS` is refused with a message containing `expected`.
fn refused(daemon: &Daemon, args: &[&str], expected: &str) {
    let out = daemon.ctl().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

fn new_key(daemon: &Daemon) -> String {
    let key = daemon.json(&["wallet", "new"]);
    let pubkey = key["pubkey"].as_str().expect("pubkey").to_string();
    assert_eq!(pubkey.len(), 66, "compressed key in hex");
    pubkey
}

#[test]
fn three_daemons_sign_a_message_through_conclavectl() {
    if !in_keyring_session() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = Daemon::start(&tmp.path().join("a"));
    let b = Daemon::start(&tmp.path().join("b"));
    let c = Daemon::start(&tmp.path().join("c"));
    // C imports a known key from a file; A and B generate theirs.
    let secret = "3f".repeat(32);
    let secret_file = tmp.path().join("secret.hex");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let imported = c.json(&[
        "wallet",
        "import",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]);
    let keys: Vec<String> = vec![
        new_key(&a),
        new_key(&b),
        imported["pubkey"].as_str().unwrap().to_string(),
    ];
    refused(
        &c,
        &["wallet", "import", "--secret-file", "/nonexistent"],
        "reading the secret key file",
    );
    let short = tmp.path().join("short.hex");
    std::fs::write(&short, "abcd").unwrap();
    refused(
        &c,
        &["wallet", "import", "--secret-file", short.to_str().unwrap()],
        "64 hex characters",
    );

    // Each daemon lists its own key only: data-dir daemons never share a
    // keychain namespace.
    for (daemon, key) in [&a, &b, &c].iter().zip(&keys) {
        let listed = daemon.json(&["wallet", "list"]);
        assert_eq!(listed, serde_json::json!([{ "pubkey": key }]));
    }

    b.json(&["connect", &a.quic_addr]);
    c.json(&["connect", &a.quic_addr]);

    // Bad input is refused before anything starts.
    refused(
        &a,
        &["musig2", "create", "--signers", "02zz", "--message", "00"],
        "signer key",
    );
    refused(
        &a,
        &[
            "musig2",
            "create",
            "--signers",
            &keys.join(","),
            "--message",
            "xyz",
        ],
        "hex",
    );
    refused(
        &a,
        &["musig2", "status", "00112233445566778899aabbccddeeff"],
        "no session",
    );

    let message = "5369676e2074686973"; // "Sign this"
    let started = Instant::now();
    let created = a.json(&[
        "musig2",
        "create",
        "--signers",
        &keys.join(","),
        "--message",
        message,
    ]);
    let session_id = created["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();

    // B and C see the invitation with what it signs, and join explicitly.
    for signer in [&b, &c] {
        let invitations = signer.json(&["musig2", "invitations", "--wait", "30"]);
        let invitation = invitations
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["session_id"] == session_id.as_str())
            .unwrap_or_else(|| panic!("invitation {session_id} in {invitations}"));
        assert_eq!(invitation["signing"]["kind"], "message");
        assert_eq!(invitation["signing"]["message"], message);
        let before = signer.json(&["musig2", "status", &session_id]);
        assert_eq!(before["phase"], "invitation", "nothing happens before join");
        signer.json(&["musig2", "join", &session_id]);
    }

    let status = a.json(&["musig2", "status", &session_id, "--wait", "60"]);
    println!(
        "figure: 3-signer session through conclavectl (create to done, 3 daemons) = {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(status["phase"], "done", "{status}");
    assert_eq!(status["holdouts"], serde_json::json!([]));

    // The signature verifies under BIP-340 for KeyAgg over the sorted keys.
    let mut sorted: Vec<SignerKey> = keys.iter().map(|k| k.parse().unwrap()).collect();
    sorted.sort();
    let aggregate: Point = KeyAggContext::new(sorted.iter().map(|k| k.point()))
        .unwrap()
        .aggregated_pubkey();
    assert_eq!(
        status["aggregate_pubkey"],
        hex::encode(aggregate.serialize_xonly())
    );
    let signature = hex::decode(status["signature"].as_str().expect("signature")).unwrap();
    musig2::verify_single(
        aggregate,
        signature.as_slice(),
        hex::decode(message).unwrap(),
    )
    .expect("BIP-340 signature verifies");

    // Every signer ends with the same verified signature.
    for signer in [&b, &c] {
        let theirs = signer.json(&["musig2", "status", &session_id, "--wait", "30"]);
        assert_eq!(theirs["phase"], "done");
        assert_eq!(theirs["signature"], status["signature"]);
    }
    let listed = a.json(&["musig2", "list"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["session_id"] == session_id.as_str() && s["phase"] == "done"));
    // A finished session cannot be joined again.
    refused(&b, &["musig2", "join", &session_id], &session_id[..8]);

    // The secret key is in the keychain only: no file of C's holds it.
    let raw = hex::decode(&secret).unwrap();
    for file in walk(&c.dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(
            !text.contains(&secret),
            "{file:?} holds the secret key in hex"
        );
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
            "{file:?} holds the secret key"
        );
    }
}

#[test]
fn a_daemon_without_signing_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = Daemon::start_with(&tmp.path().join("r"), &["--signing-keys", "none"]);
    let out = relay.ctl().args(["wallet", "list"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--signing-keys none"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node itself keeps answering.
    let id: Value = relay.json(&["id"]);
    assert_eq!(id["peer_id"], relay.peer_id.as_str());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
