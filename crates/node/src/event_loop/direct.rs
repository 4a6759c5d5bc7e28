//! Direct messages: protocol handlers registered by features, requests to
//! peers' handlers and their replies, and inbound requests handed to ours
//! off the loop (bounded, rate-limited, in signed envelopes).

use std::sync::Arc;

use futures::StreamExt;
use libp2p::{request_response, PeerId, StreamProtocol};
use tokio::{sync::Semaphore, task::JoinHandle};

use super::{EventLoop, Internal, MAX_INBOUND_PER_PEER};
use crate::{
    command::Reply,
    error::{ConnectionError, NodeError, ProtocolError},
    identity::envelope::MessageKind,
    protocol::{DirectRequest, DirectResponse, ProtocolHandler},
};

/// Inbound streams handled concurrently per handler.
const MAX_INBOUND_STREAMS: usize = 64;

impl EventLoop {
    pub(super) fn send_direct(
        &mut self,
        peer: PeerId,
        protocol: String,
        payload: Vec<u8>,
        reply: Reply<Vec<u8>>,
    ) {
        if !self.swarm.is_connected(&peer) {
            let _ = reply.send(Err(ConnectionError::NotConnected(peer).into()));
            return;
        }
        if let Err(busy) = self.pending.request_room() {
            let _ = reply.send(Err(busy));
            return;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .direct
            .send_request(&peer, DirectRequest { protocol, payload });
        self.metrics.direct_sent.inc();
        self.pending.add_request(id, peer, reply);
    }

    pub(super) fn register_handler(
        &mut self,
        handler: Arc<dyn ProtocolHandler>,
    ) -> Result<(), NodeError> {
        let id = handler.protocol_id().to_string();
        if self.handlers.contains(&id) {
            return Err(ProtocolError::HandlerExists(id).into());
        }
        let stream_task = if handler.accepts_streams() {
            Some(self.accept_streams(&id, handler.clone())?)
        } else {
            None
        };
        tracing::info!(protocol = %id, name = handler.name(), "protocol handler registered");
        Ok(self.handlers.insert(handler, stream_task)?)
    }

    /// Spawns the task that hands `handler` the inbound streams of its
    /// protocol, at most [`MAX_INBOUND_STREAMS`] at once.
    fn accept_streams(
        &mut self,
        id: &str,
        handler: Arc<dyn ProtocolHandler>,
    ) -> Result<JoinHandle<()>, ProtocolError> {
        let protocol = StreamProtocol::try_from_owned(id.to_string())
            .map_err(|_| ProtocolError::InvalidId(id.to_string()))?;
        let mut incoming = self
            .streams
            .accept(protocol)
            .map_err(|_| ProtocolError::HandlerExists(id.to_string()))?;
        Ok(tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
            while let Some((peer, stream)) = incoming.next().await {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "inbound stream refused: handler busy");
                    continue;
                };
                let work = handler.handle_stream(peer, stream);
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
        }))
    }

    /// One of `peer`'s inbound messages was handled.
    pub(super) fn inbound_done(&mut self, peer: PeerId) {
        if let Some(n) = self.inbound_per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.inbound_per_peer.remove(&peer);
            }
        }
    }

    /// Sends a handler's reply back to the requester.
    pub(super) fn respond(
        &mut self,
        channel: request_response::ResponseChannel<DirectResponse>,
        response: DirectResponse,
    ) {
        if self
            .swarm
            .behaviour_mut()
            .direct
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!("reply dropped: the requester went away");
        }
    }

    /// Refuses an inbound request with `reason`, which goes back to the sender.
    fn refuse(
        &mut self,
        channel: request_response::ResponseChannel<DirectResponse>,
        reason: String,
    ) {
        self.metrics.direct_refused.inc();
        self.respond(channel, DirectResponse::Err(reason));
    }

    pub(super) fn on_direct_event(
        &mut self,
        event: request_response::Event<DirectRequest, DirectResponse>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_direct_request(peer, request, channel),
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((peer, reply)) = self.pending.take_request(request_id) {
                    let result = match response {
                        DirectResponse::Ok(bytes) => Ok(bytes),
                        DirectResponse::Err(reason) => {
                            Err(ProtocolError::Remote { peer, reason }.into())
                        }
                    };
                    let _ = reply.send(result);
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.pending.take_request(request_id) {
                    let _ = reply.send(Err(ProtocolError::SendFailed {
                        peer,
                        source: error,
                    }
                    .into()));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound direct message failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    /// Hands an inbound request to its handler on a task of its own; the
    /// envelope is opened and the reply signed there.
    fn on_direct_request(
        &mut self,
        peer: PeerId,
        request: DirectRequest,
        channel: request_response::ResponseChannel<DirectResponse>,
    ) {
        self.metrics.direct_received.inc();
        let Some(handler) = self.handlers.get(&request.protocol) else {
            let reason = format!("no handler for protocol {}", request.protocol);
            self.refuse(channel, reason);
            return;
        };
        if !self.within_rate(peer, None, request.payload.len()) {
            self.refuse(channel, "rate limited: too many bytes per second".into());
            return;
        }
        let in_flight = self.inbound_per_peer.get(&peer).copied().unwrap_or(0);
        if in_flight >= MAX_INBOUND_PER_PEER {
            let reason = format!(
                "busy: {MAX_INBOUND_PER_PEER} of your messages are in progress; wait for their replies"
            );
            self.refuse(channel, reason);
            return;
        }
        let Ok(permit) = self.inbound_permits.clone().try_acquire_owned() else {
            self.refuse(channel, "busy: too many messages in progress".into());
            return;
        };
        *self.inbound_per_peer.entry(peer).or_default() += 1;
        let trust = self.trust.clone();
        let internal = self.internal_tx.clone();
        let protocol = request.protocol;
        tokio::spawn(async move {
            let response =
                match trust.unwrap(&request.payload, MessageKind::Direct, &protocol, Some(peer)) {
                    Err(e) => DirectResponse::Err(format!("refused: {e}")),
                    Ok((_, payload)) => match handler.handle_message(peer, payload).await {
                        Ok(bytes) => match trust.wrap(MessageKind::DirectReply, &protocol, bytes) {
                            Ok(signed) => DirectResponse::Ok(signed),
                            Err(e) => DirectResponse::Err(format!("cannot sign the reply: {e}")),
                        },
                        Err(e) => DirectResponse::Err(e.0),
                    },
                };
            let _ = internal
                .send(Internal::Respond {
                    peer,
                    channel,
                    response,
                })
                .await;
            drop(permit);
        });
    }
}
