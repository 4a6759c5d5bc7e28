//! Session messages on the wire: postcard-encoded, the private ones sealed
//! (hybrid X25519 + ML-KEM-768) to their recipients, all of them carried in
//! the node's signed envelopes by `send_to`.

use conclave_node::{NodeHandle, PeerId};
use serde::{Deserialize, Serialize};

use super::SigningError;
use crate::proto::{SessionId, SessionMessage};

/// Protocol id of MuSig2 sessions.
pub const PROTOCOL: &str = "/conclave/musig2/1.0.0";
const VERSION: u8 = 1;
const SEAL_CONTEXT: &[u8] = b"conclave/musig2/1.0.0 sealed message";

#[derive(Serialize, Deserialize)]
enum Body {
    Plain(SessionMessage),
    Sealed(Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct Wire {
    version: u8,
    session_id: SessionId,
    body: Body,
}

/// Binds a sealed payload to its session.
fn aad(session_id: &SessionId) -> Vec<u8> {
    [SEAL_CONTEXT, session_id.as_bytes()].concat()
}

/// Encodes `message` for `recipients` (sealed once to all of them if it is
/// private; their PQ identity records must be known).
pub fn encode(
    node: &NodeHandle,
    session_id: SessionId,
    message: &SessionMessage,
    recipients: &[PeerId],
) -> Result<Vec<u8>, SigningError> {
    let body = if message.is_private() {
        let plain = postcard::to_stdvec(message).expect("messages serialise");
        Body::Sealed(node.seal_to(recipients, &plain, &aad(&session_id))?)
    } else {
        Body::Plain(message.clone())
    };
    let wire = Wire {
        version: VERSION,
        session_id,
        body,
    };
    Ok(postcard::to_stdvec(&wire).expect("messages serialise"))
}

/// Decodes (and opens) a message; the error text goes back to the sender.
pub fn decode(node: &NodeHandle, bytes: &[u8]) -> Result<(SessionId, SessionMessage), String> {
    let wire: Wire = postcard::from_bytes(bytes).map_err(|e| format!("malformed message: {e}"))?;
    if wire.version != VERSION {
        return Err(format!("unsupported message version {}", wire.version));
    }
    let message = match wire.body {
        Body::Plain(message) if message.is_private() => {
            return Err(format!("a {} message must be sealed", message.name()))
        }
        Body::Plain(message) => message,
        Body::Sealed(sealed) => {
            let plain = node
                .open_sealed(&sealed, &aad(&wire.session_id))
                .map_err(|e| format!("cannot open the sealed message: {e}"))?;
            let message: SessionMessage = postcard::from_bytes(&plain)
                .map_err(|e| format!("malformed sealed message: {e}"))?;
            if !message.is_private() {
                return Err(format!("a {} message is never sealed", message.name()));
            }
            message
        }
    };
    Ok((wire.session_id, message))
}
