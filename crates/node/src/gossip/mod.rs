//! Gossipsub: configuration and peer-scoring parameters.

pub mod scoring;

use std::time::Duration;

use libp2p::{gossipsub, identity::Keypair};

/// Bytes of gossipsub framing allowed on top of the application payload.
pub(crate) const FRAME_OVERHEAD: usize = 64 * 1024;

/// Builds the gossipsub behaviour with Conclave's mesh, history and scoring.
///
/// Message ids are the BLAKE3 hash of the data, so the same content from two
/// publishers is one message. Messages are validated by the node before they
/// are forwarded (`validate_messages`), so invalid ones can be rejected and
/// their senders penalised.
///
/// With `envelopes`, gossip is anonymous to gossipsub: the envelope is the
/// message's authentication (its sender, two signatures, a nonce), so a
/// second Ed25519 signature by gossipsub over the whole envelope, checked
/// on every copy, would only cost. Without envelopes (simulations), gossipsub
/// signs and strictly validates as usual. A publish goes to the mesh, not
/// to every subscribed peer, and IDONTWANT is sent for our own messages too.
pub fn behaviour(
    keypair: &Keypair,
    heartbeat: Duration,
    max_message_size: usize,
    envelopes: bool,
) -> Result<gossipsub::Behaviour, String> {
    let (authenticity, validation) = if envelopes {
        (
            gossipsub::MessageAuthenticity::Anonymous,
            gossipsub::ValidationMode::Anonymous,
        )
    } else {
        (
            gossipsub::MessageAuthenticity::Signed(keypair.clone()),
            gossipsub::ValidationMode::Strict,
        )
    };
    let config = gossipsub::ConfigBuilder::default()
        .mesh_n(6)
        .mesh_n_low(4)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        .history_length(5)
        .history_gossip(3)
        // As long as an envelope's window: a copy that comes back later is
        // dropped as a duplicate before it costs a verification.
        .duplicate_cache_time(crate::identity::envelope::DEFAULT_WINDOW)
        .heartbeat_interval(heartbeat)
        .validation_mode(validation)
        .validate_messages()
        .flood_publish(false)
        .idontwant_on_publish(true)
        .max_transmit_size(max_message_size + FRAME_OVERHEAD)
        .message_id_fn(message_id)
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    let mut behaviour =
        gossipsub::Behaviour::new(authenticity, config).map_err(|e| format!("gossipsub: {e}"))?;
    behaviour
        .with_peer_score(scoring::peer_score_params(), scoring::thresholds())
        .map_err(|e| format!("gossipsub scoring: {e}"))?;
    Ok(behaviour)
}

/// The message id of gossip data: its 32-byte BLAKE3 hash (shown as hex).
pub fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    gossipsub::MessageId::new(blake3::hash(&message.data).as_bytes())
}
