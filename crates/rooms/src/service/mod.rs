//! The rooms service: an actor over the node's public API that drives the
//! pure machines of [`crate::room`], [`crate::card`] and [`crate::task`].
//!
//! - Each room is a gossip topic ([`wire::topic_of`]); members announce
//!   their signed cards there (on joining, when their tools change and
//!   every [`RoomsConfig::card_interval`]), and answer a newcomer's card
//!   with theirs directly. Cards also go to the DHT: under the PeerId and
//!   one record per skill, so [`RoomsHandle::find`] finds agents across
//!   rooms.
//! - Tools: [`RoomsHandle::tools`] and [`RoomsHandle::call`] reach another
//!   member's exposed MCP tools over the direct protocol [`wire::PROTOCOL`];
//!   a call is answered at once and its progress and result follow as
//!   messages, so it may take longer than one request's timeout; a cancel
//!   goes to the server as MCP's cancellation.
//! - Tasks: proposals and record entries on the topic, bids and reports
//!   directly to the proposer; executors with the skill bid, run the tool
//!   and report; every member keeps the entries it sees and verifies the
//!   record ([`RoomsHandle::task`]).
//! - State that must survive a restart goes to the profile's database
//!   ([`store`]).
//!
//! Everything a peer sends is checked (membership, signatures, the
//! machines' rules) before it is kept, and every map is bounded.

mod actor;
pub mod signer;
pub mod store;
pub mod supervisor;
pub mod tools;
pub mod wire;

use std::time::Duration;

use conclave_node::{error::ProtocolError, store::Database, NodeError, NodeHandle};
use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use tools::{OwnTool, ServerInfo, ToolInfo, ToolSource};

use crate::{
    a2a::AgentCard,
    exec::{mcp::Progress, ExecConfig},
    ids::{RoomId, TaskId},
    record::{RecordError, TaskRecord},
    room::{Policy, Roles, RoomError},
    task::TaskError,
};

/// DHT resource type of room descriptors (id: the room id).
pub const ROOM_RESOURCE: &str = "conclave-room";
/// DHT resource type of agent cards (id: the PeerId).
pub const CARD_RESOURCE: &str = "agent-card";
/// DHT resource type prefix of skills (`agent-skill:<skill>`, id: the PeerId).
pub const SKILL_RESOURCE_PREFIX: &str = "agent-skill:";
/// How long DHT announcements live (they are renewed well before).
pub const DHT_TTL: Duration = Duration::from_secs(3600);
/// How long an invitation is valid unless told otherwise.
pub const DEFAULT_INVITATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest a remote call may be given.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// How the service runs.
#[derive(Debug, Clone)]
pub struct RoomsConfig {
    /// The local tools.
    pub exec: ExecConfig,
    /// The agent's name on its card.
    pub agent_name: String,
    /// How often the card is announced again on each room's topic.
    pub card_interval: Duration,
    /// Defaults of a proposal that the caller leaves out.
    pub task_defaults: TaskDefaults,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            exec: ExecConfig::default(),
            agent_name: "conclave agent".into(),
            card_interval: Duration::from_secs(30),
            task_defaults: TaskDefaults::default(),
        }
    }
}

/// What a proposal asks unless told otherwise.
#[derive(Debug, Clone, Copy)]
pub struct TaskDefaults {
    /// Bid window (ms).
    pub window_ms: u64,
    /// Execution timeout of one attempt (ms).
    pub timeout_ms: u64,
    /// Lease (ms), renewed by progress and reports.
    pub lease_ms: u64,
    /// Attempts.
    pub attempts: u8,
}

impl Default for TaskDefaults {
    fn default() -> Self {
        Self {
            window_ms: 1_000,
            timeout_ms: 120_000,
            lease_ms: 30_000,
            attempts: 3,
        }
    }
}

/// Why a rooms call failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    /// The service stopped (the node stopped).
    #[error("the rooms service is not running; start the node again")]
    Stopped,
    /// The profile's node is not running, so neither is the service.
    #[error("the node is not running; start it again")]
    NodeNotRunning,
    /// No such room here.
    #[error("this node is not in room {0}; join it first (rooms join ROOM_ID)")]
    UnknownRoom(RoomId),
    /// No such task here.
    #[error("no task {0} is known here; check the id, or fetch it from a member of its room")]
    UnknownTask(TaskId),
    /// Refused by the room's rules.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// Refused by the task's rules.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A record failed verification.
    #[error("the task record does not verify: {0}")]
    Record(#[from] RecordError),
    /// The network failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The other member refused or failed.
    #[error("{peer} answered: {reason}")]
    Remote {
        /// Who answered.
        peer: PeerId,
        /// What it said.
        reason: String,
    },
    /// A local tool failed.
    #[error("{0}")]
    Tool(String),
    /// Bad input from the caller.
    #[error("{0}")]
    Invalid(String),
    /// Waited too long.
    #[error("{0}")]
    Timeout(String),
    /// The database failed.
    #[error("{0}")]
    Store(Box<store::StoreError>),
}

impl From<store::StoreError> for RoomsError {
    fn from(e: store::StoreError) -> Self {
        RoomsError::Store(Box::new(e))
    }
}

/// A room this node is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RoomInfo {
    /// Its id.
    pub room_id: String,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// `open` or `invite_only`.
    pub policy: Policy,
    /// Agents whose cards were seen (not counting this node).
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub agents: usize,
    /// What this node may do there.
    pub roles: Roles,
}

/// An agent seen in a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its PeerId.
    pub peer_id: String,
    /// Its card's sequence number.
    pub seq: u64,
    /// Its A2A card.
    pub card: AgentCard,
    /// This node's reputation of it per skill (per mille).
    pub reputation: std::collections::BTreeMap<String, u16>,
}

/// An agent found in the DHT for a skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundAgent {
    /// Its PeerId.
    pub peer_id: String,
    /// The skill.
    pub skill: String,
    /// Its card, if its card record was found too.
    pub card: Option<AgentCard>,
}

/// A proposal as the caller makes it.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The room.
    pub room: RoomId,
    /// The skill asked for.
    pub skill: String,
    /// The tool's arguments (an object) or text, carried as an A2A message.
    pub input: serde_json::Value,
    /// Bid window (ms); default from [`TaskDefaults`].
    pub window_ms: Option<u64>,
    /// Highest price accepted.
    pub max_price: u64,
    /// Lowest reputation accepted (per mille).
    pub min_reputation: u16,
    /// Execution timeout (ms).
    pub timeout_ms: Option<u64>,
    /// Lease (ms).
    pub lease_ms: Option<u64>,
    /// Attempts.
    pub attempts: Option<u8>,
}

/// One line of a task's record, for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Sequence number.
    pub seq: u64,
    /// What happened (`proposed`, `bid`, `ranked`, `awarded`, `reported`, ...).
    pub kind: String,
    /// The report's kind, for `reported`.
    pub report: Option<String>,
    /// Who signed the embedded statement (bidder, executor), or the executor awarded.
    pub by: Option<String>,
    /// The proposer's time (ms).
    pub at_ms: u64,
}

/// A task as `rooms task` shows it: from its verified record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// The task.
    pub task_id: String,
    /// Its room.
    pub room_id: String,
    /// The proposer.
    pub proposer: String,
    /// The skill.
    pub skill: String,
    /// The A2A state (`TASK_STATE_...`).
    pub state: String,
    /// Our finer phase.
    pub phase: crate::task::Phase,
    /// The current (or last) executor.
    pub executor: Option<String>,
    /// The current (or last) attempt, 0 before the award.
    pub attempt: u8,
    /// Bids taken.
    pub bids: usize,
    /// The result artifact (A2A JSON), once in.
    pub result: Option<serde_json::Value>,
    /// BLAKE3 of the artifact's exact bytes (hex), checked.
    pub result_blake3: Option<String>,
    /// Whether the record verified (chain, signers, transitions, hash).
    pub verified: bool,
    /// The record's entries.
    pub log: Vec<LogLine>,
}

/// A task awarded to this node whose tool waits for its owner's approval
/// (A2A `TASK_STATE_AUTH_REQUIRED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PendingApproval {
    /// The task.
    pub task_id: String,
    /// Its room.
    pub room_id: String,
    /// The room's name.
    pub room_name: String,
    /// Who proposed it.
    pub proposer: String,
    /// The skill (`mcp.<server>.<tool>`).
    pub skill: String,
    /// The server (or command) that would run.
    pub server: String,
    /// The tool that would run.
    pub tool: String,
    /// Exactly what the tool would receive (its arguments as JSON, or a
    /// command's stdin).
    pub input: String,
    /// The attempt waiting.
    pub attempt: u8,
    /// When the task was proposed (the proposer's clock, ms).
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub proposed_at_ms: u64,
}

type Reply<T> = oneshot::Sender<Result<T, RoomsError>>;

/// The client of a running rooms service (cloneable).
#[derive(Clone)]
pub struct RoomsHandle {
    commands: mpsc::Sender<actor::Command>,
    node: NodeHandle,
    changes: watch::Receiver<u64>,
    stop: CancellationToken,
}

impl RoomsHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> actor::Command) -> Result<T, RoomsError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| RoomsError::Stopped)?;
        rx.await.map_err(|_| RoomsError::Stopped)?
    }

    /// The node the service runs on.
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// A watch that ticks whenever anything the service shows changed
    /// (cards, rooms, tasks): wait on it instead of polling.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Stops the service (its MCP servers stop with it).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The tasks of `room` known here (proposed, executed or seen), each as
    /// its verified record shows it, newest first.
    pub async fn tasks(&self, room: RoomId) -> Result<Vec<TaskView>, RoomsError> {
        self.ask(|reply| actor::Command::Tasks { room, reply })
            .await
    }

    /// Returns once the service has stopped (its handler is off the node).
    pub async fn stopped(&self) {
        self.commands.closed().await
    }

    /// Creates a room owned by this node and joins it.
    pub async fn create_room(&self, name: &str, policy: Policy) -> Result<RoomId, RoomsError> {
        let name = name.to_string();
        self.ask(|reply| actor::Command::CreateRoom {
            name,
            policy,
            reply,
        })
        .await
    }

    /// Joins a room: with an invitation file (sealed to this node), or by
    /// its id alone (its descriptor is fetched from the DHT).
    pub async fn join_room(
        &self,
        room: RoomId,
        invitation: Option<Vec<u8>>,
    ) -> Result<RoomInfo, RoomsError> {
        let (descriptor, via) = if invitation.is_some() {
            (None, None)
        } else {
            let (d, via) = self.find_descriptor(room).await?;
            (Some(d), via)
        };
        self.ask(|reply| actor::Command::JoinRoom {
            room,
            invitation,
            descriptor,
            via,
            reply,
        })
        .await
    }

    /// A room's descriptor: from a connected peer in the room, else from
    /// the DHT (the descriptor is self-certifying: its id is checked).
    async fn find_descriptor(
        &self,
        room: RoomId,
    ) -> Result<(crate::statement::Statement, Option<PeerId>), RoomsError> {
        let peers = self.node.peers().await?;
        let asks = peers.iter().map(|p| {
            let peer = p.peer_id;
            async move {
                match self
                    .request(peer, &wire::Request::Descriptor { room })
                    .await
                {
                    Ok(wire::Reply::Descriptor(Some(d))) => Some((d, peer)),
                    _ => None,
                }
            }
        });
        let answers = futures::future::join_all(asks).await;
        if let Some((d, peer)) = answers
            .into_iter()
            .flatten()
            .find(|(d, _)| crate::room::RoomDescriptor::open(d).is_ok_and(|desc| desc.id() == room))
        {
            return Ok((d, Some(peer)));
        }
        let record = self
            .node
            .get_resource(ROOM_RESOURCE, &room.to_string())
            .await
            .map_err(|e| {
                RoomsError::Invalid(format!(
                    "room {room} was not found: no connected peer is in it and the DHT has no \
                     record of it ({e}); connect to one of its members first, or ask its owner \
                     for an invitation (rooms invite)"
                ))
            })?;
        let bytes = record
            .data
            .get("descriptor")
            .and_then(|d| d.as_str())
            .and_then(|d| hex::decode(d).ok())
            .ok_or_else(|| {
                RoomsError::Invalid(format!("the DHT record of room {room} is malformed"))
            })?;
        let d = crate::statement::Statement::from_bytes(&bytes).map_err(RoomError::from)?;
        Ok((d, None))
    }

    /// As the owner of an invite-only room: a membership token for `peer`,
    /// sealed to it (the bytes of an invitation file).
    pub async fn invite(
        &self,
        room: RoomId,
        peer: PeerId,
        roles: Roles,
        valid_for: Duration,
    ) -> Result<Vec<u8>, RoomsError> {
        self.ask(|reply| actor::Command::Invite {
            room,
            peer,
            roles,
            valid_for,
            reply,
        })
        .await
    }

    /// As a room's owner: withdraws `peer`'s membership.
    pub async fn revoke(&self, room: RoomId, peer: PeerId) -> Result<(), RoomsError> {
        self.ask(|reply| actor::Command::Revoke { room, peer, reply })
            .await
    }

    /// The rooms this node is in.
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>, RoomsError> {
        self.ask(|reply| actor::Command::Rooms { reply }).await
    }

    /// This node's agent card.
    pub async fn card(&self) -> Result<AgentCard, RoomsError> {
        self.ask(|reply| actor::Command::Card { reply }).await
    }

    /// The agents seen in a room.
    pub async fn agents(&self, room: RoomId) -> Result<Vec<AgentInfo>, RoomsError> {
        self.ask(|reply| actor::Command::Agents { room, reply })
            .await
    }

    /// Agents that offer `skill`, from the DHT.
    pub async fn find(&self, skill: &str) -> Result<Vec<FoundAgent>, RoomsError> {
        let kind = format!("{SKILL_RESOURCE_PREFIX}{skill}");
        let found = self.node.discover_resources(&kind).await?;
        let mut out = Vec::new();
        for record in found {
            let peer = record.provider;
            let card = match self
                .node
                .get_resource(CARD_RESOURCE, &peer.to_string())
                .await
            {
                Ok(r) if r.provider == peer => r
                    .data
                    .get("card")
                    .cloned()
                    .and_then(|c| serde_json::from_value::<AgentCard>(c).ok()),
                _ => None,
            };
            out.push(FoundAgent {
                peer_id: peer.to_string(),
                skill: skill.to_string(),
                card,
            });
        }
        out.dedup_by(|a, b| a.peer_id == b.peer_id);
        Ok(out)
    }

    /// The tools `peer` exposes (this node's own when `peer` is us).
    pub async fn tools(&self, peer: PeerId) -> Result<Vec<ToolInfo>, RoomsError> {
        if peer == self.node.peer_id() {
            return self.ask(|reply| actor::Command::LocalTools { reply }).await;
        }
        match self.request(peer, &wire::Request::Tools).await? {
            wire::Reply::Tools(json) => {
                serde_json::from_str(&json).map_err(|e| RoomsError::Remote {
                    peer,
                    reason: format!("a malformed tool list: {e}"),
                })
            }
            other => Err(unexpected(peer, &other)),
        }
    }

    async fn request(
        &self,
        peer: PeerId,
        request: &wire::Request,
    ) -> Result<wire::Reply, RoomsError> {
        let bytes = self
            .node
            .send_to(peer, wire::PROTOCOL, wire::encode(request))
            .await
            .map_err(|e| match e {
                NodeError::Protocol(ProtocolError::Remote { reason, .. }) => {
                    RoomsError::Remote { peer, reason }
                }
                e => RoomsError::Node(e),
            })?;
        wire::decode(&bytes).map_err(|e| RoomsError::Remote {
            peer,
            reason: e.to_string(),
        })
    }

    /// Calls `peer`'s exposed MCP tool; progress goes to `progress`. Ends
    /// with the MCP `CallToolResult` (JSON), or an error. A timeout or a
    /// cancel through `cancel` sends MCP's cancellation to the server.
    #[allow(clippy::too_many_arguments)]
    pub async fn call(
        &self,
        peer: PeerId,
        server: &str,
        tool: &str,
        arguments: Option<serde_json::Value>,
        timeout: Duration,
        progress: Option<mpsc::Sender<Progress>>,
        cancel: CancellationToken,
    ) -> Result<serde_json::Value, RoomsError> {
        if timeout.is_zero() || timeout > MAX_CALL_TIMEOUT {
            return Err(RoomsError::Invalid(format!(
                "the timeout must be 1 s to {} s",
                MAX_CALL_TIMEOUT.as_secs()
            )));
        }
        let arguments = match arguments {
            None | Some(serde_json::Value::Null) => None,
            Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
            Some(_) => return Err(RoomsError::Invalid("--args must be a JSON object".into())),
        };
        let (done_tx, done) = oneshot::channel();
        let call = self
            .ask(|reply| actor::Command::StartCall {
                peer,
                server: server.to_string(),
                tool: tool.to_string(),
                arguments,
                timeout,
                progress,
                done: done_tx,
                reply,
            })
            .await?;
        let outcome = tokio::select! {
            done = done => done.map_err(|_| RoomsError::Stopped)?,
            _ = tokio::time::sleep(timeout) => Err(RoomsError::Timeout(format!(
                "{server}/{tool} on {peer} did not answer within {} s; the call was canceled",
                timeout.as_secs()
            ))),
            _ = cancel.cancelled() => Err(RoomsError::Timeout(format!("the call of {server}/{tool} was canceled"))),
        };
        if outcome.is_err() {
            let _ = self
                .commands
                .send(actor::Command::CancelCall { call })
                .await;
        }
        let json = outcome?;
        serde_json::from_str(&json).map_err(|e| RoomsError::Remote {
            peer,
            reason: format!("a malformed CallToolResult: {e}"),
        })
    }

    /// This node's MCP server processes (pid, restarts, protocol).
    pub async fn servers(&self) -> Result<Vec<ServerInfo>, RoomsError> {
        self.ask(|reply| actor::Command::Servers { reply }).await
    }

    /// This profile's configured servers and commands, each with its
    /// process and its tools (exposed or why not, needing approval or not).
    pub async fn inventory(&self) -> Result<Vec<ToolSource>, RoomsError> {
        self.ask(|reply| actor::Command::Inventory { reply }).await
    }

    /// Tasks awarded to this node waiting for its owner's approval.
    pub async fn approvals(&self) -> Result<Vec<PendingApproval>, RoomsError> {
        self.ask(|reply| actor::Command::Approvals { reply }).await
    }

    /// Proposes a task in a room.
    pub async fn propose(&self, proposal: Proposal) -> Result<TaskId, RoomsError> {
        self.ask(|reply| actor::Command::Propose { proposal, reply })
            .await
    }

    /// A task as its verified record shows it; with `wait`, waits until it
    /// reaches a final state or `wait` passes.
    pub async fn task(&self, task: TaskId, wait: Duration) -> Result<TaskView, RoomsError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.changes.clone();
        loop {
            changes.borrow_and_update();
            let view = match self.ask(|reply| actor::Command::Task { task, reply }).await {
                Ok(view) => Some(view),
                Err(RoomsError::UnknownTask(_)) if !wait.is_zero() => None,
                Err(e) => return Err(e),
            };
            let done = view.as_ref().is_some_and(|v| v.phase.is_terminal());
            if done || tokio::time::Instant::now() >= deadline {
                return view.ok_or(RoomsError::UnknownTask(task));
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                continue;
            }
        }
    }

    /// A task's record: this node's copy if complete, else fetched from
    /// the proposer and verified.
    pub async fn record(&self, task: TaskId) -> Result<TaskRecord, RoomsError> {
        match self
            .ask(|reply| actor::Command::Record { task, reply })
            .await?
        {
            actor::RecordAnswer::Here(record) => Ok(record),
            actor::RecordAnswer::AskProposer(proposer) => {
                let record = match self
                    .request(proposer, &wire::Request::Record { task })
                    .await?
                {
                    wire::Reply::Record(Some(bytes)) => TaskRecord::import(&bytes)?,
                    wire::Reply::Record(None) => {
                        return Err(RoomsError::Remote {
                            peer: proposer,
                            reason: format!("it has no record of task {task}"),
                        })
                    }
                    other => return Err(unexpected(proposer, &other)),
                };
                let verified = record.verify()?;
                if verified.task != task {
                    return Err(RoomsError::Invalid(format!(
                        "{proposer} sent the record of another task"
                    )));
                }
                let keep = record.clone();
                self.ask(|reply| actor::Command::KeepRecord {
                    record: keep,
                    reply,
                })
                .await?;
                Ok(record)
            }
        }
    }

    /// Cancels a task this node proposed.
    pub async fn cancel(&self, task: TaskId) -> Result<TaskView, RoomsError> {
        self.ask(|reply| actor::Command::CancelTask { task, reply })
            .await
    }

    /// Approves a destructive tool's run for a task awarded to this node.
    pub async fn approve(&self, task: TaskId) -> Result<(), RoomsError> {
        self.ask(|reply| actor::Command::Approve { task, reply })
            .await
    }

    /// Refuses a destructive tool's run for a task awarded to this node:
    /// the tool does not run and the award goes back to its proposer.
    pub async fn decline_run(&self, task: TaskId) -> Result<(), RoomsError> {
        self.ask(|reply| actor::Command::DeclineRun { task, reply })
            .await
    }
}

fn unexpected(peer: PeerId, reply: &wire::Reply) -> RoomsError {
    RoomsError::Remote {
        peer,
        reason: format!("an unexpected answer {reply:?}"),
    }
}

/// Starts the service on `node`, with its state in `db` (none: in memory).
pub async fn start(
    node: NodeHandle,
    db: Option<Database>,
    config: RoomsConfig,
) -> Result<RoomsHandle, RoomsError> {
    actor::start(node, db, config).await
}
