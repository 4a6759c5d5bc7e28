//! The rooms service over real nodes on 127.0.0.1 with real MCP servers
//! from npm: a remote MCP call between two members, and a small room
//! where a task is proposed, bid on, awarded, completed and its record
//! verified by every member; bids forged, relayed or sent late by a peer
//! speaking the rooms protocol directly are refused and change nothing.

mod common;

use std::time::Duration;

use common::*;
use conclave_node::{clock::unix_ms, NodeHandle};
use conclave_rooms::{
    ids::TaskId,
    room::Policy,
    service::{
        signer::NodeSigner,
        wire::{self, Request},
        Proposal, RoomsHandle,
    },
    statement::{LocalSigner, Statement, StatementSigner},
    task::{Bid, TaskMessage, BID_DOMAIN},
    PeerId, RoomId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Waits until `rooms` has seen the cards of `peers` in `room`, with
/// `skill` on each card when given.
async fn sees(rooms: &RoomsHandle, room: RoomId, peers: &[PeerId], skill: Option<&str>) {
    let want: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    until(rooms, "the members' cards", || async {
        let agents = rooms.agents(room).await.unwrap();
        want.iter().all(|p| {
            agents.iter().any(|a| {
                &a.peer_id == p && skill.is_none_or(|s| a.card.skills.iter().any(|k| k.id == s))
            })
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_members_mcp_tool_is_called_remotely_with_progress() {
    init_logging();
    let (a, b) = (loopback_node().await, loopback_node().await);
    connect(&a, &b).await;
    let ra = rooms(&a, Default::default()).await;
    let rb = rooms(
        &b,
        everything(&["echo", "get-sum", "trigger-long-running-operation"]),
    )
    .await;

    // A stranger's tools stay closed: no room is shared yet.
    let closed = within("tools/list of a stranger", ra.tools(b.peer_id())).await;
    assert!(
        closed
            .unwrap_err()
            .to_string()
            .contains("members of its rooms"),
        "tools are listed only to room members"
    );

    let room = ra.create_room("lab", Policy::Open).await.unwrap();
    let info = within("join by id through the DHT", rb.join_room(room, None))
        .await
        .unwrap();
    assert_eq!(info.name, "lab");
    sees(&ra, room, &[b.peer_id()], Some("mcp.everything.echo")).await;

    let tools = within("tools/list", ra.tools(b.peer_id())).await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["echo", "get-sum", "trigger-long-running-operation"]);

    let never = CancellationToken::new();
    let echoed = within(
        "echo",
        ra.call(
            b.peer_id(),
            "everything",
            "echo",
            Some(serde_json::json!({"message": "hello across the room"})),
            Duration::from_secs(30),
            None,
            never.clone(),
        ),
    )
    .await
    .unwrap();
    assert!(
        echoed.to_string().contains("hello across the room"),
        "{echoed}"
    );
    let sum = within(
        "get-sum",
        ra.call(
            b.peer_id(),
            "everything",
            "get-sum",
            Some(serde_json::json!({"a": 19, "b": 23})),
            Duration::from_secs(30),
            None,
            never.clone(),
        ),
    )
    .await
    .unwrap();
    assert!(sum.to_string().contains("42"), "{sum}");

    // A tool B has but does not expose.
    let refused = within(
        "an unexposed tool",
        ra.call(
            b.peer_id(),
            "everything",
            "get-env",
            None,
            Duration::from_secs(30),
            None,
            never.clone(),
        ),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("not exposed"), "{refused}");

    // The long-running tool's progress reaches the caller, in order.
    let (tx, mut rx) = mpsc::channel(16);
    let done = within(
        "the long-running tool",
        ra.call(
            b.peer_id(),
            "everything",
            "trigger-long-running-operation",
            Some(serde_json::json!({"duration": 1.5, "steps": 3})),
            Duration::from_secs(30),
            Some(tx),
            never,
        ),
    )
    .await
    .unwrap();
    assert!(done.to_string().contains("completed"), "{done}");
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push((p.progress, p.total));
    }
    // In order; the last note may be overtaken by the result itself (rmcp
    // hands notifications to a task of their own, responses directly).
    let all = [(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))];
    assert!(
        seen.len() >= 2 && all.starts_with(&seen),
        "progress notes {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_is_bid_on_awarded_completed_and_verified_by_every_member() {
    init_logging();
    let (a, b, c) = (
        loopback_node().await,
        loopback_node().await,
        loopback_node().await,
    );
    connect(&b, &a).await;
    connect(&c, &a).await;
    connect(&c, &b).await;
    let state = tempfile::tempdir().unwrap();
    let db = conclave_node::store::Database::open(&state.path().join("state.redb")).unwrap();
    let ra = rooms_in(&a, Default::default(), db.clone()).await;
    let rb = rooms(&b, everything(&["echo"])).await;
    let rc = rooms(&c, everything(&["echo"])).await;

    let room = ra.create_room("work", Policy::Open).await.unwrap();
    for r in [&rb, &rc] {
        within("join", r.join_room(room, None)).await.unwrap();
    }
    let skill = "mcp.everything.echo";
    sees(&ra, room, &[b.peer_id(), c.peer_id()], Some(skill)).await;
    sees(&rb, room, &[a.peer_id(), c.peer_id()], None).await;
    sees(&rc, room, &[a.peer_id(), b.peer_id()], None).await;
    // Everyone is on the topic before the proposal goes out.
    for n in [&a, &b, &c] {
        within(
            "topic peers",
            n.wait_for_topic_peers(
                &conclave_rooms::service::wire::topic_of(&room),
                2,
                Duration::from_secs(30),
            ),
        )
        .await
        .unwrap();
    }

    let task = ra
        .propose(Proposal {
            room,
            skill: skill.into(),
            input: serde_json::json!({"message": "the task's input"}),
            window_ms: Some(1_500),
            max_price: 0,
            min_reputation: 0,
            timeout_ms: None,
            lease_ms: None,
            attempts: None,
        })
        .await
        .unwrap();
    let done = ra.task(task, Duration::from_secs(45)).await.unwrap();
    assert_eq!(done.state, "TASK_STATE_COMPLETED", "{done:#?}");
    assert!(done.verified);
    assert_eq!(done.bids, 2, "both executors bid inside the window");
    assert_eq!(done.attempt, 1);
    let executor = done.executor.clone().unwrap();
    assert!(executor == b.peer_id().to_string() || executor == c.peer_id().to_string());
    let result = done.result.clone().unwrap();
    assert!(result.to_string().contains("the task's input"), "{result}");

    // The room's task list shows the same view, at the proposer and at a member.
    assert_eq!(ra.tasks(room).await.unwrap(), vec![done.clone()]);
    let seen = rb.task(task, Duration::from_secs(30)).await.unwrap();
    assert_eq!(rb.tasks(room).await.unwrap(), vec![seen]);

    // The hash shown is that of the artifact's exact bytes in the record.
    let record = ra.record(task).await.unwrap();
    let verified = record.verify().unwrap();
    let artifact = verified.result.as_ref().unwrap();
    assert_eq!(
        hex::encode(blake3::hash(&artifact.artifact.0).as_bytes()),
        done.result_blake3.clone().unwrap()
    );

    // Every member verifies the same record.
    for r in [&rb, &rc] {
        let view = r.task(task, Duration::from_secs(30)).await.unwrap();
        assert_eq!(view.state, "TASK_STATE_COMPLETED");
        assert!(view.verified);
        assert_eq!(view.result_blake3, done.result_blake3);
        assert_eq!(view.log, done.log);
        let theirs = r.record(task).await.unwrap();
        assert_eq!(theirs.export(), record.export());
        theirs.verify().unwrap();
    }
    // The exported record verifies offline; a tampered one does not.
    let bytes = record.export();
    conclave_rooms::verify_log(&bytes).unwrap();
    let mut tampered = conclave_rooms::TaskRecord::import(&bytes).unwrap();
    let last = tampered.entries.len() - 2;
    tampered.entries[last].payload[12] ^= 1;
    assert!(tampered.verify().is_err());

    // The proposer's rooms, record and reputation survive a restart of
    // its service: the record is served from the database.
    ra.stop();
    within("the service to stop", ra.stopped()).await;
    let again = rooms_in(&a, Default::default(), db).await;
    let listed = again.rooms().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].room_id, room.to_string());
    let kept = again.task(task, Duration::ZERO).await.unwrap();
    assert_eq!(kept.state, "TASK_STATE_COMPLETED");
    assert!(kept.verified);
    assert_eq!(kept.result_blake3, done.result_blake3);
    assert_eq!(
        again.tasks(room).await.unwrap(),
        vec![kept.clone()],
        "the stored task is listed after the restart"
    );
    assert_eq!(again.record(task).await.unwrap().export(), record.export());
    let agents = again.agents(room).await.unwrap();
    let winner = agents
        .iter()
        .find(|a| a.peer_id == executor)
        .expect("the executor's card was kept");
    assert!(
        winner.reputation[skill] > 500,
        "the completed task counts for its executor: {:?}",
        winner.reputation
    );
}

/// A bid on `task` for `skill` at `price`, signed by `signer` now.
fn bid(signer: &dyn StatementSigner, task: TaskId, skill: &str, price: u64) -> Statement {
    Statement::sign(
        signer,
        BID_DOMAIN,
        &Bid {
            task,
            skill: skill.into(),
            price,
            idempotent: true,
        },
        unix_ms(),
    )
    .expect("signed")
}

/// Sends `bid` to `proposer` over the rooms protocol as `from`; the
/// proposer's refusal.
async fn refused(from: &NodeHandle, proposer: &NodeHandle, room: RoomId, bid: Statement) -> String {
    let request = Request::Task {
        room,
        message: TaskMessage::Bid(bid),
    };
    match from
        .send_to(proposer.peer_id(), wire::PROTOCOL, wire::encode(&request))
        .await
    {
        Ok(reply) => panic!(
            "the bid was taken: {:?}",
            wire::decode::<wire::Reply>(&reply)
        ),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_relayed_and_late_bids_over_the_wire_are_refused_and_change_nothing() {
    init_logging();
    let (a, b, forger) = (
        loopback_node().await,
        loopback_node().await,
        loopback_node().await,
    );
    connect(&b, &a).await;
    connect(&forger, &a).await;
    let ra = rooms(&a, Default::default()).await;
    let rb = rooms(&b, everything(&["echo"])).await;
    let room = ra.create_room("open bids", Policy::Open).await.unwrap();
    within("join", rb.join_room(room, None)).await.unwrap();
    let skill = "mcp.everything.echo";
    sees(&ra, room, &[b.peer_id()], Some(skill)).await;
    within(
        "topic peers",
        a.wait_for_topic_peers(&wire::topic_of(&room), 1, Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let task = ra
        .propose(Proposal {
            room,
            skill: skill.into(),
            input: serde_json::json!({"message": "honest bids only"}),
            window_ms: Some(2_000),
            max_price: 10,
            min_reputation: 0,
            timeout_ms: None,
            lease_ms: None,
            attempts: None,
        })
        .await
        .unwrap();

    // The forger's own keys sign a bid, then it changes the price.
    let own = NodeSigner::new(forger.identity());
    let mut forged = bid(&own, task, skill, 5);
    forged.payload = postcard::to_stdvec(&Bid {
        task,
        skill: skill.into(),
        price: 0,
        idempotent: true,
    })
    .unwrap();
    let why = refused(&forger, &a, room, forged).await;
    assert!(why.contains("invalid Ed25519 signature"), "{why}");
    // It relays a bid someone else signed as if it were its own.
    let someone = LocalSigner::generate();
    let why = refused(&forger, &a, room, bid(&someone, task, skill, 0)).await;
    assert!(why.contains("signed by another peer"), "{why}");
    // After the window, its own honest-looking bid comes too late.
    until(&ra, "the award", || async {
        ra.task(task, Duration::ZERO).await.unwrap().attempt >= 1
    })
    .await;
    let why = refused(&forger, &a, room, bid(&own, task, skill, 0)).await;
    assert!(why.contains("after the window closed"), "{why}");

    let done = ra.task(task, Duration::from_secs(45)).await.unwrap();
    assert_eq!(done.state, "TASK_STATE_COMPLETED", "{done:#?}");
    assert_eq!(done.bids, 1, "only the member's bid counts: {done:#?}");
    assert_eq!(done.executor, Some(b.peer_id().to_string()));
    assert!(done.verified);
    let forger_id = forger.peer_id().to_string();
    assert!(
        done.log
            .iter()
            .all(|l| !format!("{l:?}").contains(&forger_id)),
        "the record never names the forger: {:#?}",
        done.log
    );
}
