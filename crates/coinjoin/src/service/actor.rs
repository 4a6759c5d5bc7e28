//! The actor: owns our requests, the requests seen on each pairing's
//! topic, the running session machines and the exclusion record, and
//! turns the machines' actions into I/O. It never waits on the network,
//! the chain or the keychain: publishing runs in one sender task (which
//! keeps our messages in order), chain calls on blocking threads that
//! report back.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use bitcoin::{consensus::encode::serialize_hex, Address, ScriptBuf, Transaction};
use conclave_node::{
    clock::{unix_ms, unix_secs},
    EventSubscription, GossipMessage, NodeEvent, PeerId,
};
use tokio::sync::{broadcast, mpsc};
use zeroize::Zeroizing;

use super::{
    early::EarlyMessages,
    seen::{Admission, SeenRequests},
    status::{ExcludedOutpoint, OwnOutput, RequestPhase, RequestStatus, TimelineEntry},
    store::StoredRequest,
    wire::TopicMessage,
    CoinJoinError, Command, PreparedJoin, Restored, Shared,
};
use crate::{
    chain::ChainError,
    coin::{p2tr_script, CoinKey},
    exclusion::{Exclusion, Strikes},
    pairing::{form_session, validate_all, PairRequest, Pairing, RequestId, SessionPlan},
    proto::{
        Action, OurOutput, Outcome, OwnSecrets, RunMessage, Session, SessionConfig, MAX_REFORMS,
    },
    wallet::KeyPath,
};

/// Sessions remembered as over (their late messages are dropped).
const MAX_FINISHED_SESSIONS: usize = 256;
/// Phase changes kept per request.
const MAX_TIMELINE: usize = 512;
/// Exclusions listed per request.
const MAX_EXCLUDED_LISTED: usize = 256;
/// Local items taken in a row before the network gets a turn.
const MAX_LOCAL_IN_A_ROW: usize = 64;
/// Our messages waiting for the sender task.
const PUBLISH_QUEUE: usize = 256;
/// How soon an announcement that reached no peer is first tried again;
/// the wait doubles with each miss, up to `announce_every`.
const ANNOUNCE_RETRY: Duration = Duration::from_millis(250);

/// A message for the sender task: its topic, its bytes, and the request
/// it announces (whose outcome comes back as [`Internal::Announced`]).
struct Outgoing {
    topic: String,
    bytes: Vec<u8>,
    announces: Option<RequestId>,
}

/// What blocking work reports back.
enum Internal {
    Validated {
        pairing: Pairing,
        epoch: u64,
        result: Result<(Vec<PairRequest>, Vec<Exclusion>), ChainError>,
    },
    Broadcast {
        id: RequestId,
        result: Result<bitcoin::Txid, ChainError>,
    },
    /// An earlier transaction of the session that we signed confirmed.
    SignedEarlier {
        id: RequestId,
        tx: Option<Transaction>,
    },
    /// An announcement of our request reached the network (at `at_ms`) or
    /// no peer at all (`None`).
    Announced { id: RequestId, at_ms: Option<u64> },
}

/// One of our requests.
struct Own {
    request: PairRequest,
    pairing: Pairing,
    coin_secrets: Vec<Zeroizing<[u8; 32]>>,
    output_seed: Zeroizing<[u8; 32]>,
    max_fee: Option<u64>,
    change_script: ScriptBuf,
    /// When an announcement of it first reached a peer: a tick takes it in
    /// only `settle` after that, as the peers' own rule does, never after
    /// an announcement that reached nobody.
    announced_ms: Option<u64>,
    next_announce: Instant,
    /// The wait before the next try of an announcement that reached nobody.
    announce_retry: Duration,
    /// The session it is in.
    session: Option<[u8; 32]>,
    /// Whether a validation for it is under way.
    validating: bool,
    next_tick_ms: u64,
    reforms: u32,
    /// The session that completed, and every transaction we signed in it
    /// (a participant that withheld its signature may complete an earlier
    /// one, which then confirms instead).
    signed: Option<([u8; 32], Vec<bitcoin::Txid>)>,
    status: RequestStatus,
}

/// A session we take part in.
struct Running {
    session: Session,
    own: RequestId,
    pairing: Pairing,
    epoch: u64,
    /// The author of each participant's request.
    authors: BTreeMap<RequestId, PeerId>,
}

pub(crate) struct Actor {
    shared: Arc<Shared>,
    events: broadcast::Sender<RequestStatus>,
    me: PeerId,
    commands: mpsc::Receiver<Command>,
    internal: mpsc::Receiver<Internal>,
    internal_tx: mpsc::Sender<Internal>,
    publisher: mpsc::Sender<Outgoing>,
    own: BTreeMap<RequestId, Own>,
    /// Our request ids in the order they were made.
    order: Vec<RequestId>,
    seen: BTreeMap<Pairing, SeenRequests<PairRequest, PeerId>>,
    topics: BTreeMap<String, Pairing>,
    sessions: BTreeMap<[u8; 32], Running>,
    finished: VecDeque<[u8; 32]>,
    early: EarlyMessages<PeerId>,
    strikes: Strikes,
}

impl Actor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        events: broadcast::Sender<RequestStatus>,
        commands: mpsc::Receiver<Command>,
        strikes: Strikes,
        restored: Vec<Restored>,
    ) -> Self {
        let (internal_tx, internal) = mpsc::channel(64);
        let (publisher, queue) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publish(shared.node.clone(), queue, internal_tx.clone()));
        // A session someone formed starts here by our next tick, or within
        // a phase if its view differs from ours.
        let early = EarlyMessages::new(shared.config.epoch + shared.config.timeouts.phase);
        let mut actor = Self {
            me: shared.node.peer_id(),
            shared,
            events,
            commands,
            internal,
            internal_tx,
            publisher,
            own: BTreeMap::new(),
            order: Vec::new(),
            seen: BTreeMap::new(),
            topics: BTreeMap::new(),
            sessions: BTreeMap::new(),
            finished: VecDeque::new(),
            early,
            strikes,
        };
        for r in restored {
            actor.restore(r);
        }
        actor
    }

    /// Takes back a request of the last run.
    fn restore(&mut self, restored: Restored) {
        let Restored { join, status } = restored;
        let id = join.request.id();
        let pairing = join.request.pairing;
        let now_ms = unix_ms();
        if !status.phase.is_final() {
            self.topics.insert(pairing.topic(), pairing);
            let node = self.shared.node.clone();
            let topic = pairing.topic();
            tokio::spawn(async move {
                if let Err(e) = node.subscribe(&topic).await {
                    tracing::warn!(%topic, %e, "coinjoin: cannot subscribe to a restored request's topic");
                }
            });
        }
        let broadcast_again = status.phase == RequestPhase::Broadcasting;
        let tx = status
            .tx_hex
            .as_deref()
            .and_then(|h| bitcoin::consensus::encode::deserialize_hex::<Transaction>(h).ok());
        let own = self.fresh_own(join, status, now_ms);
        self.own.insert(id, own);
        self.order.push(id);
        if let (true, Some(tx)) = (broadcast_again, tx) {
            self.broadcast(id, tx);
        }
        self.save(&id);
    }

    fn save(&self, id: &RequestId) {
        let (Some(store), Some(own)) = (&self.shared.store, self.own.get(id)) else {
            return;
        };
        store.save_request(
            *id,
            StoredRequest {
                request: own.request.encode(),
                max_fee: own.max_fee,
                status: serde_json::to_vec(&own.status).expect("statuses serialise"),
            },
        );
    }

    /// Runs until a `Stop` command arrives, every handle is gone or the
    /// node stops. Local work (blocking calls' reports, commands, due
    /// deadlines) goes before new network messages, with the network
    /// getting a turn after [`MAX_LOCAL_IN_A_ROW`] local items.
    pub(crate) async fn run(mut self) {
        let mut node_events: EventSubscription = self.shared.node.subscribe_events();
        let mut local_in_a_row = 0usize;
        loop {
            let wake = tokio::time::Instant::from_std(self.next_wake());
            let local_turn = local_in_a_row < MAX_LOCAL_IN_A_ROW;
            tokio::select! {
                biased;
                Some(report) = self.internal.recv(), if local_turn => {
                    local_in_a_row += 1;
                    self.on_internal(report);
                }
                command = self.commands.recv(), if local_turn => {
                    local_in_a_row += 1;
                    match command {
                        None => break,
                        Some(Command::Stop { reply }) => {
                            if let Some(store) = self.shared.store.clone() {
                                let _ = tokio::task::spawn_blocking(move || store.flush()).await;
                            }
                            let _ = reply.send(());
                            break;
                        }
                        Some(command) => self.on_command(command),
                    }
                }
                () = tokio::time::sleep_until(wake), if local_turn => {
                    local_in_a_row += 1;
                    self.on_timers();
                }
                event = node_events.recv() => {
                    local_in_a_row = 0;
                    match event {
                        None => break,
                        Some(NodeEvent::Message(message)) => self.on_gossip(message),
                        Some(NodeEvent::Lagged { missed }) => {
                            tracing::warn!(missed, "coinjoin: node events lagged; session messages may be lost");
                        }
                        Some(_) => {}
                    }
                }
                else => {
                    local_in_a_row = 0;
                }
            }
        }
        tracing::debug!("coinjoin service stopped");
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(3600);
        for running in self.sessions.values() {
            if let Some(d) = running.session.deadline() {
                wake = wake.min(d);
            }
        }
        let now_ms = unix_ms();
        for own in self.own.values().filter(|o| o.is_waiting()) {
            wake = wake.min(own.next_announce);
            if !own.validating {
                let until = Duration::from_millis(own.next_tick_ms.saturating_sub(now_ms));
                wake = wake.min(now + until);
            }
        }
        wake
    }

    fn emit(&mut self, id: &RequestId) {
        if let Some(own) = self.own.get_mut(id) {
            own.status.updated_ms = unix_ms();
            let _ = self.events.send(own.status.clone());
        }
        self.save(id);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Join { join, reply } => {
                let _ = reply.send(self.join(*join));
            }
            Command::Status { id, reply } => {
                let _ = reply.send(self.own.get(&id).map(|o| o.status.clone()));
            }
            Command::List { reply } => {
                let list = self
                    .order
                    .iter()
                    .filter_map(|id| self.own.get(id).map(|o| o.status.clone()))
                    .collect();
                let _ = reply.send(list);
            }
            Command::Cancel { id, reply } => {
                let _ = reply.send(self.cancel(id));
            }
            Command::Stop { .. } => unreachable!("handled by the loop"),
        }
    }

    fn join(&mut self, join: PreparedJoin) -> Result<RequestId, CoinJoinError> {
        let open = self
            .own
            .values()
            .filter(|o| !o.status.phase.is_final())
            .count();
        if open >= self.shared.config.max_open_requests {
            return Err(CoinJoinError::Busy(open));
        }
        let pairing = join.request.pairing;
        for other in self.own.values().filter(|o| !o.status.phase.is_final()) {
            if other.pairing == pairing {
                return Err(CoinJoinError::Invalid(format!(
                    "request {} already mixes {} sats at {} sat/vB here: cancel it first, or \
                     pick another denomination",
                    other.status.request_id, pairing.denomination, pairing.fee_rate
                )));
            }
            if let Some(o) = join
                .inputs
                .iter()
                .find(|o| other.request.outpoints().contains(o))
            {
                return Err(CoinJoinError::Invalid(format!(
                    "input {o} is in request {} already: cancel that one first",
                    other.status.request_id
                )));
            }
        }
        let id = join.request.id();
        let now_ms = unix_ms();
        let topic = pairing.topic();
        self.topics.insert(topic.clone(), pairing);
        let status = RequestStatus {
            request_id: id.to_string(),
            denomination: pairing.denomination,
            fee_rate: pairing.fee_rate,
            inputs: join.inputs.iter().map(ToString::to_string).collect(),
            phase: RequestPhase::Waiting,
            peers: 1 + self.seen.get(&pairing).map_or(0, SeenRequests::len),
            run: 0,
            sessions: 0,
            excluded: Vec::new(),
            txid: None,
            tx_hex: None,
            fee_sats: None,
            our_outputs: Vec::new(),
            timeline: vec![TimelineEntry {
                phase: RequestPhase::Waiting,
                run: 0,
                at_ms: now_ms,
                peers: 1,
                holdouts: Vec::new(),
            }],
            last_error: None,
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        let own = self.fresh_own(join, status, now_ms);
        self.own.insert(id, own);
        self.order.push(id);
        self.announce(&id);
        self.emit(&id);
        Ok(id)
    }

    fn epoch_ms(&self) -> u64 {
        (self.shared.config.epoch.as_secs().max(1)) * 1000
    }

    /// Our request `join` as (re)announced at `now_ms`, in no session yet.
    fn fresh_own(&self, join: PreparedJoin, status: RequestStatus, now_ms: u64) -> Own {
        Own {
            pairing: join.request.pairing,
            request: join.request,
            coin_secrets: join.coin_secrets,
            output_seed: join.output_seed,
            max_fee: join.max_fee,
            change_script: join.change_script,
            announced_ms: None,
            next_announce: Instant::now(),
            announce_retry: ANNOUNCE_RETRY,
            session: None,
            validating: false,
            next_tick_ms: self.first_tick_ms(now_ms),
            reforms: 0,
            signed: None,
            status,
        }
    }

    /// The first tick a request announced at `announced_ms` takes part in:
    /// the first epoch boundary at least `settle` later.
    fn first_tick_ms(&self, announced_ms: u64) -> u64 {
        let epoch = self.epoch_ms();
        let earliest = announced_ms + self.shared.config.settle.as_millis() as u64;
        earliest.div_ceil(epoch) * epoch
    }

    fn cancel(&mut self, id: RequestId) -> Result<RequestStatus, CoinJoinError> {
        let own = self
            .own
            .get_mut(&id)
            .ok_or_else(|| CoinJoinError::UnknownRequest(id.to_string()))?;
        if own.status.phase.is_final() {
            return Ok(own.status.clone());
        }
        if let Some(session_id) = own.session.take() {
            self.sessions.remove(&session_id);
            remember_finished(&mut self.finished, session_id);
        }
        own.coin_secrets.clear();
        // Tell the peers, so no session forms with a request nobody runs.
        let bytes = TopicMessage::Withdraw(id).encode();
        if self
            .publisher
            .try_send(Outgoing {
                topic: own.pairing.topic(),
                bytes,
                announces: None,
            })
            .is_err()
        {
            tracing::warn!("coinjoin: the publish queue is full; withdrawal dropped");
        }
        self.set_phase(&id, RequestPhase::Cancelled, 0, Vec::new());
        Ok(self.own[&id].status.clone())
    }

    /// Publishes our request on its pairing's topic.
    fn announce(&mut self, id: &RequestId) {
        let Some(own) = self.own.get_mut(id) else {
            return;
        };
        own.next_announce = Instant::now() + self.shared.config.announce_every;
        let bytes = TopicMessage::Request(own.request.encode()).encode();
        let topic = own.pairing.topic();
        let outgoing = Outgoing {
            topic,
            bytes,
            announces: Some(*id),
        };
        if self.publisher.try_send(outgoing).is_err() {
            tracing::warn!("coinjoin: the publish queue is full; announcement dropped");
        }
    }

    fn set_phase(&mut self, id: &RequestId, phase: RequestPhase, run: u32, holdouts: Vec<String>) {
        let Some(own) = self.own.get_mut(id) else {
            return;
        };
        let peers = own.status.peers;
        let changed = own.status.phase != phase || own.status.run != run;
        own.status.phase = phase;
        own.status.run = run;
        let last = own.status.timeline.last();
        let holdouts_changed = last.is_some_and(|l| l.holdouts != holdouts);
        if (changed || holdouts_changed) && own.status.timeline.len() < MAX_TIMELINE {
            own.status.timeline.push(TimelineEntry {
                phase,
                run,
                at_ms: unix_ms(),
                peers,
                holdouts,
            });
        }
        self.emit(id);
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<[u8; 32]> = self
            .sessions
            .iter()
            .filter(|(_, r)| r.session.deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for session_id in due {
            let actions = match self.sessions.get_mut(&session_id) {
                Some(r) => r.session.handle_deadline(now),
                None => continue,
            };
            self.apply(session_id, actions);
        }
        let now_ms = unix_ms();
        let waiting: Vec<RequestId> = self
            .own
            .iter()
            .filter(|(_, o)| o.is_waiting())
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            if self.own[&id].next_announce <= now {
                self.announce(&id);
            }
            let own = &self.own[&id];
            if !own.validating && own.next_tick_ms <= now_ms {
                self.tick(id, own.next_tick_ms);
            }
        }
    }

    /// An epoch tick for our waiting request `id`: validate every request
    /// of its pairing (on a blocking thread).
    fn tick(&mut self, id: RequestId, tick_ms: u64) {
        let epoch_ms = self.epoch_ms();
        let now_ms = unix_ms();
        let own = self.own.get_mut(&id).expect("a waiting request");
        // The next tick after this one (missed ticks are skipped).
        own.next_tick_ms = (now_ms / epoch_ms + 1) * epoch_ms;
        if unix_secs() >= own.request.expiry {
            own.coin_secrets.clear();
            own.status.last_error =
                Some("the request expired before a session completed: join again".into());
            self.set_phase(&id, RequestPhase::Failed, 0, Vec::new());
            return;
        }
        own.validating = true;
        own.reforms = 0;
        let pairing = own.pairing;
        let mut candidates = vec![own.request.clone()];
        let strikes = &self.strikes;
        let settle_ms = self.shared.config.settle.as_millis() as u64;
        if let Some(seen) = self.seen.get(&pairing) {
            candidates.extend(
                seen.values()
                    .filter(|s| s.settled_for(tick_ms, settle_ms))
                    .filter(|s| {
                        s.request
                            .outpoints()
                            .iter()
                            .all(|o| strikes.banned_until(o, now_ms).is_none())
                    })
                    .map(|s| s.request.clone()),
            );
        }
        let chain = self.shared.chain.clone();
        let report = self.internal_tx.clone();
        let epoch = tick_ms / 1000;
        tokio::task::spawn_blocking(move || {
            let result = validate_all(candidates, &pairing, chain.as_ref(), unix_secs());
            let _ = report.blocking_send(Internal::Validated {
                pairing,
                epoch,
                result,
            });
        });
    }

    fn on_internal(&mut self, report: Internal) {
        match report {
            Internal::Validated {
                pairing,
                epoch,
                result,
            } => self.on_validated(pairing, epoch, result),
            Internal::Broadcast { id, result } => match result {
                Ok(txid) => {
                    tracing::info!(%txid, "coinjoin transaction sent");
                    self.set_phase(&id, RequestPhase::Done, self.run_of(&id), Vec::new());
                }
                Err(e) => {
                    if let Some(own) = self.own.get_mut(&id) {
                        own.status.last_error =
                            Some(format!("the chain did not take the transaction: {e}"));
                    }
                    self.find_signed_earlier(id);
                }
            },
            Internal::Announced { id, at_ms } => {
                let Some(own) = self.own.get_mut(&id) else {
                    return;
                };
                match at_ms {
                    Some(at) => {
                        own.announced_ms.get_or_insert(at);
                        own.announce_retry = ANNOUNCE_RETRY;
                    }
                    // Nobody heard it (no peer on the topic yet): again
                    // soon, not an `announce_every` later.
                    None => {
                        let retry = own.announce_retry;
                        own.next_announce = own.next_announce.min(Instant::now() + retry);
                        own.announce_retry = (retry * 2).min(self.shared.config.announce_every);
                    }
                }
            }
            Internal::SignedEarlier { id, tx: None } => {
                self.set_phase(&id, RequestPhase::Failed, self.run_of(&id), Vec::new());
            }
            Internal::SignedEarlier { id, tx: Some(tx) } => {
                let Some(own) = self.own.get(&id) else {
                    return;
                };
                let Some((session_id, _)) = own.signed.clone() else {
                    return;
                };
                // Our outputs of whichever run it was.
                let mut ours = Vec::new();
                for run in 0..=own.status.run {
                    for index in 0..own.request.mixed_outputs {
                        let key = crate::coin::fresh_output_key(
                            &own.output_seed,
                            &session_id,
                            run,
                            index,
                        );
                        if tx
                            .output
                            .iter()
                            .any(|o| o.script_pubkey == key.script_pubkey())
                        {
                            ours.push(OurOutput {
                                run,
                                index,
                                output_key: hex::encode(key.output_key()),
                            });
                        }
                    }
                }
                let outputs = self.own_outputs(&id, &tx, &ours, session_id);
                let run = ours.first().map_or(0, |o| o.run);
                let own = self.own.get_mut(&id).expect("checked");
                own.status.our_outputs = outputs;
                own.status.txid = Some(tx.compute_txid().to_string());
                own.status.tx_hex = Some(serialize_hex(&tx));
                own.status.last_error = Some(format!(
                    "a participant completed run {run}'s transaction, which we had signed too; it \
                     confirmed instead of the last run's"
                ));
                self.set_phase(&id, RequestPhase::Done, run, Vec::new());
            }
        }
    }

    /// Looks for a transaction of the session we signed in an earlier
    /// run on the chain (blocking thread).
    fn find_signed_earlier(&self, id: RequestId) {
        let Some((_, txids)) = self.own.get(&id).and_then(|o| o.signed.clone()) else {
            let _ = self
                .internal_tx
                .try_send(Internal::SignedEarlier { id, tx: None });
            return;
        };
        let chain = self.shared.chain.clone();
        let report = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let tx = txids
                .iter()
                .find_map(|txid| chain.transaction(txid).ok().flatten())
                .map(|found| found.tx);
            let _ = report.blocking_send(Internal::SignedEarlier { id, tx });
        });
    }

    fn run_of(&self, id: &RequestId) -> u32 {
        self.own.get(id).map_or(0, |o| o.status.run)
    }

    fn on_validated(
        &mut self,
        pairing: Pairing,
        epoch: u64,
        result: Result<(Vec<PairRequest>, Vec<Exclusion>), ChainError>,
    ) {
        let Some(id) = self
            .own
            .iter()
            .find(|(_, o)| o.pairing == pairing && o.validating)
            .map(|(id, _)| *id)
        else {
            return;
        };
        let own = self.own.get_mut(&id).expect("found");
        own.validating = false;
        if !own.is_waiting() {
            return;
        }
        let (valid, refused) = match result {
            Ok(r) => r,
            Err(e) => {
                own.status.last_error = Some(format!("the epoch's requests were not checked: {e}"));
                self.emit(&id);
                return;
            }
        };
        let settle_ms = self.shared.config.settle.as_millis() as u64;
        let settled = own
            .announced_ms
            .is_some_and(|at| at + settle_ms <= epoch * 1000);
        if let Some(e) = refused
            .iter()
            .find(|e| own.request.outpoints() == e.outpoints)
        {
            own.status.last_error = Some(format!("our request was refused: {}", e.reason));
            let spent = matches!(&e.reason, crate::exclusion::Reason::InvalidRequest(r) if r.contains("not an unspent output"));
            if spent {
                own.coin_secrets.clear();
                self.set_phase(&id, RequestPhase::Failed, 0, Vec::new());
            } else {
                self.emit(&id);
            }
            return;
        }
        // Requests that cannot pass now are forgotten (their owners announce
        // them again if they become valid), and listed as left out of this
        // epoch's session, without a strike: a coin may just be unconfirmed.
        if let Some(seen) = self.seen.get_mut(&pairing) {
            for e in &refused {
                seen.retain(|_, s| s.request.outpoints() != e.outpoints);
            }
            // The rest have coins the chain confirmed: a flood of
            // announcements cannot push them out.
            seen.mark_checked(valid.iter().map(PairRequest::id));
        }
        let now_ms = unix_ms();
        let own = self.own.get_mut(&id).expect("found");
        for e in &refused {
            for o in &e.outpoints {
                let listed = ExcludedOutpoint {
                    outpoint: o.to_string(),
                    reason: e.reason.to_string(),
                    until_ms: now_ms,
                };
                if own.status.excluded.len() < MAX_EXCLUDED_LISTED
                    && !own.status.excluded.contains(&listed)
                {
                    own.status.excluded.push(listed);
                }
            }
        }
        let own = self.own.get_mut(&id).expect("found");
        own.status.peers = valid.len();
        if !settled {
            self.emit(&id);
            return;
        }
        match form_session(pairing, epoch, valid) {
            Err(too_few) => {
                let own = self.own.get_mut(&id).expect("found");
                own.status.last_error = Some(format!("at the last epoch tick: {too_few}"));
                self.emit(&id);
            }
            Ok(plan) => {
                self.note_exclusions(&id, &plan.excluded);
                if plan.requests.iter().any(|r| r.id() == id) {
                    self.start_session(id, plan);
                } else {
                    self.emit(&id);
                }
            }
        }
    }

    fn note_exclusions(&mut self, id: &RequestId, exclusions: &[Exclusion]) {
        let now_ms = unix_ms();
        let mut listed = Vec::new();
        for e in exclusions {
            for o in &e.outpoints {
                let until_ms = self.strikes.strike(*o, now_ms);
                if let (Some(store), Some(strike)) = (&self.shared.store, self.strikes.get(o)) {
                    store.save_strike(*o, strike);
                }
                listed.push(ExcludedOutpoint {
                    outpoint: o.to_string(),
                    reason: e.reason.to_string(),
                    until_ms,
                });
            }
        }
        if let Some(own) = self.own.get_mut(id) {
            for l in listed {
                if own.status.excluded.len() < MAX_EXCLUDED_LISTED {
                    own.status.excluded.push(l);
                }
            }
        }
    }

    fn start_session(&mut self, id: RequestId, plan: SessionPlan) {
        let own = self.own.get_mut(&id).expect("a waiting request");
        let mut authors = BTreeMap::new();
        for r in &plan.requests {
            let author = if r.id() == id {
                Some(self.me)
            } else {
                self.seen
                    .get(&plan.pairing)
                    .and_then(|s| s.get(&r.id()))
                    .map(|s| s.author)
            };
            if let Some(a) = author {
                authors.insert(r.id(), a);
            }
        }
        let config = SessionConfig {
            session_id: plan.session_id,
            pairing: plan.pairing,
            requests: plan.requests.clone(),
            own: id,
            timeouts: self.shared.config.timeouts,
            max_fee: own.max_fee,
        };
        let coin_keys = own
            .coin_secrets
            .iter()
            .map(|s| CoinKey::from_secret_bytes(s).expect("wallet keys are valid"))
            .collect();
        let mut rng_seed = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, rng_seed.as_mut_slice());
        let secrets = OwnSecrets {
            coin_keys,
            output_seed: own.output_seed.clone(),
            rng_seed,
        };
        let now = Instant::now();
        #[cfg(feature = "disruptor")]
        let started = match self.shared.config.disruption {
            Some(d) => Session::new_disruptor(config, secrets, d, now),
            None => Session::new(config, secrets, now),
        };
        #[cfg(not(feature = "disruptor"))]
        let started = Session::new(config, secrets, now);
        let (session, actions) = match started {
            Ok(s) => s,
            Err(e) => {
                own.status.last_error = Some(format!("the session could not start: {e}"));
                self.emit(&id);
                return;
            }
        };
        own.session = Some(plan.session_id);
        own.status.sessions += 1;
        own.status.peers = plan.requests.len();
        tracing::info!(
            session = %hex::encode(&plan.session_id[..8]),
            peers = plan.requests.len(),
            "coinjoin session started"
        );
        self.sessions.insert(
            plan.session_id,
            Running {
                session,
                own: id,
                pairing: plan.pairing,
                epoch: plan.epoch,
                authors,
            },
        );
        self.apply(plan.session_id, actions);
        // Messages that arrived before we started: this session's, and key
        // exchanges of other views by our participants.
        let replay = self.early.take_for(
            plan.session_id,
            plan.pairing,
            self.sessions[&plan.session_id].session.participants(),
            Instant::now(),
        );
        for (author, message) in replay {
            self.deliver(plan.session_id, author, &message);
        }
    }

    fn deliver(&mut self, session_id: [u8; 32], author: RequestId, message: &[u8]) {
        let Some(running) = self.sessions.get_mut(&session_id) else {
            return;
        };
        match running
            .session
            .handle_message(author, message, Instant::now())
        {
            Ok(actions) => self.apply(session_id, actions),
            Err(refusal) => tracing::debug!(%refusal, "coinjoin: run message not taken"),
        }
    }

    fn apply(&mut self, session_id: [u8; 32], actions: Vec<Action>) {
        for action in actions {
            let Some(running) = self.sessions.get(&session_id) else {
                return;
            };
            let id = running.own;
            let pairing = running.pairing;
            match action {
                Action::Publish(message) => {
                    let bytes = TopicMessage::Run {
                        author: id,
                        message,
                    }
                    .encode();
                    let outgoing = Outgoing {
                        topic: pairing.topic(),
                        bytes,
                        announces: None,
                    };
                    if self.publisher.try_send(outgoing).is_err() {
                        tracing::warn!("coinjoin: the publish queue is full; run message dropped");
                    }
                }
                Action::Phase {
                    run,
                    phase,
                    holdouts,
                } => {
                    let peers = running.session.participants().len();
                    if let Some(own) = self.own.get_mut(&id) {
                        own.status.peers = peers;
                    }
                    let holdouts = holdouts.iter().map(ToString::to_string).collect();
                    self.set_phase(&id, RequestPhase::of(phase), run, holdouts);
                }
                Action::Excluded(exclusions) => self.note_exclusions(&id, &exclusions),
                Action::Finished(outcome) => self.finish(session_id, outcome),
            }
        }
    }

    fn finish(&mut self, session_id: [u8; 32], outcome: Outcome) {
        let Some(running) = self.sessions.remove(&session_id) else {
            return;
        };
        remember_finished(&mut self.finished, session_id);
        let id = running.own;
        if !self.own.contains_key(&id) {
            return;
        }
        if let Outcome::Completed {
            tx, our_outputs, ..
        } = &outcome
        {
            let outputs = self.own_outputs(&id, tx, our_outputs, session_id);
            self.own.get_mut(&id).expect("checked").status.our_outputs = outputs;
        }
        let own = self.own.get_mut(&id).expect("checked");
        own.session = None;
        match outcome {
            Outcome::Completed {
                tx, our_fee, run, ..
            } => {
                // Every participant's request is used up.
                if let Some(seen) = self.seen.get_mut(&running.pairing) {
                    for p in running.session.participants() {
                        seen.remove(p);
                    }
                }
                own.coin_secrets.clear();
                own.signed = Some((session_id, running.session.signed_txids().to_vec()));
                own.status.txid = Some(tx.compute_txid().to_string());
                own.status.tx_hex = Some(serialize_hex(&tx));
                own.status.fee_sats = Some(our_fee);
                self.set_phase(&id, RequestPhase::Broadcasting, run, Vec::new());
                self.broadcast(id, tx);
            }
            Outcome::Reform { requests } => {
                let mut known: Vec<PairRequest> = Vec::new();
                for r in &requests {
                    if *r == id {
                        known.push(own.request.clone());
                    } else if let Some(s) = self.seen.get(&running.pairing).and_then(|s| s.get(r)) {
                        known.push(s.request.clone());
                    }
                }
                own.reforms += 1;
                let again = own.reforms <= MAX_REFORMS;
                match form_session(running.pairing, running.epoch, known) {
                    // Never onto a session that already ran here: its
                    // machine would publish a second key exchange for it.
                    Ok(plan)
                        if again
                            && plan.requests.iter().any(|r| r.id() == id)
                            && !self.finished.contains(&plan.session_id) =>
                    {
                        self.start_session(id, plan);
                    }
                    Ok(_) | Err(_) => {
                        own.status.last_error =
                            Some("peers' views of the epoch's requests differed".into());
                        self.set_phase(&id, RequestPhase::Waiting, 0, Vec::new());
                    }
                }
            }
            Outcome::Failed { reason } => {
                own.status.last_error = Some(reason);
                self.set_phase(&id, RequestPhase::Waiting, 0, Vec::new());
            }
        }
    }

    /// Our outputs in `tx`: the mixed ones (which the wallet remembers, to
    /// spend them later) and our change.
    fn own_outputs(
        &self,
        id: &RequestId,
        tx: &Transaction,
        mixed: &[OurOutput],
        session_id: [u8; 32],
    ) -> Vec<OwnOutput> {
        let own = &self.own[id];
        let network = self.shared.wallet.network();
        let address = |script: &ScriptBuf| {
            Address::from_script(script, network)
                .map_or_else(|_| script.to_hex_string(), |a| a.to_string())
        };
        let mut outputs = Vec::new();
        for o in mixed {
            let Some(key) = hex::decode(&o.output_key)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
            else {
                continue;
            };
            let Some(script) = p2tr_script(&key) else {
                continue;
            };
            self.shared.wallet.remember_output(
                script.clone(),
                KeyPath::Output {
                    nonce: own.request.nonce,
                    session_id,
                    run: o.run,
                    index: o.index,
                },
            );
            let amount = tx
                .output
                .iter()
                .find(|t| t.script_pubkey == script)
                .map_or(0, |t| t.value.to_sat());
            outputs.push(OwnOutput {
                address: address(&script),
                amount_sats: amount,
                mixed: true,
            });
        }
        for t in tx
            .output
            .iter()
            .filter(|t| t.script_pubkey == own.change_script)
        {
            outputs.push(OwnOutput {
                address: address(&t.script_pubkey),
                amount_sats: t.value.to_sat(),
                mixed: false,
            });
        }
        outputs
    }

    fn broadcast(&self, id: RequestId, tx: Transaction) {
        let chain = self.shared.chain.clone();
        let report = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = chain.broadcast(&tx);
            let _ = report.blocking_send(Internal::Broadcast { id, result });
        });
    }

    fn on_gossip(&mut self, message: GossipMessage) {
        let Some(pairing) = self.topics.get(&message.topic).copied() else {
            return;
        };
        let Some(from) = message.from else {
            return;
        };
        let decoded = match TopicMessage::decode(&message.data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%from, %e, "coinjoin: topic message refused");
                return;
            }
        };
        match decoded {
            TopicMessage::Request(bytes) => self.on_request(pairing, from, &bytes),
            TopicMessage::Run { author, message } => self.on_run(pairing, from, author, message),
            TopicMessage::Withdraw(id) => self.on_withdraw(pairing, from, id),
        }
    }

    /// Shows our waiting requests of `pairing` how many requests they would
    /// form a session with now (theirs included).
    fn show_peer_counts(&mut self, pairing: Pairing) {
        let count = self.seen.get(&pairing).map_or(0, SeenRequests::len);
        let waiting: Vec<RequestId> = self
            .own
            .iter()
            .filter(|(_, o)| o.pairing == pairing && o.is_waiting())
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            if let Some(own) = self.own.get_mut(&id) {
                own.status.peers = count + 1;
            }
            self.emit(&id);
        }
    }

    /// Forgets a request its author withdrew; anyone else's withdrawal of
    /// it changes nothing. A session that formed with it already runs on,
    /// and excludes it if its author stops taking part.
    fn on_withdraw(&mut self, pairing: Pairing, from: PeerId, id: RequestId) {
        let Some(seen) = self.seen.get_mut(&pairing) else {
            return;
        };
        if seen.get(&id).is_none_or(|s| s.author != from) {
            tracing::debug!(%from, %id, "coinjoin: a withdrawal not by its request's author");
            return;
        }
        seen.remove(&id);
        self.show_peer_counts(pairing);
    }

    fn on_request(&mut self, pairing: Pairing, from: PeerId, bytes: &[u8]) {
        let request = match PairRequest::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%from, %e, "coinjoin: pair request refused");
                return;
            }
        };
        let id = request.id();
        if self.own.contains_key(&id) {
            return;
        }
        if request.author != from.to_bytes() {
            tracing::debug!(%from, "coinjoin: a pair request announced by someone other than its author");
            return;
        }
        let now_ms = unix_ms();
        if let Err(e) = request.check_bounds(&pairing, now_ms / 1000) {
            tracing::debug!(%from, %e, "coinjoin: pair request refused");
            return;
        }
        let expiry = request.expiry;
        let seen = self.seen.entry(pairing).or_default();
        match seen.insert(id, request, from, expiry, now_ms) {
            Admission::Added => self.show_peer_counts(pairing),
            Admission::Known => {}
            Admission::Refused(why) => {
                tracing::debug!(%from, why, "coinjoin: pair request not kept");
            }
        }
    }

    fn on_run(&mut self, pairing: Pairing, from: PeerId, author: RequestId, message: Vec<u8>) {
        let known_author = self
            .seen
            .get(&pairing)
            .and_then(|s| s.get(&author))
            .map(|s| s.author);
        if known_author != Some(from) {
            tracing::debug!(%from, %author, "coinjoin: a run message not signed by its request's author");
            return;
        }
        let session_id = match RunMessage::decode(&message) {
            Ok(m) => m.session_id,
            Err(e) => {
                tracing::debug!(%from, %e, "coinjoin: run message refused");
                return;
            }
        };
        if self.sessions.contains_key(&session_id) {
            self.deliver(session_id, author, &message);
            return;
        }
        if self.finished.contains(&session_id) {
            return;
        }
        // Another view of a session we are in (the machine decides whether
        // it is one), or a session we have not started yet.
        let others: Vec<[u8; 32]> = self
            .sessions
            .iter()
            .filter(|(_, r)| r.pairing == pairing && r.authors.get(&author) == Some(&from))
            .map(|(id, _)| *id)
            .collect();
        for other in others {
            self.deliver(other, author, &message);
        }
        self.early
            .keep(pairing, session_id, author, from, message, Instant::now());
    }
}

impl Own {
    fn is_waiting(&self) -> bool {
        self.session.is_none() && self.status.phase == RequestPhase::Waiting
    }
}

fn remember_finished(finished: &mut VecDeque<[u8; 32]>, id: [u8; 32]) {
    if finished.len() >= MAX_FINISHED_SESSIONS {
        finished.pop_front();
    }
    finished.push_back(id);
}

/// Publishes our messages one at a time, in the order they were made, and
/// tells the actor whether each announcement reached the network.
async fn publish(
    node: conclave_node::NodeHandle,
    mut queue: mpsc::Receiver<Outgoing>,
    report: mpsc::Sender<Internal>,
) {
    while let Some(Outgoing {
        topic,
        bytes,
        announces,
    }) = queue.recv().await
    {
        let result = node.broadcast(&topic, bytes).await;
        if let Err(e) = &result {
            tracing::debug!(%topic, %e, "coinjoin: publish failed");
            if matches!(e, conclave_node::NodeError::Stopped) {
                return;
            }
        }
        if let Some(id) = announces {
            let at_ms = result.is_ok().then(unix_ms);
            let _ = report.send(Internal::Announced { id, at_ms }).await;
        }
    }
}
