//! A built-in protocol for text messages between nodes, used by
//! `conclavectl send` and `conclavectl inbox`: the receiver keeps the most
//! recent messages (bounded) and acknowledges each one.

use std::{collections::VecDeque, sync::Mutex};

use futures::future::BoxFuture;
use libp2p::PeerId;
use serde::Serialize;

use crate::{
    clock::unix_secs,
    protocol::{HandlerError, ProtocolHandler},
};

/// Protocol id of text messages.
pub const TEXT_PROTOCOL: &str = "/conclave/text/1.0.0";
/// Messages kept.
pub const INBOX_SIZE: usize = 256;
/// Longest text accepted, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;

/// One received text.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedText {
    /// Verified sender.
    pub from: PeerId,
    /// The text.
    pub text: String,
    /// Unix seconds of receipt.
    pub received_at: u64,
}

/// The handler: register it with `NodeHandle::register_handler`.
#[derive(Default)]
pub struct TextInbox {
    recent: Mutex<VecDeque<ReceivedText>>,
}

impl TextInbox {
    /// The most recent texts, oldest first.
    pub fn recent(&self) -> Vec<ReceivedText> {
        self.recent
            .lock()
            .expect("inbox lock")
            .iter()
            .cloned()
            .collect()
    }
}

impl ProtocolHandler for TextInbox {
    fn name(&self) -> &str {
        "text inbox"
    }

    fn protocol_id(&self) -> &str {
        TEXT_PROTOCOL
    }

    fn handle_message(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        let result = if payload.len() > MAX_TEXT {
            Err(HandlerError(format!("text longer than {MAX_TEXT} bytes")))
        } else {
            match String::from_utf8(payload) {
                Ok(text) => {
                    let mut recent = self.recent.lock().expect("inbox lock");
                    if recent.len() == INBOX_SIZE {
                        recent.pop_front();
                    }
                    recent.push_back(ReceivedText {
                        from,
                        text,
                        received_at: unix_secs(),
                    });
                    Ok(b"received".to_vec())
                }
                Err(_) => Err(HandlerError("text must be UTF-8".into())),
            }
        };
        Box::pin(async move { result })
    }
}
