//! The CoinJoin session protocol as a pure state machine: no I/O, no
//! clocks, no randomness of its own. Events go in (a message from a
//! participant, a deadline that passed, an input spent), [`Action`]s come
//! out (messages to publish, phase changes, exclusions, the outcome), and
//! [`Session::deadline`] is the one instant it waits for. The actor
//! around it (next step) does the I/O: it publishes each message in a
//! signed envelope on the session's topic and hands the machine every
//! message that arrives there, with the request id of its author.
//!
//! One session runs until a transaction is complete or too few
//! participants remain; each run (0, 1, …) excludes someone:
//!
//! ```text
//!  key exchange ─▶ ciphertexts ─▶ slot reservation ─▶ DC-net ─▶ acceptance ─▶ signatures ─▶ done
//!       │               │                │                │            │              │
//!       └── holdouts, equivocation, invalid messages: exclude, next run (nothing revealed)
//!                                        └─ no roots / our slot missing ─┐
//!                                                         our output missing, bad key ─┤
//!                                                                                      ▼
//!                              blame: everyone reveals its seed, replays every run, excludes the deviators
//! ```
//!
//! Acceptance is its own step before any signature: every peer first
//! states that its outputs are present. Only if all do does anyone sign,
//! and after that nobody reveals anything, so a disruptor can never hold
//! every honest signature AND the link between inputs and outputs.

pub mod blame;
#[cfg(any(test, feature = "disruptor"))]
pub mod disrupt;
pub mod messages;
pub mod session;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bitcoin::Transaction;
use serde::{Deserialize, Serialize};

pub use messages::{Body, MessageHash, RunMessage};
pub use session::{OwnSecrets, Session, SessionConfig, SessionError};

use crate::{
    exclusion::{Exclusion, Phase},
    pairing::RequestId,
};

/// Most runs in one session (each run excludes at least one participant,
/// so this also bounds the work a group of disruptors can cause).
pub const MAX_RUNS: u32 = 16;

/// Times a session re-forms on the intersection of views in one epoch.
pub const MAX_REFORMS: u32 = 3;

/// How long each phase may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Per phase.
    pub phase: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            phase: Duration::from_secs(30),
        }
    }
}

/// One of our mixed outputs in a completed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OurOutput {
    /// The run whose key it is (the wallet re-derives the key from it).
    pub run: u32,
    /// Its index among our outputs.
    pub index: u32,
    /// The output key (x-only, tweaked), hex.
    pub output_key: String,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every input is signed; the transaction passed libbitcoinconsensus.
    Completed {
        /// The signed transaction.
        tx: Transaction,
        /// What we paid in fee, sats.
        our_fee: u64,
        /// Our mixed outputs.
        our_outputs: Vec<OurOutput>,
        /// The run that completed.
        run: u32,
    },
    /// Peers' views of the session's requests differ: form a new session
    /// over these requests (the intersection of the views).
    Reform {
        /// The requests of the new session.
        requests: Vec<RequestId>,
    },
    /// The session ended without a transaction.
    Failed {
        /// Why, for people.
        reason: String,
    },
}

/// What the machine asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish this encoded [`RunMessage`] on the session's topic.
    Publish(Vec<u8>),
    /// The phase or its holdouts changed.
    Phase {
        /// The run.
        run: u32,
        /// The phase.
        phase: Phase,
        /// Requests still owing a message in it.
        holdouts: Vec<RequestId>,
    },
    /// Participants were excluded (by their outpoints).
    Excluded(Vec<Exclusion>),
    /// The session is over.
    Finished(Outcome),
}

/// A message the machine will not take (the session goes on unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);
