//! The actor: one task owns every room, card book, task machine and call
//! in flight. Commands come from the handle, from the direct-protocol
//! handler and from the tasks it spawns (tool runs, sends); node events
//! bring gossip and departures; one timer wakes the proposer machines.
//! Nothing here waits on the network: sends go to per-peer queues (so one
//! peer's messages keep their order) and tool runs to tasks of their own.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use conclave_node::{
    clock::unix_ms, store::Database, HandlerError, NodeEvent, NodeHandle, ProtocolHandler,
};
use futures::{future::BoxFuture, FutureExt};
use libp2p_identity::PeerId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{
    store::{RoomsStore, StoredRoom},
    tools::{self, card_of, LocalTools, ToolInfo},
    wire::{self, CardAnnouncement, Gossip, Invitation, Reply as WireReply, Request},
    AgentInfo, LogLine, PendingApproval, Proposal, Reply, RoomInfo, RoomsConfig, RoomsError,
    RoomsHandle, TaskView, CARD_RESOURCE, DHT_TTL, ROOM_RESOURCE, SKILL_RESOURCE_PREFIX,
};
use crate::{
    a2a::{AgentCard, Artifact, JsonBytes, Message, Part, Role as A2aRole},
    card::{CardBook, SignedCard},
    exec::mcp::Progress,
    ids::{random_nonce, RoomId, TaskId},
    record::{EquivocationProof, TaskRecord},
    reputation::Reputation,
    room::{
        Membership, MembershipToken, Policy, Revocation, Role, Roles, RoomDescriptor, RoomError,
    },
    statement::{Statement, StatementSigner},
    task::{
        executor::ExecutorPhase, Action, Bid, Entry, EntryBody, Executor, Phase, Proposer, Report,
        RoomView, TaskMessage, TaskSpec, ENTRY_DOMAIN, PROPOSAL_DOMAIN,
    },
};

use super::signer::NodeSigner;

/// Commands waiting for the actor.
const COMMAND_QUEUE: usize = 1024;
/// Messages waiting to go to one peer.
const PEER_QUEUE: usize = 256;
/// Gossip messages waiting to be published.
const BROADCAST_QUEUE: usize = 1024;
/// Rooms one node is in.
pub const MAX_ROOMS: usize = 64;
/// Tasks followed at once (proposed, executed or observed); older ones
/// are let go (their records stay in the database).
pub const MAX_TASKS: usize = 1024;
/// Remote calls of ours in flight.
pub const MAX_CALLS_OUT: usize = 256;
/// Calls from one peer running at once here.
pub const MAX_CALLS_PER_PEER: usize = 8;
/// Calls from all peers running at once here.
pub const MAX_CALLS_IN: usize = 64;
/// Per-peer send queues kept.
const MAX_PEER_QUEUES: usize = 4096;
/// How often DHT announcements are renewed.
const DHT_RENEW: Duration = Duration::from_secs(600);
/// How long a tool's progress may be silent before the machine hears of it
/// (progress renews the lease; this bounds the messages per call).
const PROGRESS_CHANNEL: usize = 64;

pub(crate) enum RecordAnswer {
    Here(TaskRecord),
    AskProposer(PeerId),
}

// Commands live only on their way to the actor; boxing the large ones
// would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    CreateRoom {
        name: String,
        policy: Policy,
        reply: Reply<RoomId>,
    },
    JoinRoom {
        room: RoomId,
        invitation: Option<Vec<u8>>,
        descriptor: Option<Statement>,
        via: Option<PeerId>,
        reply: Reply<RoomInfo>,
    },
    Invite {
        room: RoomId,
        peer: PeerId,
        roles: Roles,
        valid_for: Duration,
        reply: Reply<Vec<u8>>,
    },
    Revoke {
        room: RoomId,
        peer: PeerId,
        reply: Reply<()>,
    },
    Rooms {
        reply: Reply<Vec<RoomInfo>>,
    },
    Card {
        reply: Reply<AgentCard>,
    },
    Agents {
        room: RoomId,
        reply: Reply<Vec<AgentInfo>>,
    },
    LocalTools {
        reply: Reply<Vec<ToolInfo>>,
    },
    Servers {
        reply: Reply<Vec<tools::ServerInfo>>,
    },
    Inventory {
        reply: Reply<Vec<tools::ToolSource>>,
    },
    Approvals {
        reply: Reply<Vec<PendingApproval>>,
    },
    StartCall {
        peer: PeerId,
        server: String,
        tool: String,
        arguments: Option<String>,
        timeout: Duration,
        progress: Option<mpsc::Sender<Progress>>,
        done: oneshot::Sender<Result<String, RoomsError>>,
        reply: Reply<u64>,
    },
    CancelCall {
        call: u64,
    },
    Propose {
        proposal: Proposal,
        reply: Reply<TaskId>,
    },
    Task {
        task: TaskId,
        reply: Reply<TaskView>,
    },
    Tasks {
        room: RoomId,
        reply: Reply<Vec<TaskView>>,
    },
    Record {
        task: TaskId,
        reply: Reply<RecordAnswer>,
    },
    KeepRecord {
        record: TaskRecord,
        reply: Reply<()>,
    },
    CancelTask {
        task: TaskId,
        reply: Reply<TaskView>,
    },
    Approve {
        task: TaskId,
        reply: Reply<()>,
    },
    DeclineRun {
        task: TaskId,
        reply: Reply<()>,
    },
    /// A direct request from a peer.
    Inbound {
        from: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<WireReply, String>>,
    },
    /// The tools were listed (at start, and after a server came back).
    ToolsListed(Vec<ToolInfo>),
    /// A send to a peer failed.
    SendFailed {
        to: PeerId,
        request: Box<Request>,
        reason: String,
    },
    /// Enqueue a message to a peer (from a spawned task).
    Forward {
        to: PeerId,
        request: Box<Request>,
    },
    /// An incoming call finished (its outcome was forwarded).
    InCallDone {
        from: PeerId,
        call: u64,
    },
    /// Progress of a tool run for a task.
    ExecProgress {
        task: TaskId,
        progress: Progress,
    },
    /// A tool run for a task ended.
    ExecDone {
        task: TaskId,
        attempt: u8,
        outcome: Result<Artifact, String>,
    },
}

/// The direct-protocol handler: hands requests to the actor.
struct Handler {
    commands: mpsc::Sender<Command>,
}

impl ProtocolHandler for Handler {
    fn name(&self) -> &str {
        "rooms"
    }

    fn protocol_id(&self) -> &str {
        wire::PROTOCOL
    }

    fn handle_message(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        let commands = self.commands.clone();
        async move {
            let request: Request =
                wire::decode(&payload).map_err(|e| HandlerError(e.to_string()))?;
            let (reply, rx) = oneshot::channel();
            commands
                .try_send(Command::Inbound {
                    from,
                    request,
                    reply,
                })
                .map_err(|_| HandlerError("busy: too many rooms messages in progress".into()))?;
            let answer = rx
                .await
                .map_err(|_| HandlerError("the rooms service stopped".into()))?;
            answer.map(|r| wire::encode(&r)).map_err(HandlerError)
        }
        .boxed()
    }
}

struct RoomState {
    membership: Membership,
    token: Option<Statement>,
    revocations: Vec<Statement>,
    cards: CardBook,
    /// Peers we sent our card to directly (bounded like the book).
    greeted: BTreeSet<PeerId>,
}

impl RoomState {
    fn stored(&self) -> StoredRoom {
        StoredRoom {
            descriptor: self.membership.descriptor_statement().clone(),
            token: self.token.clone(),
            revocations: self.revocations.clone(),
        }
    }

    fn info(&self, me: &PeerId, now: u64) -> RoomInfo {
        let d = self.membership.descriptor();
        RoomInfo {
            room_id: self.membership.id().to_string(),
            name: d.name.clone(),
            owner: d.owner.to_string(),
            policy: d.policy,
            agents: self.cards.cards().filter(|c| c.peer != *me).count(),
            roles: self.membership.roles_of(me, now),
        }
    }

    /// Whether `peer` takes part: it may observe, and in an open room its
    /// card was seen (or it is the owner).
    fn takes_part(&self, peer: &PeerId, now: u64) -> bool {
        if self.membership.check(peer, Role::Observe, now).is_err() {
            return false;
        }
        match self.membership.descriptor().policy {
            Policy::InviteOnly => true,
            Policy::Open => {
                self.cards.get(peer).is_some() || *peer == self.membership.descriptor().owner
            }
        }
    }
}

struct View<'a> {
    membership: &'a Membership,
    reputation: &'a Reputation,
}

impl RoomView for View<'_> {
    fn check(&self, peer: &PeerId, role: Role, now_ms: u64) -> Result<(), RoomError> {
        self.membership.check(peer, role, now_ms)
    }

    fn reputation(&self, peer: &PeerId, skill: &str) -> u16 {
        self.reputation.score(peer, skill)
    }
}

struct ProposedTask {
    room: RoomId,
    machine: Proposer,
    counted: bool,
}

struct ExecTask {
    room: RoomId,
    machine: Executor,
    tool: ToolInfo,
    cancel: CancellationToken,
}

/// Entries of a task seen from the outside (gossip, or fetched), by
/// sequence number; checked as a whole when the record is read.
struct ObservedTask {
    room: RoomId,
    proposer: PeerId,
    entries: BTreeMap<u64, Statement>,
    kept: bool,
}

struct OutCall {
    peer: PeerId,
    progress: Option<mpsc::Sender<Progress>>,
    done: oneshot::Sender<Result<String, RoomsError>>,
}

struct Actor {
    node: NodeHandle,
    me: PeerId,
    signer: Arc<dyn StatementSigner>,
    store: Option<RoomsStore>,
    config: RoomsConfig,
    tools: Arc<LocalTools>,
    tool_list: Vec<ToolInfo>,
    skills: BTreeMap<String, ToolInfo>,
    card: AgentCard,
    card_statement: Statement,
    card_seq: u64,
    rooms: BTreeMap<RoomId, RoomState>,
    proposed: BTreeMap<TaskId, ProposedTask>,
    executing: BTreeMap<TaskId, ExecTask>,
    observed: BTreeMap<TaskId, ObservedTask>,
    /// Task ids in the order they were first followed, to let the oldest go.
    followed: VecDeque<TaskId>,
    stored_tasks: BTreeMap<TaskId, RoomId>,
    reputation: Reputation,
    next_call: u64,
    calls_out: HashMap<u64, OutCall>,
    calls_in: HashMap<(PeerId, u64), CancellationToken>,
    queues: HashMap<PeerId, mpsc::Sender<Request>>,
    broadcasts: mpsc::Sender<(String, Vec<u8>)>,
    commands_tx: mpsc::WeakSender<Command>,
    changes: watch::Sender<u64>,
}

pub(crate) async fn start(
    node: NodeHandle,
    db: Option<Database>,
    config: RoomsConfig,
) -> Result<RoomsHandle, RoomsError> {
    let me = node.peer_id();
    let signer: Arc<dyn StatementSigner> = Arc::new(NodeSigner::new(node.identity()));
    let store = db.map(RoomsStore::new);
    let loaded = match &store {
        Some(s) => s.load()?,
        None => Default::default(),
    };
    let tools = Arc::new(LocalTools::start(&config.exec));
    let card = card_of(&me, &config.agent_name, &[]);
    let now = unix_ms();
    let card_statement =
        SignedCard::sign(&*signer, &card, now, now).map_err(|e| RoomsError::Tool(e.to_string()))?;
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let (changes, changes_rx) = watch::channel(0);
    let (broadcasts, broadcast_rx) = mpsc::channel(BROADCAST_QUEUE);
    tokio::spawn(publish_loop(node.clone(), broadcast_rx));
    let stop = CancellationToken::new();
    let mut actor = Actor {
        node: node.clone(),
        me,
        signer,
        store,
        config,
        tools,
        tool_list: Vec::new(),
        skills: BTreeMap::new(),
        card,
        card_statement,
        // Milliseconds: a restarted node's cards are newer than its last.
        card_seq: now,
        rooms: BTreeMap::new(),
        proposed: BTreeMap::new(),
        executing: BTreeMap::new(),
        observed: BTreeMap::new(),
        followed: VecDeque::new(),
        stored_tasks: loaded.records.into_iter().collect(),
        reputation: loaded.reputation,
        next_call: 1,
        calls_out: HashMap::new(),
        calls_in: HashMap::new(),
        queues: HashMap::new(),
        broadcasts,
        commands_tx: commands_tx.downgrade(),
        changes,
    };
    for room in loaded.rooms {
        if let Err(e) = actor.restore_room(room).await {
            tracing::warn!(%e, "a stored room was not restored");
        }
    }
    for (room, card) in loaded.cards {
        if let Some(state) = actor.rooms.get_mut(&room) {
            if let Ok(card) = SignedCard::open(&card) {
                let _ = state.cards.insert(card, 0);
            }
        }
    }
    let events = node.subscribe_events();
    node.register_handler(Arc::new(Handler {
        commands: commands_tx.clone(),
    }))
    .await?;
    // The tools are listed once their servers run; the card follows.
    {
        let tools = actor.tools.clone();
        let commands = commands_tx.clone();
        tokio::spawn(async move {
            let list = tools.list(tools::START_TIMEOUT).await;
            let _ = commands.send(Command::ToolsListed(list)).await;
        });
    }
    tokio::spawn(actor.run(commands, events, stop.clone()));
    Ok(RoomsHandle {
        commands: commands_tx,
        node,
        changes: changes_rx,
        stop,
    })
}

async fn publish_loop(node: NodeHandle, mut rx: mpsc::Receiver<(String, Vec<u8>)>) {
    while let Some((topic, bytes)) = rx.recv().await {
        if let Err(e) = node.broadcast(&topic, bytes).await {
            tracing::debug!(%topic, %e, "rooms gossip not published");
        }
    }
}

async fn send_loop(
    node: NodeHandle,
    to: PeerId,
    mut rx: mpsc::Receiver<Request>,
    commands: mpsc::WeakSender<Command>,
) {
    while let Some(request) = rx.recv().await {
        let bytes = wire::encode(&request);
        if let Err(e) = node.send_to(to, wire::PROTOCOL, bytes).await {
            tracing::debug!(%to, %e, "rooms message not delivered");
            if let Some(commands) = commands.upgrade() {
                let _ = commands
                    .send(Command::SendFailed {
                        to,
                        request: Box::new(request),
                        reason: e.to_string(),
                    })
                    .await;
            }
        }
    }
}

fn task_of(message: &TaskMessage) -> Option<TaskId> {
    match message {
        TaskMessage::Proposal(s) => s.body::<TaskSpec>().ok().map(|s| s.id()),
        TaskMessage::Bid(s) => s.body::<Bid>().ok().map(|b| b.task),
        TaskMessage::Report(s) => s.body::<Report>().ok().map(|r| r.task),
        TaskMessage::Progress { task, .. } => Some(*task),
        TaskMessage::Entry(s) => s.body::<Entry>().ok().map(|e| e.task),
    }
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: conclave_node::EventSubscription,
        stop: CancellationToken,
    ) {
        let mut cards = tokio::time::interval(self.config.card_interval);
        cards.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dht = tokio::time::interval(DHT_RENEW);
        dht.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => {
                        let wait = at.saturating_sub(unix_ms());
                        tokio::time::sleep(Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                () = sleep => self.on_tick(),
                _ = cards.tick() => self.announce_cards(),
                _ = dht.tick() => self.announce_dht(),
                event = events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
            }
        }
        for exec in self.executing.values() {
            exec.cancel.cancel();
        }
        for token in self.calls_in.values() {
            token.cancel();
        }
        let _ = self.node.unregister_handler(wire::PROTOCOL).await;
        tracing::debug!("rooms service stopped");
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn next_deadline(&self) -> Option<u64> {
        self.proposed
            .values()
            .filter_map(|p| p.machine.deadline())
            .min()
    }

    fn command_sender(&self) -> Option<mpsc::Sender<Command>> {
        self.commands_tx.upgrade()
    }

    // ----- sending -----

    fn send(&mut self, to: PeerId, request: Request) {
        if to == self.me {
            return;
        }
        if let Some(q) = self.queues.get(&to) {
            if !q.is_closed() {
                if q.try_send(request).is_err() {
                    tracing::warn!(%to, "send queue full: a rooms message was dropped");
                }
                return;
            }
        }
        if self.queues.len() >= MAX_PEER_QUEUES {
            self.queues.retain(|_, q| q.capacity() < PEER_QUEUE);
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        tokio::spawn(send_loop(
            self.node.clone(),
            to,
            rx,
            self.commands_tx.clone(),
        ));
        let _ = tx.try_send(request);
        self.queues.insert(to, tx);
    }

    fn publish(&self, room: &RoomId, gossip: &Gossip) {
        let topic = wire::topic_of(room);
        if self
            .broadcasts
            .try_send((topic, wire::encode(gossip)))
            .is_err()
        {
            tracing::warn!(%room, "publish queue full: a rooms message was dropped");
        }
    }

    // ----- rooms and cards -----

    fn announcement(&self, room: &RoomState) -> CardAnnouncement {
        CardAnnouncement {
            descriptor: room.membership.descriptor_statement().clone(),
            card: self.card_statement.clone(),
            token: room.token.clone(),
        }
    }

    fn announce_cards(&self) {
        for (id, room) in &self.rooms {
            self.publish(id, &Gossip::Card(self.announcement(room)));
        }
    }

    /// Our card and skills under our PeerId and each skill, and our rooms'
    /// descriptors, in the DHT (in the background: replication waits on
    /// peers).
    fn announce_dht(&self) {
        let node = self.node.clone();
        let me = self.me.to_string();
        let card = serde_json::to_value(&self.card).expect("cards serialise");
        let skills: Vec<String> = self.skills.keys().cloned().collect();
        let rooms: Vec<(String, String)> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.membership.descriptor().owner == self.me)
            .map(|(id, r)| {
                (
                    id.to_string(),
                    hex::encode(r.membership.descriptor_statement().to_bytes()),
                )
            })
            .collect();
        tokio::spawn(async move {
            let data = serde_json::json!({ "card": card });
            if let Err(e) = node
                .announce_resource(CARD_RESOURCE, &me, data, DHT_TTL)
                .await
            {
                tracing::debug!(%e, "agent card not announced in the DHT");
            }
            for skill in skills {
                let kind = format!("{SKILL_RESOURCE_PREFIX}{skill}");
                let data = serde_json::json!({ "skill": skill });
                if let Err(e) = node.announce_resource(&kind, &me, data, DHT_TTL).await {
                    tracing::debug!(%e, %skill, "skill not announced in the DHT");
                }
            }
            for (id, descriptor) in rooms {
                let data = serde_json::json!({ "descriptor": descriptor });
                if let Err(e) = node
                    .announce_resource(ROOM_RESOURCE, &id, data, DHT_TTL)
                    .await
                {
                    tracing::debug!(%e, room = %id, "room not announced in the DHT");
                }
            }
        });
    }

    fn persist_room(&self, id: &RoomId) {
        if let (Some(store), Some(room)) = (&self.store, self.rooms.get(id)) {
            if let Err(e) = store.put_room(id, &room.stored()) {
                tracing::warn!(%e, "room not kept");
            }
        }
    }

    async fn enter_room(
        &mut self,
        membership: Membership,
        token: Option<Statement>,
        revocations: Vec<Statement>,
    ) -> Result<RoomId, RoomsError> {
        let id = membership.id();
        if !self.rooms.contains_key(&id) && self.rooms.len() >= MAX_ROOMS {
            return Err(RoomsError::Invalid(format!(
                "this node is in {MAX_ROOMS} rooms already; leave one first"
            )));
        }
        self.node.subscribe(&wire::topic_of(&id)).await?;
        let mut cards = CardBook::new();
        if let Ok(card) = SignedCard::open(&self.card_statement) {
            let _ = cards.insert(card, 0);
        }
        let state = RoomState {
            membership,
            token,
            revocations,
            cards,
            greeted: BTreeSet::new(),
        };
        self.publish(&id, &Gossip::Card(self.announcement(&state)));
        self.rooms.insert(id, state);
        Ok(id)
    }

    async fn restore_room(&mut self, stored: StoredRoom) -> Result<(), RoomsError> {
        let mut membership = Membership::new(&stored.descriptor)?;
        let now = unix_ms();
        if let Some(token) = &stored.token {
            membership.add_token(token, now)?;
        }
        for r in &stored.revocations {
            let _ = membership.revoke(r);
        }
        self.enter_room(membership, stored.token, stored.revocations)
            .await?;
        Ok(())
    }

    async fn create_room(&mut self, name: String, policy: Policy) -> Result<RoomId, RoomsError> {
        let now = unix_ms();
        let descriptor = RoomDescriptor {
            owner: self.me,
            created_at_ms: now,
            nonce: random_nonce(),
            name,
            policy,
        };
        let statement = descriptor
            .sign(&*self.signer)
            .map_err(|e| RoomsError::Invalid(e.to_string()))?;
        let membership = Membership::new(&statement)?;
        let id = self.enter_room(membership, None, Vec::new()).await?;
        self.persist_room(&id);
        self.announce_dht();
        self.changed();
        Ok(id)
    }

    async fn join_room(
        &mut self,
        room: RoomId,
        invitation: Option<Vec<u8>>,
        descriptor: Option<Statement>,
        via: Option<PeerId>,
    ) -> Result<RoomInfo, RoomsError> {
        let now = unix_ms();
        let (descriptor, token) = match invitation {
            Some(sealed) => {
                let plain = self
                    .node
                    .open_sealed(&sealed, wire::INVITATION_AAD)
                    .map_err(|e| {
                        RoomsError::Invalid(format!(
                            "the invitation does not open with this node's keys ({e}); \
                             it was made for another peer: ask the owner to invite this PeerId"
                        ))
                    })?;
                let inv: Invitation = wire::decode(&plain).map_err(|e| {
                    RoomsError::Invalid(format!("the invitation is malformed: {e}"))
                })?;
                (inv.descriptor, Some(inv.token))
            }
            None => (
                descriptor
                    .ok_or_else(|| RoomsError::Invalid("no descriptor for the room".into()))?,
                None,
            ),
        };
        let fresh = Membership::new(&descriptor)?;
        if fresh.id() != room {
            return Err(RoomsError::Invalid(format!(
                "the descriptor found is of room {}, not {room}",
                fresh.id()
            )));
        }
        // A room we are in keeps what we know of it (revocations, the
        // other members' tokens): a token is checked against that, so a
        // revoked member's old invitation stays void.
        let mut membership = match self.rooms.get(&room) {
            Some(existing) => existing.membership.clone(),
            None => fresh,
        };
        if let Some(token) = &token {
            let member = membership.add_token(token, now)?;
            if member != self.me {
                return Err(RoomsError::Invalid(format!(
                    "the invitation is for {member}, not for this node"
                )));
            }
        }
        membership.check(&self.me, Role::Observe, now)?;
        if let Some(existing) = self.rooms.get_mut(&room) {
            if token.is_some() {
                existing.membership = membership;
                existing.token = token;
            }
        } else {
            self.enter_room(membership, token, Vec::new()).await?;
        }
        // The member that told us of the room and the owner hear of us at
        // once (the topic's mesh may still be forming); they answer with
        // their cards.
        let owner = self.rooms[&room].membership.descriptor().owner;
        let announcement = self.announcement(&self.rooms[&room]);
        for peer in via.into_iter().chain([owner]).collect::<BTreeSet<_>>() {
            if let Some(state) = self.rooms.get_mut(&room) {
                state.greeted.insert(peer);
            }
            self.send(peer, Request::Card(announcement.clone()));
        }
        self.persist_room(&room);
        self.changed();
        Ok(self.rooms[&room].info(&self.me, now))
    }

    fn invite(
        &mut self,
        room: RoomId,
        peer: PeerId,
        roles: Roles,
        valid_for: Duration,
    ) -> Result<Vec<u8>, RoomsError> {
        let state = self.rooms.get(&room).ok_or(RoomsError::UnknownRoom(room))?;
        if state.membership.descriptor().owner != self.me {
            return Err(RoomsError::Invalid(format!(
                "only the room's owner {} invites",
                state.membership.descriptor().owner
            )));
        }
        if roles == Roles::default() {
            return Err(RoomsError::Invalid(
                "give the member at least one role: --roles propose,execute,observe".into(),
            ));
        }
        let now = unix_ms();
        let token = MembershipToken {
            room,
            member: peer,
            roles,
            issued_at_ms: now,
            expires_at_ms: now.saturating_add(valid_for.as_millis() as u64),
        }
        .sign(&*self.signer)
        .map_err(|e| RoomsError::Invalid(e.to_string()))?;
        let invitation = Invitation {
            descriptor: state.membership.descriptor_statement().clone(),
            token,
        };
        self.node
            .seal_to(&[peer], &wire::encode(&invitation), wire::INVITATION_AAD)
            .map_err(|e| {
                RoomsError::Invalid(format!(
                    "cannot seal the invitation to {peer} ({e}): connect to it first so \
                     its keys are known, then invite again"
                ))
            })
    }

    fn revoke(&mut self, room: RoomId, peer: PeerId) -> Result<(), RoomsError> {
        let state = self
            .rooms
            .get_mut(&room)
            .ok_or(RoomsError::UnknownRoom(room))?;
        if state.membership.descriptor().owner != self.me {
            return Err(RoomsError::Invalid("only the room's owner revokes".into()));
        }
        let revocation = Revocation {
            room,
            member: peer,
            revoked_at_ms: unix_ms(),
        }
        .sign(&*self.signer)
        .map_err(|e| RoomsError::Invalid(e.to_string()))?;
        state.membership.revoke(&revocation)?;
        state.revocations.push(revocation.clone());
        state.cards.remove(&peer);
        self.publish(&room, &Gossip::Revocation(revocation));
        self.persist_room(&room);
        self.changed();
        Ok(())
    }

    /// A member's card, from its gossip or sent to us directly.
    fn on_card(&mut self, from: PeerId, ann: CardAnnouncement) -> Result<(), String> {
        let now = unix_ms();
        let descriptor = RoomDescriptor::open(&ann.descriptor).map_err(|e| e.to_string())?;
        let id = descriptor.id();
        let Some(room) = self.rooms.get_mut(&id) else {
            return Err(format!("this node is not in room {id}"));
        };
        if let Some(token) = &ann.token {
            // A token counts for its own member only.
            let body: Result<MembershipToken, _> = token.body();
            if body.is_ok_and(|t| t.member == from) {
                let _ = room.membership.add_token(token, now);
            }
        }
        room.membership
            .check(&from, Role::Observe, now)
            .map_err(|e| e.to_string())?;
        let card = SignedCard::open(&ann.card).map_err(|e| e.to_string())?;
        if card.peer != from {
            return Err(format!("a card of {} sent by {from}", card.peer));
        }
        let new = room.cards.insert(card, now).map_err(|e| e.to_string())?;
        let greet = from != self.me
            && !room.greeted.contains(&from)
            && room.greeted.len() < crate::card::MAX_CARDS;
        if greet {
            room.greeted.insert(from);
        }
        if new {
            if let Some(store) = &self.store {
                if let Err(e) = store.put_card(&id, &ann.card) {
                    tracing::warn!(%e, "card not kept");
                }
            }
            self.changed();
        }
        if greet {
            let mine = self.announcement(&self.rooms[&id]);
            self.send(from, Request::Card(mine));
        }
        Ok(())
    }

    fn on_revocation(&mut self, from: PeerId, statement: Statement) {
        let Ok(revocation) = statement.body::<Revocation>() else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&revocation.room) else {
            return;
        };
        let owner = room.membership.descriptor().owner;
        if from != owner {
            return;
        }
        match room.membership.revoke(&statement) {
            Ok(member) => {
                room.cards.remove(&member);
                if room.revocations.len() < crate::room::MAX_REVOCATIONS {
                    room.revocations.push(statement);
                }
                self.persist_room(&revocation.room);
                self.changed();
            }
            Err(e) => tracing::debug!(%e, "revocation refused"),
        }
    }

    fn shares_room(&self, peer: &PeerId) -> bool {
        let now = unix_ms();
        self.rooms.values().any(|r| r.takes_part(peer, now))
    }

    // ----- tools -----

    fn on_tools_listed(&mut self, list: Vec<ToolInfo>) {
        self.skills = tools::by_skill(&list);
        self.tool_list = list;
        self.card = card_of(&self.me, &self.config.agent_name, &self.tool_list);
        let now = unix_ms();
        self.card_seq = self.card_seq.max(now).saturating_add(1);
        match SignedCard::sign(&*self.signer, &self.card, self.card_seq, now) {
            Ok(s) => self.card_statement = s,
            Err(e) => {
                tracing::warn!(%e, "agent card not signed");
                return;
            }
        }
        for room in self.rooms.values_mut() {
            if let Ok(card) = SignedCard::open(&self.card_statement) {
                room.cards.remove(&self.me);
                let _ = room.cards.insert(card, now);
            }
        }
        self.announce_cards();
        self.announce_dht();
        self.changed();
        tracing::info!(tools = self.tool_list.len(), "rooms: tools listed");
    }

    #[allow(clippy::too_many_arguments)]
    fn start_call(
        &mut self,
        peer: PeerId,
        server: String,
        tool: String,
        arguments: Option<String>,
        timeout: Duration,
        progress: Option<mpsc::Sender<Progress>>,
        done: oneshot::Sender<Result<String, RoomsError>>,
    ) -> Result<u64, RoomsError> {
        if self.calls_out.len() >= MAX_CALLS_OUT {
            return Err(RoomsError::Invalid(format!(
                "{MAX_CALLS_OUT} calls are in flight already; wait for some to end"
            )));
        }
        let call = self.next_call;
        self.next_call += 1;
        self.calls_out.insert(
            call,
            OutCall {
                peer,
                progress,
                done,
            },
        );
        self.send(
            peer,
            Request::Call {
                call,
                server,
                tool,
                arguments,
                timeout_ms: timeout.as_millis() as u64,
            },
        );
        Ok(call)
    }

    fn cancel_call(&mut self, call: u64) {
        if let Some(out) = self.calls_out.remove(&call) {
            self.send(out.peer, Request::Cancel { call });
        }
    }

    fn on_incoming_call(
        &mut self,
        from: PeerId,
        call: u64,
        server: String,
        tool: String,
        arguments: Option<String>,
        timeout_ms: u64,
    ) -> Result<WireReply, String> {
        if !self.shares_room(&from) {
            return Err("refused: this member shares its tools only with members of its rooms; join one of them first".into());
        }
        let per_peer = self.calls_in.keys().filter(|(p, _)| *p == from).count();
        if per_peer >= MAX_CALLS_PER_PEER || self.calls_in.len() >= MAX_CALLS_IN {
            return Err(format!(
                "busy: {MAX_CALLS_PER_PEER} calls per peer ({MAX_CALLS_IN} in all) run at once; try again when one ends"
            ));
        }
        if self.calls_in.contains_key(&(from, call)) {
            return Err(format!("call {call} is running already"));
        }
        let arguments = match arguments {
            None => None,
            Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(o)) => Some(o),
                _ => return Err("the arguments are not a JSON object".into()),
            },
        };
        let timeout = Duration::from_millis(timeout_ms).min(super::MAX_CALL_TIMEOUT);
        let cancel = CancellationToken::new();
        self.calls_in.insert((from, call), cancel.clone());
        let tools = self.tools.clone();
        let Some(commands) = self.command_sender() else {
            return Err("the rooms service is stopping".into());
        };
        tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel::<Progress>(PROGRESS_CHANNEL);
            let run = tools.call(&server, &tool, arguments, Some(tx), cancel, timeout);
            tokio::pin!(run);
            let outcome = loop {
                tokio::select! {
                    Some(p) = rx.recv() => {
                        let request = Request::CallProgress {
                            call,
                            progress: p.progress,
                            total: p.total,
                            message: p.message,
                        };
                        let _ = commands.send(Command::Forward { to: from, request: Box::new(request) }).await;
                    }
                    outcome = &mut run => break outcome,
                }
            };
            // Progress that came before the end goes first.
            while let Ok(p) = rx.try_recv() {
                let request = Request::CallProgress {
                    call,
                    progress: p.progress,
                    total: p.total,
                    message: p.message,
                };
                let _ = commands
                    .send(Command::Forward {
                        to: from,
                        request: Box::new(request),
                    })
                    .await;
            }
            let outcome = outcome
                .map_err(|e| e.to_string())
                .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string()));
            let done = Request::CallDone { call, outcome };
            let _ = commands
                .send(Command::Forward {
                    to: from,
                    request: Box::new(done),
                })
                .await;
            let _ = commands.send(Command::InCallDone { from, call }).await;
        });
        Ok(WireReply::Ok)
    }

    // ----- tasks -----

    fn follow(&mut self, task: TaskId) {
        if self.followed.contains(&task) {
            return;
        }
        self.followed.push_back(task);
        while self.followed.len() > MAX_TASKS {
            if let Some(old) = self.followed.pop_front() {
                self.proposed.remove(&old);
                if let Some(e) = self.executing.remove(&old) {
                    e.cancel.cancel();
                }
                self.observed.remove(&old);
            }
        }
    }

    fn propose(&mut self, p: Proposal) -> Result<TaskId, RoomsError> {
        let room = self
            .rooms
            .get(&p.room)
            .ok_or(RoomsError::UnknownRoom(p.room))?;
        let now = unix_ms();
        room.membership.check(&self.me, Role::Propose, now)?;
        let defaults = self.config.task_defaults;
        let parts = match p.input {
            serde_json::Value::String(text) => vec![Part::text(text)],
            value => vec![Part::data(value)],
        };
        let nonce = random_nonce();
        let mut message = Message::new(hex::encode(nonce), A2aRole::User, parts);
        message.context_id = Some(p.room.to_string());
        let spec = TaskSpec {
            room: p.room,
            proposer: self.me,
            created_at_ms: now,
            nonce,
            skill: p.skill,
            input: JsonBytes::encode(&message),
            bid_window_ms: p.window_ms.unwrap_or(defaults.window_ms),
            max_price: p.max_price,
            min_reputation: p.min_reputation,
            execution_timeout_ms: p.timeout_ms.unwrap_or(defaults.timeout_ms),
            lease_ms: p
                .lease_ms
                .unwrap_or(defaults.lease_ms)
                .min(p.timeout_ms.unwrap_or(defaults.timeout_ms)),
            attempts: p.attempts.unwrap_or(defaults.attempts),
        };
        let (machine, actions) = Proposer::new(spec, self.signer.clone(), now)?;
        let id = machine.id();
        self.follow(id);
        self.proposed.insert(
            id,
            ProposedTask {
                room: p.room,
                machine,
                counted: false,
            },
        );
        self.run_actions(p.room, id, actions);
        self.changed();
        Ok(id)
    }

    fn run_actions(&mut self, room: RoomId, task: TaskId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => self.send(to, Request::Task { room, message }),
                Action::Broadcast(message) => self.publish(&room, &Gossip::Task(message)),
                Action::Record(entry) => {
                    if let Some(store) = &self.store {
                        let seq = entry.body::<Entry>().map(|e| e.seq).unwrap_or(0);
                        if let Err(e) = store.put_entries(&task, &room, &[(seq, &entry)]) {
                            tracing::warn!(%e, "record entry not kept");
                        }
                        self.stored_tasks.insert(task, room);
                    }
                }
                Action::State { .. } | Action::Progress { .. } => self.changed(),
                Action::Awarded { attempt, input } => self.on_awarded(task, attempt, input),
                Action::InputProvided(_) => {
                    tracing::debug!(%task, "input provided; our tools do not ask for input")
                }
                Action::Abort { reason } => {
                    if let Some(exec) = self.executing.get(&task) {
                        tracing::info!(%task, %reason, "tool run stopped");
                        exec.cancel.cancel();
                    }
                }
            }
        }
        self.after_proposer_step(task);
    }

    /// The proposer accepts a result whose hash the record checked, and
    /// counts a finished task in the reputation table once.
    fn after_proposer_step(&mut self, task: TaskId) {
        let now = unix_ms();
        let Some(p) = self.proposed.get_mut(&task) else {
            return;
        };
        if p.machine.track().phase() == Phase::ResultIn {
            let room = p.room;
            match p.machine.accept(now) {
                Ok(actions) => self.run_actions(room, task, actions),
                Err(e) => tracing::warn!(%task, %e, "result not accepted"),
            }
            return;
        }
        if p.machine.track().phase().is_terminal() && !p.counted {
            p.counted = true;
            let record = TaskRecord {
                entries: p.machine.entries().to_vec(),
            };
            match record.verify() {
                Ok(verified) => {
                    self.reputation.count_own(&verified);
                    self.persist_reputation();
                }
                Err(e) => tracing::error!(%task, %e, "our own record does not verify"),
            }
        }
    }

    fn persist_reputation(&self) {
        if let Some(store) = &self.store {
            if let Err(e) = store.put_reputation(&self.reputation) {
                tracing::warn!(%e, "reputation not kept");
            }
        }
    }

    fn on_awarded(&mut self, task: TaskId, attempt: u8, input: Message) {
        let now = unix_ms();
        let Some(exec) = self.executing.get_mut(&task) else {
            return;
        };
        let room = exec.room;
        let mut actions = match exec.machine.acknowledge(now) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%task, %e, "award not acknowledged");
                return;
            }
        };
        if exec.tool.needs_approval {
            match exec.machine.approval_required(
                &format!(
                    "{} is destructive: its owner approves each run",
                    exec.tool.skill
                ),
                now,
            ) {
                Ok(a) => actions.extend(a),
                Err(e) => tracing::warn!(%task, %e, "approval not asked"),
            }
            tracing::info!(%task, skill = %exec.tool.skill, "waiting for approval (rooms approve)");
            self.run_actions(room, task, actions);
            // The owner's prompt shows from the list of approvals.
            self.changed();
            return;
        }
        self.start_run(task, attempt, input, actions);
    }

    fn start_run(&mut self, task: TaskId, attempt: u8, input: Message, mut actions: Vec<Action>) {
        let now = unix_ms();
        let Some(exec) = self.executing.get_mut(&task) else {
            return;
        };
        let room = exec.room;
        match exec.machine.started(now) {
            Ok(a) => actions.extend(a),
            Err(e) => {
                tracing::warn!(%task, %e, "run not started");
                self.run_actions(room, task, actions);
                return;
            }
        }
        let cancel = CancellationToken::new();
        exec.cancel = cancel.clone();
        let tools = self.tools.clone();
        let skill = exec.tool.skill.clone();
        let timeout = Duration::from_millis(exec.machine.spec().execution_timeout_ms);
        if let Some(commands) = self.command_sender() {
            tokio::spawn(async move {
                let (tx, mut rx) = mpsc::channel::<Progress>(PROGRESS_CHANNEL);
                let run = tools.run_skill(&skill, &input, tx, cancel, timeout);
                tokio::pin!(run);
                let outcome = loop {
                    tokio::select! {
                        Some(progress) = rx.recv() => {
                            let _ = commands.send(Command::ExecProgress { task, progress }).await;
                        }
                        outcome = &mut run => break outcome,
                    }
                };
                let _ = commands
                    .send(Command::ExecDone {
                        task,
                        attempt,
                        outcome,
                    })
                    .await;
            });
        }
        self.run_actions(room, task, actions);
    }

    fn on_exec_done(&mut self, task: TaskId, attempt: u8, outcome: Result<Artifact, String>) {
        let now = unix_ms();
        let Some(exec) = self.executing.get_mut(&task) else {
            return;
        };
        if exec.machine.attempt() != attempt || exec.machine.phase() != ExecutorPhase::Running {
            return;
        }
        let room = exec.room;
        let actions = match outcome {
            Ok(artifact) => match exec.machine.finish(&artifact, now) {
                Ok(a) => a,
                Err(e) => exec
                    .machine
                    .fail(&format!("the result was refused: {e}"), now)
                    .unwrap_or_default(),
            },
            Err(reason) => exec.machine.fail(&reason, now).unwrap_or_default(),
        };
        self.run_actions(room, task, actions);
    }

    fn on_exec_progress(&mut self, task: TaskId, progress: Progress) {
        let Some(exec) = self.executing.get(&task) else {
            return;
        };
        let room = exec.room;
        if let Ok(actions) = exec.machine.progress(
            progress.progress,
            progress.total,
            progress.message.as_deref(),
        ) {
            self.run_actions(room, task, actions);
        }
    }

    /// The tasks of ours whose tool waits for approval, oldest first.
    fn approvals(&self) -> Vec<PendingApproval> {
        let mut out: Vec<PendingApproval> = self
            .executing
            .iter()
            .filter(|(_, e)| e.machine.phase() == ExecutorPhase::AwaitingApproval)
            .map(|(task, e)| {
                let spec = e.machine.spec();
                let input = match spec.input.decode::<Message>("input message") {
                    Ok(message) => tools::tool_input(&e.tool.skill, &message),
                    Err(err) => format!("(the input does not decode: {err})"),
                };
                PendingApproval {
                    task_id: task.to_string(),
                    room_id: e.room.to_string(),
                    room_name: self
                        .rooms
                        .get(&e.room)
                        .map(|r| r.membership.descriptor().name.clone())
                        .unwrap_or_default(),
                    proposer: spec.proposer.to_string(),
                    skill: e.tool.skill.clone(),
                    server: e.tool.server.clone(),
                    tool: e.tool.name.clone(),
                    input,
                    attempt: e.machine.attempt(),
                    proposed_at_ms: spec.created_at_ms,
                }
            })
            .collect();
        out.sort_by_key(|a| a.proposed_at_ms);
        out
    }

    /// The run of `task` that waits for our owner's approval.
    fn awaiting_approval(&mut self, task: TaskId) -> Result<&mut ExecTask, RoomsError> {
        let exec = self
            .executing
            .get_mut(&task)
            .ok_or(RoomsError::UnknownTask(task))?;
        if exec.machine.phase() != ExecutorPhase::AwaitingApproval {
            return Err(RoomsError::Invalid(format!(
                "task {task} waits for no approval here"
            )));
        }
        Ok(exec)
    }

    fn approve(&mut self, task: TaskId) -> Result<(), RoomsError> {
        let now = unix_ms();
        let exec = self.awaiting_approval(task)?;
        let actions = exec.machine.approved(now)?;
        let attempt = exec.machine.attempt();
        let input: Message = exec
            .machine
            .spec()
            .input
            .decode("input message")
            .map_err(|e| RoomsError::Invalid(e.to_string()))?;
        self.start_run(task, attempt, input, actions);
        self.changed();
        Ok(())
    }

    /// Our owner refuses the run: the tool never runs and the award is
    /// declined, so the proposer gives it to the next bidder (a decline
    /// does not count against our reputation).
    fn decline_run(&mut self, task: TaskId) -> Result<(), RoomsError> {
        let now = unix_ms();
        let exec = self.awaiting_approval(task)?;
        let room = exec.room;
        let actions = exec.machine.decline("its owner declined to run it", now)?;
        tracing::info!(%task, "run declined by the owner");
        self.run_actions(room, task, actions);
        self.changed();
        Ok(())
    }

    /// A proposal on a room's topic: bid if we have the skill.
    fn on_proposal(&mut self, room: RoomId, from: PeerId, statement: Statement) {
        if statement.signer != from {
            return;
        }
        let Ok(spec) = statement.body::<TaskSpec>() else {
            return;
        };
        if spec.room != room || from == self.me {
            return;
        }
        let task = spec.id();
        if self.executing.contains_key(&task) {
            return;
        }
        let Some(tool) = self.skills.get(&spec.skill).cloned() else {
            return;
        };
        let Some(state) = self.rooms.get(&room) else {
            return;
        };
        let now = unix_ms();
        if state
            .membership
            .check(&self.me, Role::Execute, now)
            .is_err()
        {
            return;
        }
        let view = View {
            membership: &state.membership,
            reputation: &self.reputation,
        };
        match Executor::bid(
            &statement,
            0,
            tool.idempotent,
            self.signer.clone(),
            now,
            &view,
        ) {
            Ok((machine, actions)) => {
                self.follow(task);
                self.executing.insert(
                    task,
                    ExecTask {
                        room,
                        machine,
                        tool,
                        cancel: CancellationToken::new(),
                    },
                );
                self.run_actions(room, task, actions);
            }
            Err(e) => tracing::debug!(%task, %e, "no bid"),
        }
    }

    /// A record entry seen on the topic (or sent to us): kept with the
    /// task's other entries; an executor's machine hears of it too.
    fn on_entry(&mut self, room: RoomId, from: PeerId, statement: Statement) {
        let Ok(entry) = statement.open::<Entry>(ENTRY_DOMAIN) else {
            return;
        };
        let task = entry.task;
        if self.proposed.contains_key(&task) {
            return;
        }
        if let Some(exec) = self.executing.get_mut(&task) {
            if let Some(state) = self.rooms.get(&room) {
                let view = View {
                    membership: &state.membership,
                    reputation: &self.reputation,
                };
                match exec.machine.handle_message(
                    from,
                    TaskMessage::Entry(statement.clone()),
                    unix_ms(),
                    &view,
                ) {
                    Ok(actions) => self.run_actions(room, task, actions),
                    Err(e) => tracing::debug!(%task, %e, "entry refused by the executor"),
                }
            }
        }
        let proposer = match &entry.body {
            EntryBody::Proposed(p) => p.body::<TaskSpec>().ok().map(|s| s.proposer),
            _ => None,
        };
        if !self.observed.contains_key(&task) {
            self.follow(task);
            self.observed.insert(
                task,
                ObservedTask {
                    room,
                    proposer: proposer.unwrap_or(statement.signer),
                    entries: BTreeMap::new(),
                    kept: false,
                },
            );
        }
        let obs = self.observed.get_mut(&task).expect("inserted");
        if statement.signer != obs.proposer || obs.room != room {
            return;
        }
        match obs.entries.get(&entry.seq) {
            Some(held) if *held == statement => return,
            Some(held) => {
                let proof = EquivocationProof {
                    a: held.clone(),
                    b: statement.clone(),
                };
                if proof.verify().is_ok() {
                    tracing::warn!(proposer = %obs.proposer, %task, seq = entry.seq,
                        "the proposer signed two entries with one sequence number: equivocation; consider denying it");
                    self.reputation.mark_equivocation(obs.proposer);
                    self.persist_reputation();
                    self.changed();
                }
                return;
            }
            None if obs.entries.len() >= crate::record::MAX_ENTRIES => return,
            None => {
                obs.entries.insert(entry.seq, statement);
            }
        }
        let terminal = matches!(
            entry.body,
            EntryBody::Accepted | EntryBody::Failed { .. } | EntryBody::Canceled { .. }
        );
        if terminal {
            self.keep_observed(task);
        }
        self.changed();
    }

    /// Keeps an observed record once it is complete and verifies; counts
    /// it (second-hand) in the reputation table.
    fn keep_observed(&mut self, task: TaskId) {
        let Some(obs) = self.observed.get_mut(&task) else {
            return;
        };
        if obs.kept {
            return;
        }
        let contiguous = obs.entries.keys().copied().eq(0..obs.entries.len() as u64);
        if !contiguous {
            return;
        }
        let record = TaskRecord {
            entries: obs.entries.values().cloned().collect(),
        };
        let verified = match record.verify() {
            Ok(v) if v.phase.is_terminal() => v,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(%task, %e, "an observed record does not verify");
                return;
            }
        };
        obs.kept = true;
        let room = obs.room;
        if let Some(store) = &self.store {
            let rows: Vec<(u64, &Statement)> = obs.entries.iter().map(|(s, e)| (*s, e)).collect();
            if let Err(e) = store.put_entries(&task, &room, &rows) {
                tracing::warn!(%e, "observed record not kept");
            }
            self.stored_tasks.insert(task, room);
        }
        if verified.spec.proposer != self.me {
            self.reputation.count_reported(&verified);
            self.persist_reputation();
        }
    }

    /// A task message sent to us directly.
    fn on_task_message(
        &mut self,
        from: PeerId,
        room: RoomId,
        message: TaskMessage,
    ) -> Result<WireReply, String> {
        let task = task_of(&message).ok_or("a task message naming no task")?;
        let Some(state) = self.rooms.get(&room) else {
            return Err(format!("this node is not in room {room}"));
        };
        if let TaskMessage::Entry(statement) = message {
            state
                .membership
                .check(&from, Role::Observe, unix_ms())
                .map_err(|e| e.to_string())?;
            self.on_entry(room, from, statement);
            return Ok(WireReply::Ok);
        }
        let Some(p) = self.proposed.get_mut(&task) else {
            return Err(format!("this node proposed no task {task}"));
        };
        if p.room != room {
            return Err("the task is of another room".into());
        }
        let view = View {
            membership: &state.membership,
            reputation: &self.reputation,
        };
        let actions = p
            .machine
            .handle_message(from, message, unix_ms(), &view)
            .map_err(|e| {
                tracing::debug!(%task, %from, %e, "task message refused");
                e.to_string()
            })?;
        self.run_actions(room, task, actions);
        Ok(WireReply::Ok)
    }

    fn on_tick(&mut self) {
        let now = unix_ms();
        let due: Vec<TaskId> = self
            .proposed
            .iter()
            .filter(|(_, p)| p.machine.deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for task in due {
            let Some(p) = self.proposed.get_mut(&task) else {
                continue;
            };
            let room = p.room;
            let Some(state) = self.rooms.get(&room) else {
                continue;
            };
            let view = View {
                membership: &state.membership,
                reputation: &self.reputation,
            };
            match p.machine.on_tick(now, &view) {
                Ok(actions) => self.run_actions(room, task, actions),
                Err(e) => {
                    tracing::error!(%task, %e, "a task's timer failed; the task is dropped");
                    self.proposed.remove(&task);
                }
            }
        }
    }

    fn on_peer_gone(&mut self, peer: PeerId) {
        let now = unix_ms();
        let running: Vec<TaskId> = self
            .proposed
            .iter()
            .filter(|(_, p)| {
                p.machine.track().phase().in_attempt()
                    && p.machine
                        .track()
                        .current()
                        .is_some_and(|a| a.executor == peer)
            })
            .map(|(id, _)| *id)
            .collect();
        for task in running {
            let Some(p) = self.proposed.get_mut(&task) else {
                continue;
            };
            let room = p.room;
            if let Ok(actions) = p.machine.executor_gone(peer, now) {
                self.run_actions(room, task, actions);
            }
        }
    }

    // ----- reading tasks -----

    fn record_here(&self, task: &TaskId) -> Option<(RoomId, TaskRecord)> {
        if let Some(p) = self.proposed.get(task) {
            return Some((
                p.room,
                TaskRecord {
                    entries: p.machine.entries().to_vec(),
                },
            ));
        }
        if let Some(obs) = self.observed.get(task) {
            let contiguous = obs.entries.keys().copied().eq(0..obs.entries.len() as u64);
            if contiguous && !obs.entries.is_empty() {
                return Some((
                    obs.room,
                    TaskRecord {
                        entries: obs.entries.values().cloned().collect(),
                    },
                ));
            }
        }
        if self.stored_tasks.contains_key(task) {
            if let Some(store) = &self.store {
                if let Ok(Some(found)) = store.record(task) {
                    return Some(found);
                }
            }
        }
        None
    }

    fn task_view(&self, task: TaskId) -> Result<TaskView, RoomsError> {
        let (room, record) = self
            .record_here(&task)
            .ok_or(RoomsError::UnknownTask(task))?;
        view_of(room, &record)
    }

    fn task_views(&self, room: RoomId) -> Result<Vec<TaskView>, RoomsError> {
        if !self.rooms.contains_key(&room) {
            return Err(RoomsError::UnknownRoom(room));
        }
        let ids: std::collections::BTreeSet<TaskId> = self
            .proposed
            .iter()
            .filter(|(_, p)| p.room == room)
            .map(|(t, _)| *t)
            .chain(
                self.observed
                    .iter()
                    .filter(|(_, o)| o.room == room)
                    .map(|(t, _)| *t),
            )
            .chain(
                self.stored_tasks
                    .iter()
                    .filter(|(_, r)| **r == room)
                    .map(|(t, _)| *t),
            )
            .collect();
        // A task whose record is still incomplete here is left out until it is.
        let mut views: Vec<TaskView> = ids
            .into_iter()
            .filter_map(|task| self.task_view(task).ok())
            .collect();
        views
            .sort_by_key(|v| std::cmp::Reverse(v.log.first().map(|l| l.at_ms).unwrap_or_default()));
        Ok(views)
    }

    fn record_answer(&self, task: TaskId) -> Result<RecordAnswer, RoomsError> {
        if let Some((_, record)) = self.record_here(&task) {
            let complete = record
                .verify()
                .map(|v| v.phase.is_terminal() || self.proposed.contains_key(&task))
                .unwrap_or(false);
            if complete {
                return Ok(RecordAnswer::Here(record));
            }
        }
        let proposer = self
            .observed
            .get(&task)
            .map(|o| o.proposer)
            .or_else(|| self.executing.get(&task).map(|e| e.machine.spec().proposer))
            .ok_or(RoomsError::UnknownTask(task))?;
        Ok(RecordAnswer::AskProposer(proposer))
    }

    fn keep_record(&mut self, record: TaskRecord) -> Result<(), RoomsError> {
        let verified = record.verify()?;
        let task = verified.task;
        let room = verified.spec.room;
        if !self.rooms.contains_key(&room) {
            return Err(RoomsError::UnknownRoom(room));
        }
        if self.proposed.contains_key(&task) {
            return Ok(());
        }
        let proposer = verified.spec.proposer;
        self.follow(task);
        let obs = self.observed.entry(task).or_insert_with(|| ObservedTask {
            room,
            proposer,
            entries: BTreeMap::new(),
            kept: false,
        });
        for entry in record.entries {
            if let Ok(e) = entry.body::<Entry>() {
                obs.entries.entry(e.seq).or_insert(entry);
            }
        }
        self.keep_observed(task);
        self.changed();
        Ok(())
    }

    fn serve_record(&self, from: PeerId, task: TaskId) -> Result<WireReply, String> {
        let Some((room, record)) = self.record_here(&task) else {
            return Ok(WireReply::Record(None));
        };
        let state = self
            .rooms
            .get(&room)
            .ok_or("this node left the task's room")?;
        state
            .membership
            .check(&from, Role::Observe, unix_ms())
            .map_err(|e| e.to_string())?;
        Ok(WireReply::Record(Some(record.export())))
    }

    fn cancel_task(&mut self, task: TaskId) -> Result<TaskView, RoomsError> {
        let now = unix_ms();
        let p = self.proposed.get_mut(&task).ok_or_else(|| {
            if self.observed.contains_key(&task) || self.executing.contains_key(&task) {
                RoomsError::Invalid(format!(
                    "task {task} was proposed by another member: only its proposer cancels it"
                ))
            } else {
                RoomsError::UnknownTask(task)
            }
        })?;
        if p.machine.track().phase().is_terminal() {
            return Err(RoomsError::Invalid(format!(
                "task {task} has ended already ({})",
                p.machine.state()
            )));
        }
        let room = p.room;
        let actions = p.machine.cancel("canceled by the proposer", now)?;
        self.run_actions(room, task, actions);
        self.task_view(task)
    }

    // ----- dispatch -----

    fn on_event(&mut self, event: NodeEvent) {
        match event {
            NodeEvent::Message(message) => {
                let Some(room) = wire::room_of_topic(&message.topic) else {
                    return;
                };
                let Some(from) = message.from else {
                    return;
                };
                if !self.rooms.contains_key(&room) {
                    return;
                }
                let gossip: Gossip = match wire::decode(&message.data) {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::debug!(%from, %e, "rooms gossip dropped");
                        return;
                    }
                };
                self.on_gossip(room, from, gossip);
            }
            NodeEvent::PeerDisconnected { peer_id } => self.on_peer_gone(peer_id),
            NodeEvent::Lagged { missed } => {
                tracing::warn!(missed, "rooms service missed node events")
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, room: RoomId, from: PeerId, gossip: Gossip) {
        let now = unix_ms();
        match gossip {
            Gossip::Card(ann) => {
                if let Err(e) = self.on_card(from, ann) {
                    tracing::debug!(%from, %e, "card refused");
                }
            }
            Gossip::Revocation(statement) => self.on_revocation(from, statement),
            Gossip::Task(message) => {
                // Members ignore everyone else.
                let Some(state) = self.rooms.get(&room) else {
                    return;
                };
                if let Err(e) = state.membership.check(&from, Role::Observe, now) {
                    tracing::debug!(%from, %e, "task gossip from a non-member ignored");
                    return;
                }
                match message {
                    TaskMessage::Proposal(statement) => {
                        if statement.verify(PROPOSAL_DOMAIN).is_ok() {
                            self.on_proposal(room, from, statement)
                        }
                    }
                    TaskMessage::Entry(statement) => self.on_entry(room, from, statement),
                    other => {
                        tracing::debug!(%from, kind = other.name(), "task gossip of a kind sent directly, ignored")
                    }
                }
            }
        }
    }

    fn on_inbound(&mut self, from: PeerId, request: Request) -> Result<WireReply, String> {
        match request {
            Request::Tools => {
                if !self.shares_room(&from) {
                    return Err("refused: this member lists its tools only to members of its rooms; join one of them first".into());
                }
                Ok(WireReply::Tools(
                    serde_json::to_string(&self.tool_list).expect("tools serialise"),
                ))
            }
            Request::Call {
                call,
                server,
                tool,
                arguments,
                timeout_ms,
            } => self.on_incoming_call(from, call, server, tool, arguments, timeout_ms),
            Request::Cancel { call } => {
                if let Some(token) = self.calls_in.get(&(from, call)) {
                    tracing::info!(%from, call, "remote call canceled by its caller");
                    token.cancel();
                }
                Ok(WireReply::Ok)
            }
            Request::CallProgress {
                call,
                progress,
                total,
                message,
            } => {
                match self.calls_out.get(&call) {
                    Some(out) if out.peer == from => {
                        if let Some(tx) = &out.progress {
                            let _ = tx.try_send(Progress {
                                progress,
                                total,
                                message,
                            });
                        }
                    }
                    _ => {}
                }
                Ok(WireReply::Ok)
            }
            Request::CallDone { call, outcome } => {
                if self.calls_out.get(&call).is_some_and(|o| o.peer == from) {
                    let out = self.calls_out.remove(&call).expect("present");
                    let _ = out
                        .done
                        .send(outcome.map_err(|reason| RoomsError::Remote { peer: from, reason }));
                }
                Ok(WireReply::Ok)
            }
            Request::Task { room, message } => self.on_task_message(from, room, message),
            Request::Card(ann) => self.on_card(from, ann).map(|()| WireReply::Ok),
            Request::Record { task } => self.serve_record(from, task),
            Request::Descriptor { room } => Ok(WireReply::Descriptor(
                self.rooms
                    .get(&room)
                    .map(|r| r.membership.descriptor_statement().clone()),
            )),
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::CreateRoom {
                name,
                policy,
                reply,
            } => {
                let _ = reply.send(self.create_room(name, policy).await);
            }
            Command::JoinRoom {
                room,
                invitation,
                descriptor,
                via,
                reply,
            } => {
                let _ = reply.send(self.join_room(room, invitation, descriptor, via).await);
            }
            Command::Invite {
                room,
                peer,
                roles,
                valid_for,
                reply,
            } => {
                let _ = reply.send(self.invite(room, peer, roles, valid_for));
            }
            Command::Revoke { room, peer, reply } => {
                let _ = reply.send(self.revoke(room, peer));
            }
            Command::Rooms { reply } => {
                let now = unix_ms();
                let _ = reply.send(Ok(self
                    .rooms
                    .values()
                    .map(|r| r.info(&self.me, now))
                    .collect()));
            }
            Command::Card { reply } => {
                let _ = reply.send(Ok(self.card.clone()));
            }
            Command::Agents { room, reply } => {
                let answer = self
                    .rooms
                    .get(&room)
                    .ok_or(RoomsError::UnknownRoom(room))
                    .map(|r| {
                        r.cards
                            .cards()
                            .filter(|c| c.peer != self.me)
                            .map(|c| AgentInfo {
                                peer_id: c.peer.to_string(),
                                seq: c.seq,
                                reputation: c
                                    .card
                                    .skills
                                    .iter()
                                    .map(|s| (s.id.clone(), self.reputation.score(&c.peer, &s.id)))
                                    .collect(),
                                card: c.card.clone(),
                            })
                            .collect()
                    });
                let _ = reply.send(answer);
            }
            Command::LocalTools { reply } => {
                let _ = reply.send(Ok(self.tool_list.clone()));
            }
            Command::Servers { reply } => {
                let _ = reply.send(Ok(self.tools.servers()));
            }
            Command::Inventory { reply } => {
                let _ = reply.send(Ok(tools::inventory(
                    &self.config.exec,
                    &self.tools.servers(),
                    &self.tool_list,
                )));
            }
            Command::Approvals { reply } => {
                let _ = reply.send(Ok(self.approvals()));
            }
            Command::StartCall {
                peer,
                server,
                tool,
                arguments,
                timeout,
                progress,
                done,
                reply,
            } => {
                let _ = reply
                    .send(self.start_call(peer, server, tool, arguments, timeout, progress, done));
            }
            Command::CancelCall { call } => self.cancel_call(call),
            Command::Propose { proposal, reply } => {
                let _ = reply.send(self.propose(proposal));
            }
            Command::Task { task, reply } => {
                let _ = reply.send(self.task_view(task));
            }
            Command::Tasks { room, reply } => {
                let _ = reply.send(self.task_views(room));
            }
            Command::Record { task, reply } => {
                let _ = reply.send(self.record_answer(task));
            }
            Command::KeepRecord { record, reply } => {
                let _ = reply.send(self.keep_record(record));
            }
            Command::CancelTask { task, reply } => {
                let _ = reply.send(self.cancel_task(task));
            }
            Command::Approve { task, reply } => {
                let _ = reply.send(self.approve(task));
            }
            Command::DeclineRun { task, reply } => {
                let _ = reply.send(self.decline_run(task));
            }
            Command::Inbound {
                from,
                request,
                reply,
            } => {
                let _ = reply.send(self.on_inbound(from, request));
            }
            Command::ToolsListed(list) => self.on_tools_listed(list),
            Command::SendFailed {
                to,
                request,
                reason,
            } => {
                if let Request::Call { call, .. } = *request {
                    if let Some(out) = self.calls_out.remove(&call) {
                        let _ = out.done.send(Err(RoomsError::Remote { peer: to, reason }));
                    }
                }
            }
            Command::Forward { to, request } => self.send(to, *request),
            Command::InCallDone { from, call } => {
                self.calls_in.remove(&(from, call));
            }
            Command::ExecProgress { task, progress } => self.on_exec_progress(task, progress),
            Command::ExecDone {
                task,
                attempt,
                outcome,
            } => self.on_exec_done(task, attempt, outcome),
        }
    }
}

/// A task's view from its record.
fn view_of(room: RoomId, record: &TaskRecord) -> Result<TaskView, RoomsError> {
    let verified = record.verify();
    let log = record
        .entries
        .iter()
        .filter_map(|s| s.body::<Entry>().ok())
        .map(|e| {
            let (report, by) = match &e.body {
                EntryBody::BidAccepted(s) => (None, Some(s.signer.to_string())),
                EntryBody::Reported(s) => (
                    s.body::<Report>().ok().map(|r| r.kind.name().to_string()),
                    Some(s.signer.to_string()),
                ),
                EntryBody::Awarded { executor, .. } => (None, Some(executor.to_string())),
                _ => (None, None),
            };
            LogLine {
                seq: e.seq,
                kind: e.body.name().to_string(),
                report,
                by,
                at_ms: e.at_ms,
            }
        })
        .collect();
    let first: Option<TaskSpec> = record
        .entries
        .first()
        .and_then(|s| s.body::<Entry>().ok())
        .and_then(|e| match e.body {
            EntryBody::Proposed(p) => p.body::<TaskSpec>().ok(),
            _ => None,
        });
    let spec = first.ok_or_else(|| RoomsError::Invalid("the record has no proposal".into()))?;
    let id = spec.id();
    match verified {
        Ok(v) => {
            let current = v.attempts.last();
            let result = v.result.as_ref();
            Ok(TaskView {
                task_id: id.to_string(),
                room_id: room.to_string(),
                proposer: spec.proposer.to_string(),
                skill: spec.skill.clone(),
                state: v.state.as_str().to_string(),
                phase: v.phase,
                executor: current.map(|a| a.executor.to_string()),
                attempt: current.map_or(0, |a| a.number),
                bids: record
                    .entries
                    .iter()
                    .filter_map(|s| s.body::<Entry>().ok())
                    .filter(|e| matches!(e.body, EntryBody::BidAccepted(_)))
                    .count(),
                result: result.and_then(|r| serde_json::from_slice(&r.artifact.0).ok()),
                result_blake3: result.map(|r| hex::encode(r.blake3)),
                verified: true,
                log,
            })
        }
        Err(e) => {
            tracing::warn!(task = %id, %e, "a task record does not verify");
            Ok(TaskView {
                task_id: id.to_string(),
                room_id: room.to_string(),
                proposer: spec.proposer.to_string(),
                skill: spec.skill.clone(),
                state: "UNVERIFIED".into(),
                phase: Phase::Bidding,
                executor: None,
                attempt: 0,
                bids: 0,
                result: None,
                result_blake3: None,
                verified: false,
                log,
            })
        }
    }
}
