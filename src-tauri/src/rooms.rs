//! Agent-task rooms in the app: the rooms service on the running node (with
//! the tools of the profile's config.toml, as `conclaved` runs it), the
//! typed commands of the Rooms view, and the event that keeps it live.
//!
//! The view's shapes are projections of the rooms crate's own (its
//! `RoomInfo`, `AgentInfo` and `TaskView`), flattened for TypeScript.

use std::sync::Arc;

use conclave_node::{store::Database, ProfileNode};
use conclave_rooms::{
    a2a::Artifact,
    room::Policy,
    service::{
        supervisor::{self, RoomsSupervisor},
        AgentInfo, Proposal, RoomInfo, RoomsHandle, TaskView,
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

/// A room this node is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct RoomSummary {
    /// Its id (what others join with).
    pub room_id: String,
    /// Its name.
    pub name: String,
    /// Its owner's PeerId.
    pub owner: String,
    /// Whether only invited peers take part.
    pub invite_only: bool,
    /// Other agents whose cards were seen.
    pub agents: u32,
    /// What this node may do there.
    pub can_propose: bool,
    /// Whether this node may bid and execute there.
    pub can_execute: bool,
}

impl From<RoomInfo> for RoomSummary {
    fn from(r: RoomInfo) -> Self {
        Self {
            room_id: r.room_id,
            name: r.name,
            owner: r.owner,
            invite_only: r.policy == Policy::InviteOnly,
            agents: u32::try_from(r.agents).unwrap_or(u32::MAX),
            can_propose: r.roles.propose,
            can_execute: r.roles.execute,
        }
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
pub async fn rooms_list(rooms: RoomsState<'_>) -> CommandResult<Vec<RoomSummary>> {
    let list = rooms.handle().await?.rooms().await?;
    Ok(list.into_iter().map(RoomSummary::from).collect())
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

/// Joins an open room by its id (found through connected peers or the DHT).
#[tauri::command]
#[specta::specta]
pub async fn rooms_join(rooms: RoomsState<'_>, room_id: String) -> CommandResult<RoomSummary> {
    let room = self::room_id(&room_id)?;
    Ok(rooms.handle().await?.join_room(room, None).await?.into())
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
