//! A PSBT session: three in-process nodes sign a transaction whose inputs
//! are taproot key-path spends by their aggregate key (BIP-341 tweak, no
//! script tree); every input's signature must verify against the prevouts
//! recorded in the PSBT.

mod common;

use bitcoin::{
    absolute::LockTime,
    consensus::encode::deserialize_hex,
    hashes::Hash,
    key::{TapTweak, XOnlyPublicKey},
    secp256k1::{schnorr, Message, Secp256k1},
    sighash::{Prevouts, SighashCache, TapSighashType},
    transaction::Version,
    Amount, OutPoint, Psbt, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use common::{cluster, finished, join_when_invited};
use conclave_signing::{
    psbt::{
        PSBT_IN_MUSIG2_PARTIAL_SIG, PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS, PSBT_IN_MUSIG2_PUB_NONCE,
    },
    Payload, Phase, SignerKey, Signing, Timeouts,
};
use conclave_testkit::{init_logging, within};
use musig2::{secp::Point, KeyAggContext};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psbt_session_yields_a_transaction_whose_key_path_signatures_verify() {
    init_logging();
    let peers = cluster(3, Timeouts::default()).await;
    let mut keys: Vec<SignerKey> = peers.iter().map(|p| p.key).collect();
    keys.sort();

    // The group's taproot output, computed independently with rust-bitcoin.
    let agg: Point = KeyAggContext::new(keys.iter().map(|k| k.point()))
        .unwrap()
        .aggregated_pubkey();
    let secp = Secp256k1::verification_only();
    let internal = XOnlyPublicKey::from_slice(&agg.serialize_xonly()).unwrap();
    let (output_key, _) = internal.tap_tweak(&secp, None);
    let script = ScriptBuf::new_p2tr_tweaked(output_key);

    // Two coins of the group, spent to one output.
    let prevouts = vec![
        TxOut {
            value: Amount::from_sat(50_000),
            script_pubkey: script.clone(),
        },
        TxOut {
            value: Amount::from_sat(30_000),
            script_pubkey: script.clone(),
        },
    ];
    let unsigned = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..2u8)
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array([i + 1; 32]),
                    vout: i as u32,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: vec![TxOut {
            value: Amount::from_sat(79_000),
            script_pubkey: ScriptBuf::new_op_return([0x42; 8]),
        }],
    };
    let mut psbt = Psbt::from_unsigned_tx(unsigned).unwrap();
    for (input, prevout) in psbt.inputs.iter_mut().zip(&prevouts) {
        input.witness_utxo = Some(prevout.clone());
    }

    let mut creator_events = peers[0].signing.subscribe();
    let mut signer_events: Vec<_> = peers[1..].iter().map(|p| p.signing.subscribe()).collect();
    let id = within(
        "create",
        peers[0]
            .signing
            .create(&keys, Payload::Psbt(psbt.serialize())),
    )
    .await
    .expect("a PSBT session")
    .session_id;
    // The invitation shows what is spent and paid.
    let invitation = within("invitation", async {
        loop {
            if let Some(i) = peers[1].signing.invitations().await.unwrap().pop() {
                return i;
            }
            let _ = signer_events[0].recv().await;
        }
    })
    .await;
    match &invitation.signing {
        Signing::Psbt { summary } => {
            assert_eq!(summary.inputs, 2);
            assert_eq!(summary.input_value_sat, 80_000);
            assert_eq!(summary.fee_sat, 1_000);
        }
        other => panic!("expected a PSBT, got {other:?}"),
    }
    within("join", peers[1].signing.join(&id)).await.unwrap();
    join_when_invited(&peers[2], &mut signer_events[1], &id).await;
    let status = finished(&mut creator_events, &id).await;
    assert_eq!(status.phase, Phase::Done, "{status:?}");
    assert_eq!(status.signatures.len(), 2, "one signature per input");
    assert_eq!(
        status.output_key.as_deref(),
        Some(&*hex::encode(output_key.serialize()))
    );

    // The finalized transaction: each key-path signature verifies against
    // the prevouts in the PSBT.
    let tx: Transaction = deserialize_hex(status.transaction.as_ref().unwrap()).unwrap();
    assert_eq!(tx.compute_txid(), psbt.unsigned_tx.compute_txid());
    let mut cache = SighashCache::new(&tx);
    for (i, input) in tx.input.iter().enumerate() {
        assert_eq!(
            input.witness.len(),
            1,
            "a key-path witness is one signature"
        );
        let sig = schnorr::Signature::from_slice(&input.witness[0]).unwrap();
        let sighash = cache
            .taproot_key_spend_signature_hash(i, &Prevouts::All(&prevouts), TapSighashType::Default)
            .unwrap();
        secp.verify_schnorr(
            &sig,
            &Message::from_digest(sighash.to_byte_array()),
            &output_key.to_x_only_public_key(),
        )
        .unwrap_or_else(|e| panic!("input {i}: {e}"));
    }

    // The signed PSBT: tap_key_sig in place, plus the BIP-373 MuSig2 fields.
    let signed: Psbt = status.psbt.as_ref().unwrap().parse().unwrap();
    let aggregate_key = agg.serialize().to_vec();
    for input in &signed.inputs {
        assert!(input.tap_key_sig.is_some());
        assert_eq!(input.tap_internal_key, Some(internal));
        let participants = input
            .unknown
            .iter()
            .find(|(k, _)| k.type_value == PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS)
            .expect("participant keys");
        assert_eq!(participants.0.key, aggregate_key);
        assert_eq!(
            participants.1,
            &keys
                .iter()
                .flat_map(|k| k.as_bytes().to_vec())
                .collect::<Vec<u8>>()
        );
        let count = |t| input.unknown.keys().filter(|k| k.type_value == t).count();
        assert_eq!(count(PSBT_IN_MUSIG2_PUB_NONCE), 3);
        assert_eq!(count(PSBT_IN_MUSIG2_PARTIAL_SIG), 3);
    }
    // A signer gets the same transaction.
    let theirs = finished(&mut signer_events[1], &id).await;
    assert_eq!(theirs.transaction, status.transaction);
}
