//! Task records: the proposer's signed hash chain of a task's entries,
//! verified by anyone, exported to a file and verified offline.
//!
//! Entry `n` is a [`Statement`] (domain [`ENTRY_DOMAIN`]) by the proposer
//! over an [`Entry`] naming the task, `seq = n`, the id of entry `n - 1`
//! (zeros for entry 0), the proposer's time and the body; bodies embed the
//! bidders' and the executor's own signed statements. [`TaskRecord::verify`]
//! replays the entries through [`Track`], so chain, signers, transitions
//! and the result's hash are checked by the same rules that built it.
//!
//! Two valid entries of one task with one sequence number and different
//! contents are an [`EquivocationProof`]: the proposer told two stories.
//!
//! The export format is `CONCLAVE-TASK-RECORD\n`, a version byte (1), then
//! the postcard encoding of the entries.

use std::collections::BTreeMap;

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::{
    a2a::TaskState,
    ids::TaskId,
    statement::{KeyPins, NoPins, Statement, StatementError},
    task::{
        track::{Attempt, TaskResult},
        Entry, Phase, TaskSpec, Track, TransitionError, ENTRY_DOMAIN,
    },
};

/// Most entries one record may hold.
pub const MAX_ENTRIES: usize = 4096;
/// Largest exported record.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// The first bytes of an exported record.
pub const EXPORT_MAGIC: &[u8] = b"CONCLAVE-TASK-RECORD\n";
/// The export format's version.
pub const EXPORT_VERSION: u8 = 1;

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No entries.
    #[error("the record is empty")]
    Empty,
    /// More entries or bytes than a record may hold.
    #[error("the record is too large: {0}")]
    TooLarge(String),
    /// Not an exported record.
    #[error("not a task record file: {0}")]
    Malformed(String),
    /// An entry breaks the rules.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// An entry's statement is bad.
    #[error(transparent)]
    Statement(#[from] StatementError),
    /// The proposer signed two different entries with one sequence number.
    #[error("the proposer {proposer} equivocated at entry {seq}")]
    Equivocation {
        /// The proposer.
        proposer: PeerId,
        /// The sequence number.
        seq: u64,
        /// The proof, to pass on.
        proof: Box<EquivocationProof>,
    },
}

/// A task's record: its entries in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskRecord {
    /// Entry statements, entry 0 first.
    pub entries: Vec<Statement>,
}

/// What a verified record says.
#[derive(Debug, Clone)]
pub struct VerifiedRecord {
    /// The task.
    pub task: TaskId,
    /// Its proposal.
    pub spec: TaskSpec,
    /// The final (or current) phase.
    pub phase: Phase,
    /// The A2A state.
    pub state: TaskState,
    /// Every attempt and how it went.
    pub attempts: Vec<Attempt>,
    /// The result (hash checked), if one is in or accepted.
    pub result: Option<TaskResult>,
    /// Number of entries.
    pub entries: usize,
}

impl VerifiedRecord {
    fn from_track(track: &Track, entries: usize) -> Self {
        Self {
            task: track.id(),
            spec: track.spec().clone(),
            phase: track.phase(),
            state: track.phase().a2a(),
            attempts: track.attempts().to_vec(),
            result: track.result().cloned(),
            entries,
        }
    }
}

impl TaskRecord {
    /// Verifies every entry in order (see the module documentation).
    pub fn verify(&self) -> Result<VerifiedRecord, RecordError> {
        self.verify_pinned(&NoPins)
    }

    /// As [`TaskRecord::verify`], with ML-DSA keys pinned for known peers.
    pub fn verify_pinned(&self, pins: &dyn KeyPins) -> Result<VerifiedRecord, RecordError> {
        let (first, rest) = self.entries.split_first().ok_or(RecordError::Empty)?;
        if self.entries.len() > MAX_ENTRIES {
            return Err(RecordError::TooLarge(format!(
                "{} entries exceed {MAX_ENTRIES}",
                self.entries.len()
            )));
        }
        // Within one record a peer signs with one ML-DSA key: pin the first
        // key seen for each signer, so a key swapped mid-record fails too.
        let mut seen = ConsistentKeys {
            outer: pins,
            keys: BTreeMap::new(),
        };
        let mut track = Track::from_first(first, &seen)?;
        seen.learn_all(first);
        for entry in rest {
            track.apply(entry, &seen)?;
            seen.learn_all(entry);
        }
        Ok(VerifiedRecord::from_track(&track, self.entries.len()))
    }

    /// The export encoding.
    pub fn export(&self) -> Vec<u8> {
        let mut out = EXPORT_MAGIC.to_vec();
        out.push(EXPORT_VERSION);
        out.extend(postcard::to_stdvec(self).expect("records serialise"));
        out
    }

    /// Decodes an export (no verification; see [`verify_log`]).
    pub fn import(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(format!("{} bytes", bytes.len())));
        }
        let rest = bytes
            .strip_prefix(EXPORT_MAGIC)
            .ok_or_else(|| RecordError::Malformed("it does not start with the header".into()))?;
        let (version, body) = rest
            .split_first()
            .ok_or_else(|| RecordError::Malformed("it ends after the header".into()))?;
        if *version != EXPORT_VERSION {
            return Err(RecordError::Malformed(format!(
                "format version {version} is not {EXPORT_VERSION}: use a newer conclavectl"
            )));
        }
        let record: Self =
            postcard::from_bytes(body).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if record.entries.len() > MAX_ENTRIES {
            return Err(RecordError::TooLarge(format!(
                "{} entries",
                record.entries.len()
            )));
        }
        Ok(record)
    }
}

/// Decodes and verifies an exported record (`conclavectl rooms verify-log`).
pub fn verify_log(bytes: &[u8]) -> Result<VerifiedRecord, RecordError> {
    TaskRecord::import(bytes)?.verify()
}

struct ConsistentKeys<'a> {
    outer: &'a dyn KeyPins,
    keys: BTreeMap<PeerId, Vec<u8>>,
}

impl ConsistentKeys<'_> {
    fn learn(&mut self, s: &Statement) {
        self.keys
            .entry(s.signer)
            .or_insert_with(|| s.ml_dsa_public.clone());
    }

    /// Learns the entry's signer key and those of the statements it embeds.
    fn learn_all(&mut self, entry: &Statement) {
        self.learn(entry);
        if let Ok(e) = entry.body::<Entry>() {
            use crate::task::EntryBody::*;
            if let Proposed(s) | BidAccepted(s) | Reported(s) = &e.body {
                self.learn(s);
            }
        }
    }
}

impl KeyPins for ConsistentKeys<'_> {
    fn pinned_ml_dsa(&self, peer: &PeerId) -> Option<Vec<u8>> {
        self.outer
            .pinned_ml_dsa(peer)
            .or_else(|| self.keys.get(peer).cloned())
    }
}

/// Two entries of one task, signed by its proposer, with one sequence
/// number and different contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquivocationProof {
    /// One entry.
    pub a: Statement,
    /// The other.
    pub b: Statement,
}

impl EquivocationProof {
    /// Checks the proof; returns the equivocating proposer and the sequence.
    pub fn verify(&self) -> Result<(PeerId, TaskId, u64), RecordError> {
        let a: Entry = self.a.open(ENTRY_DOMAIN)?;
        let b: Entry = self.b.open(ENTRY_DOMAIN)?;
        let not = |why: &str| RecordError::Malformed(format!("not an equivocation: {why}"));
        if self.a.signer != self.b.signer {
            return Err(not("signed by two peers"));
        }
        if a.task != b.task || a.seq != b.seq {
            return Err(not("different tasks or sequence numbers"));
        }
        if self.a.id() == self.b.id() {
            return Err(not("the same entry twice"));
        }
        // The signer must be the task's proposer: entry 0 says who that is;
        // for a later entry the proof is a signer's contradiction about a
        // task it sequences, which only its proposer does.
        Ok((self.a.signer, a.task, a.seq))
    }
}

/// A member's copy of a record it follows live (entries gossiped by the
/// proposer, or fetched): verifies each entry as it arrives, holds out-of-
/// order entries (bounded), and catches equivocation.
#[derive(Debug, Default)]
pub struct RecordFollower {
    track: Option<Track>,
    entries: Vec<Statement>,
    pending: BTreeMap<u64, Statement>,
}

/// Most entries a follower holds ahead of a gap.
pub const MAX_PENDING: usize = 64;

impl RecordFollower {
    /// An empty follower.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes an entry (from anyone: the proposer's signature is what counts).
    /// Returns how many entries joined the verified record.
    pub fn on_entry(&mut self, statement: Statement) -> Result<usize, RecordError> {
        let entry: Entry = statement.open(ENTRY_DOMAIN)?;
        if let Some(held) = self.entries.get(entry.seq as usize) {
            if held.id() == statement.id() {
                return Ok(0);
            }
            if held.signer == statement.signer {
                let proof = EquivocationProof {
                    a: held.clone(),
                    b: statement,
                };
                let (proposer, _, seq) = proof.verify()?;
                return Err(RecordError::Equivocation {
                    proposer,
                    seq,
                    proof: Box::new(proof),
                });
            }
            return Err(TransitionError::NotProposer {
                seq: entry.seq,
                signer: statement.signer,
            }
            .into());
        }
        if entry.seq as usize >= MAX_ENTRIES {
            return Err(RecordError::TooLarge(format!("entry {}", entry.seq)));
        }
        if let Some(pending) = self.pending.get(&entry.seq) {
            if pending.id() != statement.id() && pending.signer == statement.signer {
                let proof = EquivocationProof {
                    a: pending.clone(),
                    b: statement,
                };
                let (proposer, _, seq) = proof.verify()?;
                return Err(RecordError::Equivocation {
                    proposer,
                    seq,
                    proof: Box::new(proof),
                });
            }
        }
        if entry.seq as usize != self.entries.len() {
            if self.pending.len() >= MAX_PENDING {
                return Err(RecordError::TooLarge(
                    "too many entries ahead of a gap".into(),
                ));
            }
            self.pending.insert(entry.seq, statement);
            return Ok(0);
        }
        let mut added = 0;
        let mut next = Some(statement);
        while let Some(s) = next {
            match &mut self.track {
                None => self.track = Some(Track::from_first(&s, &NoPins)?),
                Some(track) => track.apply(&s, &NoPins)?,
            }
            self.entries.push(s);
            added += 1;
            next = self.pending.remove(&(self.entries.len() as u64));
        }
        Ok(added)
    }

    /// The verified entries so far.
    pub fn record(&self) -> TaskRecord {
        TaskRecord {
            entries: self.entries.clone(),
        }
    }

    /// The task's state so far.
    pub fn track(&self) -> Option<&Track> {
        self.track.as_ref()
    }
}
