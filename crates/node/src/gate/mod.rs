//! Who may connect: allow and deny lists by PeerId (persisted), a private
//! mode that admits only allow-listed peers, and a per-peer limit on new
//! connections per second. Message rate limits live in [`rate`].

pub mod rate;

use std::{
    collections::{BTreeSet, VecDeque},
    convert::Infallible,
    path::{Path, PathBuf},
    task::{Context, Poll, Waker},
    time::Instant,
};

use libp2p::{
    core::{transport::PortUse, Endpoint},
    swarm::{
        dummy, CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
        THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};
use serde::{Deserialize, Serialize};

use self::rate::KeyedLimiter;

/// Peers tracked by the connection-rate limiter.
const MAX_RATE_KEYS: usize = 4096;

/// Errors saving or loading the policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file could not be read or written.
    #[error("policy file {path}: {reason}")]
    File {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
    /// The policy file is not a policy. The node does not start: guessing
    /// would open a private node to everyone.
    #[error(
        "policy file {path} is damaged ({reason}), so the node does not start: its allow list, \
         deny list and private mode are unknown. Restore the file from a backup, or delete it \
         to start with no lists and private mode off (every peer admitted)"
    )]
    Corrupt {
        /// File.
        path: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// The connection policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Peers always admitted (and, in private mode, the only ones).
    pub allow: BTreeSet<PeerId>,
    /// Peers never admitted.
    pub deny: BTreeSet<PeerId>,
    /// Admit only allow-listed peers.
    pub private: bool,
}

impl Policy {
    /// Loads a policy file; a missing file is the empty policy. A file that
    /// exists but does not parse (an empty one, say) is an error, never the
    /// empty policy: that would admit everyone the file keeps out.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PolicyError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(PolicyError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Saves atomically and durably, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), PolicyError> {
        let bytes = serde_json::to_vec_pretty(self).expect("policies serialise");
        crate::state_file::write_atomic(path, &bytes).map_err(|e| PolicyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Why `peer` is refused, if it is.
    pub fn refusal(&self, peer: &PeerId) -> Option<&'static str> {
        if self.deny.contains(peer) {
            Some("peer is on the deny list")
        } else if self.private && !self.allow.contains(peer) {
            Some("private mode: peer is not on the allow list")
        } else {
            None
        }
    }
}

/// Refusal reason handed to libp2p.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(&'static str);

/// The gate behaviour.
pub struct Behaviour {
    policy: Policy,
    file: Option<PathBuf>,
    new_connections: KeyedLimiter<PeerId>,
    to_close: VecDeque<PeerId>,
    waker: Option<Waker>,
    refused: u64,
}

impl Behaviour {
    /// A gate with `policy`, saved to `file` on change, admitting at most
    /// `connections_per_sec` new connections per peer.
    pub fn new(policy: Policy, file: Option<PathBuf>, connections_per_sec: f64) -> Self {
        Self {
            policy,
            file,
            new_connections: KeyedLimiter::new(connections_per_sec, MAX_RATE_KEYS),
            to_close: VecDeque::new(),
            waker: None,
            refused: 0,
        }
    }

    /// The current policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Changes the policy, saves it, and closes connections it now refuses.
    pub fn update(
        &mut self,
        change: impl FnOnce(&mut Policy),
        connected: impl Iterator<Item = PeerId>,
    ) -> Result<(), PolicyError> {
        let mut next = self.policy.clone();
        change(&mut next);
        if let Some(file) = &self.file {
            next.save(file)?;
        }
        self.policy = next;
        for peer in connected {
            if self.policy.refusal(&peer).is_some() {
                self.to_close.push_back(peer);
            }
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        Ok(())
    }

    fn check(&mut self, peer: &PeerId, new_connection: bool) -> Result<(), ConnectionDenied> {
        let refusal = self.policy.refusal(peer).or_else(|| {
            (new_connection && !self.new_connections.allow(*peer, 1.0, Instant::now()))
                .then_some("too many new connections per second from this peer")
        });
        match refusal {
            Some(reason) => {
                self.refused += 1;
                Err(ConnectionDenied::new(Refused(reason)))
            }
            None => Ok(()),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(&peer, true)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            self.check(&peer, false)?;
        }
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(&peer, false)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some(peer_id) = self.to_close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::All,
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_private_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.json");
        let (friend, stranger, foe) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut gate = Behaviour::new(Policy::default(), Some(file.clone()), 10.0);
        gate.update(
            |p| {
                p.deny.insert(foe);
            },
            [foe, stranger].into_iter(),
        )
        .unwrap();
        assert!(gate.check(&foe, false).is_err());
        assert!(gate.check(&stranger, false).is_ok());
        assert_eq!(
            gate.to_close.iter().collect::<Vec<_>>(),
            vec![&foe],
            "connected foe is closed"
        );

        gate.update(
            |p| {
                p.private = true;
                p.allow.insert(friend);
            },
            std::iter::empty(),
        )
        .unwrap();
        assert!(gate.check(&stranger, false).is_err());
        assert!(gate.check(&friend, false).is_ok());

        let loaded = Policy::load(&file).unwrap();
        assert_eq!(&loaded, gate.policy(), "saved and restored");
        assert!(Policy::load(&dir.path().join("none.json")).unwrap() == Policy::default());
        std::fs::write(&file, "{ not json").unwrap();
        assert!(Policy::load(&file).is_err());
    }

    #[test]
    fn a_saved_policy_is_owner_only_and_a_damaged_one_is_never_the_open_policy() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.json");
        let private = Policy {
            private: true,
            ..Policy::default()
        };
        private.save(&file).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for damaged in [&b""[..], b"{\"private\": tru", b"\0\0\0\0"] {
            std::fs::write(&file, damaged).unwrap();
            let e = Policy::load(&file).unwrap_err();
            assert!(matches!(e, PolicyError::Corrupt { .. }), "{e}");
            let text = e.to_string();
            assert!(text.starts_with(&format!("policy file {} is damaged", file.display())));
            assert!(
                text.contains("Restore the file from a backup, or delete it"),
                "{text}"
            );
        }
    }

    #[test]
    fn new_connections_are_rate_limited_per_peer() {
        let mut gate = Behaviour::new(Policy::default(), None, 3.0);
        let peer = PeerId::random();
        let admitted = (0..10).filter(|_| gate.check(&peer, true).is_ok()).count();
        assert_eq!(admitted, 3);
        assert!(gate.check(&PeerId::random(), true).is_ok());
        assert_eq!(gate.refused(), 7);
    }
}
