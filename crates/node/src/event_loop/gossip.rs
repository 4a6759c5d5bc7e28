//! Gossip: publishing and subscriptions, waits for topic peers, and every
//! inbound message checked (rate limits, then the envelope, verified off the
//! loop) before gossipsub forwards it and subscribers see it.

use std::time::Instant;

use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash},
    PeerId,
};

use super::{gossip_guard::PendingGossip, EventLoop, GossipVerdict, Internal};
use crate::{
    command::Reply,
    error::{GossipError, NodeError},
    events::{GossipMessage, NodeEvent},
    gossip::scoring,
    identity::envelope::{EnvelopeError, MessageKind},
};

/// Longest topic name.
const MAX_TOPIC_LEN: usize = 256;

fn check_topic(topic: &str) -> Result<(), GossipError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(GossipError::TopicName {
            len: topic.len(),
            max: MAX_TOPIC_LEN,
        });
    }
    Ok(())
}

impl EventLoop {
    pub(super) fn publish(&mut self, topic: &str, data: Vec<u8>) -> Result<String, NodeError> {
        check_topic(topic)?;
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        let id = gossipsub
            .publish(IdentTopic::new(topic), data)
            .map_err(|source| GossipError::Publish {
                topic: topic.to_string(),
                source,
            })?;
        self.metrics.gossip_published.inc();
        Ok(id.to_string())
    }

    pub(super) fn subscribe(&mut self, topic: &str) -> Result<bool, NodeError> {
        check_topic(topic)?;
        let ident = IdentTopic::new(topic);
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        let new = gossipsub
            .subscribe(&ident)
            .map_err(|source| GossipError::Subscribe {
                topic: topic.to_string(),
                source,
            })?;
        if new {
            gossipsub
                .set_topic_params(ident, scoring::topic_params())
                .map_err(|reason| GossipError::Scoring {
                    topic: topic.to_string(),
                    reason,
                })?;
            self.subscribed.insert(topic.to_string());
        }
        Ok(new)
    }

    /// Unsubscribes; `false` if we were not subscribed.
    pub(super) fn unsubscribe(&mut self, topic: &str) -> bool {
        let removed = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .unsubscribe(&IdentTopic::new(topic));
        self.subscribed.remove(topic);
        removed
    }

    /// Answers once `count` connected peers are subscribed to `topic`.
    pub(super) fn wait_topic_peers(&mut self, topic: String, count: usize, reply: Reply<()>) {
        let hash = IdentTopic::new(topic).hash();
        if self.topic_peer_count(&hash) >= count {
            let _ = reply.send(Ok(()));
            return;
        }
        match self.pending.topic_wait_room() {
            Ok(()) => self.pending.add_topic_wait(hash, count, reply),
            Err(busy) => {
                let _ = reply.send(Err(busy));
            }
        }
    }

    pub(super) fn topic_peer_count(&self, topic: &TopicHash) -> usize {
        topic_peer_count(&self.swarm.behaviour().gossipsub, topic)
    }

    pub(super) fn on_gossip_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => self.on_gossip_message(propagation_source, message_id, message),
            gossipsub::Event::Subscribed { peer_id, topic } => {
                tracing::debug!(%peer_id, %topic, "peer subscribed");
                let gossipsub = &self.swarm.behaviour().gossipsub;
                let met = self.pending.take_met_topic_waits(|topic, count| {
                    topic_peer_count(gossipsub, topic) >= count
                });
                for reply in met {
                    let _ = reply.send(Ok(()));
                }
            }
            gossipsub::Event::SlowPeer { peer_id, .. } => {
                tracing::debug!(%peer_id, "slow gossip peer");
            }
            _ => {}
        }
    }

    fn on_gossip_message(
        &mut self,
        propagation_source: PeerId,
        message_id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        let topic = message.topic.into_string();
        if !self.within_rate(propagation_source, Some(&topic), message.data.len()) {
            self.report(&message_id, propagation_source, MessageAcceptance::Ignore);
            return;
        }
        if !self.trust.envelopes() {
            self.report(&message_id, propagation_source, MessageAcceptance::Accept);
            self.deliver(
                topic,
                message.source,
                propagation_source,
                message.data,
                message_id,
            );
            return;
        }
        // Verification (two signatures) runs off the loop, in the
        // forwarder's turn; the verdict comes back as an internal event.
        // Gossipsub holds the message unforwarded until then.
        let waiting = PendingGossip {
            message_id,
            propagation_source,
            topic,
            source: message.source,
            data: message.data,
        };
        for dropped in self.guard.await_verification(waiting) {
            tracing::debug!(peer = %dropped.propagation_source, "gossip verification queue full");
            self.report(
                &dropped.message_id,
                dropped.propagation_source,
                MessageAcceptance::Ignore,
            );
        }
        self.start_verifications();
    }

    /// Verifies waiting messages while verification permits are free.
    fn start_verifications(&mut self) {
        while let Some((permit, waiting)) = self.guard.next_verification() {
            let trust = self.trust.clone();
            let internal = self.internal_tx.clone();
            tokio::task::spawn_blocking(move || {
                let PendingGossip {
                    message_id,
                    propagation_source,
                    topic,
                    source,
                    data,
                } = waiting;
                let verdict = trust.verify(&data, MessageKind::Gossip, &topic, source);
                // Freed before the verdict is sent, so the loop can start
                // the next verification when it handles this one.
                drop(permit);
                let _ = internal.blocking_send(Internal::GossipVerdict(Box::new(GossipVerdict {
                    message_id,
                    propagation_source,
                    topic,
                    source,
                    verdict,
                })));
            });
        }
    }

    /// Reports a gossip message's validation to gossipsub (which forwards
    /// accepted messages and penalises the senders of rejected ones) and
    /// delivers accepted messages to subscribers.
    pub(super) fn on_gossip_verdict(&mut self, verdict: GossipVerdict) {
        let GossipVerdict {
            message_id,
            propagation_source,
            topic,
            source,
            verdict,
        } = verdict;
        self.start_verifications();
        let verdict = verdict.and_then(|v| {
            if source.is_some_and(|claimed| claimed != v.sender) {
                // A valid envelope republished under another author (only
                // signed gossip names one; anonymous gossip has the
                // envelope's sender alone).
                return Err(EnvelopeError::Replay(v.sender));
            }
            self.trust.check_replay(&v).map(|()| v)
        });
        let acceptance = match &verdict {
            Ok(_) => MessageAcceptance::Accept,
            Err(e) if e.is_invalid() => MessageAcceptance::Reject,
            Err(_) => MessageAcceptance::Ignore,
        };
        if let Err(e) = &verdict {
            tracing::debug!(%propagation_source, %e, "gossip message not accepted");
        }
        self.report(&message_id, propagation_source, acceptance);
        if let Ok(verified) = verdict {
            self.deliver(
                topic,
                Some(verified.sender),
                propagation_source,
                verified.payload,
                message_id,
            );
        }
    }

    /// Counts a message's outcome and tells gossipsub.
    fn report(
        &mut self,
        message_id: &gossipsub::MessageId,
        propagation_source: PeerId,
        acceptance: MessageAcceptance,
    ) {
        self.guard.count(propagation_source, &acceptance);
        if matches!(acceptance, MessageAcceptance::Reject) {
            self.metrics.gossip_rejected.inc();
        }
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, &propagation_source, acceptance);
    }

    /// Charges a message (gossip on `topic`, or direct) to `peer`'s rate
    /// limits. Over them, the message is to be dropped: it is counted, and
    /// the peer loses application score.
    pub(super) fn within_rate(&mut self, peer: PeerId, topic: Option<&str>, bytes: usize) -> bool {
        let Some(score) = self.guard.charge(peer, topic, bytes, Instant::now()) else {
            return true;
        };
        self.metrics.rate_limited.inc();
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        false
    }

    fn deliver(
        &mut self,
        topic: String,
        from: Option<PeerId>,
        via: PeerId,
        data: Vec<u8>,
        id: gossipsub::MessageId,
    ) {
        self.metrics.gossip_received.inc();
        self.emit(NodeEvent::Message(GossipMessage {
            topic,
            from,
            via,
            data,
            id: id.to_string(),
        }));
    }
}

/// Connected peers subscribed to `topic`.
fn topic_peer_count(gossipsub: &gossipsub::Behaviour, topic: &TopicHash) -> usize {
    gossipsub
        .all_peers()
        .filter(|(_, topics)| topics.contains(&topic))
        .count()
}
