//! The PQ identity exchange: on a peer's first connection each side sends
//! its PQ identity record; a verified record is pinned, and a different
//! ML-DSA key later presented for the same peer is refused.

use libp2p::{request_response, PeerId};

use super::EventLoop;
use crate::{identity::PqIdentityRecord, protocol::PqIdentityMessage};

impl EventLoop {
    fn our_pq_record(&self) -> PqIdentityMessage {
        PqIdentityMessage {
            record: self.trust.identity().record().to_bytes(),
        }
    }

    /// Sends our record to a newly connected peer (it answers with its own).
    pub(super) fn send_pq_identity(&mut self, peer: PeerId) {
        let ours = self.our_pq_record();
        self.swarm
            .behaviour_mut()
            .pq_identity
            .send_request(&peer, ours);
    }

    /// Verifies a peer's PQ identity record, pins it and answers with ours.
    pub(super) fn on_pq_identity_event(
        &mut self,
        event: request_response::Event<PqIdentityMessage, PqIdentityMessage>,
    ) {
        use request_response::{Event, Message};
        let (peer, bytes) = match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let ours = self.our_pq_record();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .pq_identity
                    .send_response(channel, ours);
                (peer, request.record)
            }
            Event::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => (peer, response.record),
            Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "PQ identity exchange failed");
                return;
            }
            _ => return,
        };
        match PqIdentityRecord::from_bytes_verified(&bytes) {
            Ok(record) if record.peer_id == peer => {
                let pinned = self.trust.pinned_key(&peer);
                if pinned.is_some_and(|k| k != record.ml_dsa_public) {
                    tracing::warn!(%peer, "peer presented a different ML-DSA key than the one pinned; keeping the pinned key");
                    return;
                }
                self.trust.insert_record(record);
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.pq_verified = true;
                }
                self.peer_changed(&peer);
            }
            Ok(record) => {
                tracing::warn!(%peer, claimed = %record.peer_id, "PQ identity record for another peer")
            }
            Err(e) => tracing::warn!(%peer, %e, "invalid PQ identity record"),
        }
    }
}
