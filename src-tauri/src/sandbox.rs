//! The local sandbox: extra peers in this process, on loopback, so one
//! person can try everything alone. They chat on a gossip topic so the
//! charts move, and they stop with the app.

use std::time::Duration;

use conclave_node::{identity::NodeIdentity, Multiaddr, Node, NodeConfig, NodeHandle};
use serde::Serialize;
use specta::Type;
use tokio::task::JoinHandle;

use crate::error::{CommandError, CommandResult, ErrorCode};

/// Topic the sandbox peers publish on (the main node subscribes to it).
pub const SANDBOX_TOPIC: &str = "conclave-sandbox";
/// Most peers one request starts.
pub const MAX_PER_REQUEST: u32 = 32;
/// Most sandbox peers at once.
pub const MAX_PEERS: usize = 128;
/// How often each sandbox peer publishes.
const CHAT_INTERVAL: Duration = Duration::from_secs(2);

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

/// What the sandbox runs, for the UI.
#[derive(Debug, Clone, Serialize, Type, PartialEq)]
pub struct SandboxView {
    /// Sandbox peers running.
    pub running: u32,
    /// Their peer ids.
    pub peer_ids: Vec<String>,
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
    pub async fn start(&mut self, main: &NodeHandle, count: u32) -> CommandResult<SandboxView> {
        if count == 0 || count > MAX_PER_REQUEST {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                format!("start between 1 and {MAX_PER_REQUEST} sandbox peers at a time"),
            ));
        }
        if self.peers.len() + count as usize > MAX_PEERS {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                format!(
                    "the sandbox holds at most {MAX_PEERS} peers ({} running)",
                    self.peers.len()
                ),
            )
            .with_hint("stop the sandbox first"));
        }
        main.subscribe(SANDBOX_TOPIC).await?;
        for _ in 0..count {
            let handle = Node::start(peer_config(), NodeIdentity::generate()).await?;
            let addr = handle
                .listen_addrs()
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    CommandError::new(ErrorCode::Internal, "sandbox peer has no address")
                })?;
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
        Ok(self.view())
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
    pub async fn stop_all(&mut self) -> SandboxView {
        for peer in self.peers.drain(..) {
            peer.chatter.abort();
            let _ = peer.handle.stop().await;
        }
        self.view()
    }

    /// What runs now.
    pub fn view(&self) -> SandboxView {
        SandboxView {
            running: u32::try_from(self.peers.len()).unwrap_or(u32::MAX),
            peer_ids: self
                .peers
                .iter()
                .map(|p| p.handle.peer_id().to_string())
                .collect(),
        }
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
