//! The task lifecycle as pure state machines: no I/O, no clock of their
//! own, no randomness but what the caller passes. Events go in (a message
//! from a peer, a tick of the clock, the local user's decision), [`Action`]s
//! come out (messages to send, entries to store, state changes), and each
//! machine names the next time it must be woken ([`Proposer::deadline`]).
//!
//! ```text
//! proposer                                   members / bidders
//!   Proposal (signed TaskSpec)  ──topic──▶  each executor with the skill
//!                               ◀─direct──  Bid (signed: price, idempotent)
//!   window closes: Ranked, Awarded ───────▶  executor
//!                               ◀─────────  Report: Acknowledged | Declined
//!                               ◀─────────  Report: ApprovalRequired → Approved
//!                               ◀─────────  Report: Started
//!                               ◀─────────  Progress (renews the lease)
//!                               ◀─────────  Report: InputRequired
//!   InputProvided               ─────────▶
//!                               ◀─────────  Report: Result (artifact + BLAKE3)
//!   Accepted | Rejected         ─────────▶
//!   Canceled (any time)         ─────────▶
//! ```
//!
//! Every step the proposer takes, and every signed statement it receives
//! (bids, reports), becomes an entry of the task's record
//! ([`crate::record`]): a hash chain the proposer sequences and signs. The
//! rules of which entry may follow which live in one place, [`track`], used
//! by the proposer to build the record and by every verifier to check it.

pub mod executor;
pub mod proposer;
pub mod ranking;
#[cfg(test)]
mod tests;
pub mod track;

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::{
    a2a::{JsonBytes, Message, TaskState},
    ids::{derive_id, RoomId, TaskId},
    room::RoomError,
    statement::{SignError, Statement, StatementError},
};

pub use executor::Executor;
pub use proposer::Proposer;
pub use track::{Phase, Track, TransitionError};

/// Domain of a signed proposal.
pub const PROPOSAL_DOMAIN: &str = "conclave/rooms/task-proposal/v1";
/// Domain of a signed bid.
pub const BID_DOMAIN: &str = "conclave/rooms/task-bid/v1";
/// Domain of an executor's signed report.
pub const REPORT_DOMAIN: &str = "conclave/rooms/task-report/v1";
/// Domain of a record entry, signed by the proposer.
pub const ENTRY_DOMAIN: &str = "conclave/rooms/task-entry/v1";

/// Largest A2A input message of a proposal.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;
/// Largest result artifact.
pub const MAX_ARTIFACT_BYTES: usize = 1024 * 1024 - 4096;
/// Most bids a task takes (one per bidder).
pub const MAX_BIDS: usize = 256;
/// Most attempts a proposal may ask for.
pub const MAX_ATTEMPTS: u8 = 16;
/// Longest bid window.
pub const MAX_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Longest execution timeout.
pub const MAX_EXECUTION_MS: u64 = 24 * 3600 * 1000;
/// Longest reason or skill text.
pub const MAX_TEXT: usize = 1024;
/// Highest reputation (scores are per mille).
pub const MAX_REPUTATION: u16 = 1000;

const TASK_ID_CONTEXT: &str = "conclave rooms task id v1";

/// What the proposer asks for, signed by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The room the task is proposed in.
    pub room: RoomId,
    /// The proposer.
    pub proposer: PeerId,
    /// When proposed (the proposer's clock, ms); the bid window opens here.
    pub created_at_ms: u64,
    /// Random nonce.
    pub nonce: [u8; 16],
    /// The skill asked for (`mcp.<server>.<tool>` or `shell.<name>`).
    pub skill: String,
    /// The input: an A2A Message's exact JSON.
    pub input: JsonBytes,
    /// How long bids are taken, from `created_at_ms`.
    pub bid_window_ms: u64,
    /// The highest price accepted.
    pub max_price: u64,
    /// The lowest reputation accepted (per mille of the proposer's view).
    pub min_reputation: u16,
    /// How long one attempt may take from its award.
    pub execution_timeout_ms: u64,
    /// How long the executor may go without a sign of life (renewed by
    /// progress and reports).
    pub lease_ms: u64,
    /// How many awards the task may go through.
    pub attempts: u8,
}

impl TaskSpec {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        TaskId(derive_id(
            TASK_ID_CONTEXT,
            &[self.room.as_bytes(), &self.proposer.to_bytes()],
            self.created_at_ms,
            &self.nonce,
        ))
    }

    /// When the bid window closes.
    pub fn window_closes_at(&self) -> u64 {
        self.created_at_ms.saturating_add(self.bid_window_ms)
    }

    /// Checks bounds and the input message.
    pub fn check(&self) -> Result<Message, TaskError> {
        let bad = |reason: String| Err(TaskError::InvalidSpec(reason));
        if self.skill.is_empty() || self.skill.len() > MAX_TEXT {
            return bad("the skill must be 1 to 1024 bytes".into());
        }
        if self.bid_window_ms == 0 || self.bid_window_ms > MAX_WINDOW_MS {
            return bad(format!(
                "the bid window must be 1 ms to {} s",
                MAX_WINDOW_MS / 1000
            ));
        }
        if self.execution_timeout_ms == 0 || self.execution_timeout_ms > MAX_EXECUTION_MS {
            return bad("the execution timeout must be 1 ms to 24 h".into());
        }
        if self.lease_ms == 0 || self.lease_ms > self.execution_timeout_ms {
            return bad("the lease must be 1 ms up to the execution timeout".into());
        }
        if self.attempts == 0 || self.attempts > MAX_ATTEMPTS {
            return bad(format!("attempts must be 1 to {MAX_ATTEMPTS}"));
        }
        if self.min_reputation > MAX_REPUTATION {
            return bad("minimum reputation is per mille (0 to 1000)".into());
        }
        if self.input.len() > MAX_INPUT_BYTES {
            return bad(format!(
                "input of {} bytes exceeds {MAX_INPUT_BYTES}",
                self.input.len()
            ));
        }
        let message: Message = self
            .input
            .decode("input message")
            .map_err(|e| TaskError::InvalidSpec(e.to_string()))?;
        message
            .check()
            .map_err(|e| TaskError::InvalidSpec(e.to_string()))?;
        Ok(message)
    }
}

/// A bidder's offer, signed by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The task bid on.
    pub task: TaskId,
    /// The skill offered (must be the task's).
    pub skill: String,
    /// The price asked.
    pub price: u64,
    /// Whether the tool declares itself idempotent (MCP `idempotentHint`):
    /// only then may the task move to another executor after it started.
    pub idempotent: bool,
}

/// What an executor reports, signed by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The task.
    pub task: TaskId,
    /// The attempt the executor was awarded.
    pub attempt: u8,
    /// What happened.
    pub kind: ReportKind,
}

/// The kinds of executor reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportKind {
    /// It takes the award.
    Acknowledged,
    /// It refuses the award.
    Declined {
        /// Why, for people.
        reason: String,
    },
    /// The tool needs its owner's approval first (a destructive tool).
    ApprovalRequired {
        /// What is to be approved, for people.
        reason: String,
    },
    /// The owner approved.
    Approved,
    /// The tool started running.
    Started,
    /// The tool needs more input from the proposer.
    InputRequired {
        /// The A2A message asking for it.
        message: JsonBytes,
    },
    /// The result.
    Result {
        /// The A2A Artifact's exact JSON.
        artifact: JsonBytes,
        /// BLAKE3 of `artifact`.
        blake3: [u8; 32],
    },
    /// The tool failed.
    Failed {
        /// Why, for people.
        reason: String,
    },
}

impl ReportKind {
    /// A short name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ReportKind::Acknowledged => "acknowledged",
            ReportKind::Declined { .. } => "declined",
            ReportKind::ApprovalRequired { .. } => "approval-required",
            ReportKind::Approved => "approved",
            ReportKind::Started => "started",
            ReportKind::InputRequired { .. } => "input-required",
            ReportKind::Result { .. } => "result",
            ReportKind::Failed { .. } => "failed",
        }
    }
}

/// Why an attempt ended without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// No sign of life within the lease.
    Lease,
    /// The attempt's absolute timeout passed.
    Timeout,
    /// The executor's node went away (disconnected, unreachable).
    ExecutorGone,
}

/// One bid as ranked at the window's close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankedBid {
    /// The bid statement's id.
    pub bid: [u8; 32],
    /// The bidder.
    pub bidder: PeerId,
    /// Its price.
    pub price: u64,
    /// Its reputation in the proposer's view then (per mille).
    pub reputation: u16,
}

/// One entry of a task record: what the proposer did or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryBody {
    /// The signed proposal (always entry 0).
    Proposed(Statement),
    /// A bid taken inside the window.
    BidAccepted(Statement),
    /// The window closed: every bid with the reputation the proposer gave
    /// it, in ranking order (eligible bids first).
    Ranked(Vec<RankedBid>),
    /// The task was awarded to a bid.
    Awarded {
        /// The attempt (1-based).
        attempt: u8,
        /// The bid statement's id.
        bid: [u8; 32],
        /// The executor.
        executor: PeerId,
    },
    /// A report of the executor, as it signed it.
    Reported(Statement),
    /// The proposer's answer to an input request (an A2A Message's JSON).
    InputProvided(JsonBytes),
    /// The attempt ended without a result.
    Expired {
        /// The attempt.
        attempt: u8,
        /// Why.
        reason: Expiry,
    },
    /// The proposer accepted the result (terminal: completed).
    Accepted,
    /// The proposer rejected the result.
    Rejected {
        /// Why, for people.
        reason: String,
    },
    /// The proposer canceled the task (terminal).
    Canceled {
        /// Why, for people.
        reason: String,
    },
    /// The task failed: no eligible bid or attempt is left (terminal).
    Failed {
        /// Why, for people.
        reason: String,
    },
}

impl EntryBody {
    /// A short name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            EntryBody::Proposed(_) => "proposed",
            EntryBody::BidAccepted(_) => "bid",
            EntryBody::Ranked(_) => "ranked",
            EntryBody::Awarded { .. } => "awarded",
            EntryBody::Reported(_) => "reported",
            EntryBody::InputProvided(_) => "input",
            EntryBody::Expired { .. } => "expired",
            EntryBody::Accepted => "accepted",
            EntryBody::Rejected { .. } => "rejected",
            EntryBody::Canceled { .. } => "canceled",
            EntryBody::Failed { .. } => "failed",
        }
    }
}

/// A record entry as signed by the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The task.
    pub task: TaskId,
    /// Position in the record (0-based).
    pub seq: u64,
    /// Id of the previous entry's statement (zeros for entry 0).
    pub prev: [u8; 32],
    /// When the proposer made the entry (its clock, ms).
    pub at_ms: u64,
    /// What happened.
    pub body: EntryBody,
}

/// A task message between peers (carried in the node's signed envelopes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskMessage {
    /// Proposer → room: a new task (the signed [`TaskSpec`]).
    Proposal(Statement),
    /// Bidder → proposer: a signed [`Bid`].
    Bid(Statement),
    /// Executor → proposer: a signed [`Report`].
    Report(Statement),
    /// Executor → proposer: a sign of life (renews the lease; not recorded).
    Progress {
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: u8,
        /// Progress so far (MCP `progress`).
        progress: f64,
        /// The total, if known (MCP `total`).
        total: Option<f64>,
        /// A note for people.
        message: Option<String>,
    },
    /// Proposer → room and executor: a new record entry.
    Entry(Statement),
}

impl TaskMessage {
    /// A short name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            TaskMessage::Proposal(_) => "proposal",
            TaskMessage::Bid(_) => "bid",
            TaskMessage::Report(_) => "report",
            TaskMessage::Progress { .. } => "progress",
            TaskMessage::Entry(_) => "entry",
        }
    }

    /// Encodes for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("task messages serialise")
    }

    /// Decodes from the wire (bounded by the statement bound).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TaskError> {
        if bytes.len() > crate::statement::MAX_PAYLOAD_LEN + 32 * 1024 {
            return Err(TaskError::Malformed(format!(
                "{} bytes is more than a task message may take",
                bytes.len()
            )));
        }
        postcard::from_bytes(bytes).map_err(|e| TaskError::Malformed(e.to_string()))
    }
}

/// What a task machine asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send `message` directly to `to`.
    Send {
        /// The recipient.
        to: PeerId,
        /// The message.
        message: TaskMessage,
    },
    /// Publish `message` on the room's topic.
    Broadcast(TaskMessage),
    /// Store this new record entry (atomically, before sending it on).
    Record(Statement),
    /// The task's state changed.
    State {
        /// The A2A state.
        state: TaskState,
        /// Our finer phase.
        phase: Phase,
    },
    /// Progress reported by the executor (for the user).
    Progress {
        /// Progress so far.
        progress: f64,
        /// The total, if known.
        total: Option<f64>,
        /// A note.
        message: Option<String>,
    },
    /// Executor side: the task was awarded to us; acknowledge (or
    /// decline) and run the tool on this input (the A2A Message).
    Awarded {
        /// The attempt.
        attempt: u8,
        /// The input message.
        input: Message,
    },
    /// Executor side: input the tool asked for.
    InputProvided(Message),
    /// Executor side: stop running the tool (canceled, expired, reassigned).
    Abort {
        /// Why, for logs.
        reason: String,
    },
}

/// Why a task machine refused something.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// A statement's signature or encoding is bad.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The sender may not do this in the room.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The proposal is out of bounds.
    #[error("invalid task: {0}")]
    InvalidSpec(String),
    /// Not decodable.
    #[error("malformed task message: {0}")]
    Malformed(String),
    /// The bid came after the window closed.
    #[error("bid from {bidder} came {late_ms} ms after the window closed")]
    LateBid {
        /// The bidder.
        bidder: PeerId,
        /// How late.
        late_ms: u64,
    },
    /// The message is signed by someone other than its sender.
    #[error("{what} from {sender} is signed by another peer")]
    ForeignSignature {
        /// What was sent.
        what: &'static str,
        /// Who sent it.
        sender: PeerId,
    },
    /// The message does not fit the task's current state.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The message is for another task, attempt or skill.
    #[error("{0}")]
    Mismatch(String),
}

/// What a task machine needs to know about its room and its peers.
pub trait RoomView {
    /// Whether `peer` may act in `role` now.
    fn check(&self, peer: &PeerId, role: crate::room::Role, now_ms: u64) -> Result<(), RoomError>;
    /// The local reputation of `peer` for `skill`, per mille.
    fn reputation(&self, peer: &PeerId, skill: &str) -> u16;
}

/// Signs an entry as the proposer.
pub(crate) fn sign_entry(
    signer: &dyn crate::statement::StatementSigner,
    entry: &Entry,
) -> Result<Statement, SignError> {
    Statement::sign(signer, ENTRY_DOMAIN, entry, entry.at_ms)
}
