//! The protocol handlers registered on the node, and the peer callbacks
//! they receive: one place that tells every handler what happened to a
//! peer. No I/O: a handler that accepts streams brings its accept task,
//! which is aborted when the handler goes.

use std::{collections::BTreeMap, sync::Arc};

use libp2p::{Multiaddr, PeerId};
use tokio::task::JoinHandle;

use crate::{error::ProtocolError, peers::PeerInfo, protocol::ProtocolHandler};

struct Registered {
    handler: Arc<dyn ProtocolHandler>,
    stream_task: Option<JoinHandle<()>>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(task) = self.stream_task.take() {
            task.abort();
        }
    }
}

/// Registered handlers by protocol id.
#[derive(Default)]
pub(crate) struct HandlerRegistry {
    handlers: BTreeMap<String, Registered>,
}

impl HandlerRegistry {
    /// Whether a handler serves `protocol`.
    pub fn contains(&self, protocol: &str) -> bool {
        self.handlers.contains_key(protocol)
    }

    /// Adds `handler` under its protocol id, with the task that accepts its
    /// streams, if any. A second handler for one id is refused (and its
    /// task aborted).
    pub fn insert(
        &mut self,
        handler: Arc<dyn ProtocolHandler>,
        stream_task: Option<JoinHandle<()>>,
    ) -> Result<(), ProtocolError> {
        let entry = Registered {
            handler,
            stream_task,
        };
        let id = entry.handler.protocol_id().to_string();
        if self.handlers.contains_key(&id) {
            return Err(ProtocolError::HandlerExists(id));
        }
        self.handlers.insert(id, entry);
        Ok(())
    }

    /// Removes the handler of `protocol` (ending its stream task).
    pub fn remove(&mut self, protocol: &str) -> Result<(), ProtocolError> {
        match self.handlers.remove(protocol) {
            Some(_) => Ok(()),
            None => Err(ProtocolError::NoHandler(protocol.to_string())),
        }
    }

    /// Removes every handler.
    pub fn clear(&mut self) {
        self.handlers.clear();
    }

    /// The handler of `protocol`.
    pub fn get(&self, protocol: &str) -> Option<Arc<dyn ProtocolHandler>> {
        self.handlers.get(protocol).map(|r| r.handler.clone())
    }

    /// Registered protocol ids, sorted.
    pub fn protocols(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    fn each(&self) -> impl Iterator<Item = &dyn ProtocolHandler> {
        self.handlers.values().map(|r| r.handler.as_ref())
    }

    /// Tells every handler that `peer` was found at `addrs`.
    pub fn peer_discovered(&self, peer: PeerId, addrs: &[Multiaddr]) {
        self.each().for_each(|h| h.on_peer_discovered(peer, addrs));
    }

    /// Tells every handler that `peer` connected.
    pub fn peer_connected(&self, peer: &PeerInfo) {
        self.each().for_each(|h| h.on_peer_connected(peer));
    }

    /// Tells every handler that `peer` disconnected.
    pub fn peer_disconnected(&self, peer: PeerId) {
        self.each().for_each(|h| h.on_peer_disconnected(peer));
    }

    /// Tells every handler what changed about `peer`.
    pub fn peer_updated(&self, peer: &PeerInfo) {
        self.each().for_each(|h| h.on_peer_updated(peer));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;
    use crate::protocol::HandlerError;

    /// Records the callbacks it receives.
    struct Recorder {
        id: &'static str,
        seen: Mutex<Vec<String>>,
    }

    impl Recorder {
        fn new(id: &'static str) -> Arc<Self> {
            Arc::new(Self {
                id,
                seen: Mutex::new(Vec::new()),
            })
        }
        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
        fn note(&self, what: String) {
            self.seen.lock().unwrap().push(what);
        }
    }

    impl ProtocolHandler for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn protocol_id(&self) -> &str {
            self.id
        }
        fn handle_message(
            &self,
            _: PeerId,
            _: Vec<u8>,
        ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn on_peer_discovered(&self, peer: PeerId, addrs: &[Multiaddr]) {
            self.note(format!("discovered {peer} at {}", addrs.len()));
        }
        fn on_peer_connected(&self, peer: &PeerInfo) {
            self.note(format!("connected {}", peer.peer_id));
        }
        fn on_peer_disconnected(&self, peer: PeerId) {
            self.note(format!("disconnected {peer}"));
        }
        fn on_peer_updated(&self, peer: &PeerInfo) {
            self.note(format!("updated {}", peer.peer_id));
        }
    }

    fn info(peer: PeerId) -> PeerInfo {
        let endpoint = libp2p::core::ConnectedPoint::Dialer {
            address: "/ip4/10.0.0.1/tcp/1".parse().unwrap(),
            role_override: libp2p::core::Endpoint::Dialer,
            port_use: libp2p::core::transport::PortUse::Reuse,
        };
        let mut state = crate::peers::PeerState::default();
        state.connections.push((
            libp2p::swarm::ConnectionId::new_unchecked(1),
            crate::peers::ConnectionInfo::new(&endpoint),
        ));
        state.info(peer, None, Default::default()).unwrap()
    }

    #[test]
    fn every_handler_hears_every_peer_callback() {
        let mut registry = HandlerRegistry::default();
        let (a, b) = (Recorder::new("/a"), Recorder::new("/b"));
        registry.insert(a.clone(), None).unwrap();
        registry.insert(b.clone(), None).unwrap();
        let peer = PeerId::random();
        registry.peer_discovered(peer, &["/ip4/10.0.0.1/tcp/1".parse().unwrap()]);
        registry.peer_connected(&info(peer));
        registry.peer_updated(&info(peer));
        registry.peer_disconnected(peer);
        let expected = [
            format!("discovered {peer} at 1"),
            format!("connected {peer}"),
            format!("updated {peer}"),
            format!("disconnected {peer}"),
        ];
        assert_eq!(a.seen(), expected);
        assert_eq!(b.seen(), expected);

        registry.remove("/a").unwrap();
        registry.peer_disconnected(peer);
        assert_eq!(a.seen().len(), 4, "a removed handler hears nothing more");
        assert_eq!(b.seen().len(), 5);
    }

    #[test]
    fn one_handler_per_protocol_and_removal_of_unknown_ones_fails() {
        let mut registry = HandlerRegistry::default();
        registry.insert(Recorder::new("/a"), None).unwrap();
        assert!(matches!(
            registry.insert(Recorder::new("/a"), None),
            Err(ProtocolError::HandlerExists(id)) if id == "/a"
        ));
        assert!(matches!(registry.remove("/b"), Err(ProtocolError::NoHandler(id)) if id == "/b"));
        assert_eq!(registry.protocols(), ["/a"]);
        assert!(registry.get("/a").is_some() && registry.get("/b").is_none());
        registry.remove("/a").unwrap();
        assert!(!registry.contains("/a"));
    }

    /// A task that runs until aborted; the receiver closes when it ends.
    fn endless_task() -> (JoinHandle<()>, tokio::sync::oneshot::Receiver<()>) {
        let (alive, ended) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _alive = alive;
            futures::future::pending::<()>().await
        });
        (task, ended)
    }

    #[tokio::test]
    async fn removing_or_refusing_a_handler_ends_its_stream_task() {
        let mut registry = HandlerRegistry::default();
        let (task, mut ended) = endless_task();
        registry.insert(Recorder::new("/s"), Some(task)).unwrap();
        tokio::task::yield_now().await;
        assert!(matches!(
            ended.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ));
        registry.remove("/s").unwrap();
        assert!(ended.await.is_err(), "the task ended without a word");

        registry.insert(Recorder::new("/t"), None).unwrap();
        let (task, ended) = endless_task();
        assert!(registry.insert(Recorder::new("/t"), Some(task)).is_err());
        assert!(
            ended.await.is_err(),
            "a refused handler's task is ended too"
        );

        let (task, ended) = endless_task();
        registry.insert(Recorder::new("/u"), Some(task)).unwrap();
        registry.clear();
        assert!(ended.await.is_err(), "clearing ends every task");
    }
}
