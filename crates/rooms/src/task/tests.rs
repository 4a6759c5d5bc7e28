//! The task machines driven together without a network: a synchronous
//! router delivers every `Send` and `Broadcast`, members follow the record
//! from the gossiped entries, and time is a number the test moves.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use libp2p_identity::PeerId;

use super::*;
use crate::{
    a2a::{Artifact, Part, Role as A2aRole},
    record::{verify_log, RecordError, RecordFollower, TaskRecord},
    reputation::Reputation,
    room::{Membership, MembershipToken, Policy, Revocation, Roles, RoomDescriptor},
    statement::{LocalSigner, NoPins, StatementSigner},
    task::{executor::ExecutorPhase, track::AttemptOutcome},
};

struct View {
    membership: Membership,
    reputation: BTreeMap<PeerId, u16>,
}

impl RoomView for View {
    fn check(&self, peer: &PeerId, role: crate::room::Role, now_ms: u64) -> Result<(), RoomError> {
        self.membership.check(peer, role, now_ms)
    }
    fn reputation(&self, peer: &PeerId, _skill: &str) -> u16 {
        self.reputation.get(peer).copied().unwrap_or(500)
    }
}

enum To {
    Peer(PeerId),
    Topic,
}

struct Member {
    signer: Arc<LocalSigner>,
    task: Option<Executor>,
    follower: RecordFollower,
    aborted: Vec<String>,
    awarded: Vec<u8>,
    inputs: Vec<Message>,
}

struct Net {
    now: u64,
    owner: Arc<LocalSigner>,
    view: View,
    proposer: Proposer,
    members: BTreeMap<PeerId, Member>,
    order: Vec<PeerId>,
    queue: VecDeque<(PeerId, To, TaskMessage)>,
    refusals: Vec<(PeerId, TaskError)>,
    progress: Vec<f64>,
}

const SKILL: &str = "mcp.everything.echo";

fn input() -> JsonBytes {
    JsonBytes::encode(&Message::new(
        "m-1",
        A2aRole::User,
        vec![Part::data(serde_json::json!({"message": "hi"}))],
    ))
}

fn spec_for(room: &Membership, proposer: PeerId, now: u64) -> TaskSpec {
    TaskSpec {
        room: room.id(),
        proposer,
        created_at_ms: now,
        nonce: [3; 16],
        skill: SKILL.into(),
        input: input(),
        bid_window_ms: 1_000,
        max_price: 100,
        min_reputation: 200,
        execution_timeout_ms: 60_000,
        lease_ms: 5_000,
        attempts: 3,
    }
}

impl Net {
    /// A room owned by the proposer with `n` members, each with every role.
    fn new(n: usize, policy: Policy) -> Self {
        Self::with_spec(n, policy, |s| s)
    }

    fn with_spec(n: usize, policy: Policy, edit: impl FnOnce(TaskSpec) -> TaskSpec) -> Self {
        let now = 10_000;
        let owner = Arc::new(LocalSigner::generate());
        let descriptor = RoomDescriptor {
            owner: owner.peer_id(),
            created_at_ms: now,
            nonce: [1; 16],
            name: "lab".into(),
            policy,
        };
        let mut membership = Membership::new(&descriptor.sign(&*owner).unwrap()).unwrap();
        let mut members = BTreeMap::new();
        let mut order = Vec::new();
        for _ in 0..n {
            let signer = Arc::new(LocalSigner::generate());
            let token = MembershipToken {
                room: membership.id(),
                member: signer.peer_id(),
                roles: Roles::ALL,
                issued_at_ms: now,
                expires_at_ms: now + 3_600_000,
            };
            membership
                .add_token(&token.sign(&*owner).unwrap(), now)
                .unwrap();
            order.push(signer.peer_id());
            members.insert(
                signer.peer_id(),
                Member {
                    signer,
                    task: None,
                    follower: RecordFollower::new(),
                    aborted: Vec::new(),
                    awarded: Vec::new(),
                    inputs: Vec::new(),
                },
            );
        }
        let spec = edit(spec_for(&membership, owner.peer_id(), now));
        let signer: Arc<dyn StatementSigner> = owner.clone();
        let (proposer, actions) = Proposer::new(spec, signer, now).unwrap();
        let mut net = Self {
            now,
            owner: owner.clone(),
            view: View {
                membership,
                reputation: BTreeMap::new(),
            },
            proposer,
            members,
            order,
            queue: VecDeque::new(),
            refusals: Vec::new(),
            progress: Vec::new(),
        };
        net.apply(owner.peer_id(), actions);
        net.run();
        net
    }

    fn proposer_id(&self) -> PeerId {
        self.owner.peer_id()
    }

    fn peer(&self, i: usize) -> PeerId {
        self.order[i]
    }

    fn apply(&mut self, from: PeerId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => self.queue.push_back((from, To::Peer(to), message)),
                Action::Broadcast(message) => self.queue.push_back((from, To::Topic, message)),
                Action::Progress { progress, .. } => self.progress.push(progress),
                Action::Abort { reason } => {
                    self.members.get_mut(&from).unwrap().aborted.push(reason)
                }
                Action::Awarded { attempt, .. } => {
                    self.members.get_mut(&from).unwrap().awarded.push(attempt)
                }
                Action::InputProvided(m) => self.members.get_mut(&from).unwrap().inputs.push(m),
                Action::Record(_) | Action::State { .. } => {}
            }
        }
    }

    fn run(&mut self) {
        while let Some((from, to, message)) = self.queue.pop_front() {
            let now = self.now;
            match to {
                To::Peer(p) if p == self.proposer_id() => {
                    match self.proposer.handle_message(from, message, now, &self.view) {
                        Ok(actions) => self.apply(p, actions),
                        Err(e) => self.refusals.push((from, e)),
                    }
                }
                To::Peer(p) => self.deliver_to_member(p, from, message),
                To::Topic => {
                    let peers: Vec<PeerId> = self.members.keys().copied().collect();
                    for p in peers {
                        if p != from {
                            self.deliver_to_member(p, from, message.clone());
                        }
                    }
                }
            }
        }
    }

    fn deliver_to_member(&mut self, to: PeerId, from: PeerId, message: TaskMessage) {
        let now = self.now;
        let member = self.members.get_mut(&to).unwrap();
        if let TaskMessage::Entry(s) = &message {
            // Followers verify what they receive; a record that fails is a test failure
            // unless the test tampers on purpose (then it reads `refusals`).
            if let Err(e) = member.follower.on_entry(s.clone()) {
                if !matches!(e, RecordError::Transition(_)) || from == self.owner.peer_id() {
                    panic!("member {to} refused an honest entry: {e}");
                }
            }
        }
        let Some(task) = member.task.as_mut() else {
            return;
        };
        match task.handle_message(from, message, now, &self.view) {
            Ok(actions) => self.apply(to, actions),
            Err(e) => self.refusals.push((from, e)),
        }
    }

    /// Member `i` bids `price`.
    fn bid(&mut self, i: usize, price: u64, idempotent: bool) {
        let peer = self.peer(i);
        let proposal = self.proposer.track().proposal().clone();
        let signer: Arc<dyn StatementSigner> = self.members[&peer].signer.clone();
        let (task, actions) =
            Executor::bid(&proposal, price, idempotent, signer, self.now, &self.view).unwrap();
        self.members.get_mut(&peer).unwrap().task = Some(task);
        self.apply(peer, actions);
        self.run();
    }

    fn tick(&mut self, to: u64) {
        self.now = to;
        let actions = self.proposer.on_tick(self.now, &self.view).unwrap();
        let me = self.proposer_id();
        self.apply(me, actions);
        self.run();
    }

    fn close_window(&mut self) {
        let at = self.proposer.track().spec().window_closes_at();
        self.tick(at);
    }

    /// Runs `f` on member `peer`'s executor and delivers what it sends.
    fn act(&mut self, peer: PeerId, f: impl FnOnce(&mut Executor, u64) -> Vec<Action>) {
        let now = self.now;
        let task = self.members.get_mut(&peer).unwrap().task.as_mut().unwrap();
        let actions = f(task, now);
        self.apply(peer, actions);
        self.run();
    }

    fn proposer_act(&mut self, f: impl FnOnce(&mut Proposer, u64) -> Vec<Action>) {
        let now = self.now;
        let actions = f(&mut self.proposer, now);
        let me = self.proposer_id();
        self.apply(me, actions);
        self.run();
    }

    fn executor(&self) -> PeerId {
        self.proposer.track().current().unwrap().executor
    }

    /// The current executor acknowledges, starts and returns `text`.
    fn complete_by_current(&mut self, text: &str) {
        let e = self.executor();
        self.act(e, |t, now| t.acknowledge(now).unwrap());
        self.act(e, |t, now| t.started(now).unwrap());
        let artifact = artifact(text);
        self.act(e, |t, now| t.finish(&artifact, now).unwrap());
    }

    fn record(&self) -> TaskRecord {
        TaskRecord {
            entries: self.proposer.entries().to_vec(),
        }
    }
}

fn artifact(text: &str) -> Artifact {
    Artifact {
        artifact_id: "a-1".into(),
        name: Some("echo".into()),
        description: None,
        parts: vec![Part::text(text)],
        metadata: None,
    }
}

#[test]
fn a_whole_task_with_several_bidders_ends_verified_everywhere() {
    let mut net = Net::new(4, Policy::InviteOnly);
    net.bid(0, 40, true);
    net.bid(1, 25, true);
    net.bid(2, 25, false);
    net.bid(3, 90, true);
    assert_eq!(net.proposer.track().bids().len(), 4);
    assert_eq!(net.proposer.track().phase(), Phase::Bidding);

    net.close_window();
    let cheapest = net.peer(1);
    assert_eq!(
        net.executor(),
        cheapest,
        "lowest price, earliest of the tie"
    );
    assert_eq!(net.members[&cheapest].awarded, vec![1]);
    assert_eq!(net.proposer.state(), TaskState::Submitted);

    net.act(cheapest, |t, now| t.acknowledge(now).unwrap());
    net.act(cheapest, |t, now| t.started(now).unwrap());
    assert_eq!(net.proposer.state(), TaskState::Working);
    net.now += 4_000;
    net.act(cheapest, |t, _| {
        t.progress(1.0, Some(2.0), Some("half")).unwrap()
    });
    assert_eq!(net.progress, vec![1.0]);
    // Progress renewed the lease: 4 s later (8 s after the start) the
    // 5 s lease has not run out.
    net.tick(net.now + 4_000);
    assert_eq!(net.proposer.track().phase(), Phase::Working);

    let out = artifact("hi");
    net.act(cheapest, |t, now| t.finish(&out, now).unwrap());
    assert_eq!(net.proposer.track().phase(), Phase::ResultIn);
    net.proposer_act(|p, now| p.accept(now).unwrap());
    assert_eq!(net.proposer.state(), TaskState::Completed);
    assert_eq!(net.proposer.deadline(), None);
    assert_eq!(
        net.members[&cheapest].task.as_ref().unwrap().phase(),
        ExecutorPhase::Done
    );

    // Every member followed the same record, and it verifies.
    let record = net.record();
    for m in net.members.values() {
        assert_eq!(m.follower.record(), record);
    }
    let verified = verify_log(&record.export()).unwrap();
    assert_eq!(verified.state, TaskState::Completed);
    let result = verified.result.unwrap();
    assert_eq!(
        result.blake3,
        *blake3::hash(&JsonBytes::encode(&out).0).as_bytes()
    );
    assert_eq!(result.executor, cheapest);
    assert!(net.refusals.is_empty(), "{:?}", net.refusals);

    let mut reputation = Reputation::new();
    let verified = record.verify().unwrap();
    reputation.count_own(&verified);
    reputation.count_own(&verified);
    assert_eq!(reputation.score(&cheapest, SKILL), 667, "counted once");
}

#[test]
fn late_forged_and_non_member_bids_are_refused() {
    let mut net = Net::new(3, Policy::InviteOnly);
    let proposal = net.proposer.track().proposal().clone();

    // A non-member signs a proper bid: the invite-only room ignores it.
    let stranger: Arc<dyn StatementSigner> = Arc::new(LocalSigner::generate());
    let outsider_view = View {
        membership: net.view.membership.clone(),
        reputation: BTreeMap::new(),
    };
    let stranger_id = stranger.peer_id();
    let bid = Statement::sign(
        &*stranger,
        BID_DOMAIN,
        &Bid {
            task: net.proposer.id(),
            skill: SKILL.into(),
            price: 1,
            idempotent: true,
        },
        net.now,
    )
    .unwrap();
    let err = net
        .proposer
        .handle_message(
            stranger_id,
            TaskMessage::Bid(bid.clone()),
            net.now,
            &net.view,
        )
        .unwrap_err();
    assert_eq!(err, TaskError::Room(RoomError::NotMember(stranger_id)));
    drop(outsider_view);

    // A member relays the stranger's bid as its own: not its signature.
    let member = net.peer(0);
    let err = net
        .proposer
        .handle_message(member, TaskMessage::Bid(bid.clone()), net.now, &net.view)
        .unwrap_err();
    assert!(matches!(err, TaskError::ForeignSignature { .. }), "{err}");

    // A member's bid with a broken signature.
    let signer: Arc<dyn StatementSigner> = net.members[&member].signer.clone();
    let (_, actions) = Executor::bid(&proposal, 5, true, signer, net.now, &net.view).unwrap();
    let Action::Send {
        message: TaskMessage::Bid(mut forged),
        ..
    } = actions[0].clone()
    else {
        panic!("a bid")
    };
    forged.payload = postcard::to_stdvec(&Bid {
        task: net.proposer.id(),
        skill: SKILL.into(),
        price: 0,
        idempotent: true,
    })
    .unwrap();
    let err = net
        .proposer
        .handle_message(member, TaskMessage::Bid(forged), net.now, &net.view)
        .unwrap_err();
    assert!(matches!(err, TaskError::Statement(_)), "{err}");
    assert!(net.proposer.track().bids().is_empty(), "nothing was taken");

    // An honest bid inside the window, then one a millisecond late.
    net.bid(0, 5, true);
    assert_eq!(net.proposer.track().bids().len(), 1);
    let late_peer = net.peer(1);
    let signer: Arc<dyn StatementSigner> = net.members[&late_peer].signer.clone();
    let window_end = net.proposer.track().spec().window_closes_at();
    let (_, actions) = Executor::bid(&proposal, 1, true, signer, window_end, &net.view).unwrap();
    let Action::Send { message, .. } = actions[0].clone() else {
        panic!("a bid")
    };
    let err = net
        .proposer
        .handle_message(late_peer, message, window_end + 1, &net.view)
        .unwrap_err();
    assert_eq!(
        err,
        TaskError::LateBid {
            bidder: late_peer,
            late_ms: 1
        }
    );
    // A second bid from the same member is refused by the record's rules.
    let again: Arc<dyn StatementSigner> = net.members[&member].signer.clone();
    let (_, actions) = Executor::bid(&proposal, 2, true, again, net.now, &net.view).unwrap();
    let Action::Send { message, .. } = actions[0].clone() else {
        panic!("a bid")
    };
    let err = net
        .proposer
        .handle_message(member, message, net.now, &net.view)
        .unwrap_err();
    assert!(matches!(err, TaskError::Transition(_)), "{err}");
    assert_eq!(net.proposer.track().bids().len(), 1);
}

#[test]
fn awards_follow_the_ranking_and_skip_the_ineligible() {
    let mut net = Net::new(5, Policy::Open);
    // Reputation decides between equal prices; the filter drops the
    // too-expensive and the too-little-trusted.
    net.view.reputation.insert(net.peer(0), 900);
    net.view.reputation.insert(net.peer(1), 950);
    net.view.reputation.insert(net.peer(2), 100);
    net.bid(0, 10, true);
    net.bid(1, 10, true);
    net.bid(2, 1, true); // cheapest but below min_reputation 200
    net.bid(3, 500, true); // above max_price 100
    net.bid(4, 10, true);
    net.close_window();
    let ranking: Vec<PeerId> = net
        .proposer
        .track()
        .ranking()
        .iter()
        .map(|r| r.bidder)
        .collect();
    assert_eq!(
        ranking,
        vec![
            net.peer(1),
            net.peer(0),
            net.peer(4),
            net.peer(2),
            net.peer(3)
        ]
    );
    // Each decline moves the award down the eligible ranking.
    assert_eq!(net.executor(), net.peer(1));
    let e = net.executor();
    net.act(e, |t, now| t.decline("busy", now).unwrap());
    assert_eq!(net.executor(), net.peer(0));
    let e = net.executor();
    net.act(e, |t, now| t.decline("busy", now).unwrap());
    assert_eq!(net.executor(), net.peer(4));
    // The third decline uses the last of three attempts: the task fails
    // without trying the ineligible bids.
    let e = net.executor();
    net.act(e, |t, now| t.decline("busy", now).unwrap());
    assert_eq!(net.proposer.state(), TaskState::Failed);
    assert_eq!(net.proposer.track().attempts().len(), 3);
    net.record().verify().unwrap();
}

#[test]
fn a_dead_executor_of_an_idempotent_tool_is_replaced_after_it_started() {
    let mut net = Net::new(3, Policy::Open);
    net.bid(0, 10, true);
    net.bid(1, 20, true);
    net.close_window();
    let first = net.executor();
    assert_eq!(first, net.peer(0));
    net.act(first, |t, now| t.acknowledge(now).unwrap());
    net.act(first, |t, now| t.started(now).unwrap());
    // The executor's node disappears.
    net.now += 100;
    net.proposer_act(|p, now| p.executor_gone(first, now).unwrap());
    let second = net.executor();
    assert_eq!(second, net.peer(1));
    assert_eq!(net.members[&second].awarded, vec![2]);
    net.complete_by_current("again");
    net.proposer_act(|p, now| p.accept(now).unwrap());
    let verified = net.record().verify().unwrap();
    assert_eq!(verified.state, TaskState::Completed);
    assert_eq!(verified.attempts[0].outcome, AttemptOutcome::Expired);
    assert_eq!(verified.attempts[1].outcome, AttemptOutcome::Completed);
}

#[test]
fn a_started_task_whose_tool_is_not_idempotent_fails_instead_of_running_twice() {
    let mut net = Net::new(3, Policy::Open);
    net.bid(0, 10, false);
    net.bid(1, 20, true);
    net.close_window();
    let first = net.executor();
    net.act(first, |t, now| t.acknowledge(now).unwrap());
    net.act(first, |t, now| t.started(now).unwrap());
    // No sign of life for the lease: the lease expires.
    let lease_end = net.now + 5_000;
    net.tick(lease_end - 1);
    assert_eq!(net.proposer.track().phase(), Phase::Working);
    net.tick(lease_end);
    assert_eq!(net.proposer.state(), TaskState::Failed);
    assert_eq!(net.proposer.track().attempts().len(), 1, "never reassigned");
    assert_eq!(
        net.members[&first].aborted.len(),
        1,
        "the executor was told"
    );

    // Before it started, a non-idempotent tool is reassigned.
    let mut net = Net::new(3, Policy::Open);
    net.bid(0, 10, false);
    net.bid(1, 20, false);
    net.close_window();
    let first = net.executor();
    net.act(first, |t, now| t.acknowledge(now).unwrap());
    net.tick(net.now + 5_000);
    assert_eq!(net.executor(), net.peer(1));
    assert_eq!(net.proposer.track().phase(), Phase::Awarded);
}

#[test]
fn the_absolute_timeout_ends_an_attempt_despite_progress() {
    let mut net = Net::with_spec(2, Policy::Open, |mut s| {
        s.execution_timeout_ms = 10_000;
        s.lease_ms = 3_000;
        s.attempts = 1;
        s
    });
    net.bid(0, 1, true);
    net.close_window();
    let e = net.executor();
    let awarded_at = net.now;
    net.act(e, |t, now| t.acknowledge(now).unwrap());
    net.act(e, |t, now| t.started(now).unwrap());
    for step in 1..=4 {
        net.now = awarded_at + step * 2_000;
        net.act(e, |t, _| t.progress(step as f64, None, None).unwrap());
        net.tick(net.now);
        assert_eq!(net.proposer.track().phase(), Phase::Working);
    }
    assert_eq!(net.proposer.deadline(), Some(awarded_at + 10_000));
    net.tick(awarded_at + 10_000);
    assert_eq!(net.proposer.state(), TaskState::Failed);
    let verified = net.record().verify().unwrap();
    assert_eq!(verified.attempts[0].outcome, AttemptOutcome::Expired);
}

#[test]
fn input_and_approval_pause_the_task_and_cancel_stops_it() {
    let mut net = Net::new(2, Policy::Open);
    net.bid(0, 1, true);
    net.close_window();
    let e = net.executor();
    net.act(e, |t, now| t.acknowledge(now).unwrap());
    net.act(e, |t, now| {
        t.approval_required("writes files", now).unwrap()
    });
    assert_eq!(net.proposer.state(), TaskState::AuthRequired);
    // The lease does not run while the owner decides.
    net.tick(net.now + 50_000);
    assert_eq!(net.proposer.state(), TaskState::AuthRequired);
    net.act(e, |t, now| t.approved(now).unwrap());
    net.act(e, |t, now| t.started(now).unwrap());
    let ask = Message::new("q-1", A2aRole::Agent, vec![Part::text("which file?")]);
    net.act(e, |t, now| t.input_required(&ask, now).unwrap());
    assert_eq!(net.proposer.state(), TaskState::InputRequired);
    let answer = Message::new("a-1", A2aRole::User, vec![Part::text("notes.txt")]);
    net.proposer_act(|p, now| p.provide_input(&answer, now).unwrap());
    assert_eq!(net.members[&e].inputs, vec![answer]);
    assert_eq!(net.proposer.state(), TaskState::Working);
    net.proposer_act(|p, now| p.cancel("changed my mind", now).unwrap());
    assert_eq!(net.proposer.state(), TaskState::Canceled);
    assert_eq!(net.members[&e].aborted.len(), 1);
    // A late result after the cancel is refused.
    let out = artifact("late");
    let task = net.members.get_mut(&e).unwrap().task.as_mut().unwrap();
    assert!(task.finish(&out, 0).is_err(), "the executor stopped");
    assert_eq!(net.record().verify().unwrap().state, TaskState::Canceled);
}

#[test]
fn a_run_its_owner_declines_goes_to_the_next_bid_and_costs_no_reputation() {
    let mut net = Net::new(3, Policy::Open);
    net.bid(0, 1, false);
    net.bid(1, 2, false);
    net.close_window();
    let first = net.executor();
    assert_eq!(first, net.peer(0));
    net.act(first, |t, now| t.acknowledge(now).unwrap());
    net.act(first, |t, now| {
        t.approval_required("writes files", now).unwrap()
    });
    assert_eq!(net.proposer.state(), TaskState::AuthRequired);
    net.act(first, |t, now| {
        t.decline("its owner declined to run it", now).unwrap()
    });
    // The tool never ran, so even a non-idempotent one goes to the next bid.
    assert_eq!(net.executor(), net.peer(1));
    net.complete_by_current("done by the second");
    net.proposer_act(|p, now| p.accept(now).unwrap());
    let verified = net.record().verify().unwrap();
    assert_eq!(verified.attempts[0].outcome, AttemptOutcome::Declined);
    assert_eq!(verified.state, TaskState::Completed);
    let mut reputation = Reputation::new();
    reputation.count_own(&verified);
    assert_eq!(
        reputation.score(&first, SKILL),
        Reputation::new().score(&first, SKILL),
        "a declined run leaves the first executor's score as it was"
    );
}

#[test]
fn a_rejected_result_moves_an_idempotent_task_to_the_next_bid() {
    let mut net = Net::new(3, Policy::Open);
    net.bid(0, 1, true);
    net.bid(1, 2, true);
    net.close_window();
    net.complete_by_current("wrong");
    net.proposer_act(|p, now| p.reject("not what I asked", now).unwrap());
    assert_eq!(net.executor(), net.peer(1));
    net.complete_by_current("right");
    net.proposer_act(|p, now| p.accept(now).unwrap());
    let verified = net.record().verify().unwrap();
    assert_eq!(verified.attempts[0].outcome, AttemptOutcome::Rejected);
    let mut reputation = Reputation::new();
    reputation.count_own(&verified);
    assert!(reputation.score(&net.peer(0), SKILL) < reputation.score(&net.peer(1), SKILL));
}

#[test]
fn tampered_records_fail_verification() {
    let mut net = Net::new(2, Policy::Open);
    net.bid(0, 1, true);
    net.close_window();
    net.complete_by_current("the answer");
    net.proposer_act(|p, now| p.accept(now).unwrap());
    let record = net.record();
    record.verify().unwrap();
    let n = record.entries.len();

    // A flipped byte in any entry's payload.
    for i in 0..n {
        let mut r = record.clone();
        let last = r.entries[i].payload.len() - 1;
        r.entries[i].payload[last] ^= 1;
        assert!(r.verify().is_err(), "entry {i} tampered");
    }
    // An entry dropped, or two swapped.
    let mut r = record.clone();
    r.entries.remove(2);
    assert!(matches!(r.verify(), Err(RecordError::Transition(_))));
    let mut r = record.clone();
    r.entries.swap(1, 2);
    assert!(r.verify().is_err());
    // The export, truncated or with a wrong header.
    let bytes = record.export();
    assert!(verify_log(&bytes[..bytes.len() - 10]).is_err());
    assert!(matches!(
        verify_log(b"not a record"),
        Err(RecordError::Malformed(_))
    ));

    // A proposer that signs a result whose hash does not match its bytes:
    // every signature is valid, the transition rule catches it.
    let mut net = Net::new(2, Policy::Open);
    net.bid(0, 1, true);
    net.close_window();
    let e = net.executor();
    net.act(e, |t, now| t.acknowledge(now).unwrap());
    net.act(e, |t, now| t.started(now).unwrap());
    let signer = net.members[&e].signer.clone();
    let report = Report {
        task: net.proposer.id(),
        attempt: 1,
        kind: ReportKind::Result {
            artifact: JsonBytes::encode(&artifact("x")),
            blake3: [0; 32],
        },
    };
    let report = Statement::sign(&*signer, REPORT_DOMAIN, &report, net.now).unwrap();
    let track = net.proposer.track();
    let entry = Entry {
        task: track.id(),
        seq: track.next_seq(),
        prev: track.last_id(),
        at_ms: net.now,
        body: EntryBody::Reported(report.clone()),
    };
    let mut bad = net.record();
    bad.entries.push(sign_entry(&*net.owner, &entry).unwrap());
    let err = bad.verify().unwrap_err();
    assert!(err.to_string().contains("result hash"), "{err}");
    // And the proposer's own machine refuses to record it.
    let err = net
        .proposer
        .handle_message(e, TaskMessage::Report(report), net.now, &net.view)
        .unwrap_err();
    assert!(err.to_string().contains("result hash"), "{err}");
}

#[test]
fn a_record_with_an_illegal_award_fails_even_when_fully_signed() {
    // The proposer awards the second-ranked bid first.
    let mut net = Net::new(3, Policy::Open);
    net.bid(0, 1, true);
    net.bid(1, 2, true);
    net.close_window();
    let mut record = net.record();
    // Drop the honest award and append a signed one for the wrong bid.
    record.entries.pop();
    let mut track = Track::from_first(&record.entries[0], &NoPins).unwrap();
    for e in &record.entries[1..] {
        track.apply(e, &NoPins).unwrap();
    }
    let wrong = &track.ranking()[1];
    let entry = Entry {
        task: track.id(),
        seq: track.next_seq(),
        prev: track.last_id(),
        at_ms: net.now,
        body: EntryBody::Awarded {
            attempt: 1,
            bid: wrong.bid,
            executor: wrong.bidder,
        },
    };
    record
        .entries
        .push(sign_entry(&*net.owner, &entry).unwrap());
    let err = record.verify().unwrap_err();
    assert!(err.to_string().contains("not the next bid"), "{err}");
}

#[test]
fn proposer_equivocation_is_proved_and_zeroes_its_reputation() {
    let mut net = Net::new(2, Policy::Open);
    net.bid(0, 1, true);
    let record = net.record();
    let track = net.proposer.track();
    // The same sequence number, another story: a cancel in place of the next entry.
    let honest = record.entries.last().unwrap().clone();
    let honest_entry: Entry = honest.body().unwrap();
    let other = Entry {
        body: EntryBody::Canceled {
            reason: "other story".into(),
        },
        ..honest_entry
    };
    let forked = sign_entry(&*net.owner, &other).unwrap();
    assert_eq!(track.next_seq(), other.seq + 1);

    let mut follower = RecordFollower::new();
    for e in &record.entries {
        follower.on_entry(e.clone()).unwrap();
    }
    let err = follower.on_entry(forked).unwrap_err();
    let RecordError::Equivocation {
        proposer, proof, ..
    } = err
    else {
        panic!("expected equivocation, got {err}")
    };
    assert_eq!(proposer, net.proposer_id());
    let (who, task, seq) = proof.verify().unwrap();
    assert_eq!((who, task, seq), (net.proposer_id(), net.proposer.id(), 1));
    let mut reputation = Reputation::new();
    reputation.mark_equivocation(who);
    assert_eq!(reputation.score(&who, SKILL), 0);
    // The same entry twice is no proof.
    let same = crate::record::EquivocationProof {
        a: honest.clone(),
        b: honest,
    };
    assert!(same.verify().is_err());
}

#[test]
fn a_revoked_member_is_refused_and_a_peer_without_a_token_ignored() {
    let mut net = Net::new(3, Policy::InviteOnly);
    net.bid(0, 1, true);
    // The owner revokes member 1 before it bids.
    let revoked = net.peer(1);
    let revocation = Revocation {
        room: net.view.membership.id(),
        member: revoked,
        revoked_at_ms: net.now,
    }
    .sign(&*net.owner)
    .unwrap();
    net.view.membership.revoke(&revocation).unwrap();
    let proposal = net.proposer.track().proposal().clone();
    let signer: Arc<dyn StatementSigner> = net.members[&revoked].signer.clone();
    let bid = Statement::sign(
        &*signer,
        BID_DOMAIN,
        &Bid {
            task: net.proposer.id(),
            skill: SKILL.into(),
            price: 1,
            idempotent: true,
        },
        net.now,
    )
    .unwrap();
    let err = net
        .proposer
        .handle_message(revoked, TaskMessage::Bid(bid), net.now + 1, &net.view)
        .unwrap_err();
    assert_eq!(err, TaskError::Room(RoomError::Revoked(revoked)));
    // An executor in the room ignores a proposal from a peer without a token.
    let stranger: Arc<dyn StatementSigner> = Arc::new(LocalSigner::generate());
    let mut spec = net.proposer.track().spec().clone();
    spec.proposer = stranger.peer_id();
    let foreign = Statement::sign(&*stranger, PROPOSAL_DOMAIN, &spec, net.now).unwrap();
    let member: Arc<dyn StatementSigner> = net.members[&net.peer(2)].signer.clone();
    let err = Executor::bid(&foreign, 1, true, member, net.now, &net.view).unwrap_err();
    assert_eq!(
        err,
        TaskError::Room(RoomError::NotMember(stranger.peer_id()))
    );
    assert!(proposal.verify(PROPOSAL_DOMAIN).is_ok());
    // The revoked member's progress on someone else's attempt is refused too.
    let err = net
        .proposer
        .handle_message(
            revoked,
            TaskMessage::Progress {
                task: net.proposer.id(),
                attempt: 1,
                progress: 1.0,
                total: None,
                message: None,
            },
            net.now + 2,
            &net.view,
        )
        .unwrap_err();
    assert_eq!(err, TaskError::Room(RoomError::Revoked(revoked)));
}

#[test]
fn invalid_proposals_are_refused_before_anything_is_signed() {
    let owner: Arc<dyn StatementSigner> = Arc::new(LocalSigner::generate());
    let net = Net::new(1, Policy::Open);
    let base = spec_for(&net.view.membership, owner.peer_id(), 0);
    for edit in [
        (|s: &mut TaskSpec| s.bid_window_ms = 0) as fn(&mut TaskSpec),
        |s| s.attempts = 0,
        |s| s.attempts = MAX_ATTEMPTS + 1,
        |s| s.lease_ms = s.execution_timeout_ms + 1,
        |s| s.min_reputation = 1001,
        |s| s.input = JsonBytes(b"{\"not\":\"a message\"}".to_vec()),
        |s| s.input = JsonBytes(vec![b' '; MAX_INPUT_BYTES + 1]),
        |s| s.skill = String::new(),
    ] {
        let mut spec = base.clone();
        edit(&mut spec);
        assert!(matches!(
            Proposer::new(spec, owner.clone(), 0),
            Err(TaskError::InvalidSpec(_))
        ));
    }
    // Someone else's name as proposer.
    let mut spec = base.clone();
    spec.proposer = PeerId::random();
    assert!(Proposer::new(spec, owner.clone(), 0).is_err());
}
