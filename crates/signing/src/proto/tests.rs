//! The state machines driven together without a network: a tiny
//! synchronous router delivers every `Send` action, so whole sessions,
//! failures and timeouts run deterministically.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use conclave_node::PeerId;
use musig2::{secp::Point, KeyAggContext};
use zeroize::Zeroizing;

use super::{
    spec::tests::spec_with, Action, Coordinator, FailureKind, KeyPartials, Outcome, Participant,
    Payload, Phase, SessionMessage,
};
use crate::keys::SecretKey;

/// Rewrites a message (from its sender) before delivery.
type Tamper = Box<dyn FnMut(PeerId, &mut SessionMessage)>;

/// A coordinator and one participant per signer peer.
struct Net {
    now: Instant,
    coordinator: Coordinator,
    coordinator_peer: PeerId,
    participants: BTreeMap<PeerId, Participant>,
    secrets: BTreeMap<PeerId, SecretKey>,
    queue: VecDeque<(PeerId, PeerId, SessionMessage)>,
    finished: Vec<(PeerId, Outcome)>,
    /// Messages refused by their recipient (the session goes on).
    refusals: Vec<String>,
    /// Messages a test wants to rewrite before delivery.
    tamper: Option<Tamper>,
}

impl Net {
    fn new(n: usize, payload: Payload) -> Self {
        let (spec, secrets) = spec_with(n, payload);
        let now = Instant::now();
        let coordinator_peer = spec.coordinator;
        let secrets = spec
            .signers
            .iter()
            .zip(secrets)
            .map(|(s, secret)| (s.peer, secret))
            .collect();
        let (coordinator, actions) = Coordinator::new(spec, now).unwrap();
        let mut net = Self {
            now,
            coordinator,
            coordinator_peer,
            participants: BTreeMap::new(),
            secrets,
            queue: VecDeque::new(),
            finished: Vec::new(),
            refusals: Vec::new(),
            tamper: None,
        };
        net.apply(coordinator_peer, actions);
        net.run();
        net
    }

    fn apply(&mut self, from: PeerId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    for peer in to {
                        self.queue.push_back((from, peer, message.clone()));
                    }
                }
                Action::Finished(outcome) => self.finished.push((from, outcome)),
                Action::Phase { .. } => {}
            }
        }
    }

    fn run(&mut self) {
        while let Some((from, to, mut message)) = self.queue.pop_front() {
            if let Some(tamper) = self.tamper.as_mut() {
                tamper(from, &mut message);
            }
            let now = self.now;
            let actions = if to == self.coordinator_peer {
                self.coordinator.handle_message(from, message, now)
            } else if let SessionMessage::Invite(spec) = message {
                let p = Participant::new(spec, to, now).unwrap();
                assert_eq!(p.phase(), Phase::Invitation);
                self.participants.insert(to, p);
                Ok(Vec::new())
            } else {
                self.participants
                    .get_mut(&to)
                    .expect("invited")
                    .handle_message(from, message, now)
            };
            match actions {
                Ok(actions) => self.apply(to, actions),
                Err(refusal) => self.refusals.push(format!("{to} refused: {refusal}")),
            }
        }
    }

    fn join(&mut self, peer: PeerId) {
        let secret = SecretKey::from_bytes(self.secrets[&peer].expose_bytes()).unwrap();
        let actions = self
            .participants
            .get_mut(&peer)
            .unwrap()
            .join(vec![secret], Zeroizing::new(rand::random()), self.now)
            .unwrap();
        self.apply(peer, actions);
        self.run();
    }

    fn peers(&self) -> Vec<PeerId> {
        self.coordinator.spec().peers()
    }
}

fn signatures(outcome: &Outcome) -> &[Vec<u8>] {
    match outcome {
        Outcome::Completed { signatures } => signatures,
        Outcome::Failed(f) => panic!("session failed: {f:?}"),
    }
}

#[test]
fn three_and_five_signers_produce_a_bip340_signature_for_the_sorted_keyagg() {
    for n in [3, 5] {
        let message = format!("pay {n} people").into_bytes();
        let mut net = Net::new(n, Payload::Message(message.clone()));
        assert_eq!(net.coordinator.phase(), Phase::Join);
        assert_eq!(net.coordinator.holdouts().len(), n);
        for (i, peer) in net.peers().into_iter().enumerate() {
            assert_eq!(
                net.coordinator.holdouts().len(),
                n - i,
                "holdouts shrink as people join"
            );
            net.join(peer);
        }
        assert_eq!(net.coordinator.phase(), Phase::Done);
        assert!(net.refusals.is_empty(), "{:?}", net.refusals);
        assert!(net.coordinator.holdouts().is_empty());
        assert_eq!(
            net.finished.len(),
            n + 1,
            "coordinator and every signer finish"
        );
        let sig = signatures(net.coordinator.outcome().unwrap())[0].clone();
        for (_, outcome) in &net.finished {
            assert_eq!(
                signatures(outcome)[0],
                sig,
                "everyone holds the same signature"
            );
        }
        // Anyone can recompute the key: KeyAgg over the sorted keys.
        let mut keys = net.coordinator.spec().keys();
        keys.sort();
        let agg: Point = KeyAggContext::new(keys.iter().map(|k| k.point()))
            .unwrap()
            .aggregated_pubkey();
        let secp = bitcoin::secp256k1::Secp256k1::verification_only();
        let xonly = bitcoin::secp256k1::XOnlyPublicKey::from_slice(&agg.serialize_xonly()).unwrap();
        let schnorr = bitcoin::secp256k1::schnorr::Signature::from_slice(&sig).unwrap();
        secp.verify_schnorr(
            &schnorr,
            &bitcoin::secp256k1::Message::from_digest_slice(&[0; 32]).unwrap(),
            &xonly,
        )
        .expect_err("a different message does not verify");
        musig2::verify_single(agg, sig.as_slice(), &message).expect("BIP-340 verifies");
    }
}

#[test]
fn a_wrong_partial_signature_names_its_signer_and_fails_the_session() {
    let mut net = Net::new(3, Payload::Message(b"m".to_vec()));
    let cheat = net.peers()[1];
    let cheat_key = net.coordinator.spec().keys_of(&cheat)[0];
    net.tamper = Some(Box::new(move |from, message| {
        if let SessionMessage::Partials { partials } = message {
            if from == cheat {
                for KeyPartials { partials, .. } in partials.iter_mut() {
                    partials[0][31] ^= 1;
                }
            }
        }
    }));
    for peer in net.peers() {
        net.join(peer);
    }
    assert_eq!(net.coordinator.phase(), Phase::Failed);
    let Some(Outcome::Failed(failure)) = net.coordinator.outcome() else {
        panic!("expected a failure");
    };
    assert_eq!(failure.kind, FailureKind::InvalidPartialSignature);
    assert_eq!(failure.culprits, vec![cheat_key]);
    assert!(failure.reason.contains(&cheat_key.to_hex()));
    // Every signer learns how it ended.
    for p in net.participants.values() {
        assert_eq!(p.phase(), Phase::Failed);
    }
}

#[test]
fn a_signer_that_never_joins_fails_the_session_at_the_deadline_with_its_key_listed() {
    let mut net = Net::new(3, Payload::Message(b"m".to_vec()));
    let peers = net.peers();
    let silent_key = net.coordinator.spec().keys_of(&peers[2])[0];
    net.join(peers[0]);
    net.join(peers[1]);
    assert_eq!(net.coordinator.holdouts(), vec![silent_key]);
    let deadline = net.coordinator.deadline().unwrap();
    assert!(net
        .coordinator
        .handle_timeout(deadline - Duration::from_millis(1))
        .is_empty());
    let actions = net.coordinator.handle_timeout(deadline);
    let coordinator = net.coordinator_peer;
    net.apply(coordinator, actions);
    net.run();
    let Some(Outcome::Failed(failure)) = net.coordinator.outcome() else {
        panic!("expected a failure");
    };
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert_eq!(failure.phase, Phase::Join);
    assert_eq!(failure.holdouts, vec![silent_key]);
    assert_eq!(net.coordinator.holdouts(), vec![silent_key]);
    assert_eq!(net.participants[&peers[0]].phase(), Phase::Failed);
}

#[test]
fn a_signer_that_drops_out_after_joining_is_listed_when_the_nonce_phase_times_out() {
    let mut net = Net::new(3, Payload::Message(b"m".to_vec()));
    let peers = net.peers();
    let gone = peers[0];
    let gone_key = net.coordinator.spec().keys_of(&gone)[0];
    // Drop everything the vanished signer would send after joining.
    net.tamper = Some(Box::new(move |from, message| {
        if from == gone && matches!(message, SessionMessage::Nonces { .. }) {
            *message = SessionMessage::Join { keys: vec![] };
        }
    }));
    for peer in &peers {
        net.join(*peer);
    }
    assert_eq!(net.coordinator.phase(), Phase::Nonces);
    assert_eq!(net.coordinator.holdouts(), vec![gone_key]);
    let deadline = net.coordinator.deadline().unwrap();
    net.coordinator.handle_timeout(deadline);
    let Some(Outcome::Failed(failure)) = net.coordinator.outcome() else {
        panic!("expected a failure");
    };
    assert_eq!(
        (failure.kind, failure.phase),
        (FailureKind::Timeout, Phase::Nonces)
    );
    assert_eq!(failure.holdouts, vec![gone_key]);
}

#[test]
fn a_signer_signs_once_and_refuses_foreign_or_unordered_messages() {
    let mut net = Net::new(2, Payload::Message(b"m".to_vec()));
    let peers = net.peers();
    // Someone other than the coordinator cannot drive a signer.
    let stranger = PeerId::random();
    let p = net.participants.get_mut(&peers[0]).unwrap();
    assert!(p
        .handle_message(stranger, SessionMessage::NonceRequest, net.now)
        .is_err());
    // Before joining, there are no nonces to give.
    assert!(p
        .handle_message(net.coordinator_peer, SessionMessage::NonceRequest, net.now)
        .is_err());
    // Capture the sign request, then replay it after the session is done.
    let captured = std::rc::Rc::new(std::cell::RefCell::new(None));
    let sink = captured.clone();
    net.tamper = Some(Box::new(move |_, message| {
        if matches!(message, SessionMessage::SignRequest { .. }) {
            *sink.borrow_mut() = Some(message.clone());
        }
    }));
    for peer in &peers {
        net.join(*peer);
    }
    assert_eq!(net.coordinator.phase(), Phase::Done);
    let replay = captured.borrow().clone().unwrap();
    let p = net.participants.get_mut(&peers[0]).unwrap();
    assert!(
        p.handle_message(net.coordinator_peer, replay, net.now)
            .is_err(),
        "a finished session refuses a second signing round"
    );
    // A coordinator refuses messages from peers that are not signers.
    assert!(net
        .coordinator
        .handle_message(stranger, SessionMessage::Join { keys: vec![] }, net.now)
        .is_err());
}

#[test]
fn a_declining_signer_fails_the_session_as_culprit() {
    let mut net = Net::new(3, Payload::Message(b"m".to_vec()));
    let peers = net.peers();
    let key = net.coordinator.spec().keys_of(&peers[1])[0];
    net.join(peers[0]);
    let actions = net
        .participants
        .get_mut(&peers[1])
        .unwrap()
        .decline("not today");
    net.apply(peers[1], actions);
    net.run();
    let Some(Outcome::Failed(failure)) = net.coordinator.outcome() else {
        panic!("expected a failure");
    };
    assert_eq!(failure.kind, FailureKind::Declined);
    assert_eq!(failure.culprits, vec![key]);
}
