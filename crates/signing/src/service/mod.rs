//! The signing service: runs sessions over a running node.
//!
//! [`SigningService::start`] registers the session protocol on the node,
//! opens the ledger, and spawns the actor that owns every session's state
//! machine. It returns a cloneable [`SigningHandle`] — what the daemon, the
//! CLI and the desktop app call — whose methods send commands to the actor
//! (each with a oneshot reply) and do their slow I/O (key store, DHT,
//! dialling) in the caller's task, never on the actor.

mod actor;
mod handler;
mod resolve;
pub mod wire;

use std::{path::PathBuf, sync::Arc, time::Duration};
use zeroize::Zeroizing;

use conclave_node::{error::ProtocolError, NodeError, NodeHandle, PeerId};
use rand::RngCore;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    advert::{
        SignerAdvert, SignerRecord, MAX_ADVERT_BYTES, MAX_KEYS_PER_PEER, SIGNER_RESOURCE,
        SIGNER_TOPIC,
    },
    api::{CreateResponse, InvitationInfo, SessionStatus, SigningEvent},
    keys::{run_blocking, KeyError, KeyInfo, KeyStore, KeyStoreError, SecretKey, SignerKey},
    ledger::LedgerError,
    proto::{
        participant::JoinError, InvalidSessionId, Payload, SessionId, SessionSpec, SignerEntry,
        SpecError, Timeouts,
    },
    psbt::PsbtError,
};

pub use wire::PROTOCOL;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// Where the ledger lives (per profile).
    pub data_dir: PathBuf,
    /// Phase timeouts of the sessions this node creates.
    pub timeouts: Timeouts,
    /// Join every valid invitation without asking (off by default: joining
    /// is a person's decision).
    pub auto_join: bool,
    /// Lifetime of the signer records announced in the DHT (re-announced
    /// at half of it).
    pub advert_ttl: Duration,
    /// How long `create` looks for the peers behind the signer keys.
    pub resolve_timeout: Duration,
    /// How long to wait for a connection and the peer's PQ identity record.
    pub connect_timeout: Duration,
    /// Capacity of the event channel (slower subscribers get `Lagged`).
    pub event_buffer: usize,
    /// Sessions in progress at once (created and joined).
    pub max_active_sessions: usize,
    /// Of those, slots invitations from other peers can never take: the
    /// node's own sessions always find room.
    pub reserved_for_own_sessions: usize,
    /// Sessions in progress at once from any one remote coordinator, so a
    /// single peer cannot fill the invitation slots.
    pub max_invitations_per_coordinator: usize,
    /// Finished sessions kept in memory (older ones are in the ledger).
    pub max_finished_in_memory: usize,
}

impl SigningConfig {
    /// Defaults, with the ledger in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            timeouts: Timeouts::default(),
            auto_join: false,
            advert_ttl: Duration::from_secs(3600),
            resolve_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(15),
            event_buffer: 256,
            max_active_sessions: 64,
            reserved_for_own_sessions: 16,
            max_invitations_per_coordinator: 4,
            max_finished_in_memory: 256,
        }
    }
}

/// Why a signing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The node refused or failed.
    #[error("node: {0}")]
    Node(#[from] NodeError),
    /// The key store failed.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// A key could not be parsed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The ledger failed or refused.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The session is not valid.
    #[error("invalid session: {0}")]
    Spec(#[from] SpecError),
    /// Joining failed.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The PSBT cannot be signed.
    #[error(transparent)]
    Psbt(#[from] PsbtError),
    /// Not a session id.
    #[error(transparent)]
    SessionId(#[from] InvalidSessionId),
    /// No such session here.
    #[error("no session {0} here; pick one this node knows from the sessions list (musig2 list)")]
    UnknownSession(String),
    /// Nobody advertises a key.
    #[error("no peer advertises signing key {0}: is the signer's node running, reachable and advertising?")]
    UnknownSigner(SignerKey),
    /// A peer could not be reached or set up for sealing.
    #[error("cannot reach {peer}: {reason}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A key is held by nobody here.
    #[error("this node does not hold signing key {0}")]
    NotOurKey(SignerKey),
    /// Too many sessions at once.
    #[error("{0} sessions already in progress; wait for one to finish")]
    Busy(usize),
    /// The service stopped.
    #[error("the signing service has stopped")]
    Stopped,
}

/// Requests to the actor.
pub(crate) enum Command {
    Create {
        spec: SessionSpec,
        reply: oneshot::Sender<Result<(), SigningError>>,
    },
    Lookup {
        keys: Vec<SignerKey>,
        reply: oneshot::Sender<Vec<Option<SignerRecord>>>,
    },
    Remember {
        records: Vec<SignerRecord>,
    },
    Invitations {
        reply: oneshot::Sender<Vec<InvitationInfo>>,
    },
    PrepareJoin {
        id: SessionId,
        reply: oneshot::Sender<Result<JoinTicket, SigningError>>,
    },
    Join {
        id: SessionId,
        secrets: Vec<SecretKey>,
        entropy: Zeroizing<[u8; 32]>,
        reply: oneshot::Sender<Result<(), SigningError>>,
    },
    Decline {
        id: SessionId,
        reason: String,
        reply: oneshot::Sender<Result<(), SigningError>>,
    },
    Status {
        id: SessionId,
        reply: oneshot::Sender<Option<SessionStatus>>,
    },
    List {
        reply: oneshot::Sender<Vec<SessionStatus>>,
    },
    KeysChanged {
        keys: Vec<SignerKey>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
}

/// What `join` needs before the actor can take the join.
pub(crate) struct JoinTicket {
    keys: Vec<SignerKey>,
    coordinator: PeerId,
    coordinator_addrs: Vec<conclave_node::Multiaddr>,
}

/// What the handle and the actor share.
pub(crate) struct Shared {
    node: NodeHandle,
    keys: Arc<dyn KeyStore>,
    config: SigningConfig,
    /// Weak, so that subscriptions end when the actor (which holds the only
    /// strong sender) stops.
    events: broadcast::WeakSender<SigningEvent>,
}

/// The signing service.
pub struct SigningService;

impl SigningService {
    /// Starts the service on `node` with keys from `keys`: opens the ledger
    /// in `config.data_dir` (aborting sessions a previous run left in
    /// progress), registers [`PROTOCOL`], subscribes to signer records, and
    /// announces this node's keys in the background.
    pub async fn start(
        node: NodeHandle,
        keys: Arc<dyn KeyStore>,
        config: SigningConfig,
    ) -> Result<SigningHandle, SigningError> {
        let (ledger, aborted) = crate::ledger::Ledger::open(&config.data_dir)?;
        for id in &aborted {
            tracing::warn!(session = %id, "session left in progress by the previous run: aborted");
        }
        let our_keys = run_blocking(&keys, |k| k.list()).await?;
        let (commands_tx, commands) = mpsc::channel(64);
        let (inbound_tx, inbound) = mpsc::channel(256);
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let shared = Arc::new(Shared {
            node: node.clone(),
            keys,
            config,
            events: events.downgrade(),
        });
        let node_events = node.subscribe_events();
        node.subscribe(SIGNER_TOPIC).await?;
        node.register_handler(Arc::new(handler::SessionHandler {
            node: node.clone(),
            inbound: inbound_tx,
        }))
        .await?;
        let actor = actor::Actor::new(
            shared.clone(),
            events,
            ledger,
            our_keys,
            commands,
            commands_tx.downgrade(),
            inbound,
            node_events,
        );
        tokio::spawn(actor.run());
        let handle = SigningHandle {
            shared,
            commands: commands_tx,
        };
        let background = handle.clone();
        tokio::spawn(async move {
            if let Err(e) = background.advertise().await {
                tracing::warn!(%e, "signer keys not advertised");
            }
        });
        Ok(handle)
    }

    /// Starts the service on `node` with the signing keys in the OS
    /// keychain under `namespace` (see
    /// `conclave_node::identity::KeySource::secrets_namespace`).
    pub async fn start_with_keychain(
        node: NodeHandle,
        namespace: &str,
        config: SigningConfig,
    ) -> Result<SigningHandle, SigningError> {
        let keys = crate::keys::KeychainKeyStore::open_in_background(namespace).await?;
        Self::start(node, Arc::new(keys), config).await
    }
}

/// A cloneable handle to a running signing service.
#[derive(Clone)]
pub struct SigningHandle {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

impl SigningHandle {
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SigningError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| SigningError::Stopped)?;
        answer.await.map_err(|_| SigningError::Stopped)
    }

    /// Whether the service still runs: it ends when stopped, when its node
    /// stops, or if it fails.
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Resolves once the service has ended.
    pub async fn ended(&self) {
        self.commands.closed().await
    }

    /// The node the service runs on.
    pub fn node(&self) -> &NodeHandle {
        &self.shared.node
    }

    /// The service's configuration.
    pub fn config(&self) -> &SigningConfig {
        &self.shared.config
    }

    /// Subscribes to session events (invitations, phases, results).
    pub fn subscribe(&self) -> SigningEvents {
        let receiver = match self.shared.events.upgrade() {
            Some(sender) => sender.subscribe(),
            // Stopped: a subscription that ends at once.
            None => broadcast::channel(1).1,
        };
        SigningEvents { receiver }
    }

    // ----- keys (`conclavectl wallet new|import|list`) -----------------

    /// The signing keys this node holds.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, SigningError> {
        let keys = run_blocking(&self.shared.keys, |k| k.list()).await?;
        Ok(keys.into_iter().map(KeyInfo::from).collect())
    }

    /// Generates a key, stores it and advertises it.
    pub async fn new_key(&self) -> Result<KeyInfo, SigningError> {
        self.store_key(SecretKey::generate()).await
    }

    /// Imports a secret key (64 hex characters), stores it and advertises it.
    pub async fn import_key(&self, secret_hex: &str) -> Result<KeyInfo, SigningError> {
        self.store_key(SecretKey::from_hex(secret_hex)?).await
    }

    async fn store_key(&self, secret: SecretKey) -> Result<KeyInfo, SigningError> {
        let key = run_blocking(&self.shared.keys, move |k| k.insert(&secret)).await?;
        if let Err(e) = self.advertise().await {
            tracing::warn!(%e, %key, "new key stored but not advertised yet");
        }
        Ok(KeyInfo::from(key))
    }

    /// Announces this node's signing keys: a signer record per key in the
    /// DHT and the whole set on the gossip topic. Runs at start, after a
    /// key change and periodically; call it to refresh at once.
    pub async fn advertise(&self) -> Result<(), SigningError> {
        let node = &self.shared.node;
        let keys = run_blocking(&self.shared.keys, |k| k.list()).await?;
        let _ = self
            .commands
            .send(Command::KeysChanged { keys: keys.clone() })
            .await;
        let addrs = node.listen_addrs().await?;
        let peer = node.peer_id();
        let mut records = Vec::with_capacity(keys.len());
        for key in keys {
            let secret = run_blocking(&self.shared.keys, move |k| k.secret(&key))
                .await?
                .ok_or(SigningError::NotOurKey(key))?;
            records.push(SignerRecord::sign(&secret, peer, addrs.clone()));
        }
        for record in &records {
            let data = serde_json::to_value(record).expect("records serialise");
            node.announce_resource(
                SIGNER_RESOURCE,
                &record.key.to_hex(),
                data,
                self.shared.config.advert_ttl,
            )
            .await?;
        }
        // Peers read adverts of at most this many keys and bytes; the keys
        // left out are found through their DHT records.
        records.truncate(MAX_KEYS_PER_PEER);
        let mut advert;
        loop {
            advert = serde_json::to_vec(&SignerAdvert {
                records: records.clone(),
            })
            .expect("adverts serialise");
            if advert.len() <= MAX_ADVERT_BYTES || records.pop().is_none() {
                break;
            }
        }
        if let Err(e) = node.broadcast(SIGNER_TOPIC, advert).await {
            // No subscribed peers yet: the DHT records still answer.
            tracing::debug!(%e, "signer advert not gossiped");
        }
        Ok(())
    }

    // ----- sessions (`conclavectl musig2 ...`) -------------------------

    /// Creates a session signed by `signers` (any order; sorted here) over
    /// `payload`, finds and connects the peers behind the keys, and invites
    /// them. This node's own keys among the signers join at once (creating
    /// is consent). Returns the session id.
    pub async fn create(
        &self,
        signers: &[SignerKey],
        payload: Payload,
    ) -> Result<CreateResponse, SigningError> {
        let mut keys = signers.to_vec();
        keys.sort();
        keys.dedup();
        if keys.len() != signers.len() || keys.is_empty() {
            return Err(SpecError::SignerCount(keys.len()).into());
        }
        let peers = resolve::resolve(self, &keys).await?;
        let node = &self.shared.node;
        let me = node.peer_id();
        let mut distinct: Vec<(PeerId, Vec<conclave_node::Multiaddr>)> = Vec::new();
        for (peer, addrs) in &peers {
            if *peer != me && !distinct.iter().any(|(p, _)| p == peer) {
                distinct.push((*peer, addrs.clone()));
            }
        }
        futures::future::try_join_all(distinct.iter().map(|(peer, addrs)| {
            resolve::ensure_ready(node, *peer, addrs, self.shared.config.connect_timeout)
        }))
        .await?;
        let spec = SessionSpec {
            session_id: SessionId::random(),
            coordinator: me,
            coordinator_addrs: node.listen_addrs().await?,
            signers: keys
                .iter()
                .zip(&peers)
                .map(|(key, (peer, _))| SignerEntry {
                    key: *key,
                    peer: *peer,
                })
                .collect(),
            payload,
            timeouts: self.shared.config.timeouts,
        };
        let session_id = spec.session_id;
        self.request(|reply| Command::Create { spec, reply })
            .await??;
        Ok(CreateResponse {
            session_id: session_id.to_string(),
        })
    }

    /// Invitations waiting for this node's decision.
    pub async fn invitations(&self) -> Result<Vec<InvitationInfo>, SigningError> {
        self.request(|reply| Command::Invitations { reply }).await
    }

    /// Joins an invitation with this node's keys in it (an explicit act).
    pub async fn join(&self, session_id: &str) -> Result<(), SigningError> {
        let id: SessionId = session_id.parse()?;
        let ticket = self
            .request(|reply| Command::PrepareJoin { id, reply })
            .await??;
        let mut secrets = Vec::with_capacity(ticket.keys.len());
        for key in ticket.keys {
            let secret = run_blocking(&self.shared.keys, move |k| k.secret(&key))
                .await?
                .ok_or(SigningError::NotOurKey(key))?;
            secrets.push(secret);
        }
        resolve::ensure_ready(
            &self.shared.node,
            ticket.coordinator,
            &ticket.coordinator_addrs,
            self.shared.config.connect_timeout,
        )
        .await?;
        let mut entropy = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut entropy[..]);
        self.request(|reply| Command::Join {
            id,
            secrets,
            entropy,
            reply,
        })
        .await?
    }

    /// Declines an invitation, or withdraws from a session (which fails it).
    pub async fn decline(&self, session_id: &str, reason: &str) -> Result<(), SigningError> {
        let id: SessionId = session_id.parse()?;
        let reason = reason.to_string();
        self.request(|reply| Command::Decline { id, reason, reply })
            .await?
    }

    /// A session's status (live, or from the ledger's history).
    pub async fn status(&self, session_id: &str) -> Result<SessionStatus, SigningError> {
        let id: SessionId = session_id.parse()?;
        self.request(|reply| Command::Status { id, reply })
            .await?
            .ok_or_else(|| SigningError::UnknownSession(session_id.to_string()))
    }

    /// Every session known here, oldest first (live ones and history).
    pub async fn list(&self) -> Result<Vec<SessionStatus>, SigningError> {
        self.request(|reply| Command::List { reply }).await
    }

    /// Stops the service: aborts the sessions in progress (telling their
    /// peers), records them as aborted, and unregisters the protocol.
    pub async fn stop(&self) -> Result<(), SigningError> {
        self.request(|reply| Command::Stop { reply }).await?;
        match self.shared.node.unregister_handler(PROTOCOL).await {
            Ok(()) | Err(NodeError::Protocol(ProtocolError::NoHandler(_)) | NodeError::Stopped) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A subscription to session events. A subscriber that falls behind gets a
/// [`SigningEvent::Lagged`] and continues with the newest events.
pub struct SigningEvents {
    receiver: broadcast::Receiver<SigningEvent>,
}

impl SigningEvents {
    /// The next event; `None` once the service has stopped.
    pub async fn recv(&mut self) -> Option<SigningEvent> {
        match self.receiver.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Some(SigningEvent::Lagged { missed })
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
