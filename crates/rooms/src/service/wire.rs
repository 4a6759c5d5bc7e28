//! What room members send each other: direct requests on
//! [`PROTOCOL`] (tools, calls and their progress, task messages, cards,
//! record fetches) and gossip on each room's topic (cards, revocations,
//! proposals and record entries). Both ride in the node's signed
//! envelopes; both are postcard, bounded before decoding.

use serde::{Deserialize, Serialize};

use crate::{
    ids::{RoomId, TaskId},
    statement::{Statement, MAX_PAYLOAD_LEN},
    task::TaskMessage,
};

/// The direct protocol of rooms.
pub const PROTOCOL: &str = "/conclave/rooms/1.0.0";

/// Largest message accepted (a statement with room for its wrapping).
pub const MAX_WIRE_BYTES: usize = MAX_PAYLOAD_LEN + 64 * 1024;

/// The gossip topic of a room.
pub fn topic_of(room: &RoomId) -> String {
    format!("conclave/rooms/{room}")
}

/// The room a topic belongs to, if it is a room topic.
pub fn room_of_topic(topic: &str) -> Option<RoomId> {
    topic.strip_prefix("conclave/rooms/")?.parse().ok()
}

/// A direct request.
// Messages are decoded, handled and dropped; boxing the large variants
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// List the tools this member exposes.
    Tools,
    /// Call an exposed MCP tool. Answered at once with [`Reply::Ok`]; the
    /// progress and the outcome follow as [`Request::CallProgress`] and
    /// [`Request::CallDone`], so a call may outlast a request's timeout.
    Call {
        /// The caller's number for the call.
        call: u64,
        /// The MCP server's configured name.
        server: String,
        /// The tool.
        tool: String,
        /// The arguments (a JSON object), if any.
        arguments: Option<String>,
        /// How long the caller waits (ms).
        timeout_ms: u64,
    },
    /// Caller → callee: stop call `call`.
    Cancel {
        /// The caller's number for the call.
        call: u64,
    },
    /// Callee → caller: progress of call `call` (MCP's notification).
    CallProgress {
        /// The caller's number for the call.
        call: u64,
        /// Progress so far.
        progress: f64,
        /// The total, if known.
        total: Option<f64>,
        /// A note for people.
        message: Option<String>,
    },
    /// Callee → caller: the outcome of call `call`: the MCP
    /// `CallToolResult` as JSON, or why it failed.
    CallDone {
        /// The caller's number for the call.
        call: u64,
        /// The result or the reason.
        outcome: Result<String, String>,
    },
    /// A task message (bid, report, progress, record entry).
    Task {
        /// The room the task belongs to.
        room: RoomId,
        /// The message.
        message: TaskMessage,
    },
    /// A member's card, sent to a member that just announced itself.
    Card(CardAnnouncement),
    /// Ask for a room's signed descriptor (a joiner that knows only its id).
    Descriptor {
        /// The room.
        room: RoomId,
    },
    /// Ask for a task's record.
    Record {
        /// The task.
        task: TaskId,
    },
}

/// A direct reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Taken.
    Ok,
    /// The exposed tools, as JSON (a list of [`super::ToolInfo`]).
    Tools(String),
    /// A room's signed descriptor, if this node is in the room.
    Descriptor(Option<Statement>),
    /// A record in its export format, if this member has it.
    Record(Option<Vec<u8>>),
}

/// A member announcing itself in a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardAnnouncement {
    /// The room's signed descriptor (so a joiner learns it from anyone).
    pub descriptor: Statement,
    /// The member's signed agent card.
    pub card: Statement,
    /// The member's membership token (invite-only rooms).
    pub token: Option<Statement>,
}

/// A message on a room's topic.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Gossip {
    /// A member's card.
    Card(CardAnnouncement),
    /// The owner withdrew a member.
    Revocation(Statement),
    /// A task message (proposal or record entry).
    Task(TaskMessage),
}

/// What an invitation file holds, sealed to the invited peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// The room's signed descriptor.
    pub descriptor: Statement,
    /// The member's signed token.
    pub token: Statement,
}

/// Additional data bound into a sealed invitation.
pub const INVITATION_AAD: &[u8] = b"conclave rooms invitation v1";

/// Why bytes are not a rooms message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed rooms message: {0}")]
pub struct WireError(pub String);

/// Encodes any wire type.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("rooms messages serialise")
}

/// Decodes any wire type, refusing oversized input first.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_WIRE_BYTES {
        return Err(WireError(format!(
            "{} bytes exceed {MAX_WIRE_BYTES}",
            bytes.len()
        )));
    }
    postcard::from_bytes(bytes).map_err(|e| WireError(e.to_string()))
}
