//! The MCP executor against real MCP servers from npm (installed into
//! tests/mcp by scripts/setup.sh): the reference "everything" server and
//! the filesystem server, as child processes over stdio.

use std::time::Duration;

use conclave_rooms::exec::{
    mcp::{McpError, McpServer},
    Approve, McpServerConfig,
};
use conclave_testkit::mcp_server_bin;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const START: Duration = Duration::from_secs(60);
const CALL: Duration = Duration::from_secs(30);

fn everything(expose: &[&str]) -> McpServer {
    McpServer::start(McpServerConfig {
        name: "everything".into(),
        command: mcp_server_bin("mcp-server-everything"),
        args: vec!["stdio".into()],
        expose: expose.iter().map(|s| s.to_string()).collect(),
        approve: Approve::Destructive,
    })
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap().to_string()
}

fn args(json: serde_json::Value) -> Option<rmcp::model::JsonObject> {
    json.as_object().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_get_sum_through_the_exposed_list_only() {
    let server = everything(&["echo", "get-sum", "trigger-long-running-operation"]);
    server.ready(START).await.unwrap();
    // The npm everything server is built on the v1 TypeScript SDK: it knows
    // no server/discover, so the connection fell back to initialize.
    assert_eq!(server.protocol_version().as_deref(), Some("2025-11-25"));

    let tools = server.list_tools(CALL).await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["echo", "get-sum", "trigger-long-running-operation"]
    );
    let sum = tools.iter().find(|t| t.name == "get-sum").unwrap();
    assert_eq!(sum.skill, "mcp.everything.get-sum");
    assert!(
        sum.idempotent && !sum.needs_approval,
        "read-only, idempotent per its annotations"
    );

    let never = CancellationToken::new();
    let echoed = server
        .call_tool(
            "echo",
            args(serde_json::json!({"message": "hello rooms"})),
            None,
            never.clone(),
            CALL,
        )
        .await
        .unwrap();
    assert!(
        text_of(&echoed).contains("hello rooms"),
        "{}",
        text_of(&echoed)
    );
    let sum = server
        .call_tool(
            "get-sum",
            args(serde_json::json!({"a": 19, "b": 23})),
            None,
            never.clone(),
            CALL,
        )
        .await
        .unwrap();
    assert!(text_of(&sum).contains("42"), "{}", text_of(&sum));

    // A tool the server has but the config does not expose.
    let err = server
        .call_tool("get-env", None, None, never, CALL)
        .await
        .unwrap_err();
    assert!(matches!(err, McpError::NotExposed { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_caller_and_a_cancel_reaches_the_server() {
    let server = everything(&["trigger-long-running-operation", "echo"]);
    server.ready(START).await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let never = CancellationToken::new();
    let done = server
        .call_tool(
            "trigger-long-running-operation",
            args(serde_json::json!({"duration": 1.5, "steps": 3})),
            Some(tx),
            never,
            CALL,
        )
        .await
        .unwrap();
    assert!(text_of(&done).contains("completed"), "{}", text_of(&done));
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push((p.progress, p.total));
    }
    // rmcp hands each notification to its own task, so the last step's
    // progress, written just before the answer, can lose the race with it
    // (a CI run saw that); every earlier step arrives first, in order.
    let steps = [(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))];
    assert!(
        seen.len() >= 2 && steps.starts_with(&seen),
        "progress seen: {seen:?}"
    );

    // Cancel after the first progress: the call ends at once as canceled.
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let call = {
        let server = server.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            server
                .call_tool(
                    "trigger-long-running-operation",
                    args(serde_json::json!({"duration": 10, "steps": 10})),
                    Some(tx),
                    cancel,
                    CALL,
                )
                .await
        })
    };
    let first = tokio::time::timeout(CALL, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.progress, 1.0);
    let generation = server.generation();
    cancel.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err, McpError::Canceled(_)), "{err}");
    // The everything server's long-running tool ignores its abort signal and
    // keeps reporting progress for the canceled call, so after the grace
    // period the server is killed and started again.
    let restarted = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if server.generation() > generation {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        restarted.is_ok(),
        "the server was not restarted after ignoring the cancel"
    );
    server.ready(START).await.unwrap();
    let ok = server
        .call_tool(
            "echo",
            args(serde_json::json!({"message": "after"})),
            None,
            CancellationToken::new(),
            CALL,
        )
        .await
        .unwrap();
    assert!(text_of(&ok).contains("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_call_fails_the_call_and_comes_back() {
    let server = everything(&["trigger-long-running-operation", "echo"]);
    server.ready(START).await.unwrap();
    let pid = server.pid().expect("a child process");
    let (tx, mut rx) = mpsc::channel(16);
    let call = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .call_tool(
                    "trigger-long-running-operation",
                    args(serde_json::json!({"duration": 20, "steps": 20})),
                    Some(tx),
                    CancellationToken::new(),
                    CALL,
                )
                .await
        })
    };
    tokio::time::timeout(CALL, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let err = tokio::time::timeout(CALL, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, McpError::ServerExited(_)), "{err}");
    // Started again, with a new process.
    let back = tokio::time::timeout(START, async {
        loop {
            if server.pid().is_some_and(|p| p != pid) && server.ready(CALL).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(back.is_ok(), "the server did not come back");
    assert_eq!(server.generation(), 2);
    let ok = server
        .call_tool(
            "echo",
            args(serde_json::json!({"message": "back"})),
            None,
            CancellationToken::new(),
            CALL,
        )
        .await
        .unwrap();
    assert!(text_of(&ok).contains("back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filesystem_server_stays_inside_its_directory() {
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("notes.txt"), "inside").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
    let server = McpServer::start(McpServerConfig {
        name: "files".into(),
        command: mcp_server_bin("mcp-server-filesystem"),
        args: vec![allowed.path().to_string_lossy().into_owned()],
        expose: vec!["read_text_file".into(), "write_file".into()],
        approve: Approve::Destructive,
    });
    server.ready(START).await.unwrap();
    let tools = server.list_tools(CALL).await.unwrap();
    let write = tools
        .iter()
        .find(|t| t.name == "write_file")
        .expect("write_file listed");
    assert!(
        write.needs_approval,
        "writing is destructive: it waits for the owner"
    );
    let read = tools
        .iter()
        .find(|t| t.name == "read_text_file")
        .expect("read_text_file listed");
    assert!(!read.needs_approval);

    let never = CancellationToken::new();
    let path = allowed.path().join("notes.txt");
    let got = server
        .call_tool(
            "read_text_file",
            args(serde_json::json!({"path": path})),
            None,
            never.clone(),
            CALL,
        )
        .await
        .unwrap();
    assert!(text_of(&got).contains("inside"));
    let path = outside.path().join("secret.txt");
    let refused = server
        .call_tool(
            "read_text_file",
            args(serde_json::json!({"path": path})),
            None,
            never,
            CALL,
        )
        .await;
    let shown = match &refused {
        Ok(r) => {
            assert_eq!(
                r.is_error,
                Some(true),
                "reading outside must fail: {}",
                text_of(r)
            );
            text_of(r)
        }
        Err(e) => e.to_string(),
    };
    assert!(!shown.contains("outside\""), "the secret leaked: {shown}");
}
