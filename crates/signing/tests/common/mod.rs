//! Shared by the in-process session tests: loopback nodes (127.0.0.1, port
//! 0, no mDNS, no dialling on their own), a signing service per node with
//! its keys in memory, and bounded waits on signing events (never sleeps);
//! the rest comes from conclave-testkit.
#![allow(dead_code)]

use std::sync::Arc;

use conclave_node::{Multiaddr, NodeHandle};
use conclave_signing::{
    keys::KeyStore, MemoryKeyStore, SecretKey, SignerKey, SigningConfig, SigningEvent,
    SigningEvents, SigningHandle, SigningService, Timeouts,
};
use conclave_testkit::{addr_of, connect_sealed, within, Transport};
use tempfile::TempDir;

/// A node with a signing service and one signing key in memory.
pub struct Peer {
    pub node: NodeHandle,
    pub signing: SigningHandle,
    pub key: SignerKey,
    pub keys: Arc<dyn KeyStore>,
    pub dir: TempDir,
}

impl Peer {
    /// Starts a node, a key and a signing service with `timeouts`.
    pub async fn start(timeouts: Timeouts) -> Self {
        Self::start_with(timeouts, |_| {}).await
    }

    /// Like [`Peer::start`], with the service's config changed by `adjust`.
    pub async fn start_with(timeouts: Timeouts, adjust: impl FnOnce(&mut SigningConfig)) -> Self {
        let node = conclave_testkit::loopback_node().await;
        let store = MemoryKeyStore::new();
        let key = store.insert(&SecretKey::generate()).unwrap();
        let keys: Arc<dyn KeyStore> = Arc::new(store);
        let dir = tempfile::tempdir().unwrap();
        let mut config = SigningConfig::new(dir.path());
        config.timeouts = timeouts;
        adjust(&mut config);
        let signing = Self::service_with(&node, &keys, config).await;
        Self {
            node,
            signing,
            key,
            keys,
            dir,
        }
    }

    /// Starts a signing service on `node` with the ledger in `dir`.
    pub async fn service(
        node: &NodeHandle,
        keys: &Arc<dyn KeyStore>,
        dir: &TempDir,
        timeouts: Timeouts,
    ) -> SigningHandle {
        let mut config = SigningConfig::new(dir.path());
        config.timeouts = timeouts;
        Self::service_with(node, keys, config).await
    }

    /// Starts a signing service on `node` with `config`.
    pub async fn service_with(
        node: &NodeHandle,
        keys: &Arc<dyn KeyStore>,
        config: SigningConfig,
    ) -> SigningHandle {
        within(
            "signing service start",
            SigningService::start(node.clone(), keys.clone(), config),
        )
        .await
        .expect("signing service starts")
    }

    /// The node's QUIC listen address.
    pub async fn addr(&self) -> Multiaddr {
        addr_of(&self.node, Transport::Quic).await
    }
}

/// `from` dials `to` and waits until both sides hold each other's PQ
/// identity records (sealing needs them).
pub async fn connect(from: &NodeHandle, to: &Peer) {
    connect_sealed(from, &to.node).await
}

/// `n` peers, the first connected to every other (a star: signers only
/// talk to the coordinator), each having announced its key.
pub async fn cluster(n: usize, timeouts: Timeouts) -> Vec<Peer> {
    let mut peers = Vec::with_capacity(n);
    for _ in 0..n {
        peers.push(Peer::start(timeouts).await);
    }
    for other in &peers[1..] {
        connect(&peers[0].node, other).await;
    }
    for p in &peers {
        within("advertise", p.signing.advertise())
            .await
            .expect("advertises");
    }
    peers
}

/// Reads events until `pick` returns `Some`; panics after [`LIMIT`].
pub async fn wait_for<T>(
    events: &mut SigningEvents,
    what: &str,
    mut pick: impl FnMut(&SigningEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match events.recv().await {
                Some(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                None => panic!("signing service stopped while waiting for {what}"),
            }
        }
    })
    .await
}

/// Waits for an invitation to `session_id` and joins it.
pub async fn join_when_invited(peer: &Peer, events: &mut SigningEvents, session_id: &str) {
    wait_for(events, "invitation", |e| match e {
        SigningEvent::Invitation(info) if info.session_id == session_id => Some(()),
        _ => None,
    })
    .await;
    within("join", peer.signing.join(session_id))
        .await
        .expect("joins");
}

/// Waits for the end of `session_id`.
pub async fn finished(
    events: &mut SigningEvents,
    session_id: &str,
) -> conclave_signing::SessionStatus {
    wait_for(events, "session end", |e| match e {
        SigningEvent::Finished(status) if status.session_id == session_id => {
            Some((**status).clone())
        }
        _ => None,
    })
    .await
}
