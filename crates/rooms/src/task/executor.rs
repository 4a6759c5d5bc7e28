//! The bidder's and executor's side of a task: bids on a proposal, takes
//! an award meant for its bid, reports (acknowledged, approval, started,
//! input, result, failure) as signed statements, and stops when the
//! proposer cancels, expires or moves the task on.

use std::sync::Arc;

use libp2p_identity::PeerId;

use super::{
    Action, Bid, Entry, EntryBody, Report, ReportKind, RoomView, TaskError, TaskMessage, TaskSpec,
    BID_DOMAIN, ENTRY_DOMAIN, MAX_TEXT, PROPOSAL_DOMAIN, REPORT_DOMAIN,
};
use crate::{
    a2a::{Artifact, JsonBytes, Message},
    ids::TaskId,
    room::Role,
    statement::{Statement, StatementId, StatementSigner},
};

/// Where this node stands on a task it bid on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorPhase {
    /// Bid; waiting for the award.
    Bid,
    /// Awarded to us; not yet acknowledged.
    Awarded,
    /// Acknowledged; the tool has not started.
    Acknowledged,
    /// Waiting for our owner's approval.
    AwaitingApproval,
    /// The tool runs.
    Running,
    /// Waiting for the proposer's input.
    AwaitingInput,
    /// Result sent; waiting for the verdict.
    ResultSent,
    /// Over for us (won, lost, canceled, expired).
    Done,
}

/// A task this node bid on.
pub struct Executor {
    signer: Arc<dyn StatementSigner>,
    spec: TaskSpec,
    id: TaskId,
    input: Message,
    bid: StatementId,
    attempt: u8,
    phase: ExecutorPhase,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("task", &self.id)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// Bids `price` on a proposal (its sender checked as a member by the
    /// driver's envelope). `idempotent` is what the tool declares.
    pub fn bid(
        proposal: &Statement,
        price: u64,
        idempotent: bool,
        signer: Arc<dyn StatementSigner>,
        now_ms: u64,
        room: &dyn RoomView,
    ) -> Result<(Self, Vec<Action>), TaskError> {
        let spec: TaskSpec = proposal.open(PROPOSAL_DOMAIN)?;
        if proposal.signer != spec.proposer {
            return Err(TaskError::ForeignSignature {
                what: "proposal",
                sender: spec.proposer,
            });
        }
        room.check(&spec.proposer, Role::Propose, now_ms)?;
        let input = spec.check()?;
        if now_ms > spec.window_closes_at() {
            return Err(TaskError::LateBid {
                bidder: signer.peer_id(),
                late_ms: now_ms - spec.window_closes_at(),
            });
        }
        let id = spec.id();
        let bid = Bid {
            task: id,
            skill: spec.skill.clone(),
            price,
            idempotent,
        };
        let statement = Statement::sign(&*signer, BID_DOMAIN, &bid, now_ms)?;
        let this = Self {
            bid: statement.id(),
            signer,
            id,
            input,
            attempt: 0,
            phase: ExecutorPhase::Bid,
            spec,
        };
        let actions = vec![Action::Send {
            to: this.spec.proposer,
            message: TaskMessage::Bid(statement),
        }];
        Ok((this, actions))
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's proposal.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// Where we stand.
    pub fn phase(&self) -> ExecutorPhase {
        self.phase
    }

    /// The attempt awarded to us (0 before an award).
    pub fn attempt(&self) -> u8 {
        self.attempt
    }

    /// Handles a message (entries may be relayed by anyone: what counts is
    /// the proposer's signature on them).
    pub fn handle_message(
        &mut self,
        from: PeerId,
        message: TaskMessage,
        now_ms: u64,
        room: &dyn RoomView,
    ) -> Result<Vec<Action>, TaskError> {
        room.check(&from, Role::Observe, now_ms)?;
        let TaskMessage::Entry(statement) = message else {
            return Err(TaskError::Mismatch(format!(
                "an executor takes no {} from {from}",
                message.name()
            )));
        };
        let entry: Entry = statement.open(ENTRY_DOMAIN)?;
        if statement.signer != self.spec.proposer {
            return Err(TaskError::ForeignSignature {
                what: "record entry",
                sender: from,
            });
        }
        if entry.task != self.id {
            return Err(TaskError::Mismatch("the entry is for another task".into()));
        }
        if self.phase == ExecutorPhase::Done {
            return Ok(Vec::new());
        }
        let me = self.signer.peer_id();
        let ours = self.phase != ExecutorPhase::Bid;
        let abort = |reason: &str| Action::Abort {
            reason: reason.to_string(),
        };
        let actions = match entry.body {
            EntryBody::Awarded {
                attempt,
                bid,
                executor,
            } => {
                let for_us = executor == me && bid == self.bid;
                if for_us && self.phase == ExecutorPhase::Bid {
                    self.attempt = attempt;
                    self.phase = ExecutorPhase::Awarded;
                    vec![Action::Awarded {
                        attempt,
                        input: self.input.clone(),
                    }]
                } else if for_us {
                    // The same award again (direct and gossiped): nothing new.
                    Vec::new()
                } else if ours {
                    // Awarded to someone else while we held it: we lost it.
                    self.phase = ExecutorPhase::Done;
                    vec![abort("the task was awarded to another executor")]
                } else {
                    Vec::new()
                }
            }
            EntryBody::InputProvided(message) if self.phase == ExecutorPhase::AwaitingInput => {
                let message: Message = message
                    .decode("input message")
                    .map_err(|e| TaskError::Malformed(e.to_string()))?;
                self.phase = ExecutorPhase::Running;
                vec![Action::InputProvided(message)]
            }
            EntryBody::Expired { attempt, .. } if ours && attempt == self.attempt => {
                self.phase = ExecutorPhase::Done;
                vec![abort("the proposer expired our attempt")]
            }
            EntryBody::Canceled { .. } => {
                let running = ours;
                self.phase = ExecutorPhase::Done;
                if running {
                    vec![abort("the proposer canceled the task")]
                } else {
                    Vec::new()
                }
            }
            // A rejected result ends our part only if it was ours; the
            // task may come to another bidder next.
            EntryBody::Rejected { .. } if ours => {
                self.phase = ExecutorPhase::Done;
                Vec::new()
            }
            EntryBody::Accepted | EntryBody::Failed { .. } => {
                self.phase = ExecutorPhase::Done;
                Vec::new()
            }
            _ => Vec::new(),
        };
        Ok(actions)
    }

    fn report(&self, kind: ReportKind, now_ms: u64) -> Result<Action, TaskError> {
        let report = Report {
            task: self.id,
            attempt: self.attempt,
            kind,
        };
        let statement = Statement::sign(&*self.signer, REPORT_DOMAIN, &report, now_ms)?;
        Ok(Action::Send {
            to: self.spec.proposer,
            message: TaskMessage::Report(statement),
        })
    }

    fn require(&self, allowed: &[ExecutorPhase], what: &str) -> Result<(), TaskError> {
        if !allowed.contains(&self.phase) {
            return Err(TaskError::Mismatch(format!(
                "cannot report {what} while {:?}",
                self.phase
            )));
        }
        Ok(())
    }

    fn step(
        &mut self,
        allowed: &[ExecutorPhase],
        next: ExecutorPhase,
        kind: ReportKind,
        now_ms: u64,
    ) -> Result<Vec<Action>, TaskError> {
        self.require(allowed, kind.name())?;
        let action = self.report(kind, now_ms)?;
        self.phase = next;
        Ok(vec![action])
    }

    /// Takes the award.
    pub fn acknowledge(&mut self, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        self.step(&[Awarded], Acknowledged, ReportKind::Acknowledged, now_ms)
    }

    /// Refuses the award (before the tool runs; also when our owner
    /// refuses the run it waits for).
    pub fn decline(&mut self, reason: &str, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        let reason = clip(reason);
        self.step(
            &[Awarded, Acknowledged, AwaitingApproval],
            Done,
            ReportKind::Declined { reason },
            now_ms,
        )
    }

    /// The tool waits for our owner's approval.
    pub fn approval_required(
        &mut self,
        reason: &str,
        now_ms: u64,
    ) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        let reason = clip(reason);
        self.step(
            &[Acknowledged],
            AwaitingApproval,
            ReportKind::ApprovalRequired { reason },
            now_ms,
        )
    }

    /// Our owner approved.
    pub fn approved(&mut self, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        self.step(
            &[AwaitingApproval],
            Acknowledged,
            ReportKind::Approved,
            now_ms,
        )
    }

    /// The tool started.
    pub fn started(&mut self, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        self.step(&[Acknowledged], Running, ReportKind::Started, now_ms)
    }

    /// A sign of life with progress (renews the lease).
    pub fn progress(
        &self,
        progress: f64,
        total: Option<f64>,
        message: Option<&str>,
    ) -> Result<Vec<Action>, TaskError> {
        self.require(&[ExecutorPhase::Running], "progress")?;
        Ok(vec![Action::Send {
            to: self.spec.proposer,
            message: TaskMessage::Progress {
                task: self.id,
                attempt: self.attempt,
                progress,
                total,
                message: message.map(clip),
            },
        }])
    }

    /// The tool asks the proposer for more input.
    pub fn input_required(
        &mut self,
        message: &Message,
        now_ms: u64,
    ) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        let message = JsonBytes::encode(message);
        self.step(
            &[Running],
            AwaitingInput,
            ReportKind::InputRequired { message },
            now_ms,
        )
    }

    /// Sends the result: the artifact's exact JSON and its BLAKE3.
    pub fn finish(&mut self, artifact: &Artifact, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        artifact
            .check()
            .map_err(|e| TaskError::Mismatch(e.to_string()))?;
        let artifact = JsonBytes::encode(artifact);
        let blake3 = artifact.blake3();
        self.step(
            &[Running],
            ResultSent,
            ReportKind::Result { artifact, blake3 },
            now_ms,
        )
    }

    /// The tool failed.
    pub fn fail(&mut self, reason: &str, now_ms: u64) -> Result<Vec<Action>, TaskError> {
        use ExecutorPhase::*;
        let reason = clip(reason);
        self.step(
            &[
                Awarded,
                Acknowledged,
                AwaitingApproval,
                Running,
                AwaitingInput,
            ],
            Done,
            ReportKind::Failed { reason },
            now_ms,
        )
    }
}

fn clip(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        out.push(c);
    }
    out
}
