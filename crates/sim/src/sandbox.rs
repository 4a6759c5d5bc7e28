//! The local sandbox: extra peers in this process, on loopback, so one
//! person can try everything alone (the desktop app starts them). They chat
//! on a gossip topic so the charts move, and they stop with their owner.

use std::time::Duration;

use conclave_node::{identity::NodeIdentity, Multiaddr, Node, NodeConfig, NodeError, NodeHandle};
use tokio::task::JoinHandle;

/// Topic the sandbox peers publish on (the main node subscribes to it).
pub const SANDBOX_TOPIC: &str = "conclave-sandbox";
/// Most peers one request starts.
pub const MAX_PER_REQUEST: u32 = 32;
/// Most sandbox peers at once.
pub const MAX_PEERS: usize = 128;
/// How often each sandbox peer publishes.
const CHAT_INTERVAL: Duration = Duration::from_secs(2);

/// Why sandbox peers did not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A request for no peers or too many at once.
    #[error("start between 1 and {MAX_PER_REQUEST} sandbox peers at a time")]
    Count,
    /// The sandbox is full.
    #[error(
        "the sandbox holds at most {MAX_PEERS} peers ({running} running): stop the sandbox first"
    )]
    Full {
        /// Peers running now.
        running: usize,
    },
    /// A peer started without a listen address.
    #[error("a sandbox peer has no listen address")]
    NoAddress,
    /// The node refused (the main node stopped, a port could not be bound).
    #[error(transparent)]
    Node(#[from] NodeError),
}

struct SandboxPeer {
    handle: NodeHandle,
    addr: Multiaddr,
    chatter: JoinHandle<()>,
}

/// The sandbox's peers.
#[derive(Default)]
pub struct Sandbox {
    peers: Vec<SandboxPeer>,
}

/// The config of a sandbox peer: loopback QUIC and TCP on free ports, no
/// mDNS, so nothing leaves the machine.
pub fn peer_config() -> NodeConfig {
    NodeConfig {
        max_connections: 16,
        ..NodeConfig::loopback()
    }
}

impl Sandbox {
    /// Starts `count` peers and connects `main` to each.
    pub async fn start(&mut self, main: &NodeHandle, count: u32) -> Result<(), SandboxError> {
        if count == 0 || count > MAX_PER_REQUEST {
            return Err(SandboxError::Count);
        }
        if self.peers.len() + count as usize > MAX_PEERS {
            return Err(SandboxError::Full {
                running: self.peers.len(),
            });
        }
        main.subscribe(SANDBOX_TOPIC).await?;
        for _ in 0..count {
            let handle = Node::start(peer_config(), NodeIdentity::generate()).await?;
            let addr = handle
                .listen_addrs()
                .await?
                .into_iter()
                .next()
                .ok_or(SandboxError::NoAddress)?;
            handle.subscribe(SANDBOX_TOPIC).await?;
            let chatter = tokio::spawn(chat(handle.clone()));
            main.connect(addr.clone()).await?;
            self.peers.push(SandboxPeer {
                handle,
                addr,
                chatter,
            });
        }
        tracing::info!(
            started = count,
            running = self.peers.len(),
            "sandbox peers started"
        );
        Ok(())
    }

    /// Reconnects a restarted main node to the running sandbox peers.
    pub async fn rejoin(&self, main: &NodeHandle) {
        if self.peers.is_empty() {
            return;
        }
        if let Err(e) = main.subscribe(SANDBOX_TOPIC).await {
            tracing::warn!(%e, "cannot subscribe to the sandbox topic");
        }
        for peer in &self.peers {
            if let Err(e) = main.connect(peer.addr.clone()).await {
                tracing::warn!(addr = %peer.addr, %e, "cannot reconnect to a sandbox peer");
            }
        }
    }

    /// Stops every sandbox peer.
    pub async fn stop_all(&mut self) {
        for peer in self.peers.drain(..) {
            peer.chatter.abort();
            let _ = peer.handle.stop().await;
        }
    }

    /// The peer ids of the peers running now.
    pub fn peer_ids(&self) -> Vec<String> {
        self.peers
            .iter()
            .map(|p| p.handle.peer_id().to_string())
            .collect()
    }
}

/// Publishes a short message every [`CHAT_INTERVAL`] (errors such as "no
/// peers on the topic yet" are expected and ignored).
async fn chat(handle: NodeHandle) {
    let mut ticker = tokio::time::interval(CHAT_INTERVAL);
    let mut n: u64 = 0;
    loop {
        ticker.tick().await;
        n += 1;
        let text = format!("sandbox {} says hello #{n}", handle.peer_id());
        if handle
            .broadcast(SANDBOX_TOPIC, text.into_bytes())
            .await
            .is_err()
            && !handle.is_running()
        {
            return;
        }
    }
}
