//! Agent-task rooms on the daemon's control socket: the `rooms.*` methods
//! behind `conclavectl rooms ...`.
//!
//! The rooms service runs on whichever node the profile runs now (started
//! again on a new node), with its state in the profile's database and the
//! tools of the `[[mcp]]` and `[[shell]]` entries of its config.toml.

use std::{sync::Arc, time::Duration};

use conclave_node::{
    control::{
        rpc::{self, params, to_value, RpcError},
        server::ControlExtension,
    },
    store::Database,
    ProfileNode,
};
use conclave_rooms::{
    exec::ExecConfig,
    room::{Policy, Roles},
    service::{
        self,
        supervisor::{self, RoomsSupervisor},
        Proposal, RoomsError, RoomsHandle,
    },
    PeerId, RoomId, TaskId,
};
use futures::{future::BoxFuture, FutureExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest `--wait` of `rooms task`, in seconds.
pub const MAX_WAIT_SECS: u64 = 3600;
/// Default `--timeout` of `rooms call`, in seconds.
pub const DEFAULT_CALL_SECS: u64 = 60;
/// Progress notes of one call kept for its answer.
const MAX_PROGRESS_NOTES: usize = 1024;

/// The rooms service kept on the profile's node (cloneable).
#[derive(Clone)]
pub struct RoomsControl {
    supervisor: Arc<RoomsSupervisor>,
}

impl RoomsControl {
    /// Serves rooms on `node` with state in `db` and the tools of `exec`.
    pub fn new(node: Arc<ProfileNode>, db: Option<Database>, exec: ExecConfig) -> Self {
        let config = supervisor::profile_config(&node, exec);
        Self {
            supervisor: Arc::new(RoomsSupervisor::new(node, db, config)),
        }
    }

    /// The tools of a profile's config.toml (its `[[mcp]]` and `[[shell]]`).
    pub fn exec_config(node: &ProfileNode) -> anyhow::Result<ExecConfig> {
        Ok(supervisor::profile_tools(node)?)
    }

    /// The service on the node that runs now, started if needed.
    pub async fn handle(&self) -> Result<RoomsHandle, String> {
        self.supervisor.handle().await.map_err(|e| e.to_string())
    }

    /// Starts the service on each new node (so its card and tools are
    /// announced without a first call); returns when the profile closes.
    pub async fn run(self) {
        self.supervisor.clone().run().await
    }

    /// Stops the service.
    pub async fn shutdown(&self) {
        self.supervisor.shutdown().await
    }
}

impl ControlExtension for RoomsControl {
    fn call(
        &self,
        method: &str,
        params: Value,
    ) -> Option<BoxFuture<'static, Result<Value, RpcError>>> {
        let method = method.strip_prefix("rooms.")?.to_string();
        let this = self.clone();
        Some(
            async move {
                let handle = this.handle().await.map_err(|reason| {
                    RpcError::node(format!("rooms are unavailable on this daemon: {reason}"))
                })?;
                dispatch(&handle, &method, params).await
            }
            .boxed(),
        )
    }
}

fn service_error(e: RoomsError) -> RpcError {
    match e {
        RoomsError::Invalid(m) => RpcError::invalid_params(m),
        e => RpcError::node(e.to_string()),
    }
}

fn room_id(text: &str) -> Result<RoomId, RpcError> {
    text.parse().map_err(|e| {
        RpcError::invalid_params(format!("{e}: use the room_id that rooms create printed"))
    })
}

fn task_id(text: &str) -> Result<TaskId, RpcError> {
    text.parse().map_err(|e| {
        RpcError::invalid_params(format!("{e}: use the task_id that rooms propose printed"))
    })
}

fn peer_id(text: &str) -> Result<PeerId, RpcError> {
    text.parse()
        .map_err(|e| RpcError::invalid_params(format!("invalid peer id {text:?}: {e}")))
}

#[derive(Deserialize)]
struct CreateParams {
    name: String,
    #[serde(default)]
    invite_only: bool,
}

#[derive(Deserialize)]
struct JoinParams {
    room_id: String,
    /// The invitation file's bytes, hex.
    token: Option<String>,
}

#[derive(Deserialize)]
struct InviteParams {
    room_id: String,
    peer_id: String,
    roles: String,
    valid_secs: Option<u64>,
}

#[derive(Deserialize)]
struct RoomParams {
    room_id: String,
}

#[derive(Deserialize)]
struct RevokeParams {
    room_id: String,
    peer_id: String,
}

#[derive(Deserialize)]
struct SkillParams {
    skill: String,
}

#[derive(Deserialize)]
struct PeerParams {
    peer_id: String,
}

#[derive(Deserialize)]
struct CallParams {
    peer_id: String,
    server: String,
    tool: String,
    #[serde(default)]
    args: Value,
    timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
struct ProposeParams {
    room_id: String,
    skill: String,
    input: Value,
    window_ms: Option<u64>,
    #[serde(default)]
    max_price: u64,
    #[serde(default)]
    min_reputation: u16,
    timeout_ms: Option<u64>,
    lease_ms: Option<u64>,
    attempts: Option<u8>,
}

#[derive(Deserialize)]
struct TaskParams {
    task_id: String,
    #[serde(default)]
    wait_secs: u64,
}

async fn dispatch(handle: &RoomsHandle, method: &str, p: Value) -> Result<Value, RpcError> {
    match method {
        "create" => {
            let p: CreateParams = params(p)?;
            let policy = if p.invite_only {
                Policy::InviteOnly
            } else {
                Policy::Open
            };
            let room = handle
                .create_room(&p.name, policy)
                .await
                .map_err(service_error)?;
            Ok(json!({ "room_id": room.to_string() }))
        }
        "join" => {
            let p: JoinParams = params(p)?;
            let invitation = p
                .token
                .map(|t| {
                    hex::decode(t)
                        .map_err(|_| RpcError::invalid_params("the invitation is not hex"))
                })
                .transpose()?;
            let info = handle
                .join_room(room_id(&p.room_id)?, invitation)
                .await
                .map_err(service_error)?;
            to_value(info)
        }
        "invite" => {
            let p: InviteParams = params(p)?;
            let roles: Roles = p
                .roles
                .parse()
                .map_err(|e| RpcError::invalid_params(format!("{e}")))?;
            let valid = p
                .valid_secs
                .map(Duration::from_secs)
                .unwrap_or(service::DEFAULT_INVITATION);
            let sealed = handle
                .invite(room_id(&p.room_id)?, peer_id(&p.peer_id)?, roles, valid)
                .await
                .map_err(service_error)?;
            Ok(json!({ "invitation": hex::encode(sealed) }))
        }
        "revoke" => {
            let p: RevokeParams = params(p)?;
            handle
                .revoke(room_id(&p.room_id)?, peer_id(&p.peer_id)?)
                .await
                .map_err(service_error)?;
            Ok(json!({ "revoked": p.peer_id }))
        }
        "list" => to_value(handle.rooms().await.map_err(service_error)?),
        "card" => to_value(handle.card().await.map_err(service_error)?),
        "servers" => to_value(handle.servers().await.map_err(service_error)?),
        "agents" => {
            let p: RoomParams = params(p)?;
            to_value(
                handle
                    .agents(room_id(&p.room_id)?)
                    .await
                    .map_err(service_error)?,
            )
        }
        "find" => {
            let p: SkillParams = params(p)?;
            to_value(handle.find(&p.skill).await.map_err(service_error)?)
        }
        "tools" => {
            let p: PeerParams = params(p)?;
            to_value(
                handle
                    .tools(peer_id(&p.peer_id)?)
                    .await
                    .map_err(service_error)?,
            )
        }
        "call" => call(handle, params(p)?).await,
        "propose" => {
            let p: ProposeParams = params(p)?;
            let task = handle
                .propose(Proposal {
                    room: room_id(&p.room_id)?,
                    skill: p.skill,
                    input: p.input,
                    window_ms: p.window_ms,
                    max_price: p.max_price,
                    min_reputation: p.min_reputation,
                    timeout_ms: p.timeout_ms,
                    lease_ms: p.lease_ms,
                    attempts: p.attempts,
                })
                .await
                .map_err(service_error)?;
            Ok(json!({ "task_id": task.to_string() }))
        }
        "task" => {
            let p: TaskParams = params(p)?;
            if p.wait_secs > MAX_WAIT_SECS {
                return Err(RpcError::invalid_params(format!(
                    "--wait is at most {MAX_WAIT_SECS} s"
                )));
            }
            let view = handle
                .task(task_id(&p.task_id)?, Duration::from_secs(p.wait_secs))
                .await
                .map_err(service_error)?;
            to_value(view)
        }
        "cancel" => {
            let p: TaskParams = params(p)?;
            to_value(
                handle
                    .cancel(task_id(&p.task_id)?)
                    .await
                    .map_err(service_error)?,
            )
        }
        "approve" => {
            let p: TaskParams = params(p)?;
            handle
                .approve(task_id(&p.task_id)?)
                .await
                .map_err(service_error)?;
            Ok(json!({ "approved": p.task_id }))
        }
        "decline" => {
            let p: TaskParams = params(p)?;
            handle
                .decline_run(task_id(&p.task_id)?)
                .await
                .map_err(service_error)?;
            Ok(json!({ "declined": p.task_id }))
        }
        "log" => {
            let p: TaskParams = params(p)?;
            let record = handle
                .record(task_id(&p.task_id)?)
                .await
                .map_err(service_error)?;
            Ok(json!({ "record": hex::encode(record.export()) }))
        }
        other => Err(RpcError::new(
            rpc::METHOD_NOT_FOUND,
            format!("unknown method rooms.{other}"),
        )),
    }
}

/// A remote MCP call; its progress notes ride in the result's `_meta`
/// under `conclave/progress`.
async fn call(handle: &RoomsHandle, p: CallParams) -> Result<Value, RpcError> {
    let peer = peer_id(&p.peer_id)?;
    let timeout = Duration::from_secs(p.timeout_secs.unwrap_or(DEFAULT_CALL_SECS));
    let (tx, mut rx) = mpsc::channel(64);
    let notes = tokio::spawn(async move {
        let mut notes = Vec::new();
        while let Some(progress) = rx.recv().await {
            if notes.len() < MAX_PROGRESS_NOTES {
                notes.push(progress);
            }
        }
        notes
    });
    let args = match p.args {
        Value::Null => None,
        v => Some(v),
    };
    let result = handle
        .call(
            peer,
            &p.server,
            &p.tool,
            args,
            timeout,
            Some(tx),
            CancellationToken::new(),
        )
        .await
        .map_err(service_error)?;
    let notes = notes.await.unwrap_or_default();
    let mut result = result;
    if !notes.is_empty() {
        if let Value::Object(object) = &mut result {
            let meta = object
                .entry("_meta")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(meta) = meta {
                meta.insert(
                    "conclave/progress".into(),
                    notes
                        .iter()
                        .map(|n| {
                            json!({"progress": n.progress, "total": n.total, "message": n.message})
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(result)
}
