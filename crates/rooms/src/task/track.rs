//! The rules of a task record: which entry may follow which. [`Track`]
//! replays entries one by one and refuses any that breaks a rule, so the
//! proposer builds its record through it and every verifier checks a
//! received record with it.
//!
//! What it checks per entry: the proposer's signature (for received
//! records), the chain (sequence number and previous entry id), that time
//! does not run backwards, every embedded statement's signature and signer
//! (bids by their bidders, reports by the attempt's executor), that bids
//! came inside the window, that the ranking is the stated ranking over the
//! bids taken, that each award goes to the next eligible untried bid, that
//! reports follow the lifecycle, that a result's BLAKE3 is that of its
//! exact artifact bytes, that a timeout is claimed no earlier than it can
//! happen, and that a task moves to another executor after it started only
//! if the executor's bid declared the tool idempotent.

use std::collections::BTreeSet;

use libp2p_identity::PeerId;

use super::{
    ranking, Bid, Entry, EntryBody, Expiry, RankedBid, Report, ReportKind, TaskSpec, BID_DOMAIN,
    ENTRY_DOMAIN, MAX_ARTIFACT_BYTES, MAX_BIDS, MAX_INPUT_BYTES, MAX_REPUTATION, MAX_TEXT,
    PROPOSAL_DOMAIN, REPORT_DOMAIN,
};
use crate::{
    a2a::{Artifact, JsonBytes, Message, TaskState},
    ids::TaskId,
    statement::{KeyPins, Statement, StatementError, StatementId},
};

/// Where a task stands (finer than the A2A state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Taking bids.
    Bidding,
    /// Bids ranked, not yet awarded.
    Ranked,
    /// Awarded, not yet acknowledged.
    Awarded,
    /// Acknowledged, not yet started.
    Acknowledged,
    /// Waiting for the executor's owner to approve a destructive tool.
    AwaitingApproval,
    /// The tool runs.
    Working,
    /// The tool waits for the proposer's input.
    InputRequired,
    /// A result arrived; the proposer accepts or rejects it.
    ResultIn,
    /// The attempt ended without an accepted result.
    AttemptEnded,
    /// Completed: the result was accepted.
    Completed,
    /// Failed: no bid or attempt left.
    Failed,
    /// Canceled by the proposer.
    Canceled,
}

impl Phase {
    /// The A2A state shown for the phase.
    pub fn a2a(self) -> TaskState {
        match self {
            Phase::Bidding
            | Phase::Ranked
            | Phase::Awarded
            | Phase::Acknowledged
            | Phase::AttemptEnded => TaskState::Submitted,
            Phase::AwaitingApproval => TaskState::AuthRequired,
            Phase::Working | Phase::ResultIn => TaskState::Working,
            Phase::InputRequired => TaskState::InputRequired,
            Phase::Completed => TaskState::Completed,
            Phase::Failed => TaskState::Failed,
            Phase::Canceled => TaskState::Canceled,
        }
    }

    /// Whether the task is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed | Phase::Canceled)
    }

    /// Whether an attempt is under way.
    pub fn in_attempt(self) -> bool {
        matches!(
            self,
            Phase::Awarded
                | Phase::Acknowledged
                | Phase::AwaitingApproval
                | Phase::Working
                | Phase::InputRequired
                | Phase::ResultIn
        )
    }

    /// Whether the executor's lease runs (paused while a person decides:
    /// the proposer's input, the executor owner's approval, the proposer's
    /// verdict on a result).
    pub fn lease_runs(self) -> bool {
        matches!(self, Phase::Awarded | Phase::Acknowledged | Phase::Working)
    }
}

/// A record entry that breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// An embedded or entry statement does not verify.
    #[error("entry {seq}: {source}")]
    Statement {
        /// The entry's sequence number.
        seq: u64,
        /// The statement's fault.
        source: StatementError,
    },
    /// The entry is not signed by the task's proposer.
    #[error("entry {seq} is signed by {signer}, not by the proposer")]
    NotProposer {
        /// The entry's sequence number.
        seq: u64,
        /// Who signed it.
        signer: PeerId,
    },
    /// Sequence number, previous id, task id or time out of order.
    #[error("entry {seq} breaks the chain: {reason}")]
    Chain {
        /// The entry's sequence number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The entry does not follow from the task's state.
    #[error("entry {seq} ({entry}) is not allowed {phase:?}: {reason}")]
    Illegal {
        /// The entry's sequence number.
        seq: u64,
        /// The entry's kind.
        entry: &'static str,
        /// The task's phase before it.
        phase: Phase,
        /// Why.
        reason: String,
    },
}

/// A bid the task took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenBid {
    /// The bid statement's id.
    pub id: StatementId,
    /// The bidder.
    pub bidder: PeerId,
    /// The bid.
    pub bid: Bid,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Still running.
    Running,
    /// The executor declined the award.
    Declined,
    /// The executor reported that the tool failed.
    Failed,
    /// Lease, timeout or the executor's node gone.
    Expired,
    /// The proposer rejected the result.
    Rejected,
    /// The proposer accepted the result.
    Completed,
    /// The task was canceled during the attempt.
    Canceled,
}

/// One award and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1-based.
    pub number: u8,
    /// The executor.
    pub executor: PeerId,
    /// The bid awarded.
    pub bid: StatementId,
    /// Whether the executor's tool declared itself idempotent.
    pub idempotent: bool,
    /// When awarded (proposer's clock).
    pub awarded_at_ms: u64,
    /// The latest recorded sign of life.
    pub last_life_ms: u64,
    /// Whether the tool started.
    pub started: bool,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// The result the executor sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    /// The artifact's exact JSON.
    pub artifact: JsonBytes,
    /// Its BLAKE3 (checked).
    pub blake3: [u8; 32],
    /// Who sent it.
    pub executor: PeerId,
    /// The attempt.
    pub attempt: u8,
}

/// A task's state, rebuilt entry by entry.
#[derive(Debug, Clone)]
pub struct Track {
    spec: TaskSpec,
    id: TaskId,
    proposal: Statement,
    phase: Phase,
    bids: Vec<TakenBid>,
    bidders: BTreeSet<PeerId>,
    ranking: Vec<RankedBid>,
    tried: BTreeSet<StatementId>,
    attempts: Vec<Attempt>,
    result: Option<TaskResult>,
    next_seq: u64,
    last_id: [u8; 32],
    last_at_ms: u64,
}

impl Track {
    /// Starts from entry 0 (`Proposed`), verifying its signature.
    pub fn from_first(first: &Statement, pins: &dyn KeyPins) -> Result<Self, TransitionError> {
        first
            .verify_pinned(ENTRY_DOMAIN, pins)
            .map_err(|source| TransitionError::Statement { seq: 0, source })?;
        let entry: Entry = first
            .body()
            .map_err(|source| TransitionError::Statement { seq: 0, source })?;
        let track = Self::from_entry(&entry, first.id(), pins)?;
        if first.signer != track.spec.proposer {
            return Err(TransitionError::NotProposer {
                seq: 0,
                signer: first.signer,
            });
        }
        Ok(track)
    }

    /// Starts from entry 0 whose signature the caller made or checked.
    pub fn from_entry(
        entry: &Entry,
        id: StatementId,
        pins: &dyn KeyPins,
    ) -> Result<Self, TransitionError> {
        let chain = |reason: &str| TransitionError::Chain {
            seq: entry.seq,
            reason: reason.to_string(),
        };
        if entry.seq != 0 || entry.prev != [0; 32] {
            return Err(chain("the first entry has sequence 0 and no predecessor"));
        }
        let EntryBody::Proposed(proposal) = &entry.body else {
            return Err(chain("the first entry must be the proposal"));
        };
        let statement = |source| TransitionError::Statement { seq: 0, source };
        proposal
            .verify_pinned(PROPOSAL_DOMAIN, pins)
            .map_err(statement)?;
        let spec: TaskSpec = proposal.body().map_err(statement)?;
        if proposal.signer != spec.proposer {
            return Err(chain("the proposal is not signed by its proposer"));
        }
        spec.check().map_err(|e| chain(&e.to_string()))?;
        if entry.task != spec.id() {
            return Err(chain("the entry names another task than its proposal"));
        }
        Ok(Self {
            id: spec.id(),
            spec,
            proposal: proposal.clone(),
            phase: Phase::Bidding,
            bids: Vec::new(),
            bidders: BTreeSet::new(),
            ranking: Vec::new(),
            tried: BTreeSet::new(),
            attempts: Vec::new(),
            result: None,
            next_seq: 1,
            last_id: id,
            last_at_ms: entry.at_ms,
        })
    }

    /// Applies a received entry, verifying the proposer's signature.
    pub fn apply(&mut self, entry: &Statement, pins: &dyn KeyPins) -> Result<(), TransitionError> {
        let seq = self.next_seq;
        entry
            .verify_pinned(ENTRY_DOMAIN, pins)
            .map_err(|source| TransitionError::Statement { seq, source })?;
        if entry.signer != self.spec.proposer {
            return Err(TransitionError::NotProposer {
                seq,
                signer: entry.signer,
            });
        }
        let body: Entry = entry
            .body()
            .map_err(|source| TransitionError::Statement { seq, source })?;
        self.apply_entry(&body, entry.id(), pins)
    }

    /// Applies an entry whose signature the caller made or checked.
    pub fn apply_entry(
        &mut self,
        entry: &Entry,
        id: StatementId,
        pins: &dyn KeyPins,
    ) -> Result<(), TransitionError> {
        let seq = entry.seq;
        let chain = |reason: String| TransitionError::Chain { seq, reason };
        if entry.task != self.id {
            return Err(chain("the entry names another task".into()));
        }
        if seq != self.next_seq {
            return Err(chain(format!("expected sequence {}", self.next_seq)));
        }
        if entry.prev != self.last_id {
            return Err(chain("the previous-entry id does not match".into()));
        }
        if entry.at_ms < self.last_at_ms {
            return Err(chain("time runs backwards".into()));
        }
        if self.phase.is_terminal() {
            return Err(self.illegal(entry, "the task is over".into()));
        }
        self.apply_body(entry, pins)?;
        self.next_seq += 1;
        self.last_id = id;
        self.last_at_ms = entry.at_ms;
        Ok(())
    }

    fn illegal(&self, entry: &Entry, reason: String) -> TransitionError {
        TransitionError::Illegal {
            seq: entry.seq,
            entry: entry.body.name(),
            phase: self.phase,
            reason,
        }
    }

    fn apply_body(&mut self, entry: &Entry, pins: &dyn KeyPins) -> Result<(), TransitionError> {
        let at = entry.at_ms;
        let seq = entry.seq;
        let statement = |source| TransitionError::Statement { seq, source };
        match &entry.body {
            EntryBody::Proposed(_) => Err(self.illegal(entry, "only entry 0 proposes".into())),
            EntryBody::BidAccepted(s) => {
                if self.phase != Phase::Bidding {
                    return Err(self.illegal(entry, "bids are taken only while bidding".into()));
                }
                if at > self.spec.window_closes_at() {
                    return Err(self.illegal(entry, "the bid came after the window".into()));
                }
                s.verify_pinned(BID_DOMAIN, pins).map_err(statement)?;
                let bid: Bid = s.body().map_err(statement)?;
                let bidder = s.signer;
                let why = if bid.task != self.id {
                    Some("the bid is for another task")
                } else if bid.skill != self.spec.skill {
                    Some("the bid offers another skill")
                } else if bidder == self.spec.proposer {
                    Some("the proposer cannot bid on its own task")
                } else if self.bidders.contains(&bidder) {
                    Some("one bid per bidder")
                } else if self.bids.len() >= MAX_BIDS {
                    Some("the task took as many bids as it may")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(self.illegal(entry, why.into()));
                }
                self.bidders.insert(bidder);
                self.bids.push(TakenBid {
                    id: s.id(),
                    bidder,
                    bid,
                });
                Ok(())
            }
            EntryBody::Ranked(list) => {
                if self.phase != Phase::Bidding {
                    return Err(self.illegal(entry, "bids are ranked once".into()));
                }
                if at < self.spec.window_closes_at() {
                    return Err(self.illegal(entry, "ranked before the window closed".into()));
                }
                // The ranked list must name each bid taken, once, with its
                // own bidder and price; the reputations are the proposer's.
                if list.len() != self.bids.len() {
                    return Err(self.illegal(entry, "the ranking omits or adds bids".into()));
                }
                let mut in_arrival = Vec::with_capacity(list.len());
                for taken in &self.bids {
                    let Some(r) = list.iter().find(|r| r.bid == taken.id) else {
                        return Err(self.illegal(entry, "the ranking omits a bid".into()));
                    };
                    if r.bidder != taken.bidder
                        || r.price != taken.bid.price
                        || r.reputation > MAX_REPUTATION
                    {
                        return Err(self.illegal(entry, "a ranked bid is misstated".into()));
                    }
                    in_arrival.push(r.clone());
                }
                if ranking::rank(&in_arrival, &self.spec) != *list {
                    return Err(self.illegal(entry, "bids are not in the stated order".into()));
                }
                self.ranking = list.clone();
                self.phase = Phase::Ranked;
                Ok(())
            }
            EntryBody::Awarded {
                attempt,
                bid,
                executor,
            } => {
                let reassignable = match self.phase {
                    Phase::Ranked => true,
                    Phase::AttemptEnded => self.current_reassignable(),
                    _ => false,
                };
                if !reassignable {
                    return Err(self.illegal(entry, "nothing to award".into()));
                }
                if usize::from(*attempt) != self.attempts.len() + 1 || *attempt > self.spec.attempts
                {
                    return Err(self.illegal(entry, "wrong or exhausted attempt number".into()));
                }
                let Some(next) = self.next_candidate() else {
                    return Err(self.illegal(entry, "no eligible bid is left".into()));
                };
                if next.bid != *bid || next.bidder != *executor {
                    return Err(self.illegal(entry, "not the next bid in the ranking".into()));
                }
                let idempotent = self
                    .bids
                    .iter()
                    .find(|b| b.id == *bid)
                    .is_some_and(|b| b.bid.idempotent);
                self.tried.insert(*bid);
                self.attempts.push(Attempt {
                    number: *attempt,
                    executor: *executor,
                    bid: *bid,
                    idempotent,
                    awarded_at_ms: at,
                    last_life_ms: at,
                    started: false,
                    outcome: AttemptOutcome::Running,
                });
                self.phase = Phase::Awarded;
                Ok(())
            }
            EntryBody::Reported(s) => self.apply_report(entry, s, pins),
            EntryBody::InputProvided(message) => {
                if self.phase != Phase::InputRequired {
                    return Err(self.illegal(entry, "no input was asked for".into()));
                }
                check_message(message).map_err(|e| self.illegal(entry, e))?;
                self.phase = Phase::Working;
                Ok(())
            }
            EntryBody::Expired { attempt, reason } => {
                let Some(current) = self.attempts.last() else {
                    return Err(self.illegal(entry, "no attempt runs".into()));
                };
                if current.number != *attempt || !self.phase.in_attempt() {
                    return Err(self.illegal(entry, "that attempt does not run".into()));
                }
                let too_early = match reason {
                    Expiry::Timeout => {
                        at < current
                            .awarded_at_ms
                            .saturating_add(self.spec.execution_timeout_ms)
                    }
                    Expiry::Lease => {
                        !self.phase.lease_runs()
                            || at < current.last_life_ms.saturating_add(self.spec.lease_ms)
                    }
                    Expiry::ExecutorGone => false,
                };
                if too_early {
                    return Err(self.illegal(entry, format!("{reason:?} claimed too early")));
                }
                self.end_attempt(AttemptOutcome::Expired);
                Ok(())
            }
            EntryBody::Accepted => {
                if self.phase != Phase::ResultIn {
                    return Err(self.illegal(entry, "no result to accept".into()));
                }
                if let Some(a) = self.attempts.last_mut() {
                    a.outcome = AttemptOutcome::Completed;
                }
                self.phase = Phase::Completed;
                Ok(())
            }
            EntryBody::Rejected { reason } => {
                if self.phase != Phase::ResultIn {
                    return Err(self.illegal(entry, "no result to reject".into()));
                }
                check_text(reason).map_err(|e| self.illegal(entry, e))?;
                self.end_attempt(AttemptOutcome::Rejected);
                Ok(())
            }
            EntryBody::Canceled { reason } => {
                check_text(reason).map_err(|e| self.illegal(entry, e))?;
                if self.phase.in_attempt() {
                    if let Some(a) = self.attempts.last_mut() {
                        a.outcome = AttemptOutcome::Canceled;
                    }
                }
                self.phase = Phase::Canceled;
                Ok(())
            }
            EntryBody::Failed { reason } => {
                check_text(reason).map_err(|e| self.illegal(entry, e))?;
                let can_fail = match self.phase {
                    Phase::Ranked => self.next_candidate().is_none(),
                    Phase::AttemptEnded => !self.can_reassign(),
                    _ => false,
                };
                if !can_fail {
                    return Err(self.illegal(entry, "the task can still be awarded".into()));
                }
                self.phase = Phase::Failed;
                Ok(())
            }
        }
    }

    fn apply_report(
        &mut self,
        entry: &Entry,
        s: &Statement,
        pins: &dyn KeyPins,
    ) -> Result<(), TransitionError> {
        let seq = entry.seq;
        let statement = |source| TransitionError::Statement { seq, source };
        s.verify_pinned(REPORT_DOMAIN, pins).map_err(statement)?;
        let report: Report = s.body().map_err(statement)?;
        let Some(current) = self.attempts.last() else {
            return Err(self.illegal(entry, "no attempt runs".into()));
        };
        if report.task != self.id || report.attempt != current.number || !self.phase.in_attempt() {
            return Err(self.illegal(entry, "the report is for another task or attempt".into()));
        }
        if s.signer != current.executor {
            return Err(self.illegal(entry, "the report is not signed by the executor".into()));
        }
        let next = match (&report.kind, self.phase) {
            (ReportKind::Acknowledged, Phase::Awarded) => Phase::Acknowledged,
            // Before the tool ran: also when its owner refuses the run.
            (
                ReportKind::Declined { reason },
                Phase::Awarded | Phase::Acknowledged | Phase::AwaitingApproval,
            ) => {
                check_text(reason).map_err(|e| self.illegal(entry, e))?;
                self.end_attempt(AttemptOutcome::Declined);
                return Ok(());
            }
            (ReportKind::ApprovalRequired { reason }, Phase::Acknowledged) => {
                check_text(reason).map_err(|e| self.illegal(entry, e))?;
                Phase::AwaitingApproval
            }
            (ReportKind::Approved, Phase::AwaitingApproval) => Phase::Acknowledged,
            (ReportKind::Started, Phase::Acknowledged) => {
                if let Some(a) = self.attempts.last_mut() {
                    a.started = true;
                }
                Phase::Working
            }
            (ReportKind::InputRequired { message }, Phase::Working) => {
                check_message(message).map_err(|e| self.illegal(entry, e))?;
                Phase::InputRequired
            }
            (ReportKind::Result { artifact, blake3 }, Phase::Working) => {
                if artifact.len() > MAX_ARTIFACT_BYTES {
                    return Err(self.illegal(entry, "the artifact is too large".into()));
                }
                if artifact.blake3() != *blake3 {
                    return Err(self.illegal(entry, "the result hash does not match".into()));
                }
                let parsed: Artifact = artifact
                    .decode("artifact")
                    .map_err(|e| self.illegal(entry, e.to_string()))?;
                parsed
                    .check()
                    .map_err(|e| self.illegal(entry, e.to_string()))?;
                self.result = Some(TaskResult {
                    artifact: artifact.clone(),
                    blake3: *blake3,
                    executor: s.signer,
                    attempt: report.attempt,
                });
                Phase::ResultIn
            }
            (
                ReportKind::Failed { reason },
                Phase::Awarded
                | Phase::Acknowledged
                | Phase::AwaitingApproval
                | Phase::Working
                | Phase::InputRequired,
            ) => {
                check_text(reason).map_err(|e| self.illegal(entry, e))?;
                self.end_attempt(AttemptOutcome::Failed);
                return Ok(());
            }
            (kind, _) => {
                return Err(self.illegal(entry, format!("a {} report does not fit", kind.name())));
            }
        };
        if let Some(a) = self.attempts.last_mut() {
            a.last_life_ms = entry.at_ms;
        }
        self.phase = next;
        Ok(())
    }

    fn end_attempt(&mut self, outcome: AttemptOutcome) {
        if let Some(a) = self.attempts.last_mut() {
            a.outcome = outcome;
        }
        self.result = None;
        self.phase = Phase::AttemptEnded;
    }

    /// Whether the ended attempt allows another executor: always before the
    /// tool started, after only if the tool declared itself idempotent.
    fn current_reassignable(&self) -> bool {
        self.attempts
            .last()
            .is_none_or(|a| !a.started || a.idempotent)
    }

    /// Whether another award may follow now.
    pub fn can_reassign(&self) -> bool {
        let ok_phase = match self.phase {
            Phase::Ranked => true,
            Phase::AttemptEnded => self.current_reassignable(),
            _ => false,
        };
        ok_phase
            && self.attempts.len() < usize::from(self.spec.attempts)
            && self.next_candidate().is_some()
    }

    /// The next eligible bid not yet tried, in ranking order.
    pub fn next_candidate(&self) -> Option<&RankedBid> {
        self.ranking
            .iter()
            .filter(|b| ranking::is_eligible(b, &self.spec))
            .find(|b| !self.tried.contains(&b.bid))
    }

    /// The task's proposal.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// The signed proposal.
    pub fn proposal(&self) -> &Statement {
        &self.proposal
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Where the task stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The bids taken, in arrival order.
    pub fn bids(&self) -> &[TakenBid] {
        &self.bids
    }

    /// The ranking (empty before the window closed).
    pub fn ranking(&self) -> &[RankedBid] {
        &self.ranking
    }

    /// Every attempt so far.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The current (latest) attempt.
    pub fn current(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    /// The result, while one is in or accepted.
    pub fn result(&self) -> Option<&TaskResult> {
        self.result.as_ref()
    }

    /// The sequence number the next entry takes.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The id of the latest entry.
    pub fn last_id(&self) -> [u8; 32] {
        self.last_id
    }

    /// The time of the latest entry.
    pub fn last_at_ms(&self) -> u64 {
        self.last_at_ms
    }
}

fn check_text(text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT {
        return Err(format!("text of {} bytes exceeds {MAX_TEXT}", text.len()));
    }
    Ok(())
}

fn check_message(message: &JsonBytes) -> Result<(), String> {
    if message.len() > MAX_INPUT_BYTES {
        return Err(format!("message of {} bytes is too large", message.len()));
    }
    let parsed: Message = message.decode("message").map_err(|e| e.to_string())?;
    parsed.check().map_err(|e| e.to_string())
}
