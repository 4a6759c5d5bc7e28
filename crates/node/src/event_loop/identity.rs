//! The PQ identity exchange: on a peer's first connection each side sends
//! its PQ identity record; a verified record is pinned, and a different
//! ML-DSA key later presented for the same peer is refused. Records are
//! throttled per peer and verified off the loop; the pinned record
//! presented again is not verified again (see [`PqGuard`](super::pq_guard::PqGuard)).

use std::time::Instant;

use libp2p::{request_response, PeerId};

use super::{pq_guard::PqAction, EventLoop, Internal};
use crate::{
    identity::{pq::IdentityError, PqIdentityRecord},
    protocol::PqIdentityMessage,
};

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
        let pinned = self.trust.record_of(&peer).map(|r| r.to_bytes());
        let permit = match self
            .pq_guard
            .on_record(peer, &bytes, pinned.as_deref(), Instant::now())
        {
            PqAction::Refuse(reason) => {
                tracing::debug!(%peer, reason, "PQ identity record dropped");
                self.metrics.rate_limited.inc();
                return;
            }
            PqAction::Unchanged => {
                self.pq_verified(peer);
                return;
            }
            PqAction::Verify(permit) => permit,
        };
        self.metrics.pq_verifications.inc();
        let internal = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let verdict = PqIdentityRecord::from_bytes_verified(&bytes);
            let _ = internal.blocking_send(Internal::PqChecked {
                peer,
                verdict: verdict.map(Box::new),
            });
            drop(permit);
        });
    }

    /// Pins a record verified off the loop, unless it is for another peer
    /// or presents another key than the one pinned.
    pub(super) fn on_pq_checked(
        &mut self,
        peer: PeerId,
        verdict: Result<Box<PqIdentityRecord>, IdentityError>,
    ) {
        match verdict {
            Ok(record) if record.peer_id == peer => {
                let pinned = self.trust.pinned_key(&peer);
                if pinned.is_some_and(|k| k != record.ml_dsa_public) {
                    tracing::warn!(%peer, "peer presented a different ML-DSA key than the one pinned; keeping the pinned key");
                    return;
                }
                self.trust.insert_record(*record);
                self.pq_verified(peer);
            }
            Ok(record) => {
                tracing::warn!(%peer, claimed = %record.peer_id, "PQ identity record for another peer")
            }
            Err(e) => tracing::warn!(%peer, %e, "invalid PQ identity record"),
        }
    }

    fn pq_verified(&mut self, peer: PeerId) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.pq_verified = true;
        }
        self.peer_changed(&peer);
    }
}
