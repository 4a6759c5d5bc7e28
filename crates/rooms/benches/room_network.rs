//! Issue 14's targets over real nodes: 20 nodes on 127.0.0.1 (QUIC),
//! degree 4, each running the rooms service with the real `everything`
//! MCP server from npm (tests/mcp) exposing `echo`. All 20 nodes share
//! this one process (and the machine's cores with their 20 MCP servers);
//! the daemons add a control socket, not another network path.
//! Figures, not a timed test:
//! `cargo bench -p conclave-rooms --bench room_network` (or this binary
//! with `--bench`). Without `--bench` (as `cargo test --all-targets` runs
//! it) three nodes and one task check that it still works.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{connect, everything, init_logging, loopback_node, rooms, until, within};
use conclave_node::NodeHandle;
use conclave_rooms::{
    room::Policy,
    service::{wire, Proposal, RoomsHandle},
    RoomId,
};
use tokio_util::sync::CancellationToken;

const SKILL: &str = "mcp.everything.echo";

struct Member {
    node: NodeHandle,
    rooms: RoomsHandle,
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[at]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Waits until every member in `viewers` lists `peer`'s card in `room`;
/// how long the last one took.
async fn seen_by_all(viewers: &[&Member], room: RoomId, peer: &str) -> Duration {
    let started = Instant::now();
    let waits = viewers.iter().map(|m| async {
        until(&m.rooms, "a new card", || async {
            m.rooms
                .agents(room)
                .await
                .unwrap()
                .iter()
                .any(|a| a.peer_id == peer)
        })
        .await;
        started.elapsed()
    });
    futures::future::join_all(waits)
        .await
        .into_iter()
        .max()
        .unwrap_or_default()
}

fn proposal(room: RoomId, n: usize) -> Proposal {
    Proposal {
        room,
        skill: SKILL.into(),
        input: serde_json::json!({ "message": format!("task {n}") }),
        window_ms: Some(1_000),
        max_price: 0,
        min_reputation: 0,
        timeout_ms: None,
        lease_ms: None,
        attempts: None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    init_logging();
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 20 } else { 3 };
    println!(
        "Agent-task rooms over {n} real nodes on loopback{}:",
        if full {
            ", degree 4"
        } else {
            " (a check; --bench for the figures)"
        }
    );
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let node = loopback_node().await;
        let rooms = rooms(&node, everything(&["echo"])).await;
        members.push(Member { node, rooms });
    }
    // A ring with chords: each node dials the next two (degree 4).
    for i in 0..n {
        for step in 1..=2.min(n - 1) {
            let j = (i + step) % n;
            if !members[i]
                .node
                .is_connected(members[j].node.peer_id())
                .await
                .unwrap()
            {
                connect(&members[i].node, &members[j].node).await;
            }
        }
    }
    let room = members[0]
        .rooms
        .create_room("bench", Policy::Open)
        .await
        .unwrap();

    // Cards: members join one by one; each newcomer's card is timed until
    // every member before it lists it.
    let mut card_times = Vec::new();
    for i in 1..n {
        within("join", members[i].rooms.join_room(room, None))
            .await
            .unwrap();
        let viewers: Vec<&Member> = members[..i].iter().collect();
        let peer = members[i].node.peer_id().to_string();
        card_times.push(seen_by_all(&viewers, room, &peer).await);
    }
    let last_join = card_times.last().copied().unwrap_or_default();
    println!(
        "  a new agent card seen by every earlier member: p50 {}, p95 {}, the last joiner (seen by {}) {}",
        ms(percentile(&mut card_times.clone(), 0.5)),
        ms(percentile(&mut card_times, 0.95)),
        n - 1,
        ms(last_join)
    );
    let topic = wire::topic_of(&room);
    for m in &members {
        within(
            "topic peers",
            m.node
                .wait_for_topic_peers(&topic, 1, Duration::from_secs(30)),
        )
        .await
        .unwrap();
    }

    // The DHT: every node looks for the last joiner by its skill.
    let newest = members[n - 1].node.peer_id().to_string();
    let mut find_times = Vec::new();
    for m in &members[..n - 1] {
        let started = Instant::now();
        within("find", async {
            while !m
                .rooms
                .find(SKILL)
                .await
                .map(|found| found.iter().any(|a| a.peer_id == newest))
                .unwrap_or(false)
            {
                tokio::task::yield_now().await;
            }
        })
        .await;
        find_times.push(started.elapsed());
    }
    println!(
        "  rooms find {SKILL} finds the newest agent, from each node: p50 {}, p95 {}",
        ms(percentile(&mut find_times.clone(), 0.5)),
        ms(percentile(&mut find_times, 0.95))
    );

    // Remote tools/call echo, A -> B.
    let calls = if full { 100 } else { 5 };
    let mut call_times = Vec::new();
    for c in 0..calls {
        let started = Instant::now();
        members[0]
            .rooms
            .call(
                members[1].node.peer_id(),
                "everything",
                "echo",
                Some(serde_json::json!({ "message": format!("call {c}") })),
                Duration::from_secs(30),
                None,
                CancellationToken::new(),
            )
            .await
            .unwrap();
        call_times.push(started.elapsed());
    }
    println!(
        "  remote tools/call echo A -> B, {calls} calls: p50 {}, p95 {}",
        ms(percentile(&mut call_times.clone(), 0.5)),
        ms(percentile(&mut call_times, 0.95))
    );

    // The room's first task: its gossip mesh forms over the first
    // heartbeats, so a fresh room's proposal can take about a second to
    // reach every member. A 5 s window, counted apart.
    let started = Instant::now();
    let mut first = proposal(room, 0);
    first.window_ms = Some(5_000);
    let task = members[0].rooms.propose(first).await.unwrap();
    let done = members[0]
        .rooms
        .task(task, Duration::from_secs(60))
        .await
        .unwrap();
    println!(
        "  the room's first task, window 5 s: {} of {} bids, verified result in {}",
        done.bids,
        n - 1,
        ms(started.elapsed())
    );

    // Propose -> verified result, every other member bids: windows of 1 s
    // (the target) and 2 s.
    let tasks = if full { 20 } else { 1 };
    for window_ms in [1_000u64, 2_000] {
        let mut task_times = Vec::new();
        let (mut bids, mut completed) = (0usize, 0usize);
        for t in 0..tasks {
            let started = Instant::now();
            let mut p = proposal(room, t);
            p.window_ms = Some(window_ms);
            let task = members[0].rooms.propose(p).await.unwrap();
            let done = members[0]
                .rooms
                .task(task, Duration::from_secs(60))
                .await
                .unwrap();
            bids += done.bids;
            if done.state == "TASK_STATE_COMPLETED" && done.verified {
                completed += 1;
                task_times.push(started.elapsed());
            }
        }
        let p95 = if task_times.is_empty() {
            "-".to_string()
        } else {
            ms(percentile(&mut task_times, 0.95))
        };
        println!(
            "  propose -> verified result, window {window_ms} ms, {} bidders, {tasks} tasks: {completed} completed, p95 {p95}; bids inside the window {:.1} %",
            n - 1,
            100.0 * bids as f64 / (tasks * (n - 1)) as f64
        );
    }

    // A burst: tasks at 5/s from every member in turn; each reaches a final
    // state and its record verifies on every member.
    let burst = if full { 100 } else { 2 };
    let started = Instant::now();
    let mut ids = Vec::new();
    for t in 0..burst {
        let proposer = &members[t % n];
        ids.push((
            t % n,
            proposer
                .rooms
                .propose(proposal(room, 1000 + t))
                .await
                .unwrap(),
        ));
        tokio::time::sleep_until((started + Duration::from_millis(200 * (t as u64 + 1))).into())
            .await;
    }
    let mut finals = 0usize;
    for (p, task) in &ids {
        let done = members[*p]
            .rooms
            .task(*task, Duration::from_secs(120))
            .await
            .unwrap();
        if done.state == "TASK_STATE_COMPLETED" || done.state == "TASK_STATE_FAILED" {
            finals += 1;
        }
    }
    let mut verified = 0usize;
    for (_, task) in &ids {
        for m in &members {
            let view = m.rooms.task(*task, Duration::from_secs(10)).await;
            if view.is_ok_and(|v| v.verified) {
                verified += 1;
            }
        }
    }
    println!(
        "  {burst} tasks at 5/s: {finals} reached a final state in {}; records verified on every member: {verified} of {}",
        ms(started.elapsed()),
        burst * n
    );
    for m in &members {
        m.rooms.stop();
        m.rooms.stopped().await;
        let _ = m.node.stop().await;
    }
}
