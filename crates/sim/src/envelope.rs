//! Signed envelopes in the workload.
//!
//! The node itself wraps every `broadcast` in a signed envelope (Ed25519 and
//! ML-DSA-65 over a BLAKE3 digest, with the signer's ML-DSA public key,
//! timestamp and nonce) when `NodeConfig::envelopes` is on, its default, and
//! verifies envelopes before it forwards or delivers a message. So the
//! signing the simulator asks for is one call per message,
//! `NodeHandle::broadcast` (or the daemon's `publish` request), and the
//! `--no-envelopes` switch turns envelopes off on every node to show their
//! cost. Byzantine nodes bypass the envelope with `broadcast_raw`, so their
//! malformed messages reach honest nodes as invalid envelopes.

use serde::Serialize;

/// Whether the run's messages were signed envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeStatus {
    /// On (the node's default): every node signs what it publishes and
    /// verifies what it receives.
    Enabled,
    /// Off on every node (`--no-envelopes`): plain payloads.
    Disabled,
}

impl EnvelopeStatus {
    /// The status for a run that asks for envelopes or not.
    pub fn choose(requested: bool) -> Self {
        if requested {
            EnvelopeStatus::Enabled
        } else {
            EnvelopeStatus::Disabled
        }
    }

    /// Whether nodes run with `NodeConfig::envelopes` on.
    pub fn enabled(self) -> bool {
        self == EnvelopeStatus::Enabled
    }

    /// A sentence for the report.
    pub fn note(self) -> &'static str {
        match self {
            EnvelopeStatus::Enabled => {
                "on: the node signs each broadcast (Ed25519 + ML-DSA-65) and verifies before forwarding"
            }
            EnvelopeStatus::Disabled => "off (--no-envelopes): plain payloads",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_maps_to_the_node_setting() {
        assert!(EnvelopeStatus::choose(true).enabled());
        assert!(!EnvelopeStatus::choose(false).enabled());
        assert!(EnvelopeStatus::Disabled.note().contains("--no-envelopes"));
    }
}
