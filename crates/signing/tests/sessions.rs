//! MuSig2 sessions between in-process nodes on loopback: complete sessions
//! with three and five signers (timed), a signer sending a wrong partial
//! signature, a signer that never answers, and a restart in the middle.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, finished, join_when_invited, wait_for, Peer};
use conclave_node::{HandlerError, NodeHandle, PeerId, ProtocolHandler};
use conclave_signing::{
    advert::{SignerRecord, SIGNER_RESOURCE},
    proto::{Action, FailureKind, Participant, SessionMessage},
    service::wire,
    Payload, Phase, SecretKey, SessionStatus, SignerKey, SigningEvent, Timeouts, PROTOCOL_ID,
};
use conclave_testkit::{init_logging, ms, within};
use futures::future::BoxFuture;
use musig2::{secp::Point, KeyAggContext};

/// What everyone can recompute: KeyAgg over the sorted keys.
fn aggregate_of(keys: &[SignerKey]) -> Point {
    let mut sorted = keys.to_vec();
    sorted.sort();
    KeyAggContext::new(sorted.iter().map(|k| k.point()))
        .unwrap()
        .aggregated_pubkey()
}

/// Checks the final signature with rust-bitcoin's libsecp256k1 (BIP-340).
fn assert_bip340(status: &SessionStatus, keys: &[SignerKey], message: &[u8]) {
    let agg = aggregate_of(keys);
    assert_eq!(status.aggregate_pubkey, hex::encode(agg.serialize_xonly()));
    let sig = hex::decode(status.signature.as_ref().expect("a signature")).unwrap();
    assert_eq!(sig.len(), 64);
    musig2::verify_single(agg, sig.as_slice(), message).expect("BIP-340 signature verifies");
    // And independently, for a 32-byte message, with rust-bitcoin's secp256k1.
    if message.len() == 32 {
        use bitcoin::secp256k1::{schnorr, Message, Secp256k1, XOnlyPublicKey};
        Secp256k1::verification_only()
            .verify_schnorr(
                &schnorr::Signature::from_slice(&sig).unwrap(),
                &Message::from_digest_slice(message).unwrap(),
                &XOnlyPublicKey::from_slice(&agg.serialize_xonly()).unwrap(),
            )
            .expect("libsecp256k1 agrees");
    }
}

/// Runs one session over `peers` (the first creates it), every signer
/// joining as soon as invited. Returns every peer's final status (the
/// coordinator's first) and the time from `create` to the coordinator's end.
async fn run_session(peers: &[Peer], payload: Payload) -> (Vec<SessionStatus>, Duration) {
    let mut creator_events = peers[0].signing.subscribe();
    let mut signer_events: Vec<_> = peers[1..].iter().map(|p| p.signing.subscribe()).collect();
    let keys: Vec<SignerKey> = peers.iter().map(|p| p.key).collect();
    let started = Instant::now();
    let created = within("create", peers[0].signing.create(&keys, payload))
        .await
        .expect("session created");
    let id = created.session_id.clone();
    let signers = peers[1..]
        .iter()
        .zip(signer_events.iter_mut())
        .map(|(p, events)| {
            let id = id.clone();
            async move {
                join_when_invited(p, events, &id).await;
                finished(events, &id).await
            }
        });
    let coordinator = async {
        let status = finished(&mut creator_events, &id).await;
        (status, started.elapsed())
    };
    let ((status, took), others) =
        futures::future::join(coordinator, futures::future::join_all(signers)).await;
    let mut all = vec![status];
    all.extend(others);
    (all, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_and_five_signers_sign_and_the_signature_verifies_for_the_sorted_keyagg() {
    init_logging();
    for n in [3usize, 5] {
        let peers = cluster(n, Timeouts::default()).await;
        let keys: Vec<SignerKey> = peers.iter().map(|p| p.key).collect();
        // A warm-up session, then the timed one.
        let (statuses, _) = run_session(&peers, Payload::Message(vec![1; 32])).await;
        assert_eq!(statuses[0].phase, Phase::Done, "{statuses:?}");
        let message = b"conclave: pay the five of us".to_vec();
        let (statuses, took) = run_session(&peers, Payload::Message(message.clone())).await;
        let status = &statuses[0];
        assert_eq!(status.phase, Phase::Done, "{status:?}");
        assert!(status.holdouts.is_empty());
        assert_bip340(status, &keys, &message);
        let phases: Vec<Phase> = status.timeline.iter().map(|c| c.phase).collect();
        assert_eq!(
            phases,
            [
                Phase::Join,
                Phase::Nonces,
                Phase::PartialSignatures,
                Phase::Aggregation,
                Phase::Done
            ]
        );
        // Every signer holds the same verified signature.
        for theirs in &statuses[1..] {
            assert_eq!(theirs.phase, Phase::Done);
            assert_eq!(theirs.signature, status.signature);
        }
        println!("figure: {n}-signer session = {}", ms(took));
        for p in &peers {
            p.signing.stop().await.unwrap();
            p.node.stop().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_never_answers_fails_the_session_within_the_timeout_and_is_listed() {
    init_logging();
    let timeout = Duration::from_millis(1500);
    let peers = cluster(3, Timeouts::uniform(timeout)).await;
    let silent = peers[2].key;
    let mut creator_events = peers[0].signing.subscribe();
    let mut joiner_events = peers[1].signing.subscribe();
    let keys: Vec<SignerKey> = peers.iter().map(|p| p.key).collect();
    let started = Instant::now();
    let id = peers[0]
        .signing
        .create(&keys, Payload::Message(b"hello".to_vec()))
        .await
        .unwrap()
        .session_id;
    join_when_invited(&peers[1], &mut joiner_events, &id).await;
    // While waiting, the holdouts name exactly the silent signer.
    wait_for(
        &mut creator_events,
        "only the silent signer outstanding",
        |e| match e {
            SigningEvent::Phase {
                session_id,
                holdouts,
                ..
            } if *session_id == id && holdouts == &vec![silent] => Some(()),
            _ => None,
        },
    )
    .await;
    let status = peers[0].signing.status(&id).await.unwrap();
    assert_eq!(
        (status.phase, status.holdouts.clone()),
        (Phase::Join, vec![silent])
    );
    let status = finished(&mut creator_events, &id).await;
    let took = started.elapsed();
    assert_eq!(status.phase, Phase::Failed);
    let failure = status.failure.expect("a failure");
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert_eq!(failure.holdouts, vec![silent]);
    assert_eq!(status.holdouts, vec![silent]);
    // `took` also covers finding and connecting the signers before the
    // join phase starts; the slack allows for a loaded machine.
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(10),
        "failed after {took:?} for a {timeout:?} timeout"
    );
    // The signer that joined learns of the failure too.
    let theirs = finished(&mut joiner_events, &id).await;
    assert_eq!(theirs.phase, Phase::Failed);
    println!(
        "figure: silent signer detected after {} ({} timeout)",
        ms(took),
        ms(timeout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_drops_out_after_joining_fails_the_session_listing_it() {
    init_logging();
    let peers = cluster(3, Timeouts::uniform(Duration::from_secs(10))).await;
    let keys: Vec<SignerKey> = peers.iter().map(|p| p.key).collect();
    let (b, c) = (&peers[1], &peers[2]);
    let mut creator_events = peers[0].signing.subscribe();
    let mut b_events = b.signing.subscribe();
    let mut c_events = c.signing.subscribe();
    let mut node_events = peers[0].node.subscribe_events();
    let id = peers[0]
        .signing
        .create(&keys, Payload::Message(b"drop-out".to_vec()))
        .await
        .unwrap()
        .session_id;
    // C joins, then its node goes away.
    join_when_invited(c, &mut c_events, &id).await;
    wait_for(&mut creator_events, "C joined", |e| match e {
        SigningEvent::Phase {
            session_id,
            holdouts,
            ..
        } if *session_id == id && !holdouts.contains(&c.key) => Some(()),
        _ => None,
    })
    .await;
    let gone = c.node.peer_id();
    c.node.stop().await.unwrap();
    within("C disconnected", async {
        loop {
            match node_events.recv().await {
                Some(conclave_node::NodeEvent::PeerDisconnected { peer_id }) if peer_id == gone => {
                    break
                }
                Some(_) => {}
                None => panic!("node stopped"),
            }
        }
    })
    .await;
    // B's join completes the join phase; the nonce request cannot reach C.
    let started = Instant::now();
    join_when_invited(b, &mut b_events, &id).await;
    let status = finished(&mut creator_events, &id).await;
    assert_eq!(status.phase, Phase::Failed);
    let failure = status.failure.expect("a failure");
    assert_eq!(failure.kind, FailureKind::Unreachable);
    // C is found unreachable either by the nonce request or, when the
    // coordinator's last join-phase message to C was still on its way as
    // C stopped, by that message: either way C alone is named.
    assert!(
        matches!(failure.phase, Phase::Nonces | Phase::Join),
        "{failure:?}"
    );
    if failure.phase == Phase::Nonces {
        assert_eq!(failure.holdouts, vec![c.key], "{failure:?}");
    }
    assert!(failure.reason.contains(&gone.to_string()));
    println!(
        "figure: dropped-out signer detected {} after the last join",
        ms(started.elapsed())
    );
}

/// A signer built from the public state machine whose partial signatures
/// are corrupted on the way out: it speaks the protocol, but cheats.
struct Cheater {
    node: NodeHandle,
    secret: [u8; 32],
    session: std::sync::Mutex<Option<Participant>>,
}

impl Cheater {
    fn send(&self, session_id: conclave_signing::SessionId, actions: Vec<Action>) {
        for action in actions {
            let Action::Send { to, mut message } = action else {
                continue;
            };
            if let SessionMessage::Partials { partials } = &mut message {
                for p in partials.iter_mut() {
                    p.partials[0][31] ^= 1;
                }
            }
            let bytes = wire::encode(&self.node, session_id, &message, &to).unwrap();
            for peer in to {
                let node = self.node.clone();
                let bytes = bytes.clone();
                tokio::spawn(async move { node.send_to(peer, PROTOCOL_ID, bytes).await });
            }
        }
    }
}

/// The cheater as the node's handler of the session protocol.
struct CheaterHandler(std::sync::Arc<Cheater>);

impl ProtocolHandler for CheaterHandler {
    fn name(&self) -> &str {
        "cheating signer"
    }

    fn protocol_id(&self) -> &str {
        PROTOCOL_ID
    }

    fn handle_message(
        &self,
        from: PeerId,
        payload: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, HandlerError>> {
        let this = self.0.clone();
        Box::pin(async move {
            let (id, message) = wire::decode(&this.node, &payload).map_err(HandlerError)?;
            let now = std::time::Instant::now();
            let actions = {
                let mut session = this.session.lock().unwrap();
                match message {
                    SessionMessage::Invite(spec) => {
                        let mut p = Participant::new(spec, this.node.peer_id(), now)
                            .map_err(|e| HandlerError(e.to_string()))?;
                        let secret = SecretKey::from_bytes(&this.secret).unwrap();
                        let actions = p
                            .join(vec![secret], zeroize::Zeroizing::new(rand::random()), now)
                            .unwrap();
                        *session = Some(p);
                        actions
                    }
                    other => session
                        .as_mut()
                        .ok_or_else(|| HandlerError("no session".into()))?
                        .handle_message(from, other, now)
                        .map_err(|r| HandlerError(r.0))?,
                }
            };
            this.send(id, actions);
            Ok(Vec::new())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_partial_signature_names_its_signer_and_fails_the_session() {
    init_logging();
    let mut peers = cluster(3, Timeouts::default()).await;
    // Replace the third peer's service by the cheater, with the same key.
    let honest = peers.pop().unwrap();
    honest.signing.stop().await.unwrap();
    let secret = honest.keys.secret(&honest.key).unwrap().unwrap();
    let cheater = std::sync::Arc::new(Cheater {
        node: honest.node.clone(),
        secret: *secret.expose_bytes(),
        session: std::sync::Mutex::new(None),
    });
    honest
        .node
        .register_handler(std::sync::Arc::new(CheaterHandler(cheater)))
        .await
        .unwrap();
    let record = SignerRecord::sign(&secret, honest.node.peer_id(), vec![honest.addr().await]);
    honest
        .node
        .announce_resource(
            SIGNER_RESOURCE,
            &honest.key.to_hex(),
            serde_json::to_value(&record).unwrap(),
            Duration::from_secs(600),
        )
        .await
        .unwrap();

    let mut creator_events = peers[0].signing.subscribe();
    let mut joiner_events = peers[1].signing.subscribe();
    let keys = vec![peers[0].key, peers[1].key, honest.key];
    let id = peers[0]
        .signing
        .create(&keys, Payload::Message(b"split the bill".to_vec()))
        .await
        .unwrap()
        .session_id;
    join_when_invited(&peers[1], &mut joiner_events, &id).await;
    let status = finished(&mut creator_events, &id).await;
    assert_eq!(status.phase, Phase::Failed);
    let failure = status.failure.expect("a failure");
    assert_eq!(failure.kind, FailureKind::InvalidPartialSignature);
    assert_eq!(failure.culprits, vec![honest.key], "the cheater is named");
    assert!(failure.reason.contains(&honest.key.to_hex()));
    assert!(status.signature.is_none());
    let theirs = finished(&mut joiner_events, &id).await;
    assert_eq!(
        theirs.failure.clone().unwrap().culprits,
        vec![honest.key],
        "{theirs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_aborts_the_session_and_a_new_session_succeeds() {
    init_logging();
    // Short enough that the old session ends within the test's bound even
    // if the coordinator were never told of the restart.
    let timeouts = Timeouts {
        join: Duration::from_secs(20),
        nonces: Duration::from_secs(10),
        partial_signatures: Duration::from_secs(10),
    };
    let mut peers = cluster(3, timeouts).await;
    let keys: Vec<SignerKey> = peers.iter().map(|p| p.key).collect();
    let mut creator_events = peers[0].signing.subscribe();
    let mut b_events = peers[1].signing.subscribe();
    let id = peers[0]
        .signing
        .create(&keys, Payload::Message(b"first try".to_vec()))
        .await
        .unwrap()
        .session_id;
    // B joins (its ledger records the session), C has not yet: mid-session.
    join_when_invited(&peers[1], &mut b_events, &id).await;
    let b_key = peers[1].key;
    wait_for(&mut creator_events, "B joined", |e| match e {
        SigningEvent::Phase {
            session_id,
            holdouts,
            ..
        } if *session_id == id && !holdouts.contains(&b_key) => Some(()),
        _ => None,
    })
    .await;

    // B's service stops and a new one starts on the same ledger.
    peers[1].signing.stop().await.unwrap();
    let restarted = Peer::service(&peers[1].node, &peers[1].keys, &peers[1].dir, timeouts).await;
    peers[1].signing = restarted;
    let old = peers[1].signing.status(&id).await.unwrap();
    assert_eq!(old.phase, Phase::Aborted, "never resumed: {old:?}");
    // The coordinator's session fails, naming B.
    let status = finished(&mut creator_events, &id).await;
    assert_eq!(status.phase, Phase::Failed);
    let failure = status.failure.unwrap();
    assert!(
        failure.culprits.contains(&b_key) || failure.holdouts.contains(&b_key),
        "{failure:?}"
    );

    // The restarted signer refuses a second signing round under the old id.
    let spec = conclave_signing::proto::SessionSpec {
        session_id: id.parse().unwrap(),
        coordinator: peers[0].node.peer_id(),
        coordinator_addrs: Vec::new(),
        signers: {
            let mut s: Vec<_> = peers
                .iter()
                .map(|p| conclave_signing::proto::SignerEntry {
                    key: p.key,
                    peer: p.node.peer_id(),
                })
                .collect();
            s.sort_by_key(|e| e.key);
            s
        },
        payload: Payload::Message(b"first try".to_vec()),
        timeouts: Timeouts::default(),
    };
    let b = peers[1].node.peer_id();
    let invite = wire::encode(
        &peers[0].node,
        spec.session_id,
        &SessionMessage::Invite(spec.clone()),
        &[b],
    )
    .unwrap();
    let refused = peers[0].node.send_to(b, PROTOCOL_ID, invite).await;
    let reason = format!("{:?}", refused.expect_err("refused"));
    assert!(reason.contains("second signing round"), "{reason}");

    // A new session with the same signers succeeds.
    let message = vec![9u8; 32];
    let (statuses, _) = run_session(&peers, Payload::Message(message.clone())).await;
    assert_eq!(statuses[0].phase, Phase::Done, "{statuses:?}");
    assert_bip340(&statuses[0], &keys, &message);
    // The history keeps both.
    let list = peers[0].signing.list().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].phase, Phase::Failed);
    assert_eq!(list[1].phase, Phase::Done);
}
