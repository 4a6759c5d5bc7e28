//! A2A 1.0 shapes, with A2A's own names in A2A's JSON (camelCase fields,
//! `TASK_STATE_*` and `ROLE_*` enum values, parts told apart by which member
//! they carry), so people who know A2A recognise them. Only what rooms
//! use is here: the agent card, messages, parts, artifacts and task states.
//!
//! Inside our signed statements these objects travel as their exact JSON
//! bytes ([`JsonBytes`]), so a hash or signature covers what was sent, not
//! a re-encoding of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The A2A protocol version our interface speaks.
pub const A2A_PROTOCOL_VERSION: &str = "1.0";
/// The URI naming our binding of A2A onto libp2p (A2A §5.8: custom
/// bindings are identified by a URI): task messages as signed envelopes on
/// a room's gossip topic and the rooms direct protocol.
pub const LIBP2P_BINDING: &str = "urn:conclave:a2a-binding:libp2p:v1";

/// Most parts in one message or artifact.
pub const MAX_PARTS: usize = 64;
/// Most skills on one card.
pub const MAX_SKILLS: usize = 256;
/// Most tags, examples or modes on one skill.
pub const MAX_SKILL_LIST: usize = 32;
/// Longest string field of a card (names, descriptions, ids).
pub const MAX_CARD_TEXT: usize = 4096;

/// Why an A2A object is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum A2aError {
    /// Not valid JSON for the object.
    #[error("malformed A2A {what}: {reason}")]
    Malformed {
        /// What was decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A required field is empty or a bound is exceeded.
    #[error("invalid A2A {what}: {reason}")]
    Invalid {
        /// What was checked.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// An A2A object's exact JSON bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JsonBytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl JsonBytes {
    /// Encodes `value` as JSON.
    pub fn encode<T: Serialize>(value: &T) -> Self {
        Self(serde_json::to_vec(value).expect("A2A objects serialise"))
    }

    /// Decodes the bytes as a `what`.
    pub fn decode<T: for<'de> Deserialize<'de>>(&self, what: &'static str) -> Result<T, A2aError> {
        serde_json::from_slice(&self.0).map_err(|e| A2aError::Malformed {
            what,
            reason: e.to_string(),
        })
    }

    /// BLAKE3 of the exact bytes.
    pub fn blake3(&self) -> [u8; 32] {
        *blake3::hash(&self.0).as_bytes()
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A2A `TaskState`, with its ProtoJSON names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Submitted and acknowledged (for rooms: proposed, bidding, awarded).
    #[serde(rename = "TASK_STATE_SUBMITTED")]
    Submitted,
    /// Being worked on.
    #[serde(rename = "TASK_STATE_WORKING")]
    Working,
    /// Finished successfully (terminal).
    #[serde(rename = "TASK_STATE_COMPLETED")]
    Completed,
    /// Finished with an error (terminal).
    #[serde(rename = "TASK_STATE_FAILED")]
    Failed,
    /// Canceled before it finished (terminal).
    #[serde(rename = "TASK_STATE_CANCELED")]
    Canceled,
    /// The agent needs more input (interrupted).
    #[serde(rename = "TASK_STATE_INPUT_REQUIRED")]
    InputRequired,
    /// The agent will not do it (terminal).
    #[serde(rename = "TASK_STATE_REJECTED")]
    Rejected,
    /// Out-of-band authorisation needed. Rooms use it for a destructive
    /// tool waiting for its owner's approval.
    #[serde(rename = "TASK_STATE_AUTH_REQUIRED")]
    AuthRequired,
}

impl TaskState {
    /// Whether no later state may follow.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected
        )
    }

    /// The ProtoJSON name, e.g. `TASK_STATE_WORKING`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitted => "TASK_STATE_SUBMITTED",
            TaskState::Working => "TASK_STATE_WORKING",
            TaskState::Completed => "TASK_STATE_COMPLETED",
            TaskState::Failed => "TASK_STATE_FAILED",
            TaskState::Canceled => "TASK_STATE_CANCELED",
            TaskState::InputRequired => "TASK_STATE_INPUT_REQUIRED",
            TaskState::Rejected => "TASK_STATE_REJECTED",
            TaskState::AuthRequired => "TASK_STATE_AUTH_REQUIRED",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A2A `Role`: who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// From the client (for rooms: the proposer).
    #[serde(rename = "ROLE_USER")]
    User,
    /// From the agent (for rooms: the executor).
    #[serde(rename = "ROLE_AGENT")]
    Agent,
}

/// A2A `Part`: one piece of content, told apart by which of `text`, `raw`,
/// `url` or `data` it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// File bytes, base64 in JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// A URL pointing at the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Structured JSON content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// A file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The media type, e.g. `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            media_type: Some("text/plain".into()),
            ..Self::default()
        }
    }

    /// A JSON data part.
    pub fn data(data: Value) -> Self {
        Self {
            data: Some(data),
            media_type: Some("application/json".into()),
            ..Self::default()
        }
    }

    fn check(&self, what: &'static str) -> Result<(), A2aError> {
        let members = [
            self.text.is_some(),
            self.raw.is_some(),
            self.url.is_some(),
            self.data.is_some(),
        ];
        if members.iter().filter(|m| **m).count() != 1 {
            return Err(A2aError::Invalid {
                what,
                reason: "each part carries exactly one of text, raw, url or data".into(),
            });
        }
        Ok(())
    }
}

/// A2A `Message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Unique id chosen by the sender.
    pub message_id: String,
    /// The conversation it belongs to (rooms: the room id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// The task it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Who sent it.
    pub role: Role,
    /// The content.
    pub parts: Vec<Part>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Message {
    /// A message of `parts` from `role`.
    pub fn new(message_id: impl Into<String>, role: Role, parts: Vec<Part>) -> Self {
        Self {
            message_id: message_id.into(),
            context_id: None,
            task_id: None,
            role,
            parts,
            metadata: None,
        }
    }

    /// Checks required fields and bounds.
    pub fn check(&self) -> Result<(), A2aError> {
        if self.message_id.is_empty() || self.message_id.len() > MAX_CARD_TEXT {
            return Err(A2aError::Invalid {
                what: "message",
                reason: "messageId must be 1 to 4096 characters".into(),
            });
        }
        check_parts(&self.parts, "message")
    }
}

fn check_parts(parts: &[Part], what: &'static str) -> Result<(), A2aError> {
    if parts.is_empty() || parts.len() > MAX_PARTS {
        return Err(A2aError::Invalid {
            what,
            reason: format!("needs 1 to {MAX_PARTS} parts, not {}", parts.len()),
        });
    }
    parts.iter().try_for_each(|p| p.check(what))
}

/// A2A `Artifact`: a task's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Unique within the task.
    pub artifact_id: String,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The content.
    pub parts: Vec<Part>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Artifact {
    /// Checks required fields and bounds.
    pub fn check(&self) -> Result<(), A2aError> {
        if self.artifact_id.is_empty() || self.artifact_id.len() > MAX_CARD_TEXT {
            return Err(A2aError::Invalid {
                what: "artifact",
                reason: "artifactId must be 1 to 4096 characters".into(),
            });
        }
        check_parts(&self.parts, "artifact")
    }
}

/// A2A `AgentInterface`: where and how to reach the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInterface {
    /// The address (ours: `/p2p/<PeerId>`).
    pub url: String,
    /// The binding (ours: [`LIBP2P_BINDING`]).
    pub protocol_binding: String,
    /// The A2A version spoken.
    pub protocol_version: String,
}

/// A2A `AgentCapabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentCapabilities {
    /// Whether progress is streamed (rooms: progress messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// Push notifications (not used by rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_notifications: Option<bool>,
}

/// A2A `AgentSkill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSkill {
    /// Unique id (rooms: `mcp.<server>.<tool>` or `shell.<name>`).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Keywords.
    pub tags: Vec<String>,
    /// Example prompts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// Accepted media types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_modes: Vec<String>,
    /// Produced media types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_modes: Vec<String>,
}

/// A2A `AgentCard`: what an agent is and can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    /// A name for people.
    pub name: String,
    /// What the agent is for.
    pub description: String,
    /// Where to reach it, preferred first.
    pub supported_interfaces: Vec<AgentInterface>,
    /// The agent's version.
    pub version: String,
    /// Optional capabilities.
    pub capabilities: AgentCapabilities,
    /// Default accepted media types.
    pub default_input_modes: Vec<String>,
    /// Default produced media types.
    pub default_output_modes: Vec<String>,
    /// What it can do.
    pub skills: Vec<AgentSkill>,
}

impl AgentCard {
    /// Checks required fields and bounds.
    pub fn check(&self) -> Result<(), A2aError> {
        let invalid = |reason: String| A2aError::Invalid {
            what: "agent card",
            reason,
        };
        let texts = [&self.name, &self.description, &self.version];
        if texts.iter().any(|t| t.len() > MAX_CARD_TEXT) || self.name.is_empty() {
            return Err(invalid("name is empty or a text field is too long".into()));
        }
        if self.supported_interfaces.is_empty() || self.supported_interfaces.len() > 8 {
            return Err(invalid("needs 1 to 8 supported interfaces".into()));
        }
        if self.skills.len() > MAX_SKILLS {
            return Err(invalid(format!(
                "{} skills exceed {MAX_SKILLS}",
                self.skills.len()
            )));
        }
        for skill in &self.skills {
            let lists = [
                &skill.tags,
                &skill.examples,
                &skill.input_modes,
                &skill.output_modes,
            ];
            if skill.id.is_empty()
                || [&skill.id, &skill.name, &skill.description]
                    .iter()
                    .any(|t| t.len() > MAX_CARD_TEXT)
                || lists
                    .iter()
                    .any(|l| l.len() > MAX_SKILL_LIST || l.iter().any(|t| t.len() > MAX_CARD_TEXT))
            {
                return Err(invalid(format!("skill {:?} is out of bounds", skill.id)));
            }
        }
        let mut ids: Vec<&str> = self.skills.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("skill ids repeat".into()));
        }
        Ok(())
    }

    /// Whether the card lists `skill`.
    pub fn has_skill(&self, skill: &str) -> bool {
        self.skills.iter().any(|s| s.id == skill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_states_and_messages_use_the_a2a_json_names() {
        assert_eq!(
            serde_json::to_string(&TaskState::Working).unwrap(),
            "\"TASK_STATE_WORKING\""
        );
        let back: TaskState = serde_json::from_str("\"TASK_STATE_INPUT_REQUIRED\"").unwrap();
        assert_eq!(back, TaskState::InputRequired);
        assert!(TaskState::Canceled.is_terminal() && !TaskState::AuthRequired.is_terminal());

        // The A2A specification's own example message.
        let json = r#"{"role":"ROLE_USER","parts":[{"text":"What is the weather today?"}],"messageId":"msg-uuid"}"#;
        let m: Message = serde_json::from_str(json).unwrap();
        m.check().unwrap();
        assert_eq!(m.role, Role::User);
        assert_eq!(
            m.parts[0].text.as_deref(),
            Some("What is the weather today?")
        );
        let out = serde_json::to_value(&m).unwrap();
        assert_eq!(out["messageId"], "msg-uuid");
        assert!(out.get("message_id").is_none());
    }

    #[test]
    fn parts_carry_exactly_one_content_member() {
        let mut m = Message::new("m1", Role::User, vec![Part::text("hi")]);
        m.check().unwrap();
        m.parts[0].url = Some("https://example.org".into());
        assert!(m.check().is_err());
        m.parts.clear();
        assert!(m.check().is_err());
    }

    #[test]
    fn card_bounds_are_enforced() {
        let skill = |id: &str| AgentSkill {
            id: id.into(),
            name: id.into(),
            description: "d".into(),
            tags: vec!["t".into()],
            examples: vec![],
            input_modes: vec!["application/json".into()],
            output_modes: vec![],
        };
        let mut card = AgentCard {
            name: "agent".into(),
            description: "d".into(),
            supported_interfaces: vec![AgentInterface {
                url: "/p2p/x".into(),
                protocol_binding: LIBP2P_BINDING.into(),
                protocol_version: A2A_PROTOCOL_VERSION.into(),
            }],
            version: "1".into(),
            capabilities: AgentCapabilities::default(),
            default_input_modes: vec![],
            default_output_modes: vec![],
            skills: vec![skill("mcp.e.echo")],
        };
        card.check().unwrap();
        let json = serde_json::to_value(&card).unwrap();
        assert_eq!(
            json["supportedInterfaces"][0]["protocolBinding"],
            LIBP2P_BINDING
        );
        assert_eq!(json["skills"][0]["inputModes"][0], "application/json");
        card.skills.push(skill("mcp.e.echo"));
        assert!(card.check().is_err(), "repeated skill ids");
        card.skills = (0..=MAX_SKILLS).map(|i| skill(&format!("s{i}"))).collect();
        assert!(card.check().is_err(), "too many skills");
    }
}
