//! Invitations a hostile coordinator can send: a PSBT whose amounts add up
//! past every bitcoin that exists, and a flood of sessions meant to take
//! every slot. Each is refused with a reason the sender reads, and the
//! signing service keeps answering and keeps room for its own sessions.

mod common;

use bitcoin::{
    absolute::LockTime,
    hashes::Hash,
    key::{TapTweak, XOnlyPublicKey},
    secp256k1::Secp256k1,
    transaction::Version,
    Amount, OutPoint, Psbt, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use common::{connect, Peer};
use conclave_node::NodeHandle;
use conclave_signing::{
    proto::{SessionId, SessionMessage, SessionSpec, SignerEntry},
    service::wire,
    Payload, Phase, SignerKey, Timeouts, PROTOCOL_ID,
};
use conclave_testkit::{init_logging, within};
use musig2::{secp::Point, KeyAggContext};

/// Sends `target` an invitation from `coordinator` to a session where
/// `target`'s key is the only signer; the refusal's text if refused.
async fn invite(coordinator: &NodeHandle, target: &Peer, payload: Payload) -> Result<(), String> {
    let spec = SessionSpec {
        session_id: SessionId::random(),
        coordinator: coordinator.peer_id(),
        coordinator_addrs: Vec::new(),
        signers: vec![SignerEntry {
            key: target.key,
            peer: target.node.peer_id(),
        }],
        payload,
        timeouts: Timeouts::default(),
    };
    let to = target.node.peer_id();
    let message = SessionMessage::Invite(spec.clone());
    let bytes = wire::encode(coordinator, spec.session_id, &message, &[to]).unwrap();
    coordinator
        .send_to(to, PROTOCOL_ID, bytes)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// A PSBT spending two coins of `key`'s taproot output (BIP-86 tweak, as a
/// session's aggregate key has), each claiming `sats`.
fn psbt_of(key: SignerKey, sats: u64) -> Vec<u8> {
    let agg: Point = KeyAggContext::new([key.point()])
        .unwrap()
        .aggregated_pubkey();
    let internal = XOnlyPublicKey::from_slice(&agg.serialize_xonly()).unwrap();
    let (output_key, _) = internal.tap_tweak(&Secp256k1::verification_only(), None);
    let script = ScriptBuf::new_p2tr_tweaked(output_key);
    let unsigned = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..2u8)
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array([i + 1; 32]),
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: ScriptBuf::new_op_return([0x42; 8]),
        }],
    };
    let mut psbt = Psbt::from_unsigned_tx(unsigned).unwrap();
    for input in &mut psbt.inputs {
        input.witness_utxo = Some(TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: script.clone(),
        });
    }
    psbt.serialize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psbt_claiming_more_than_all_bitcoin_is_refused_and_the_service_still_answers() {
    init_logging();
    let hostile = Peer::start(Timeouts::default()).await;
    let target = Peer::start(Timeouts::default()).await;
    connect(&hostile.node, &target).await;

    // Two inputs of 2^63 sat each: their sum overflows u64.
    let overflowing = psbt_of(target.key, u64::MAX / 2 + 1);
    let refused = within(
        "the refusal",
        invite(&hostile.node, &target, Payload::Psbt(overflowing)),
    )
    .await
    .expect_err("the invitation is refused");
    assert!(
        refused.contains("more than the 21 000 000 BTC that can exist"),
        "{refused}"
    );

    // The service is alive, lists nothing and offers nothing to join.
    let listed = within("list", target.signing.list()).await;
    assert_eq!(listed.expect("the service answers").len(), 0);
    let waiting = within("invitations", target.signing.invitations()).await;
    assert!(waiting.expect("the service answers").is_empty());

    // A PSBT with honest amounts from the same peer still gets through.
    within(
        "an honest invitation",
        invite(
            &hostile.node,
            &target,
            Payload::Psbt(psbt_of(target.key, 50_000)),
        ),
    )
    .await
    .expect("accepted");
    let waiting = within("invitations", target.signing.invitations()).await;
    assert_eq!(waiting.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_coordinator_cannot_take_every_slot_and_own_sessions_keep_theirs() {
    init_logging();
    // Six slots: two kept for the node's own sessions, at most three for
    // any one remote coordinator.
    let target = Peer::start_with(Timeouts::default(), |config| {
        config.max_active_sessions = 6;
        config.reserved_for_own_sessions = 2;
        config.max_invitations_per_coordinator = 3;
    })
    .await;
    let first = Peer::start(Timeouts::default()).await;
    let second = Peer::start(Timeouts::default()).await;
    connect(&first.node, &target).await;
    connect(&second.node, &target).await;
    let message = || Payload::Message(vec![7u8; 32]);

    for n in 0..3 {
        within("invite", invite(&first.node, &target, message()))
            .await
            .unwrap_or_else(|e| panic!("invitation {n} refused: {e}"));
    }
    let refused = within("invite", invite(&first.node, &target, message()))
        .await
        .expect_err("a fourth session from one coordinator is refused");
    assert!(
        refused.contains("the most one coordinator may have"),
        "{refused}"
    );

    // Another coordinator fills what remains of the remote share.
    within("invite", invite(&second.node, &target, message()))
        .await
        .expect("the fourth remote session fits");
    let refused = within("invite", invite(&second.node, &target, message()))
        .await
        .expect_err("the remote share is full");
    assert!(
        refused.contains("the most this node takes from other peers"),
        "{refused}"
    );
    let waiting = within("invitations", target.signing.invitations()).await;
    assert_eq!(waiting.unwrap().len(), 4);

    // The node's own sessions still find their two slots.
    for _ in 0..2 {
        let created = within("create", target.signing.create(&[target.key], message()))
            .await
            .expect("an own session is created");
        let status = within("status", target.signing.status(&created.session_id)).await;
        assert_ne!(status.unwrap().phase, Phase::Failed);
    }
}
