//! What the service reports about each of our requests: the shapes the
//! daemon prints as JSON (`conclavectl coinjoin status --json`) and the
//! app shows.
//!
//! With the `specta` feature, sats, counts and times show in TypeScript as
//! a plain `number` (`specta(type = u32)`: specta would make a u64 a
//! BigInt and an f64 `number | null`); the JSON carries the whole u64,
//! exact in JavaScript below 2^53.

use serde::{Deserialize, Serialize};

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum RequestPhase {
    /// Announced; waiting for an epoch tick with enough peers.
    Waiting,
    /// In a session: public keys and commitments.
    KeyExchange,
    /// In a session: ML-KEM ciphertexts.
    Ciphertexts,
    /// In a session: the slot reservation.
    SlotReservation,
    /// In a session: the DC-net.
    DcNet,
    /// In a session: every peer confirms its outputs.
    Acceptance,
    /// In a session: signatures.
    Signatures,
    /// In a session: seeds revealed, runs replayed.
    Blame,
    /// The transaction is complete and being sent to the chain.
    Broadcasting,
    /// The chain took the transaction.
    Done,
    /// The request ended without a transaction (see `last_error`).
    Failed,
    /// The user cancelled it.
    Cancelled,
}

impl RequestPhase {
    /// Whether it can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }

    /// The request phase of a session phase.
    pub fn of(phase: crate::exclusion::Phase) -> Self {
        use crate::exclusion::Phase as P;
        match phase {
            P::KeyExchange => Self::KeyExchange,
            P::Ciphertexts => Self::Ciphertexts,
            P::SlotReservation => Self::SlotReservation,
            P::DcNet => Self::DcNet,
            P::Acceptance => Self::Acceptance,
            P::Signatures => Self::Signatures,
            P::Blame => Self::Blame,
            P::Done => Self::Broadcasting,
            P::Failed => Self::Waiting,
        }
    }
}

/// An outpoint kept out of our sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ExcludedOutpoint {
    /// `TXID:VOUT`.
    pub outpoint: String,
    /// Why, for people.
    pub reason: String,
    /// Unix ms until which requests spending it are left out.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub until_ms: u64,
}

/// One step of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TimelineEntry {
    /// The phase entered.
    pub phase: RequestPhase,
    /// The run (0 before the first session).
    pub run: u32,
    /// Unix ms.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub at_ms: u64,
    /// Participants in the run.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub peers: usize,
    /// Requests still owing a message in the phase (hex ids).
    pub holdouts: Vec<String>,
}

/// One of our outputs of the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OwnOutput {
    /// Its address.
    pub address: String,
    /// Sats.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub amount_sats: u64,
    /// Whether it is mixed (a denomination output) or our unmixed change.
    pub mixed: bool,
}

/// The state of one of our requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RequestStatus {
    /// The request's id (hex).
    pub request_id: String,
    /// Sats per mixed output.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub denomination: u64,
    /// Sat/vB.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub fee_rate: u64,
    /// Our inputs (`TXID:VOUT`).
    pub inputs: Vec<String>,
    /// Where it is.
    pub phase: RequestPhase,
    /// Participants of the current run, or requests seen for the pairing
    /// while waiting.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub peers: usize,
    /// The current run of the session (0 while waiting).
    pub run: u32,
    /// Sessions this request took part in.
    pub sessions: u32,
    /// Outpoints excluded from our sessions, and why.
    pub excluded: Vec<ExcludedOutpoint>,
    /// The transaction's id, once complete.
    pub txid: Option<String>,
    /// The signed transaction, hex.
    pub tx_hex: Option<String>,
    /// What we paid in fee, sats.
    #[cfg_attr(feature = "specta", specta(type = Option<u32>))]
    pub fee_sats: Option<u64>,
    /// Our mixed outputs and change.
    pub our_outputs: Vec<OwnOutput>,
    /// Every phase change.
    pub timeline: Vec<TimelineEntry>,
    /// Why the last session or check failed, if one did.
    pub last_error: Option<String>,
    /// Unix ms of the join.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub created_ms: u64,
    /// Unix ms of the last change.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub updated_ms: u64,
}
