//! The node-facing end of the service: a [`ProtocolHandler`] for
//! [`PROTOCOL`](super::wire::PROTOCOL) that decodes (and opens) each message
//! and hands it to the actor, answering the sender with the actor's verdict.

use std::time::Duration;

use conclave_node::{HandlerError, NodeHandle, PeerId, ProtocolHandler};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::wire::{self, PROTOCOL};
use crate::proto::{SessionId, SessionMessage};

/// How long a sender waits for the actor's verdict.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(10);

/// A message for the actor, with the channel for its verdict.
pub(crate) struct Inbound {
    pub from: PeerId,
    pub session_id: SessionId,
    pub message: SessionMessage,
    pub verdict: oneshot::Sender<Result<(), String>>,
}

pub(crate) struct SessionHandler {
    pub node: NodeHandle,
    pub inbound: mpsc::Sender<Inbound>,
}

impl ProtocolHandler for SessionHandler {
    fn name(&self) -> &str {
        "musig2 signing sessions"
    }

    fn protocol_id(&self) -> &str {
        PROTOCOL
    }

    fn handle_message(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        let node = self.node.clone();
        let inbound = self.inbound.clone();
        Box::pin(async move {
            let (session_id, message) = wire::decode(&node, &payload).map_err(HandlerError)?;
            let (verdict, answer) = oneshot::channel();
            // Bounded: a flooded service refuses rather than queueing without end.
            inbound
                .try_send(Inbound {
                    from,
                    session_id,
                    message,
                    verdict,
                })
                .map_err(|_| HandlerError("busy: too many session messages in flight".into()))?;
            match tokio::time::timeout(VERDICT_TIMEOUT, answer).await {
                Ok(Ok(Ok(()))) => Ok(Vec::new()),
                Ok(Ok(Err(reason))) => Err(HandlerError(reason)),
                Ok(Err(_)) => Err(HandlerError("the signing service stopped".into())),
                Err(_) => Err(HandlerError(
                    "the signing service did not answer in time".into(),
                )),
            }
        })
    }
}
