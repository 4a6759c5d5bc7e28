//! What travels on a pairing's gossip topic, inside the node's signed
//! envelopes: pair requests, their withdrawals, and the run messages of the
//! sessions formed from them, each with the request its author speaks for.
//!
//! A session's messages share the pairing's topic rather than a topic of
//! their own: every participant has been subscribed to it since it
//! announced its request, so no message is lost to a subscription its
//! peers have not heard of yet when the session starts.

use serde::{Deserialize, Serialize};

use crate::{
    kex::serde_bytes_vec,
    pairing::{RequestId, MAX_REQUEST_BYTES},
    proto::messages::MAX_MESSAGE_BYTES,
};

/// Largest encoded topic message.
pub const MAX_TOPIC_MESSAGE_BYTES: usize = MAX_MESSAGE_BYTES + 64;

/// One message on a pairing's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicMessage {
    /// An encoded [`crate::pairing::PairRequest`].
    Request(#[serde(with = "serde_bytes_vec")] Vec<u8>),
    /// An encoded [`crate::proto::RunMessage`] by the owner of `author`
    /// (the envelope's signer must be that request's author).
    Run {
        /// The request the author speaks for.
        author: RequestId,
        /// The run message.
        #[serde(with = "serde_bytes_vec")]
        message: Vec<u8>,
    },
    /// The author cancelled this request (the envelope's signer must be
    /// its author): peers drop it from the requests they form sessions
    /// from, instead of waiting for it in the next session and excluding
    /// it as a holdout.
    Withdraw(RequestId),
}

/// Not a topic message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CoinJoin topic message: {0}")]
pub struct WireError(pub String);

impl TopicMessage {
    /// Its encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("topic messages serialise")
    }

    /// Decodes a message, refusing oversized ones before decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_TOPIC_MESSAGE_BYTES {
            return Err(WireError(format!(
                "{} bytes exceed {MAX_TOPIC_MESSAGE_BYTES}",
                bytes.len()
            )));
        }
        let message: Self = postcard::from_bytes(bytes).map_err(|e| WireError(e.to_string()))?;
        if let Self::Request(request) = &message {
            if request.len() > MAX_REQUEST_BYTES {
                return Err(WireError(format!(
                    "a request of {} bytes exceeds {MAX_REQUEST_BYTES}",
                    request.len()
                )));
            }
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_messages_roundtrip_and_oversized_ones_are_refused() {
        let run = TopicMessage::Run {
            author: RequestId([3; 32]),
            message: vec![1, 2, 3],
        };
        assert_eq!(TopicMessage::decode(&run.encode()).unwrap(), run);
        let withdraw = TopicMessage::Withdraw(RequestId([9; 32]));
        assert_eq!(TopicMessage::decode(&withdraw.encode()).unwrap(), withdraw);
        let big = TopicMessage::Request(vec![0; MAX_REQUEST_BYTES + 1]).encode();
        assert!(TopicMessage::decode(&big).is_err());
        assert!(TopicMessage::decode(&vec![0; MAX_TOPIC_MESSAGE_BYTES + 1]).is_err());
        assert!(TopicMessage::decode(&[9, 9, 9]).is_err());
    }
}
