//! Agent-task rooms in the app: the rooms service on the running node (with
//! the tools of the profile's config.toml, as `conclaved` runs it), the
//! typed commands of the Rooms view, and the event that keeps it live.
//!
//! Rooms, approvals and the profile's tools cross as the rooms crate's own
//! types (its `specta` feature). Agents and tasks cross as projections:
//! the card's skills with this node's reputation beside each, and a task's
//! result as text with its phase and finality, which the crate's
//! `AgentInfo` and `TaskView` keep as the A2A shapes.

use std::{path::PathBuf, sync::Arc, time::Duration};

use conclave_node::{store::Database, NodeError, ProfileNode};
use conclave_rooms::{
    a2a::Artifact,
    room::{Policy, Roles},
    service::{
        supervisor::{self, RoomsSupervisor},
        AgentInfo, PendingApproval, Proposal, RoomInfo, RoomsHandle, TaskView, ToolSource,
    },
    RoomId, TaskId,
};
use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::State;
use tauri_specta::Event;

use crate::error::{CommandError, CommandResult, ErrorCode};

/// Longest bid window a proposal from the app may ask (ms).
pub const MAX_WINDOW_MS: u32 = 60_000;
/// Longest an invitation from the app may be valid (days).
pub const MAX_INVITATION_DAYS: u32 = 365;

/// Something changed in the rooms (cards, rooms, tasks): the view fetches
/// again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomsChanged {
    /// The service's change counter moved by one.
    Changed,
    /// Changes were coalesced (the listener lagged) or the service
    /// restarted on a new node: fetch everything again.
    Resync,
}

/// Where the rooms events go (Tauri in the app).
pub type RoomsSink = Arc<dyn Fn(RoomsChanged) + Send + Sync>;

/// The profile's rooms service, or why there is none.
pub struct Rooms {
    supervisor: Result<Arc<RoomsSupervisor>, CommandError>,
}

impl Rooms {
    /// The running service, started if needed.
    async fn handle(&self) -> CommandResult<RoomsHandle> {
        match &self.supervisor {
            Ok(supervisor) => Ok(supervisor.handle().await?),
            Err(why) => Err(why.clone()),
        }
    }

    /// Keeps the service on the node that runs now (see the supervisor).
    pub async fn run(self: Arc<Self>) {
        if let Ok(supervisor) = &self.supervisor {
            supervisor.clone().run().await;
        }
    }

    /// Stops the service.
    pub async fn shutdown(&self) {
        if let Ok(supervisor) = &self.supervisor {
            supervisor.shutdown().await;
        }
    }
}

/// The rooms service of `node`'s profile, its state in `database`, the
/// tools of its config.toml; changes go to `sink`.
pub fn supervisor(
    node: Arc<ProfileNode>,
    database: Result<Database, String>,
    sink: RoomsSink,
) -> Rooms {
    // The tools' message already says what to fix; the app reads them once.
    let tools = supervisor::profile_tools(&node).map_err(|e| {
        CommandError::new(ErrorCode::InvalidInput, e.to_string())
            .with_hint("restart the app after fixing it")
    });
    let database = database.map_err(|reason| CommandError::new(ErrorCode::Storage, reason));
    let supervisor = database.and_then(|db| {
        let config = supervisor::profile_config(&node, tools?);
        let forward = sink.clone();
        Ok(Arc::new(
            RoomsSupervisor::new(node, Some(db), config)
                .on_start(move |handle| follow(handle, forward.clone())),
        ))
    });
    if let Err(e) = &supervisor {
        tracing::warn!(reason = %e.message, "rooms unavailable");
    }
    Rooms { supervisor }
}

/// Forwards `handle`'s changes to `sink` until the service stops.
fn follow(handle: &RoomsHandle, sink: RoomsSink) {
    let mut changes = handle.changes();
    // Called from the supervisor, inside the runtime.
    tokio::spawn(async move {
        // A new service starts its counter again: whatever was shown is stale.
        sink(RoomsChanged::Resync);
        let mut seen = *changes.borrow_and_update();
        while changes.changed().await.is_ok() {
            let now = *changes.borrow_and_update();
            sink(next_event(seen, now));
            seen = now;
        }
    });
}

/// The event for the counter moving from `seen` to `now`: a watch keeps
/// only the latest value, so a jump of more than one means changes were
/// coalesced while we were behind.
fn next_event(seen: u64, now: u64) -> RoomsChanged {
    if now == seen.wrapping_add(1) {
        RoomsChanged::Changed
    } else {
        RoomsChanged::Resync
    }
}

/// A skill on an agent's card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct SkillSummary {
    /// What a proposal names (`shell.<name>`, `mcp.<server>.<tool>`).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it does.
    pub description: String,
    /// This node's reputation of the agent for it (per mille), if any.
    pub reputation: Option<u16>,
}

/// An agent seen in a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct AgentSummary {
    /// Its PeerId.
    pub peer_id: String,
    /// The name on its card.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// What it can do.
    pub skills: Vec<SkillSummary>,
}

impl From<AgentInfo> for AgentSummary {
    fn from(a: AgentInfo) -> Self {
        let skills = a
            .card
            .skills
            .into_iter()
            .map(|s| SkillSummary {
                reputation: a.reputation.get(&s.id).copied(),
                id: s.id,
                name: s.name,
                description: s.description,
            })
            .collect();
        Self {
            peer_id: a.peer_id,
            name: a.card.name,
            description: a.card.description,
            skills,
        }
    }
}

/// A task as its verified record shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct TaskSummary {
    /// The task.
    pub task_id: String,
    /// Its room.
    pub room_id: String,
    /// Who proposed it.
    pub proposer: String,
    /// The skill asked for.
    pub skill: String,
    /// The A2A state (`TASK_STATE_...`).
    pub state: String,
    /// The finer phase (`bidding`, `working`, `completed`, ...).
    pub phase: String,
    /// Whether it reached a final state.
    pub finished: bool,
    /// The current (or last) executor.
    pub executor: Option<String>,
    /// The current (or last) attempt, 0 before the award.
    pub attempt: u8,
    /// Bids taken.
    pub bids: u32,
    /// The result's text parts (structured parts as JSON), once in.
    pub result_text: Option<String>,
    /// BLAKE3 of the result's exact bytes (hex), checked against the record.
    pub result_blake3: Option<String>,
    /// Whether the record verified (chain, signers, transitions, hash).
    pub verified: bool,
    /// When it was proposed (the proposer's clock, ms since the epoch); a
    /// plain `number` in TypeScript (specta would make a u64 a bigint).
    #[specta(type = u32)]
    pub proposed_at_ms: u64,
}

impl From<TaskView> for TaskSummary {
    fn from(t: TaskView) -> Self {
        let phase = serde_json::to_value(t.phase)
            .ok()
            .and_then(|p| p.as_str().map(str::to_string))
            .unwrap_or_default();
        Self {
            task_id: t.task_id,
            room_id: t.room_id,
            proposer: t.proposer,
            skill: t.skill,
            state: t.state,
            phase,
            finished: t.phase.is_terminal(),
            executor: t.executor,
            attempt: t.attempt,
            bids: u32::try_from(t.bids).unwrap_or(u32::MAX),
            result_text: t.result.as_ref().map(result_text),
            result_blake3: t.result_blake3,
            verified: t.verified,
            proposed_at_ms: t.log.first().map_or(0, |l| l.at_ms),
        }
    }
}

/// The text of a result artifact: its text parts, then its structured
/// parts as JSON, one per line; the raw JSON if it is not an artifact.
fn result_text(result: &serde_json::Value) -> String {
    match serde_json::from_value::<Artifact>(result.clone()) {
        Ok(artifact) => artifact
            .parts
            .iter()
            .filter_map(|p| {
                p.text
                    .clone()
                    .or_else(|| p.data.as_ref().map(|d| d.to_string()))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => result.to_string(),
    }
}

fn roles(roles: Roles) -> CommandResult<Roles> {
    if !(roles.propose || roles.execute || roles.observe) {
        return Err(invalid(
            "an invitation without a role lets the peer do nothing: tick propose, execute or observe".into(),
        ));
    }
    Ok(roles)
}

fn valid_for(days: Option<u32>) -> CommandResult<Duration> {
    match days {
        None => Ok(conclave_rooms::service::DEFAULT_INVITATION),
        Some(d) if d == 0 || d > MAX_INVITATION_DAYS => Err(invalid(format!(
            "an invitation valid for {d} days is out of range: give 1 to {MAX_INVITATION_DAYS} days"
        ))),
        Some(d) => Ok(Duration::from_secs(u64::from(d) * 24 * 3600)),
    }
}

/// An invitation as a person gives it: the hex text the owner copied, or
/// the path of the file it saved (`conclavectl rooms invite --out` writes
/// the raw bytes).
fn invitation(text: &str) -> CommandResult<Vec<u8>> {
    let compact: String = text.split_whitespace().collect();
    if compact.is_empty() {
        return Err(invalid(
            "the invitation is empty: paste the text its owner copied, or the path of its file"
                .into(),
        ));
    }
    if compact.chars().all(|c| c.is_ascii_hexdigit()) {
        return hex::decode(&compact).map_err(|e| {
            invalid(format!(
                "the invitation text is cut short ({e}): paste it whole, as its owner copied it"
            ))
        });
    }
    let path = PathBuf::from(text.trim());
    std::fs::read(&path).map_err(|e| {
        invalid(format!(
            "the invitation is neither hex text nor a readable file ({}: {e}): paste the text its owner copied, or the path of its file",
            path.display()
        ))
    })
}

fn invalid(message: String) -> CommandError {
    CommandError::new(ErrorCode::InvalidInput, message)
}

fn room_id(text: &str) -> CommandResult<RoomId> {
    text.trim().parse().map_err(|e| {
        invalid(format!(
            "{e}: paste the whole room id its owner shared (it is shown under the room's name)"
        ))
    })
}

fn task_id(text: &str) -> CommandResult<TaskId> {
    text.trim()
        .parse()
        .map_err(|e| invalid(format!("{e}: use a task id from the room's task list")))
}

/// A proposal's input: a JSON object (the tool's arguments) or a JSON
/// string (text for the tool).
fn task_input(json: &str) -> CommandResult<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| invalid(format!("the input is not JSON ({e}): write an object like {{\"message\": \"hi\"}} or a quoted string")))?;
    match value {
        serde_json::Value::Object(_) | serde_json::Value::String(_) => Ok(value),
        _ => Err(invalid(
            "the input must be a JSON object (the tool's arguments) or a quoted string".into(),
        )),
    }
}

type RoomsState<'a> = State<'a, Arc<Rooms>>;

/// The rooms this node is in.
#[tauri::command]
#[specta::specta]
pub async fn rooms_list(rooms: RoomsState<'_>) -> CommandResult<Vec<RoomInfo>> {
    Ok(rooms.handle().await?.rooms().await?)
}

/// Creates a room owned by this node and joins it; returns its id.
#[tauri::command]
#[specta::specta]
pub async fn rooms_create(
    rooms: RoomsState<'_>,
    name: String,
    invite_only: bool,
) -> CommandResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("the room needs a name".into()));
    }
    let policy = if invite_only {
        Policy::InviteOnly
    } else {
        Policy::Open
    };
    let room = rooms.handle().await?.create_room(name, policy).await?;
    Ok(room.to_string())
}

/// Joins a room by its id: an open one found through connected peers or
/// the DHT, or, with `invitation` (its hex text or its file's path), an
/// invite-only one.
#[tauri::command]
#[specta::specta]
pub async fn rooms_join(
    rooms: RoomsState<'_>,
    room_id: String,
    invitation: Option<String>,
) -> CommandResult<RoomInfo> {
    let room = self::room_id(&room_id)?;
    let token = invitation
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(self::invitation)
        .transpose()?;
    Ok(rooms.handle().await?.join_room(room, token).await?)
}

/// The agents seen in a room, with their cards' skills.
#[tauri::command]
#[specta::specta]
pub async fn rooms_agents(
    rooms: RoomsState<'_>,
    room_id: String,
) -> CommandResult<Vec<AgentSummary>> {
    let room = self::room_id(&room_id)?;
    let agents = rooms.handle().await?.agents(room).await?;
    Ok(agents.into_iter().map(AgentSummary::from).collect())
}

/// Proposes a task for `skill` in a room with `input_json` (an object or a
/// string) and a bid window (default: the service's); returns its id.
#[tauri::command]
#[specta::specta]
pub async fn rooms_propose(
    rooms: RoomsState<'_>,
    room_id: String,
    skill: String,
    input_json: String,
    window_ms: Option<u32>,
) -> CommandResult<String> {
    let room = self::room_id(&room_id)?;
    let skill = skill.trim();
    if skill.is_empty() {
        return Err(invalid(
            "name the skill to ask for (one of the agents' skills)".into(),
        ));
    }
    if let Some(w) = window_ms.filter(|w| *w == 0 || *w > MAX_WINDOW_MS) {
        return Err(invalid(format!(
            "a bid window of {w} ms is out of range: give 1 to {MAX_WINDOW_MS} ms"
        )));
    }
    let task = rooms
        .handle()
        .await?
        .propose(Proposal {
            room,
            skill: skill.to_string(),
            input: task_input(&input_json)?,
            window_ms: window_ms.map(u64::from),
            max_price: 0,
            min_reputation: 0,
            timeout_ms: None,
            lease_ms: None,
            attempts: None,
        })
        .await?;
    Ok(task.to_string())
}

/// A room's tasks known here, newest first.
#[tauri::command]
#[specta::specta]
pub async fn rooms_tasks(
    rooms: RoomsState<'_>,
    room_id: String,
) -> CommandResult<Vec<TaskSummary>> {
    let room = self::room_id(&room_id)?;
    let tasks = rooms.handle().await?.tasks(room).await?;
    Ok(tasks.into_iter().map(TaskSummary::from).collect())
}

/// One task as its verified record shows it.
#[tauri::command]
#[specta::specta]
pub async fn rooms_task(rooms: RoomsState<'_>, task_id: String) -> CommandResult<TaskSummary> {
    let task = self::task_id(&task_id)?;
    let view = rooms
        .handle()
        .await?
        .task(task, std::time::Duration::ZERO)
        .await?;
    Ok(view.into())
}

/// Cancels a task this node proposed.
#[tauri::command]
#[specta::specta]
pub async fn rooms_cancel(rooms: RoomsState<'_>, task_id: String) -> CommandResult<TaskSummary> {
    let task = self::task_id(&task_id)?;
    Ok(rooms.handle().await?.cancel(task).await?.into())
}

/// Tasks awarded to this node whose destructive tool waits for approval.
#[tauri::command]
#[specta::specta]
pub async fn rooms_approvals(rooms: RoomsState<'_>) -> CommandResult<Vec<PendingApproval>> {
    Ok(rooms.handle().await?.approvals().await?)
}

/// Approves the waiting run of a task awarded to this node: the tool runs.
#[tauri::command]
#[specta::specta]
pub async fn rooms_approve(rooms: RoomsState<'_>, task_id: String) -> CommandResult<()> {
    let task = self::task_id(&task_id)?;
    Ok(rooms.handle().await?.approve(task).await?)
}

/// Refuses the waiting run of a task awarded to this node: the tool does
/// not run and the proposer awards the task to its next bidder.
#[tauri::command]
#[specta::specta]
pub async fn rooms_decline(rooms: RoomsState<'_>, task_id: String) -> CommandResult<()> {
    let task = self::task_id(&task_id)?;
    Ok(rooms.handle().await?.decline_run(task).await?)
}

/// This profile's MCP servers and shell commands (from its config.toml),
/// each with its process and its tools: exposed or why not, and whether a
/// run waits for approval.
#[tauri::command]
#[specta::specta]
pub async fn rooms_own_tools(rooms: RoomsState<'_>) -> CommandResult<Vec<ToolSource>> {
    Ok(rooms.handle().await?.inventory().await?)
}

/// As the owner of an invite-only room: an invitation for `peer_id` with
/// `roles`, valid for `valid_days` (default 30), as hex text to hand over
/// (sealed to that peer, so only it can use it).
#[tauri::command]
#[specta::specta]
pub async fn rooms_invite(
    rooms: RoomsState<'_>,
    room_id: String,
    peer_id: String,
    roles: Roles,
    valid_days: Option<u32>,
) -> CommandResult<String> {
    let room = self::room_id(&room_id)?;
    let peer = NodeError::parse_peer_id(&peer_id)?;
    let roles = self::roles(roles)?;
    let valid = valid_for(valid_days)?;
    let sealed = rooms
        .handle()
        .await?
        .invite(room, peer, roles, valid)
        .await?;
    Ok(hex::encode(sealed))
}

/// Writes an invitation (its hex text) to a new file at `path` as the bytes
/// `conclavectl rooms join --token` reads; never overwrites a file.
#[tauri::command]
#[specta::specta]
pub async fn rooms_save_invitation(invitation_hex: String, path: String) -> CommandResult<String> {
    let bytes = invitation(&invitation_hex)?;
    let target = PathBuf::from(path.trim());
    if target.as_os_str().is_empty() {
        return Err(invalid("give the file a path".into()));
    }
    let write = {
        let target = target.clone();
        move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)?;
            file.write_all(&bytes)
        }
    };
    tokio::task::spawn_blocking(write)
        .await
        .map_err(CommandError::internal)?
        .map_err(|e| {
            CommandError::new(
                ErrorCode::Storage,
                format!("writing {}: {e}", target.display()),
            )
            .with_hint(
                "choose a new file name in a folder that exists; files are never overwritten",
            )
        })?;
    Ok(target.display().to_string())
}

/// As a room's owner: withdraws `peer_id`'s membership (every member drops
/// its card; its invitation no longer lets it in).
#[tauri::command]
#[specta::specta]
pub async fn rooms_revoke(
    rooms: RoomsState<'_>,
    room_id: String,
    peer_id: String,
) -> CommandResult<()> {
    let room = self::room_id(&room_id)?;
    let peer = NodeError::parse_peer_id(&peer_id)?;
    Ok(rooms.handle().await?.revoke(room, peer).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_tick_asks_for_a_resync() {
        assert_eq!(next_event(3, 4), RoomsChanged::Changed);
        assert_eq!(next_event(3, 6), RoomsChanged::Resync);
        assert_eq!(next_event(u64::MAX, 0), RoomsChanged::Changed);
    }

    #[test]
    fn the_input_is_an_object_or_a_string() {
        assert_eq!(
            task_input(r#"{"message": "hi"}"#).unwrap(),
            serde_json::json!({"message": "hi"})
        );
        assert_eq!(task_input(r#""hi""#).unwrap(), serde_json::json!("hi"));
        let not_json = task_input("hi").unwrap_err();
        assert_eq!(not_json.code, ErrorCode::InvalidInput);
        assert!(
            not_json.message.contains("not JSON"),
            "{}",
            not_json.message
        );
        assert!(task_input("[1, 2]").unwrap_err().message.contains("object"));
    }

    #[test]
    fn a_result_shows_its_text_and_structured_parts() {
        let artifact = serde_json::json!({
            "artifactId": "result",
            "parts": [{"text": "hello"}, {"data": {"sum": 3}}],
        });
        assert_eq!(result_text(&artifact), "hello\n{\"sum\":3}");
        let other = serde_json::json!([1, 2]);
        assert_eq!(result_text(&other), "[1,2]");
    }

    #[test]
    fn an_invitation_is_hex_text_or_a_file() {
        assert_eq!(invitation("0a ff\n10").unwrap(), vec![0x0a, 0xff, 0x10]);
        let odd = invitation("abc").unwrap_err();
        assert!(odd.message.contains("cut short"), "{}", odd.message);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("invite.bin");
        std::fs::write(&file, [1u8, 2, 3]).unwrap();
        assert_eq!(invitation(file.to_str().unwrap()).unwrap(), vec![1, 2, 3]);
        let missing = invitation("/no/such/invitation").unwrap_err();
        assert_eq!(missing.code, ErrorCode::InvalidInput);
        assert!(
            missing.message.contains("neither hex text"),
            "{}",
            missing.message
        );
        assert!(invitation("  ").unwrap_err().message.contains("empty"));
    }

    #[test]
    fn an_invitation_grants_some_role_for_a_bounded_time() {
        let none = Roles {
            propose: false,
            execute: false,
            observe: false,
        };
        assert!(roles(none).unwrap_err().message.contains("tick propose"));
        let some = roles(Roles {
            execute: true,
            ..none
        })
        .unwrap();
        assert!(some.execute && !some.propose);
        assert_eq!(valid_for(Some(2)).unwrap(), Duration::from_secs(2 * 86_400));
        assert_eq!(
            valid_for(None).unwrap(),
            conclave_rooms::service::DEFAULT_INVITATION
        );
        assert!(valid_for(Some(0)).is_err());
        assert!(valid_for(Some(MAX_INVITATION_DAYS + 1))
            .unwrap_err()
            .message
            .contains("out of range"));
    }

    #[test]
    fn ids_that_do_not_parse_say_where_to_find_good_ones() {
        let e = room_id("nope").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert!(
            e.message.contains("room id its owner shared"),
            "{}",
            e.message
        );
        let e = task_id("nope").unwrap_err();
        assert!(e.message.contains("task list"), "{}", e.message);
    }
}
