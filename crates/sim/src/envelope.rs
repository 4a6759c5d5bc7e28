//! How workload payloads are wrapped for the wire: the one place where signed
//! envelopes plug in.
//!
//! Every published message goes through [`PayloadCodec::seal`] once, every
//! received one through [`PayloadCodec::open`], and Byzantine nodes use
//! [`PayloadCodec::forge`]. `conclave-node` does not offer signed envelopes
//! yet, so the only codec is [`Plain`]: a run that asks for envelopes runs
//! with plain payloads and its report says so ([`EnvelopeStatus::Unavailable`]).
//! When the node's envelope API lands, a codec that signs with the
//! publisher's keys (and verifies on receipt) is added here and chosen in
//! [`choose`].

use std::sync::Arc;

use serde::Serialize;

/// A message that does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The envelope's signature or framing is invalid.
    #[error("invalid envelope: {0}")]
    Invalid(String),
}

/// Wraps and unwraps workload payloads.
pub trait PayloadCodec: Send + Sync {
    /// Name shown in reports.
    fn name(&self) -> &'static str;
    /// What node `publisher` publishes for `body`.
    fn seal(&self, publisher: usize, body: Vec<u8>) -> Result<Vec<u8>, EnvelopeError>;
    /// What a Byzantine node publishes instead of a valid message: an
    /// envelope whose signature does not verify, or (plain payloads) the
    /// malformed body as is.
    fn forge(&self, publisher: usize, body: Vec<u8>) -> Vec<u8>;
    /// Checks and unwraps a received message.
    fn open(&self, wire: &[u8]) -> Result<Vec<u8>, EnvelopeError>;
}

/// Payloads as they are: no signature beyond gossipsub's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl PayloadCodec for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn seal(&self, _publisher: usize, body: Vec<u8>) -> Result<Vec<u8>, EnvelopeError> {
        Ok(body)
    }

    fn forge(&self, _publisher: usize, body: Vec<u8>) -> Vec<u8> {
        body
    }

    fn open(&self, wire: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        Ok(wire.to_vec())
    }
}

/// Whether the run's payloads were signed envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeStatus {
    /// Turned off with `--no-envelopes`.
    Disabled,
    /// Asked for, but `conclave-node` has no envelope API yet: the run used
    /// plain payloads.
    Unavailable,
}

impl EnvelopeStatus {
    /// Whether envelopes were asked for.
    pub fn requested(self) -> bool {
        self == EnvelopeStatus::Unavailable
    }

    /// Whether payloads really were signed envelopes.
    pub fn applied(self) -> bool {
        false
    }

    /// A sentence for the report.
    pub fn note(self) -> &'static str {
        match self {
            EnvelopeStatus::Disabled => "off (--no-envelopes): plain payloads",
            EnvelopeStatus::Unavailable => {
                "NOT WIRED: conclave-node has no signed-envelope API yet, so this run used plain payloads"
            }
        }
    }
}

/// The codec for a run, and what the report says about it.
pub fn choose(envelopes_requested: bool) -> (Arc<dyn PayloadCodec>, EnvelopeStatus) {
    let status = if envelopes_requested {
        EnvelopeStatus::Unavailable
    } else {
        EnvelopeStatus::Disabled
    };
    (Arc::new(Plain), status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_round_trips_and_envelopes_are_not_faked() {
        let (codec, status) = choose(true);
        assert_eq!(codec.name(), "plain");
        assert!(status.requested() && !status.applied());
        assert!(status.note().contains("NOT WIRED"));
        let wire = codec.seal(0, b"abc".to_vec()).unwrap();
        assert_eq!(codec.open(&wire).unwrap(), b"abc");
        let (_, off) = choose(false);
        assert_eq!(off, EnvelopeStatus::Disabled);
    }
}
