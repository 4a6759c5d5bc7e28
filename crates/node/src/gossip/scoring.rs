//! Gossipsub v1.1 peer-scoring parameters.
//!
//! Application topics carry irregular traffic, so the mesh-delivery penalties
//! that suit steady streams are off: they would punish honest peers on quiet
//! topics. Scores come from first deliveries (reward), invalid messages
//! (penalty, remembered for minutes), IP colocation and protocol misbehaviour.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicScoreParams};

/// Below this score a peer gets no gossip from us.
pub const GOSSIP_THRESHOLD: f64 = -100.0;
/// Below this score we do not publish to a peer.
pub const PUBLISH_THRESHOLD: f64 = -500.0;
/// Below this score everything a peer sends is ignored.
pub const GRAYLIST_THRESHOLD: f64 = -1000.0;
/// Peer exchange is accepted only from peers above this score.
pub const ACCEPT_PX_THRESHOLD: f64 = 50.0;
/// Median mesh score below which we graft better peers opportunistically.
pub const OPPORTUNISTIC_GRAFT_THRESHOLD: f64 = 5.0;
/// Weight of each (squared) invalid message count.
pub const INVALID_MESSAGE_WEIGHT: f64 = -10.0;
/// Weight of each (squared) peer beyond the per-IP allowance.
pub const IP_COLOCATION_WEIGHT: f64 = -5.0;
/// Peers per IP before colocation counts against them.
pub const IP_COLOCATION_THRESHOLD: f64 = 3.0;

/// The score thresholds.
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: ACCEPT_PX_THRESHOLD,
        opportunistic_graft_threshold: OPPORTUNISTIC_GRAFT_THRESHOLD,
    }
}

/// Global score parameters. Topic parameters are added per subscription with
/// [`topic_params`].
pub fn peer_score_params() -> PeerScoreParams {
    PeerScoreParams {
        topic_score_cap: 100.0,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: IP_COLOCATION_WEIGHT,
        ip_colocation_factor_threshold: IP_COLOCATION_THRESHOLD,
        // Processes on one machine share the loopback address; colocation
        // there says nothing about Sybils.
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        decay_interval: Duration::from_secs(1),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(3600),
        ..PeerScoreParams::default()
    }
}

/// Score parameters for one application topic.
pub fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 50.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        // Decays by 1 % a second: an attacker stays penalised for minutes.
        invalid_message_deliveries_decay: 0.99,
        ..TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_accepted_by_gossipsub() {
        peer_score_params().validate().unwrap();
        topic_params().validate().unwrap();
        thresholds().validate().unwrap();
    }

    #[test]
    fn invalid_messages_cross_the_gossip_threshold_quickly() {
        // score = weight * count^2: four invalid messages already silence a peer.
        let score = |count: f64| INVALID_MESSAGE_WEIGHT * count * count;
        assert!(score(4.0) < GOSSIP_THRESHOLD);
        assert!(score(11.0) < GRAYLIST_THRESHOLD);
    }
}
