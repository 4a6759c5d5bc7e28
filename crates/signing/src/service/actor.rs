//! The actor: owns every session's state machines, the ledger and the
//! signer directory, and turns their actions into I/O. It never awaits the
//! network or the key store itself: sends run in spawned tasks that report
//! failures back, and slow preparation happens in the handle's callers.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};
use zeroize::Zeroizing;

use conclave_node::{
    clock::unix_ms, error::ProtocolError, EventSubscription, NodeError, NodeEvent, PeerId,
};
use tokio::sync::{broadcast, mpsc};

use super::{
    handler::Inbound,
    wire::{self, PROTOCOL},
    Command, JoinTicket, Shared, SigningError, SigningHandle,
};
use crate::{
    advert::{Directory, SignerRecord, SIGNER_TOPIC},
    api::{InvitationInfo, PhaseChange, Role, SessionStatus, Signing, SigningEvent},
    keys::{SecretKey, SignerKey},
    ledger::{Ledger, LedgerState},
    proto::{
        participant::JoinError, Action, Coordinator, FailureKind, Outcome, Participant, Payload,
        Phase, SessionId, SessionMessage, SessionSpec,
    },
    psbt::{self, MusigFields},
};

/// Signer records remembered from gossip and the DHT.
const DIRECTORY_CAPACITY: usize = 4096;
/// Local items (send reports, commands) taken in a row before the network
/// gets a turn.
const MAX_LOCAL_IN_A_ROW: usize = 64;

/// A failed send, reported by its task.
struct SendReport {
    session_id: SessionId,
    peer: PeerId,
    /// Whether the session cannot go on without this message.
    essential: bool,
    /// Sent by our participant (to the coordinator) rather than our coordinator.
    from_participant: bool,
    reason: String,
}

/// One session here: our coordinator, our participant, or both (a
/// coordinator that also signs).
struct Session {
    coordinator: Option<Coordinator>,
    participant: Option<Participant>,
    created_at_ms: u64,
    updated_at_ms: u64,
    timeline: Vec<PhaseChange>,
    last: Option<(Phase, Vec<SignerKey>)>,
    /// For a signed PSBT: (base64 PSBT, transaction hex).
    psbt_result: Option<(String, String)>,
    closed: bool,
}

impl Session {
    fn new() -> Self {
        let now = unix_ms();
        Self {
            coordinator: None,
            participant: None,
            created_at_ms: now,
            updated_at_ms: now,
            timeline: Vec::new(),
            last: None,
            psbt_result: None,
            closed: false,
        }
    }

    fn role(&self) -> Role {
        if self.coordinator.is_some() {
            Role::Coordinator
        } else {
            Role::Signer
        }
    }

    /// The view that speaks for the session: the coordinator's if we run it.
    fn phase(&self) -> Phase {
        match (&self.coordinator, &self.participant) {
            (Some(c), _) => c.phase(),
            (None, Some(p)) => p.phase(),
            (None, None) => Phase::Aborted,
        }
    }

    fn holdouts(&self) -> Vec<SignerKey> {
        match (&self.coordinator, &self.participant) {
            (Some(c), _) => c.holdouts(),
            (None, Some(p)) => p.holdouts(),
            (None, None) => Vec::new(),
        }
    }

    fn outcome(&self) -> Option<&Outcome> {
        match (&self.coordinator, &self.participant) {
            (Some(c), _) => c.outcome(),
            (None, Some(p)) => p.outcome(),
            (None, None) => None,
        }
    }

    fn spec(&self) -> &SessionSpec {
        match (&self.coordinator, &self.participant) {
            (Some(c), _) => c.spec(),
            (None, Some(p)) => p.spec(),
            (None, None) => unreachable!("a session has a role"),
        }
    }

    fn context(&self) -> &crate::proto::SessionContext {
        match (&self.coordinator, &self.participant) {
            (Some(c), _) => c.context(),
            (None, Some(p)) => p.context(),
            (None, None) => unreachable!("a session has a role"),
        }
    }

    fn is_open_invitation(&self) -> bool {
        self.coordinator.is_none()
            && self
                .participant
                .as_ref()
                .is_some_and(|p| p.phase() == Phase::Invitation)
    }
}

pub(crate) struct Actor {
    shared: Arc<Shared>,
    events: broadcast::Sender<SigningEvent>,
    me: PeerId,
    ledger: Ledger,
    our_keys: BTreeSet<SignerKey>,
    commands: mpsc::Receiver<Command>,
    commands_weak: mpsc::WeakSender<Command>,
    inbound: mpsc::Receiver<Inbound>,
    node_events: EventSubscription,
    reports: mpsc::Receiver<SendReport>,
    reports_tx: mpsc::Sender<SendReport>,
    sessions: BTreeMap<SessionId, Session>,
    finished: VecDeque<SessionId>,
    directory: Directory,
    /// Messages from this node to itself (a coordinator that also signs).
    local: VecDeque<(SessionId, SessionMessage)>,
    next_advert: tokio::time::Instant,
}

impl Actor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        events: broadcast::Sender<SigningEvent>,
        ledger: Ledger,
        our_keys: Vec<SignerKey>,
        commands: mpsc::Receiver<Command>,
        commands_weak: mpsc::WeakSender<Command>,
        inbound: mpsc::Receiver<Inbound>,
        node_events: EventSubscription,
    ) -> Self {
        let (reports_tx, reports) = mpsc::channel(256);
        let advert_every = shared.config.advert_ttl / 2;
        Self {
            me: shared.node.peer_id(),
            directory: Directory::new(DIRECTORY_CAPACITY, shared.config.advert_ttl),
            shared,
            events,
            ledger,
            our_keys: our_keys.into_iter().collect(),
            commands,
            commands_weak,
            inbound,
            node_events,
            reports,
            reports_tx,
            sessions: BTreeMap::new(),
            finished: VecDeque::new(),
            local: VecDeque::new(),
            next_advert: tokio::time::Instant::now() + advert_every,
        }
    }

    /// Runs until a `Stop` command arrives, every handle is gone or the
    /// node stops.
    ///
    /// `biased`: the branches are polled in order, so the reports of our own
    /// send tasks, callers' commands and due deadlines are taken before new
    /// messages and events from the network (local work first, as the
    /// node's event loop does). After [`MAX_LOCAL_IN_A_ROW`] local items the
    /// network gets one turn, so a steady stream of commands cannot stall
    /// the sessions' peers either.
    pub(crate) async fn run(mut self) {
        let mut local_in_a_row = 0;
        loop {
            let deadline = self
                .next_deadline()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            let network_turn = local_in_a_row >= MAX_LOCAL_IN_A_ROW;
            tokio::select! {
                biased;
                Some(report) = self.reports.recv(), if !network_turn => {
                    local_in_a_row += 1;
                    self.on_report(report);
                }
                command = self.commands.recv(), if !network_turn => {
                    local_in_a_row += 1;
                    match command {
                        Some(Command::Stop { reply }) => {
                            self.stop_all();
                            let _ = reply.send(());
                            break;
                        }
                        Some(command) => self.on_command(command),
                        None => {
                            self.stop_all();
                            break;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline), if !network_turn => {
                    local_in_a_row += 1;
                    self.on_deadlines();
                }
                Some(inbound) = self.inbound.recv() => {
                    local_in_a_row = 0;
                    self.on_inbound(inbound);
                }
                event = self.node_events.recv() => {
                    local_in_a_row = 0;
                    match event {
                        Some(event) => self.on_node_event(event),
                        None => {
                            self.stop_all();
                            break;
                        }
                    }
                }
                _ = tokio::time::sleep_until(self.next_advert) => self.readvertise(),
                // The network's turn, and it had nothing ready: back to local work.
                () = std::future::ready(()), if network_turn => local_in_a_row = 0,
            }
            self.drain_local();
        }
        tracing::debug!("signing service stopped");
    }

    fn handle(&self) -> Option<SigningHandle> {
        Some(SigningHandle {
            shared: self.shared.clone(),
            commands: self.commands_weak.upgrade()?,
        })
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|s| {
                [
                    s.coordinator.as_ref().and_then(|c| c.deadline()),
                    s.participant.as_ref().and_then(|p| p.deadline()),
                ]
            })
            .flatten()
            .min()
    }

    fn active(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| !s.phase().is_terminal())
            .count()
    }

    /// Coordinators of the sessions in progress that other peers invited
    /// this node to, one entry per session.
    fn remote_coordinators(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.sessions
            .values()
            .filter(|s| s.coordinator.is_none() && !s.phase().is_terminal())
            .filter_map(|s| s.participant.as_ref().map(|p| p.spec().coordinator))
    }

    /// Whether an invitation from `from` may take a slot: the node's own
    /// sessions keep their reserve, and no coordinator holds more than its
    /// share.
    fn invitation_slot(&self, from: &PeerId) -> Result<(), String> {
        let config = &self.shared.config;
        let limit = config.max_active_sessions;
        if self.active() >= limit {
            return Err(format!("busy: {limit} sessions already in progress"));
        }
        let share = limit.saturating_sub(config.reserved_for_own_sessions);
        let remote = self.remote_coordinators().count();
        if remote >= share {
            return Err(format!(
                "busy: {remote} invited sessions already in progress, the most this node \
                 takes from other peers; try again when one has finished"
            ));
        }
        let per = config.max_invitations_per_coordinator;
        let yours = self.remote_coordinators().filter(|c| c == from).count();
        if yours >= per {
            return Err(format!(
                "busy: {yours} of your sessions already in progress here, the most one \
                 coordinator may have; finish or abort one first"
            ));
        }
        Ok(())
    }

    // ----- commands -----------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Create { spec, reply } => {
                let _ = reply.send(self.create(spec));
            }
            Command::Lookup { keys, reply } => {
                let now = Instant::now();
                let found = keys
                    .iter()
                    .map(|key| {
                        if self.our_keys.contains(key) {
                            Some(SignerRecord {
                                key: *key,
                                peer: self.me,
                                addrs: Vec::new(),
                                proof: String::new(),
                            })
                        } else {
                            self.directory.get(key, now).cloned()
                        }
                    })
                    .collect();
                let _ = reply.send(found);
            }
            Command::Remember { records } => {
                let now = Instant::now();
                for record in records.into_iter().filter(|r| r.peer != self.me) {
                    self.directory.insert(record, now);
                }
            }
            Command::Invitations { reply } => {
                let list = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.is_open_invitation())
                    .map(|(id, s)| self.invitation_info(*id, s))
                    .collect();
                let _ = reply.send(list);
            }
            Command::PrepareJoin { id, reply } => {
                let _ = reply.send(self.prepare_join(id));
            }
            Command::Join {
                id,
                secrets,
                entropy,
                reply,
            } => {
                let _ = reply.send(self.join(id, secrets, entropy));
            }
            Command::Decline { id, reason, reply } => {
                let result = match self
                    .sessions
                    .get_mut(&id)
                    .and_then(|s| s.participant.as_mut())
                {
                    Some(p) => {
                        let actions = p.decline(&reason);
                        self.apply(id, Role::Signer, actions);
                        Ok(())
                    }
                    None => Err(SigningError::UnknownSession(id.to_string())),
                };
                let _ = reply.send(result);
            }
            Command::Status { id, reply } => {
                let status = match self.sessions.get(&id) {
                    Some(s) => Some(self.status(id, s)),
                    None => self.ledger.get(&id).and_then(|e| e.status.clone()),
                };
                let _ = reply.send(status);
            }
            Command::List { reply } => {
                let mut list: Vec<SessionStatus> = self
                    .ledger
                    .entries()
                    .iter()
                    .filter(|(id, _)| !self.sessions.contains_key(id))
                    .filter_map(|(_, e)| e.status.clone())
                    .collect();
                list.extend(self.sessions.iter().map(|(id, s)| self.status(*id, s)));
                list.sort_by(|a, b| {
                    (a.created_at_ms, &a.session_id).cmp(&(b.created_at_ms, &b.session_id))
                });
                let _ = reply.send(list);
            }
            Command::KeysChanged { keys } => self.our_keys = keys.into_iter().collect(),
            Command::Stop { .. } => unreachable!("handled in run"),
        }
    }

    fn create(&mut self, spec: SessionSpec) -> Result<(), SigningError> {
        let limit = self.shared.config.max_active_sessions;
        if self.active() >= limit {
            return Err(SigningError::Busy(limit));
        }
        let id = spec.session_id;
        let (coordinator, actions) = Coordinator::new(spec, Instant::now())?;
        self.ledger.begin(id, Role::Coordinator)?;
        let mut session = Session::new();
        session.coordinator = Some(coordinator);
        self.sessions.insert(id, session);
        self.apply(id, Role::Coordinator, actions);
        Ok(())
    }

    fn prepare_join(&self, id: SessionId) -> Result<JoinTicket, SigningError> {
        let p = self
            .sessions
            .get(&id)
            .and_then(|s| s.participant.as_ref())
            .ok_or_else(|| SigningError::UnknownSession(id.to_string()))?;
        if p.phase() != Phase::Invitation {
            return Err(JoinError::NotInvited(id.to_string(), p.phase()).into());
        }
        Ok(JoinTicket {
            keys: p.our_keys().to_vec(),
            coordinator: p.spec().coordinator,
            coordinator_addrs: p.spec().coordinator_addrs.clone(),
        })
    }

    fn join(
        &mut self,
        id: SessionId,
        secrets: Vec<SecretKey>,
        entropy: Zeroizing<[u8; 32]>,
    ) -> Result<(), SigningError> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or_else(|| SigningError::UnknownSession(id.to_string()))?;
        let ours = session.coordinator.is_some();
        let participant = session
            .participant
            .as_mut()
            .ok_or_else(|| SigningError::UnknownSession(id.to_string()))?;
        let actions = participant.join(secrets, entropy, Instant::now())?;
        // Write-ahead: the ledger knows of the session before any nonce
        // exists (our own sessions were recorded when created).
        if !ours {
            if let Err(e) = self.ledger.begin(id, Role::Signer) {
                let abort = participant.abort(&e.to_string());
                self.apply(id, Role::Signer, abort);
                return Err(e.into());
            }
        }
        self.apply(id, Role::Signer, actions);
        Ok(())
    }

    // ----- messages -----------------------------------------------------

    fn on_inbound(&mut self, inbound: Inbound) {
        let Inbound {
            from,
            session_id,
            message,
            verdict,
        } = inbound;
        let result = self.route(from, session_id, message);
        if let Err(reason) = &result {
            tracing::debug!(%from, session = %session_id, %reason, "session message refused");
        }
        let _ = verdict.send(result);
    }

    fn route(
        &mut self,
        from: PeerId,
        id: SessionId,
        message: SessionMessage,
    ) -> Result<(), String> {
        if let SessionMessage::Invite(spec) = message {
            return self.on_invite(from, id, spec);
        }
        let now = Instant::now();
        let session = self.sessions.get_mut(&id).ok_or_else(|| {
            format!("unknown session {id} (finished, aborted, or never seen here)")
        })?;
        let origin = if message.is_for_coordinator() {
            Role::Coordinator
        } else {
            Role::Signer
        };
        let actions = if message.is_for_coordinator() {
            match session.coordinator.as_mut() {
                Some(c) => c.handle_message(from, message, now),
                None => return Err(format!("this node does not coordinate session {id}")),
            }
        } else {
            match session.participant.as_mut() {
                Some(p) => p.handle_message(from, message, now),
                None => return Err(format!("this node does not sign in session {id}")),
            }
        }
        .map_err(|refusal| refusal.0)?;
        self.apply(id, origin, actions);
        Ok(())
    }

    fn on_invite(&mut self, from: PeerId, id: SessionId, spec: SessionSpec) -> Result<(), String> {
        if spec.session_id != id {
            return Err("the invitation names another session".into());
        }
        if spec.coordinator != from {
            return Err("an invitation must come from the session's coordinator".into());
        }
        if self.sessions.contains_key(&id) {
            return Err(format!("session {id} is already known here"));
        }
        if let Some(entry) = self.ledger.get(&id) {
            return Err(format!(
                "session {id} already took place here ({:?}); a session id never gets a second signing round",
                entry.state
            ));
        }
        self.invitation_slot(&from)?;
        let participant =
            Participant::new(spec, self.me, Instant::now()).map_err(|e| e.to_string())?;
        if let Some(missing) = participant
            .our_keys()
            .iter()
            .find(|k| !self.our_keys.contains(k))
        {
            return Err(format!("this node does not hold signing key {missing}"));
        }
        let holdouts = participant.holdouts();
        let mut session = Session::new();
        session.participant = Some(participant);
        self.sessions.insert(id, session);
        self.on_phase(id, Phase::Invitation, holdouts);
        let info = self.invitation_info(id, &self.sessions[&id]);
        tracing::info!(session = %id, coordinator = %from, "invitation received");
        let _ = self.events.send(SigningEvent::Invitation(info));
        if self.shared.config.auto_join {
            self.spawn_join(id);
        }
        Ok(())
    }

    /// Our coordinator invites our own keys: creating the session was the
    /// person's consent, so they join at once.
    fn on_local_invite(&mut self, id: SessionId, spec: SessionSpec) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        match Participant::new(spec, self.me, Instant::now()) {
            Ok(p) => {
                session.participant = Some(p);
                self.spawn_join(id);
            }
            Err(e) => tracing::warn!(session = %id, %e, "own keys cannot take part"),
        }
    }

    fn spawn_join(&self, id: SessionId) {
        let Some(handle) = self.handle() else { return };
        tokio::spawn(async move {
            if let Err(e) = handle.join(&id.to_string()).await {
                tracing::warn!(session = %id, %e, "joining failed");
            }
        });
    }

    fn drain_local(&mut self) {
        while let Some((id, message)) = self.local.pop_front() {
            match message {
                SessionMessage::Invite(spec) => self.on_local_invite(id, spec),
                message => {
                    if let Err(reason) = self.route(self.me, id, message) {
                        tracing::debug!(session = %id, %reason, "local session message refused");
                    }
                }
            }
        }
    }

    fn on_report(&mut self, report: SendReport) {
        tracing::debug!(
            session = %report.session_id,
            peer = %report.peer,
            reason = %report.reason,
            essential = report.essential,
            "session message not delivered"
        );
        if !report.essential {
            return;
        }
        let Some(session) = self.sessions.get_mut(&report.session_id) else {
            return;
        };
        let (origin, actions) = if report.from_participant {
            let actions = session
                .participant
                .as_mut()
                .map(|p| p.handle_send_failure(&report.reason));
            (Role::Signer, actions)
        } else {
            let actions = session
                .coordinator
                .as_mut()
                .map(|c| c.handle_send_failure(report.peer, &report.reason));
            (Role::Coordinator, actions)
        };
        if let Some(actions) = actions {
            self.apply(report.session_id, origin, actions);
        }
    }

    fn on_node_event(&mut self, event: NodeEvent) {
        match event {
            NodeEvent::PeerDisconnected { peer_id } => {
                let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
                for id in ids {
                    let actions = self
                        .sessions
                        .get_mut(&id)
                        .and_then(|s| s.coordinator.as_mut())
                        .map(|c| c.handle_peer_disconnected(peer_id));
                    if let Some(actions) = actions {
                        self.apply(id, Role::Coordinator, actions);
                    }
                }
            }
            NodeEvent::Message(message) if message.topic == SIGNER_TOPIC => {
                let Some(publisher) = message.from else {
                    return;
                };
                match self
                    .directory
                    .accept_advert(publisher, &message.data, Instant::now())
                {
                    Ok(refused) => {
                        for e in refused {
                            tracing::warn!(%publisher, %e, "signer record refused");
                        }
                    }
                    Err(e) => tracing::debug!(%publisher, %e, "signer advert not read"),
                }
            }
            NodeEvent::Lagged { missed } => {
                tracing::warn!(missed, "signing service missed node events");
            }
            _ => {}
        }
    }

    fn on_deadlines(&mut self) {
        let now = Instant::now();
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            let coordinator = session.coordinator.as_mut().map(|c| c.handle_timeout(now));
            let participant = session.participant.as_mut().map(|p| p.handle_timeout(now));
            self.apply(id, Role::Coordinator, coordinator.unwrap_or_default());
            self.apply(id, Role::Signer, participant.unwrap_or_default());
        }
    }

    fn readvertise(&mut self) {
        self.next_advert = tokio::time::Instant::now() + self.shared.config.advert_ttl / 2;
        if let Some(handle) = self.handle() {
            tokio::spawn(async move {
                if let Err(e) = handle.advertise().await {
                    tracing::warn!(%e, "signer keys not re-advertised");
                }
            });
        }
    }

    fn stop_all(&mut self) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            let coordinator = session
                .coordinator
                .as_mut()
                .map(|c| c.abort("the coordinator's signing service stopped"));
            let participant = session
                .participant
                .as_mut()
                .map(|p| p.abort("the signing service stopped"));
            self.apply(id, Role::Coordinator, coordinator.unwrap_or_default());
            self.apply(id, Role::Signer, participant.unwrap_or_default());
        }
        self.drain_local();
    }

    // ----- actions ------------------------------------------------------

    /// Carries out the actions of the session's `origin` role.
    fn apply(&mut self, id: SessionId, origin: Role, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    let (local, remote): (Vec<PeerId>, Vec<PeerId>) =
                        to.into_iter().partition(|p| *p == self.me);
                    if !local.is_empty() {
                        self.local.push_back((id, message.clone()));
                    }
                    if !remote.is_empty() {
                        self.spawn_send(id, remote, message);
                    }
                }
                Action::Phase { phase, holdouts } => {
                    // A coordinator that also signs speaks for the session.
                    let primary = self.sessions.get(&id).map(|s| s.role());
                    if primary == Some(origin) {
                        self.on_phase(id, phase, holdouts);
                    }
                }
                Action::Finished(_) => self.on_finished(id),
            }
        }
    }

    fn spawn_send(&self, session_id: SessionId, to: Vec<PeerId>, message: SessionMessage) {
        let node = self.shared.node.clone();
        let reports = self.reports_tx.clone();
        let essential = !matches!(
            message,
            SessionMessage::Progress { .. }
                | SessionMessage::Outcome(_)
                | SessionMessage::Decline { .. }
        );
        let from_participant = message.is_for_coordinator();
        tokio::spawn(async move {
            let report = |peer, reason| SendReport {
                session_id,
                peer,
                essential,
                from_participant,
                reason,
            };
            let bytes = match wire::encode(&node, session_id, &message, &to) {
                Ok(bytes) => bytes,
                Err(e) => {
                    for peer in to {
                        let _ = reports
                            .send(report(peer, format!("cannot seal: {e}")))
                            .await;
                    }
                    return;
                }
            };
            let sends = to.iter().map(|peer| {
                let node = node.clone();
                let bytes = bytes.clone();
                async move { (*peer, node.send_to(*peer, PROTOCOL, bytes).await) }
            });
            for (peer, result) in futures::future::join_all(sends).await {
                let reason = match result {
                    Ok(_) => continue,
                    Err(NodeError::Protocol(ProtocolError::Remote { reason, .. })) => {
                        format!("refused: {reason}")
                    }
                    Err(e) => format!("unreachable: {e}"),
                };
                let _ = reports.send(report(peer, reason)).await;
            }
        });
    }

    fn on_phase(&mut self, id: SessionId, phase: Phase, holdouts: Vec<SignerKey>) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let now = (phase, holdouts);
        if session.last.as_ref() == Some(&now) {
            return;
        }
        let at_ms = unix_ms();
        session.updated_at_ms = at_ms;
        if session.last.as_ref().map(|(p, _)| *p) != Some(now.0) {
            session.timeline.push(PhaseChange {
                phase: now.0,
                at_ms,
            });
        }
        session.last = Some(now.clone());
        tracing::debug!(session = %id, phase = %now.0, holdouts = now.1.len(), "session phase");
        let _ = self.events.send(SigningEvent::Phase {
            session_id: id.to_string(),
            phase: now.0,
            holdouts: now.1,
        });
    }

    fn on_finished(&mut self, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.closed || !session.phase().is_terminal() {
            return;
        }
        session.closed = true;
        if let (Some(Outcome::Completed { signatures }), Payload::Psbt(bytes)) =
            (session.outcome(), &session.spec().payload)
        {
            match finish_psbt(session, bytes, signatures) {
                Ok(result) => session.psbt_result = Some(result),
                Err(e) => tracing::warn!(session = %id, %e, "signed PSBT not produced"),
            }
        }
        let session = &self.sessions[&id];
        let status = self.status(id, session);
        let (state, reason) = match session.outcome() {
            Some(Outcome::Completed { .. }) => (LedgerState::Done, None),
            Some(Outcome::Failed(f)) if f.kind == FailureKind::Aborted => {
                (LedgerState::Aborted, Some(f.reason.clone()))
            }
            Some(Outcome::Failed(f)) => (LedgerState::Failed, Some(f.reason.clone())),
            None => (LedgerState::Aborted, None),
        };
        let role = session.role();
        if let Err(e) = self.ledger.close(id, role, state, reason, status.clone()) {
            tracing::error!(session = %id, %e, "session outcome not recorded in the ledger");
        }
        tracing::info!(session = %id, phase = %status.phase, "session finished");
        let _ = self.events.send(SigningEvent::Finished(Box::new(status)));
        self.finished.push_back(id);
        while self.finished.len() > self.shared.config.max_finished_in_memory {
            if let Some(old) = self.finished.pop_front() {
                self.sessions.remove(&old);
            }
        }
    }

    // ----- views --------------------------------------------------------

    fn signing(session: &Session) -> Signing {
        match &session.spec().payload {
            Payload::Message(message) => Signing::Message {
                message: hex::encode(message),
            },
            Payload::Psbt(_) => Signing::Psbt {
                summary: session
                    .context()
                    .psbt_summary
                    .clone()
                    .expect("PSBT sessions have a summary"),
            },
        }
    }

    fn invitation_info(&self, id: SessionId, session: &Session) -> InvitationInfo {
        let spec = session.spec();
        InvitationInfo {
            session_id: id.to_string(),
            coordinator: spec.coordinator.to_string(),
            signers: spec.keys(),
            our_keys: spec.keys_of(&self.me),
            aggregate_pubkey: hex::encode(session.context().aggregate_pubkey),
            signing: Self::signing(session),
            received_at_ms: session.created_at_ms,
            expires_at_ms: session.created_at_ms + spec.timeouts.join.as_millis() as u64,
        }
    }

    fn status(&self, id: SessionId, session: &Session) -> SessionStatus {
        let spec = session.spec();
        let ctx = session.context();
        let signatures: Vec<String> = match session.outcome() {
            Some(Outcome::Completed { signatures }) => signatures.iter().map(hex::encode).collect(),
            _ => Vec::new(),
        };
        let failure = match session.outcome() {
            Some(Outcome::Failed(f)) => Some(f.clone()),
            _ => None,
        };
        let is_psbt = matches!(spec.payload, Payload::Psbt(_));
        SessionStatus {
            session_id: id.to_string(),
            role: session.role(),
            phase: session.phase(),
            holdouts: session.holdouts(),
            aggregate_pubkey: hex::encode(ctx.aggregate_pubkey),
            signature: signatures.first().cloned(),
            signatures,
            signers: spec.keys(),
            our_keys: spec.keys_of(&self.me),
            coordinator: spec.coordinator.to_string(),
            signing: Self::signing(session),
            output_key: is_psbt.then(|| hex::encode(ctx.signing_key)),
            psbt: session.psbt_result.as_ref().map(|(p, _)| p.clone()),
            transaction: session.psbt_result.as_ref().map(|(_, t)| t.clone()),
            failure,
            timeline: session.timeline.clone(),
            created_at_ms: session.created_at_ms,
            updated_at_ms: session.updated_at_ms,
        }
    }
}

/// The signed PSBT (base64) and finalized transaction (hex) of a session.
fn finish_psbt(
    session: &Session,
    bytes: &[u8],
    signatures: &[Vec<u8>],
) -> Result<(String, String), SigningError> {
    let ctx = session.context();
    let parsed = psbt::parse(bytes)?;
    let signatures: Vec<[u8; 64]> = signatures
        .iter()
        .map(|s| {
            s.as_slice()
                .try_into()
                .expect("verified 64-byte signatures")
        })
        .collect();
    let mut musig = MusigFields {
        aggregate_key: ctx.aggregate_pubkey_full,
        participants: session
            .spec()
            .keys()
            .iter()
            .map(|k| *k.as_bytes())
            .collect(),
        pub_nonces: BTreeMap::new(),
        partial_sigs: BTreeMap::new(),
    };
    if let Some(c) = &session.coordinator {
        for (key, nonces) in c.pub_nonces() {
            musig.pub_nonces.insert(
                *key.as_bytes(),
                nonces.iter().map(|n| n.serialize()).collect(),
            );
        }
        for (key, partials) in c.partial_signatures() {
            musig.partial_sigs.insert(
                *key.as_bytes(),
                partials.iter().map(|p| p.serialize()).collect(),
            );
        }
    } else if let Some(p) = &session.participant {
        for entry in p.pub_nonces() {
            let nonces = entry
                .nonces
                .iter()
                .filter_map(|n| n.as_slice().try_into().ok())
                .collect();
            musig.pub_nonces.insert(*entry.key.as_bytes(), nonces);
        }
    }
    let signed = psbt::apply_signatures(&parsed, &signatures, &ctx.aggregate_pubkey, &musig)?;
    Ok((signed.psbt_base64(), signed.transaction_hex()))
}
