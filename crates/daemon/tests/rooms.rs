//! Agent-task rooms across `conclaved` processes on 127.0.0.1, driven only
//! through `conclavectl`, with the real MCP servers from npm (tests/mcp):
//! a member's tools called from another daemon, with progress and cancel;
//! a 5-daemon room whose task every member verifies; an invite-only room
//! that ignores a peer without a token, and one whose owner revokes a
//! member; an executor killed mid-task, replaced by the next bidder.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

mod common;

use common::Daemon;
use conclave_testkit::mcp_server_bin;

/// Bound on anything waited for.
const LIMIT: Duration = Duration::from_secs(60);

/// A daemon whose config.toml shares the everything server's `expose`.
fn agent(dir: &Path, expose: &[&str]) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    if !expose.is_empty() {
        let list: Vec<String> = expose.iter().map(|t| format!("{t:?}")).collect();
        let config = format!(
            "[[mcp]]\nname = \"everything\"\ncommand = {:?}\nargs = [\"stdio\"]\nexpose = [{}]\napprove = \"destructive\"\n",
            mcp_server_bin("mcp-server-everything"),
            list.join(", ")
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
    }
    Daemon::start_with(dir, &["--signing-keys", "none"])
}

/// Runs `conclavectl --json ARGS`: the parsed output, or the error text.
fn try_json(d: &Daemon, args: &[&str]) -> Result<Value, String> {
    let out = d.ctl().arg("--json").args(args).output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON output"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Asks again (every 100 ms, up to [`LIMIT`]) until `check` holds on the
/// answer: for state that arrives over the network (cards, DHT records),
/// where the CLI has no event to wait on.
fn eventually(d: &Daemon, args: &[&str], what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let last = try_json(d, args);
        if let Ok(v) = &last {
            if check(v) {
                return v.clone();
            }
        }
        assert!(
            started.elapsed() < LIMIT,
            "timed out waiting for {what}: last answer {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has_agent(agents: &Value, peer: &str, skill: Option<&str>) -> bool {
    agents.as_array().unwrap().iter().any(|a| {
        a["peer_id"] == peer
            && skill.is_none_or(|s| {
                a["card"]["skills"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["id"] == s)
            })
    })
}

fn topic(room: &str) -> String {
    format!("conclave/rooms/{room}")
}

#[test]
fn a_members_mcp_tools_are_called_from_another_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let a = agent(&tmp.path().join("a"), &[]);
    let b = agent(
        &tmp.path().join("b"),
        &["echo", "get-sum", "trigger-long-running-operation"],
    );
    b.json(&["connect", &a.quic_addr]);

    let room = a.json(&["rooms", "create", "lab"])["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    let joined = eventually(
        &b,
        &["rooms", "join", &room],
        "join through the DHT",
        |_| true,
    );
    assert_eq!(joined["name"], "lab");
    eventually(&a, &["rooms", "agents", &room], "B's card", |v| {
        has_agent(v, &b.peer_id, Some("mcp.everything.echo"))
    });
    let found = eventually(
        &a,
        &["rooms", "find", "mcp.everything.get-sum"],
        "B in the DHT",
        |v| {
            v.as_array()
                .unwrap()
                .iter()
                .any(|f| f["peer_id"] == b.peer_id.as_str())
        },
    );
    assert!(found.to_string().contains("get-sum"), "{found}");

    let tools = a.json(&["rooms", "tools", &b.peer_id]);
    let mut names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "get-sum", "trigger-long-running-operation"]);

    let started = Instant::now();
    let echoed = a.json(&[
        "rooms",
        "call",
        &b.peer_id,
        "everything",
        "echo",
        "--args",
        r#"{"message": "hi from A"}"#,
    ]);
    println!(
        "figure: conclavectl rooms call echo A -> B = {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert!(
        echoed["content"].to_string().contains("hi from A"),
        "{echoed}"
    );
    let sum = a.json(&[
        "rooms",
        "call",
        &b.peer_id,
        "everything",
        "get-sum",
        "--args",
        r#"{"a": 19, "b": 23}"#,
    ]);
    assert!(sum["content"].to_string().contains("42"), "{sum}");

    // The long-running tool's progress reaches the caller.
    let long = a.json(&[
        "rooms",
        "call",
        &b.peer_id,
        "everything",
        "trigger-long-running-operation",
        "--args",
        r#"{"duration": 1.5, "steps": 3}"#,
    ]);
    let progress: Vec<(f64, f64)> = long["_meta"]["conclave/progress"]
        .as_array()
        .expect("progress notes")
        .iter()
        .map(|p| {
            (
                p["progress"].as_f64().unwrap(),
                p["total"].as_f64().unwrap(),
            )
        })
        .collect();
    // In order; the last note may be overtaken by the result (rmcp hands
    // notifications to a task of their own).
    let all = [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)];
    assert!(
        progress.len() >= 2 && all.starts_with(&progress),
        "progress notes {progress:?}"
    );

    // A call that outlives its timeout is canceled at the server: the
    // everything server ignores the cancellation and keeps reporting
    // progress, so after the grace period B restarts it.
    let before = b.json(&["rooms", "servers"])[0]["generation"]
        .as_u64()
        .unwrap();
    let err = try_json(
        &a,
        &[
            "rooms",
            "call",
            &b.peer_id,
            "everything",
            "trigger-long-running-operation",
            "--args",
            r#"{"duration": 30, "steps": 30}"#,
            "--timeout",
            "2",
        ],
    )
    .unwrap_err();
    assert!(err.contains("canceled"), "{err}");
    eventually(&b, &["rooms", "servers"], "the server's restart", |v| {
        v[0]["generation"].as_u64().unwrap() > before && v[0]["pid"].is_u64()
    });
    let after = eventually(
        &a,
        &[
            "rooms",
            "call",
            &b.peer_id,
            "everything",
            "echo",
            "--args",
            r#"{"message": "again"}"#,
        ],
        "echo after the restart",
        |_| true,
    );
    assert!(after["content"].to_string().contains("again"));
}

#[test]
fn five_daemons_bid_complete_and_every_member_verifies_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let a = agent(&tmp.path().join("a"), &[]);
    let executors: Vec<Daemon> = (0..4)
        .map(|i| agent(&tmp.path().join(format!("e{i}")), &["echo"]))
        .collect();
    for (i, e) in executors.iter().enumerate() {
        e.json(&["connect", &a.quic_addr]);
        // A ring besides the star, so gossip has more than one path.
        if i > 0 {
            e.json(&["connect", &executors[i - 1].quic_addr]);
        }
    }
    let room = a.json(&["rooms", "create", "five"])["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    for e in &executors {
        eventually(e, &["rooms", "join", &room], "join", |_| true);
    }
    let skill = "mcp.everything.echo";
    eventually(
        &a,
        &["rooms", "agents", &room],
        "every executor's card",
        |v| {
            executors
                .iter()
                .all(|e| has_agent(v, &e.peer_id, Some(skill)))
        },
    );
    for e in &executors {
        e.json(&[
            "wait-topic",
            &topic(&room),
            "--peers",
            "1",
            "--timeout",
            "30",
        ]);
    }
    a.json(&[
        "wait-topic",
        &topic(&room),
        "--peers",
        "4",
        "--timeout",
        "30",
    ]);

    let started = Instant::now();
    let task = a.json(&[
        "rooms",
        "propose",
        &room,
        "--skill",
        skill,
        "--input",
        r#"{"message": "five daemons"}"#,
        "--window-ms",
        "2000",
    ])["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = a.json(&["rooms", "task", &task, "--wait", "60"]);
    println!(
        "figure: propose -> verified result, window 2 s, 4 bidders = {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(done["state"], "TASK_STATE_COMPLETED", "{done}");
    assert_eq!(done["verified"], true);
    assert_eq!(
        done["bids"], 4,
        "every executor bid inside the window: {done}"
    );
    assert_eq!(done["attempt"], 1);
    let executor = done["executor"].as_str().unwrap();
    assert!(executors.iter().any(|e| e.peer_id == executor));
    assert!(done["result"].to_string().contains("five daemons"));
    let hash = done["result_blake3"].as_str().unwrap();
    let kinds: Vec<&str> = done["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"proposed"));
    assert_eq!(kinds.last(), Some(&"accepted"));

    // Every member verifies the same record, and its export offline.
    for (i, e) in executors.iter().enumerate() {
        let view = e.json(&["rooms", "task", &task, "--wait", "30"]);
        assert_eq!(view["state"], "TASK_STATE_COMPLETED", "{view}");
        assert_eq!(view["verified"], true);
        assert_eq!(view["result_blake3"], hash);
        assert_eq!(view["log"], done["log"]);
        let file = tmp.path().join(format!("record-{i}"));
        e.json(&["rooms", "log", &task, "--out", file.to_str().unwrap()]);
        let offline = e.json(&["rooms", "verify-log", file.to_str().unwrap()]);
        assert_eq!(offline["verified"], true);
        assert_eq!(offline["result_blake3"], hash);
    }
    // A tampered export is refused, naming why.
    let file = tmp.path().join("record-0");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    let tampered = tmp.path().join("tampered");
    std::fs::write(&tampered, bytes).unwrap();
    let err = try_json(&a, &["rooms", "verify-log", tampered.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("not a valid task record"), "{err}");
}

#[test]
fn an_invite_only_room_ignores_a_peer_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let owner = agent(&tmp.path().join("owner"), &[]);
    let member = agent(&tmp.path().join("member"), &["echo"]);
    let stranger = agent(&tmp.path().join("stranger"), &["echo"]);
    member.json(&["connect", &owner.quic_addr]);
    stranger.json(&["connect", &owner.quic_addr]);
    stranger.json(&["connect", &member.quic_addr]);

    let room = owner.json(&["rooms", "create", "closed", "--invite-only"])["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    let invitation = tmp.path().join("invitation");
    // Sealing needs the member's PQ keys, exchanged just after connecting.
    eventually(
        &owner,
        &[
            "rooms",
            "invite",
            &room,
            &member.peer_id,
            "--roles",
            "propose,execute",
            "--out",
            invitation.to_str().unwrap(),
        ],
        "the invitation",
        |_| true,
    );
    // The invitation is sealed to the member: the stranger cannot use it.
    let err = try_json(
        &stranger,
        &[
            "rooms",
            "join",
            &room,
            "--token",
            invitation.to_str().unwrap(),
        ],
    )
    .unwrap_err();
    assert!(err.contains("made for another peer"), "{err}");
    let joined = member.json(&[
        "rooms",
        "join",
        &room,
        "--token",
        invitation.to_str().unwrap(),
    ]);
    assert_eq!(joined["policy"], "invite_only");
    assert_eq!(joined["roles"]["execute"], true);

    // Without a token the stranger is not let in, and nobody serves it.
    let err = eventually_err(&stranger, &["rooms", "join", &room]);
    assert!(err.contains("not a member"), "{err}");
    eventually(
        &owner,
        &["rooms", "agents", &room],
        "the member's card",
        |v| has_agent(v, &member.peer_id, Some("mcp.everything.echo")),
    );
    let refused = try_json(&stranger, &["rooms", "tools", &member.peer_id]).unwrap_err();
    assert!(refused.contains("members of its rooms"), "{refused}");
    let refused = try_json(
        &stranger,
        &[
            "rooms",
            "call",
            &member.peer_id,
            "everything",
            "echo",
            "--args",
            r#"{"message": "x"}"#,
        ],
    )
    .unwrap_err();
    assert!(refused.contains("members of its rooms"), "{refused}");

    // A task in the room: only the member bids (the stranger has the
    // skill but is not in the room).
    owner.json(&[
        "wait-topic",
        &topic(&room),
        "--peers",
        "1",
        "--timeout",
        "30",
    ]);
    let task = owner.json(&[
        "rooms",
        "propose",
        &room,
        "--skill",
        "mcp.everything.echo",
        "--input",
        r#"{"message": "members only"}"#,
        "--window-ms",
        "1500",
    ])["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = owner.json(&["rooms", "task", &task, "--wait", "60"]);
    assert_eq!(done["state"], "TASK_STATE_COMPLETED", "{done}");
    assert_eq!(done["bids"], 1);
    assert_eq!(done["executor"], member.peer_id.as_str());
    let agents = owner.json(&["rooms", "agents", &room]);
    assert!(!has_agent(&agents, &stranger.peer_id, None), "{agents}");
}

#[test]
fn a_revocation_reaches_every_member_and_the_revoked_peer_neither_bids_nor_rejoins() {
    let tmp = tempfile::tempdir().unwrap();
    let owner = agent(&tmp.path().join("owner"), &[]);
    let revoked = agent(&tmp.path().join("revoked"), &["echo"]);
    let staying = agent(&tmp.path().join("staying"), &["echo"]);
    revoked.json(&["connect", &owner.quic_addr]);
    staying.json(&["connect", &owner.quic_addr]);
    staying.json(&["connect", &revoked.quic_addr]);
    let room = owner.json(&["rooms", "create", "revocable", "--invite-only"])["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tokens = Vec::new();
    for (name, member) in [("revoked", &revoked), ("staying", &staying)] {
        let token = tmp.path().join(format!("{name}.token"));
        eventually(
            &owner,
            &[
                "rooms",
                "invite",
                &room,
                &member.peer_id,
                "--roles",
                "propose,execute",
                "--out",
                token.to_str().unwrap(),
            ],
            "the invitation",
            |_| true,
        );
        member.json(&["rooms", "join", &room, "--token", token.to_str().unwrap()]);
        tokens.push(token);
    }
    let skill = "mcp.everything.echo";
    for viewer in [&owner, &staying] {
        eventually(
            viewer,
            &["rooms", "agents", &room],
            "the revoked-to-be member's card",
            |v| has_agent(v, &revoked.peer_id, Some(skill)),
        );
    }

    let reply = owner.json(&["rooms", "revoke", &room, &revoked.peer_id]);
    assert_eq!(reply["revoked"], revoked.peer_id.as_str());
    // The owner's signed revocation travels to the other members, who drop
    // the card and refuse what the revoked peer sends from now on.
    for viewer in [&owner, &staying] {
        eventually(
            viewer,
            &["rooms", "agents", &room],
            "the revoked member's card gone",
            |v| !has_agent(v, &revoked.peer_id, None),
        );
    }
    // It reaches the revoked peer too: its own token is void from then on
    // (until then, joining again is a no-op).
    let join_again = [
        "rooms",
        "join",
        &room,
        "--token",
        tokens[0].to_str().unwrap(),
    ];
    let started = Instant::now();
    while let Ok(joined) = try_json(&revoked, &join_again) {
        assert!(
            started.elapsed() < LIMIT,
            "the revoked peer still joins: {joined}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = try_json(&revoked, &join_again).unwrap_err();
    assert!(refused.contains("was revoked"), "{refused}");

    owner.json(&[
        "wait-topic",
        &topic(&room),
        "--peers",
        "1",
        "--timeout",
        "30",
    ]);
    let task = owner.json(&[
        "rooms",
        "propose",
        &room,
        "--skill",
        skill,
        "--input",
        r#"{"message": "after the revocation"}"#,
        "--window-ms",
        "1500",
    ])["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = owner.json(&["rooms", "task", &task, "--wait", "60"]);
    assert_eq!(done["state"], "TASK_STATE_COMPLETED", "{done}");
    assert_eq!(done["bids"], 1, "only the remaining member bids: {done}");
    assert_eq!(done["executor"], staying.peer_id.as_str());
}

/// A daemon whose one skill is `shell.slow-echo`: its input back after
/// three seconds, declared idempotent (running it twice is harmless).
fn slow_echo_agent(dir: &Path) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[[shell]]\nname = \"slow-echo\"\nargv = [\"/bin/sh\", \"-c\", \"/bin/sleep 3; /bin/cat\"]\nidempotent = true\n",
    )
    .unwrap();
    Daemon::start_with(dir, &["--signing-keys", "none"])
}

#[test]
fn an_executor_killed_after_it_started_is_replaced_by_the_next_bidder() {
    let tmp = tempfile::tempdir().unwrap();
    let proposer = agent(&tmp.path().join("proposer"), &[]);
    let mut executors: Vec<Daemon> = (0..2)
        .map(|i| slow_echo_agent(&tmp.path().join(format!("e{i}"))))
        .collect();
    for e in &executors {
        e.json(&["connect", &proposer.quic_addr]);
    }
    executors[1].json(&["connect", &executors[0].quic_addr]);
    let room = proposer.json(&["rooms", "create", "relay-race"])["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    for e in &executors {
        eventually(e, &["rooms", "join", &room], "join", |_| true);
    }
    let skill = "shell.slow-echo";
    eventually(
        &proposer,
        &["rooms", "agents", &room],
        "both executors' cards",
        |v| {
            executors
                .iter()
                .all(|e| has_agent(v, &e.peer_id, Some(skill)))
        },
    );
    proposer.json(&[
        "wait-topic",
        &topic(&room),
        "--peers",
        "2",
        "--timeout",
        "30",
    ]);
    // The lease outlasts an honest run (3 s) but not a dead executor.
    let lease_ms = 5_000u64;
    let lease = lease_ms.to_string();
    let task = proposer.json(&[
        "rooms",
        "propose",
        &room,
        "--skill",
        skill,
        "--input",
        r#"{"message": "carried on"}"#,
        "--window-ms",
        "1500",
        "--lease-ms",
        &lease,
    ])["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let working = eventually(
        &proposer,
        &["rooms", "task", &task],
        "the awarded executor starting",
        |v| v["state"] == "TASK_STATE_WORKING",
    );
    let first = working["executor"].as_str().unwrap().to_string();
    let victim = executors
        .iter()
        .position(|e| e.peer_id == first)
        .expect("an executor of ours runs it");
    executors[victim].kill();
    let killed = Instant::now();
    eventually(
        &proposer,
        &["rooms", "task", &task],
        "the task awarded to the next bidder",
        |v| v["executor"] != first.as_str(),
    );
    let reassigned = killed.elapsed();
    let done = proposer.json(&["rooms", "task", &task, "--wait", "60"]);
    println!(
        "figure: executor killed after start -> reassigned {:.0} ms, next bidder's result {:.0} ms (lease {lease_ms} ms, run 3 s)",
        reassigned.as_secs_f64() * 1000.0,
        killed.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(done["state"], "TASK_STATE_COMPLETED", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(
        done["executor"],
        executors[1 - victim].peer_id.as_str(),
        "{done}"
    );
    assert_eq!(done["verified"], true);
    assert!(done["result"].to_string().contains("carried on"), "{done}");
}

/// The error of a call that keeps failing once the DHT has the room (a
/// "not found" can come first, while the record replicates).
fn eventually_err(d: &Daemon, args: &[&str]) -> String {
    let started = Instant::now();
    loop {
        match try_json(d, args) {
            Ok(v) => panic!("{args:?} succeeded: {v}"),
            Err(e) if !e.contains("was not found") => return e,
            Err(e) => assert!(started.elapsed() < LIMIT, "still {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
