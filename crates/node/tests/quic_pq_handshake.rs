//! A real QUIC connection between two nodes negotiates the hybrid
//! post-quantum group X25519MLKEM768, read from the TLS handshake on the wire:
//! tshark captures the loopback traffic and decodes the QUIC Initial packets
//! (their keys derive from public connection ids), whose CRYPTO frames carry
//! the ClientHello and ServerHello.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use conclave_node::{Multiaddr, NodeConfig};
use conclave_testkit::{addr_of, connect, start, Transport};

/// IANA TLS group id of X25519MLKEM768.
const X25519_MLKEM768: &str = "4588";

fn udp_port(addr: &Multiaddr) -> u16 {
    addr.iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Udp(port) => Some(port),
            _ => None,
        })
        .expect("a UDP port")
}

fn tshark_usable() -> bool {
    let present = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !(present && root) {
        eprintln!("skipped: needs tshark and root to capture on the loopback interface (make test installs tshark)");
    }
    present && root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_negotiates_x25519mlkem768_on_the_wire() {
    if !tshark_usable() {
        return;
    }
    let server = start(NodeConfig::loopback()).await;
    let client = start(NodeConfig::loopback()).await;
    let server_addr = addr_of(&server, Transport::Quic).await;
    let port = udp_port(&server_addr);

    // Live decoding: tshark prints the type and key-share groups of every
    // ClientHello (1) and ServerHello (2) as it sees them.
    let mut tshark = Command::new("tshark")
        .args(["-i", "lo", "-l", "-n", "-f", &format!("udp port {port}")])
        .args(["-d", &format!("udp.port=={port},quic")])
        .args(["-Y", "tls.handshake.type == 1 || tls.handshake.type == 2"])
        .args([
            "-T",
            "fields",
            "-e",
            "tls.handshake.type",
            "-e",
            "tls.handshake.extensions_key_share_group",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark starts");
    // tshark says when the capture is running ("Capturing on" comes earlier,
    // before the capture process has opened the interface).
    let mut stderr = BufReader::new(tshark.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "tshark exited before capturing"
        );
        if line.contains("Capture started") {
            break;
        }
    }
    // Keep draining stderr so tshark never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let (rows_tx, rows_rx) = std::sync::mpsc::channel::<String>();
    let stdout = BufReader::new(tshark.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if rows_tx.send(line).is_err() {
                break;
            }
        }
    });

    connect(&client, &server, Transport::Quic).await;
    let peer = client
        .peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == server.peer_id())
        .unwrap();
    assert_eq!(peer.transport.as_str(), "quic");
    assert_eq!(peer.security, "tls13+X25519MLKEM768");

    let mut lines = Vec::new();
    while !(lines.iter().any(|l: &String| l.starts_with("1\t"))
        && lines.iter().any(|l| l.starts_with("2\t")))
    {
        match rows_rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = tshark.kill();
    let _ = tshark.wait();
    let text = lines.join("\n");
    println!("handshake on the wire (type, key share groups):\n{text}");
    let rows: Vec<(&str, Vec<&str>)> = lines
        .iter()
        .filter_map(|l| l.split_once('\t'))
        .map(|(kind, groups)| (kind, groups.split(',').collect()))
        .collect();
    let client_hellos: Vec<_> = rows.iter().filter(|(k, _)| *k == "1").collect();
    let server_hellos: Vec<_> = rows.iter().filter(|(k, _)| *k == "2").collect();
    assert!(
        !client_hellos.is_empty() && !server_hellos.is_empty(),
        "the handshake was decoded: {text}"
    );
    for (_, groups) in &client_hellos {
        assert!(
            groups.contains(&X25519_MLKEM768),
            "ClientHello offers X25519MLKEM768: {groups:?}"
        );
    }
    for (_, groups) in &server_hellos {
        assert_eq!(
            groups,
            &vec![X25519_MLKEM768],
            "ServerHello selects X25519MLKEM768"
        );
    }
}
