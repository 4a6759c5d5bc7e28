//! The shapes the daemon, `conclavectl` and the desktop app exchange: what
//! `musig2 create|invitations|join|status|list --json` print, and the
//! events a UI follows. Field names are part of the command-line contract.

use serde::{Deserialize, Serialize};

use crate::{
    keys::SignerKey,
    proto::{Failure, Phase},
    psbt::PsbtSummary,
};

/// `musig2 create --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResponse {
    /// The new session's id (32 hex characters).
    pub session_id: String,
}

/// Which side of a session this node is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Role {
    /// This node created and runs the session (it may also sign).
    Coordinator,
    /// This node signs in a session another node runs.
    Signer,
}

/// What a session signs, as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Signing {
    /// A message.
    Message {
        /// The message, hex.
        message: String,
    },
    /// A PSBT.
    Psbt {
        /// What it spends and pays.
        summary: PsbtSummary,
    },
}

/// An invitation waiting for this node's decision (`musig2 invitations --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct InvitationInfo {
    /// The session's id.
    pub session_id: String,
    /// The coordinating peer.
    pub coordinator: String,
    /// Every signer key, in KeySort order.
    pub signers: Vec<SignerKey>,
    /// This node's keys among them.
    pub our_keys: Vec<SignerKey>,
    /// The aggregate key (x-only, 64 hex).
    pub aggregate_pubkey: String,
    /// What would be signed.
    pub signing: Signing,
    /// When it arrived (Unix milliseconds).
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub received_at_ms: u64,
    /// When it expires (Unix milliseconds).
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub expires_at_ms: u64,
}

/// A phase change on a session's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PhaseChange {
    /// The phase entered.
    pub phase: Phase,
    /// When (Unix milliseconds).
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub at_ms: u64,
}

/// A session as `musig2 status SESSION_ID --json` (and `list`) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SessionStatus {
    /// The session's id.
    pub session_id: String,
    /// This node's side.
    pub role: Role,
    /// Where the session stands.
    pub phase: Phase,
    /// Keys still owed in the phase (once failed: those owed then).
    pub holdouts: Vec<SignerKey>,
    /// The aggregate key recomputed from the sorted keys (x-only, 64 hex).
    pub aggregate_pubkey: String,
    /// The final BIP-340 signature (128 hex) of the first (for a message,
    /// the only) message, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Every final signature in message order (one per PSBT input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
    /// Every signer key, in KeySort order.
    pub signers: Vec<SignerKey>,
    /// This node's keys among them.
    pub our_keys: Vec<SignerKey>,
    /// The coordinating peer.
    pub coordinator: String,
    /// What is signed.
    pub signing: Signing,
    /// For a PSBT: the tweaked taproot output key the signatures verify under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_key: Option<String>,
    /// For a PSBT, once done: the signed PSBT (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psbt: Option<String>,
    /// For a PSBT, once done: the finalized transaction (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Every phase entered, in order.
    pub timeline: Vec<PhaseChange>,
    /// Created or received (Unix milliseconds).
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub created_at_ms: u64,
    /// Last change (Unix milliseconds).
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub updated_at_ms: u64,
}

/// Something that happened to a session, for UIs and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SigningEvent {
    /// A new invitation arrived (notify the person).
    Invitation(InvitationInfo),
    /// A session's phase or holdouts changed.
    Phase {
        /// The session.
        session_id: String,
        /// Its phase.
        phase: Phase,
        /// Keys still owed.
        holdouts: Vec<SignerKey>,
    },
    /// A session ended (done, failed or aborted).
    Finished(Box<SessionStatus>),
    /// This subscriber fell behind and missed `missed` events.
    Lagged {
        /// Events dropped for this subscriber.
        missed: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_has_the_command_line_field_names() {
        let key = crate::keys::SecretKey::generate().public_key();
        let status = SessionStatus {
            session_id: "00".repeat(16),
            role: Role::Coordinator,
            phase: Phase::PartialSignatures,
            holdouts: vec![key],
            aggregate_pubkey: "ab".repeat(32),
            signature: None,
            signatures: Vec::new(),
            signers: vec![key],
            our_keys: Vec::new(),
            coordinator: "peer".into(),
            signing: Signing::Message {
                message: "00".into(),
            },
            output_key: None,
            psbt: None,
            transaction: None,
            failure: None,
            timeline: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 2,
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["phase"], "partial_signatures");
        assert_eq!(json["holdouts"][0], key.to_hex());
        assert_eq!(json["aggregate_pubkey"].as_str().unwrap().len(), 64);
        assert!(json.get("signature").is_none(), "absent until done");
        let back: SessionStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }
}
