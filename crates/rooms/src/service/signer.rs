//! The node's identity keys as a [`StatementSigner`]: statements a room
//! member signs (cards, proposals, bids, reports, record entries) carry the
//! same Ed25519 key as its PeerId and the ML-DSA-65 key of its PQ identity
//! record, so peers that pinned the record check them against it.

use std::sync::Arc;

use conclave_node::NodeIdentity;
use libp2p_identity::PeerId;

use crate::statement::{SignError, StatementSigner};

/// Signs with a node's identity keys.
pub struct NodeSigner {
    identity: Arc<NodeIdentity>,
}

impl NodeSigner {
    /// Over `identity` (from [`conclave_node::NodeHandle::identity`]).
    pub fn new(identity: Arc<NodeIdentity>) -> Self {
        Self { identity }
    }
}

impl StatementSigner for NodeSigner {
    fn peer_id(&self) -> PeerId {
        self.identity.peer_id()
    }

    fn ml_dsa_public(&self) -> Vec<u8> {
        self.identity.record().ml_dsa_public.clone()
    }

    fn sign_ed25519(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        self.identity
            .sign_ed25519(digest)
            .map_err(|e| SignError::Signing(e.to_string()))
    }

    fn sign_ml_dsa(&self, digest: &[u8; 32], ctx: &[u8]) -> Result<Vec<u8>, SignError> {
        self.identity
            .sign_ml_dsa(digest, ctx)
            .map_err(|e| SignError::Signing(e.to_string()))
    }
}
