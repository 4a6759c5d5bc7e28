//! Three `conclaved` processes on 127.0.0.1, driven only through `conclavectl`.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use conclave_node::clock::unix_secs;
use serde_json::Value;

mod common;

use common::{Daemon, CTL};

#[test]
fn three_daemons_gossip_and_resources_through_conclavectl() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Daemon::start(&tmp.path().join("a"));
    let b = Daemon::start(&tmp.path().join("b"));
    let c = Daemon::start(&tmp.path().join("c"));

    let id = a.json(&["id"]);
    assert_eq!(id["peer_id"], a.peer_id.as_str());
    assert!(id["listen_addrs"].as_array().unwrap().iter().all(|a| a
        .as_str()
        .unwrap()
        .ends_with(&format!("/p2p/{}", id["peer_id"].as_str().unwrap()))));

    for node in [&b, &c] {
        let started = Instant::now();
        let reply = node.json(&["connect", &a.quic_addr]);
        println!(
            "figure: conclavectl connect over QUIC = {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        assert_eq!(reply["peer_id"], a.peer_id.as_str());
    }
    let peers = a.json(&["peers"]);
    let listed: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer_id"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&b.peer_id.as_str()) && listed.contains(&c.peer_id.as_str()),
        "{peers}"
    );
    let b_on_a = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == b.peer_id.as_str())
        .unwrap();
    assert_eq!(b_on_a["transport"], "quic");
    assert_eq!(b_on_a["direction"], "inbound");

    // A and B subscribe (and stream); C publishes once both subscriptions are known.
    let subscriber = |node: &Daemon| {
        node.ctl()
            .args(["subscribe", "news", "--count", "1", "--timeout", "30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let sub_a = subscriber(&a);
    let sub_b = subscriber(&b);
    a.json(&["wait-topic", "news", "--peers", "1", "--timeout", "20"]); // B's subscription reached A
    let started = Instant::now();
    let published = c.json(&[
        "publish",
        "news",
        "hello from C",
        "--wait-peers",
        "1",
        "--timeout",
        "20",
    ]);
    let message_id = published["message_id"].as_str().unwrap().to_string();
    for sub in [sub_a, sub_b] {
        let out = sub.wait_with_output().unwrap();
        assert!(out.status.success());
        let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line per message");
        assert_eq!(line["topic"], "news");
        assert_eq!(line["data"], "hello from C");
        assert_eq!(line["from"], c.peer_id.as_str());
        assert_eq!(line["id"], message_id.as_str());
    }
    println!(
        "figure: publish on C to receipt on A and B (process to process) = {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    // A direct (signed) text message from B to A, acknowledged and kept.
    let sent = b.json(&["send", &a.peer_id, "hello A, from B"]);
    assert_eq!(sent["reply"], "received");
    let inbox = a.json(&["inbox"]);
    let last = inbox
        .as_array()
        .unwrap()
        .last()
        .expect("a message in A's inbox")
        .clone();
    assert_eq!(last["from"], b.peer_id.as_str());
    assert_eq!(last["text"], "hello A, from B");
    assert!(a.json(&["stats"])["direct_received"].as_u64().unwrap() >= 1);

    // A resource announced by A is found from C, then gone after its TTL.
    let ttl = 3;
    let announced = a.json(&[
        "announce",
        "service",
        "relay-1",
        r#"{"port": 4001}"#,
        "--ttl",
        &ttl.to_string(),
    ]);
    let expires_at = announced["expires_at"].as_u64().unwrap();
    let found = c.json(&["discover", "service"]);
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], "relay-1");
    assert_eq!(found[0]["provider"], a.peer_id.as_str());
    assert_eq!(found[0]["data"]["port"], 4001);
    assert_eq!(c.json(&["get", "service", "relay-1"])["data"]["port"], 4001);

    // Waiting for wall-clock expiry, not for an event.
    let wait = expires_at.saturating_sub(unix_secs()) + 1;
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(c.json(&["discover", "service"]), Value::Array(vec![]));
    let out = c
        .ctl()
        .args(["get", "service", "relay-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn conclavectl_errors_are_clear_and_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Daemon::start(&tmp.path().join("a"));

    let out = a
        .ctl()
        .args(["connect", "/ip4/127.0.0.1/tcp/notaport"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid multiaddr"),
        "{out:?}"
    );

    // A port nobody listens on: bind one, note it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = a
        .ctl()
        .args(["connect", &format!("/ip4/127.0.0.1/tcp/{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{out:?}"
    );
    assert_eq!(
        a.json(&["peers"]),
        Value::Array(vec![]),
        "a failed connect changes nothing"
    );

    let out = Command::new(CTL)
        .args([
            "--control",
            tmp.path().join("nobody.sock").to_str().unwrap(),
            "id",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("start conclaved, or point --control at its socket"),
        "{out:?}"
    );

    let out = a
        .ctl()
        .args(["announce", "t", "i", "{not json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}
