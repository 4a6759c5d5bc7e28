//! The CoinJoin transaction, built identically by every peer from what
//! the session agreed on (the requests and the DC-net's output keys).
//!
//! Inputs are sorted by outpoint and outputs by (amount, script), so the
//! order says nothing about ownership. Each participant pays the fee of
//! its own inputs and outputs plus an equal share of the transaction's
//! fixed overhead, at the pairing's fee rate; change below the dust limit
//! goes to the fee. Every input is a taproot key-path spend signed with
//! SIGHASH_DEFAULT, which commits to all inputs and outputs: no valid
//! transaction exists on a subset of them.

use bitcoin::{
    absolute::LockTime,
    consensus::encode::serialize,
    hashes::Hash,
    key::Secp256k1,
    secp256k1::{schnorr, Message, XOnlyPublicKey},
    sighash::{Prevouts, SighashCache},
    transaction::Version,
    Amount, ScriptBuf, Sequence, TapSighashType, Transaction, TxIn, TxOut, Witness,
};

use crate::coin::{p2tr_script, CoinKey, Outpoint};

/// Weight of a P2TR key-path input with a 64-byte signature: 41 bytes
/// outside the witness (×4) and a 66-byte witness.
pub const P2TR_INPUT_WEIGHT: u64 = 41 * 4 + 66;
/// Witness bytes of one such input.
const P2TR_WITNESS_WEIGHT: u64 = 66;
/// The largest fixed overhead (version, lock time, both counts at their
/// widest, segwit marker and flag): what a request must cover on its own.
pub const MAX_OVERHEAD_WEIGHT: u64 = (4 + 4 + 3 + 3) * 4 + 2;

/// One participant's part of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxParticipant {
    /// Coins it spends (P2TR key path), with the outputs they spend.
    pub inputs: Vec<(Outpoint, TxOut)>,
    /// How many denomination outputs it receives.
    pub mixed_outputs: u32,
    /// Where its change goes (none: any remainder is fee).
    pub change_script: Option<ScriptBuf>,
}

/// Why the transaction cannot be built or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The DC-net gave a different number of output keys than requested.
    #[error("{got} output keys for {expected} mixed outputs")]
    OutputCount {
        /// Keys received.
        got: usize,
        /// Mixed outputs requested in total.
        expected: usize,
    },
    /// An output key is not a point on secp256k1.
    #[error("output key {0} is not a valid x-only public key")]
    InvalidOutputKey(usize),
    /// A participant's inputs do not cover its outputs and fee.
    #[error("participant {participant} brings {have} sats but owes {owes} sats (outputs and fee)")]
    Underpaid {
        /// Its index.
        participant: usize,
        /// What its inputs hold.
        have: u64,
        /// What its outputs and fee need.
        owes: u64,
    },
    /// Amounts overflow (more than 21 million BTC).
    #[error("amounts overflow")]
    Overflow,
    /// An input appears twice.
    #[error("outpoint {0} is spent twice")]
    DuplicateInput(Outpoint),
    /// Bitcoin Core's script interpreter refused an input.
    #[error("input {input} fails consensus validation: {reason}")]
    Consensus {
        /// The input index.
        input: usize,
        /// libbitcoinconsensus's error.
        reason: String,
    },
}

/// Why we refuse to sign (nothing is signed when this is returned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// One of our inputs is not in the transaction exactly once.
    #[error("our input {0} is missing from the transaction")]
    MissingInput(Outpoint),
    /// One of our mixed outputs is missing or has the wrong amount.
    #[error("our mixed output {0} is missing or carries the wrong amount")]
    MissingOutput(String),
    /// Our change output is missing or has the wrong amount.
    #[error("our change output of {0} sats is missing")]
    MissingChange(u64),
    /// We would pay more fee than allowed.
    #[error("our fee of {fee} sats exceeds the maximum of {max} sats")]
    FeeTooHigh {
        /// Our fee.
        fee: u64,
        /// The most we pay.
        max: u64,
    },
    /// The transaction pays less than its fee rate.
    #[error("the transaction pays {paid} sats, below {needed} sats at its fee rate")]
    FeeTooLow {
        /// What it pays.
        paid: u64,
        /// What its size needs.
        needed: u64,
    },
    /// The amounts do not add up.
    #[error("inputs minus outputs ({actual} sats) differ from the agreed fees ({agreed} sats)")]
    AmountsDiffer {
        /// In − out.
        actual: u64,
        /// Σ fees.
        agreed: u64,
    },
    /// We hold no key for one of our inputs.
    #[error("input {0} is not ours: no key of ours spends it")]
    NotOurInput(Outpoint),
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// 65 bytes: a sighash type byte, which SIGHASH_DEFAULT never has.
    #[error("signature uses sighash type {0:#04x}; only SIGHASH_DEFAULT (64-byte signatures) is accepted")]
    NonDefaultSighash(u8),
    /// Not 64 bytes.
    #[error("signature of {0} bytes; expected 64")]
    Length(usize),
    /// Does not verify under the input's key.
    #[error("signature does not verify for input {0}")]
    Invalid(usize),
    /// No such input.
    #[error("no input {0}")]
    NoInput(usize),
}

/// The transaction and everything needed to check and sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoinJoinTx {
    /// The unsigned transaction.
    pub tx: Transaction,
    /// The outputs its inputs spend, in input order.
    pub prevouts: Vec<TxOut>,
    /// For each input, the participant that owns it.
    pub owners: Vec<usize>,
    /// Each participant's fee, in sats (any dust change included).
    pub fees: Vec<u64>,
    /// Each participant's change, when it gets a change output.
    pub change: Vec<Option<u64>>,
    /// The fee rate, sat/vB.
    pub fee_rate: u64,
    /// The denomination, sats.
    pub denomination: u64,
}

fn varint_len(n: u64) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Weight of an output paying to `script_len` bytes of script.
pub fn output_weight(script_len: usize) -> u64 {
    let len = script_len as u64;
    (8 + varint_len(len) + len) * 4
}

/// Weight of a P2TR output.
pub const P2TR_OUTPUT_WEIGHT: u64 = (8 + 1 + 34) * 4;

fn overhead_weight(inputs: u64, outputs: u64) -> u64 {
    (4 + 4 + varint_len(inputs) + varint_len(outputs)) * 4 + 2
}

/// The fee for `weight` at `fee_rate` sat/vB, rounded up.
pub fn fee_for_weight(weight: u64, fee_rate: u64) -> u64 {
    (weight * fee_rate).div_ceil(4)
}

/// A participant's own weight: its inputs, mixed outputs and (if
/// `with_change`) change output, without any overhead.
pub fn participant_weight(
    inputs: usize,
    mixed_outputs: u32,
    change_script_len: Option<usize>,
) -> u64 {
    inputs as u64 * P2TR_INPUT_WEIGHT
        + u64::from(mixed_outputs) * P2TR_OUTPUT_WEIGHT
        + change_script_len.map_or(0, output_weight)
}

/// The most fee a participant can owe in any session (the whole overhead,
/// no change output): what its request must cover beyond its outputs.
pub fn worst_case_fee(inputs: usize, mixed_outputs: u32, fee_rate: u64) -> u64 {
    fee_for_weight(
        participant_weight(inputs, mixed_outputs, None) + MAX_OVERHEAD_WEIGHT,
        fee_rate,
    )
}

/// Builds the transaction every peer builds. `output_keys` are the
/// DC-net's output keys in slot order (their order does not matter: the
/// outputs are sorted).
pub fn build(
    participants: &[TxParticipant],
    output_keys: &[[u8; 32]],
    denomination: u64,
    fee_rate: u64,
) -> Result<CoinJoinTx, TxError> {
    let mixed_total: usize = participants.iter().map(|p| p.mixed_outputs as usize).sum();
    if output_keys.len() != mixed_total {
        return Err(TxError::OutputCount {
            got: output_keys.len(),
            expected: mixed_total,
        });
    }
    let input_count: usize = participants.iter().map(|p| p.inputs.len()).sum();
    let output_count_max = mixed_total
        + participants
            .iter()
            .filter(|p| p.change_script.is_some())
            .count();
    let overhead = overhead_weight(input_count as u64, output_count_max as u64);
    let share = overhead.div_ceil(participants.len().max(1) as u64);

    let mut inputs: Vec<(Outpoint, TxOut, usize)> = Vec::with_capacity(input_count);
    let mut outputs: Vec<TxOut> = Vec::with_capacity(output_count_max);
    let mut fees = Vec::with_capacity(participants.len());
    let mut change = Vec::with_capacity(participants.len());
    for (index, p) in participants.iter().enumerate() {
        let mut have = 0u64;
        for (outpoint, txout) in &p.inputs {
            have = have
                .checked_add(txout.value.to_sat())
                .ok_or(TxError::Overflow)?;
            inputs.push((*outpoint, txout.clone(), index));
        }
        let mixed = denomination
            .checked_mul(u64::from(p.mixed_outputs))
            .ok_or(TxError::Overflow)?;
        let fee_without_change = fee_for_weight(
            participant_weight(p.inputs.len(), p.mixed_outputs, None) + share,
            fee_rate,
        );
        let owes = mixed + fee_without_change;
        if have < owes {
            return Err(TxError::Underpaid {
                participant: index,
                have,
                owes,
            });
        }
        let mut fee = have - mixed;
        let mut change_amount = None;
        if let Some(script) = &p.change_script {
            let fee_with_change = fee_for_weight(
                participant_weight(p.inputs.len(), p.mixed_outputs, Some(script.len())) + share,
                fee_rate,
            );
            let remainder = have.saturating_sub(mixed + fee_with_change);
            if remainder > 0 && remainder >= script.minimal_non_dust().to_sat() {
                fee = fee_with_change;
                change_amount = Some(remainder);
                outputs.push(TxOut {
                    value: Amount::from_sat(remainder),
                    script_pubkey: script.clone(),
                });
            }
        }
        fees.push(fee);
        change.push(change_amount);
    }
    for (i, key) in output_keys.iter().enumerate() {
        let script = p2tr_script(key).ok_or(TxError::InvalidOutputKey(i))?;
        outputs.push(TxOut {
            value: Amount::from_sat(denomination),
            script_pubkey: script,
        });
    }
    inputs.sort_by_key(|a| a.0);
    for pair in inputs.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(TxError::DuplicateInput(pair[0].0));
        }
    }
    outputs.sort_by(|a, b| {
        (a.value, a.script_pubkey.as_bytes()).cmp(&(b.value, b.script_pubkey.as_bytes()))
    });
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|(outpoint, _, _)| TxIn {
                previous_output: (*outpoint).into(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    Ok(CoinJoinTx {
        tx,
        prevouts: inputs.iter().map(|(_, txout, _)| txout.clone()).collect(),
        owners: inputs.iter().map(|(_, _, owner)| *owner).collect(),
        fees,
        change,
        fee_rate,
        denomination,
    })
}

impl CoinJoinTx {
    /// The weight once every input carries its 64-byte signature.
    pub fn signed_weight(&self) -> u64 {
        let unsigned = self.tx.weight().to_wu();
        // The segwit marker and flag appear only once witnesses do.
        unsigned + 2 + self.tx.input.len() as u64 * P2TR_WITNESS_WEIGHT
    }

    /// Σ inputs − Σ outputs.
    pub fn fee(&self) -> u64 {
        let inputs: u64 = self.prevouts.iter().map(|o| o.value.to_sat()).sum();
        let outputs: u64 = self.tx.output.iter().map(|o| o.value.to_sat()).sum();
        inputs.saturating_sub(outputs)
    }

    /// Our checks before signing, as participant `me` expecting
    /// `our_output_keys` and paying at most `max_fee`.
    pub fn check_ours(
        &self,
        me: usize,
        our_inputs: &[Outpoint],
        our_output_keys: &[[u8; 32]],
        our_change_script: Option<&ScriptBuf>,
        max_fee: Option<u64>,
    ) -> Result<(), Refusal> {
        for outpoint in our_inputs {
            let count = self
                .tx
                .input
                .iter()
                .filter(|i| Outpoint::from(i.previous_output) == *outpoint)
                .count();
            if count != 1 {
                return Err(Refusal::MissingInput(*outpoint));
            }
        }
        for key in our_output_keys {
            let script =
                p2tr_script(key).ok_or_else(|| Refusal::MissingOutput(hex::encode(key)))?;
            let count = self
                .tx
                .output
                .iter()
                .filter(|o| o.script_pubkey == script && o.value.to_sat() == self.denomination)
                .count();
            if count != 1 {
                return Err(Refusal::MissingOutput(hex::encode(key)));
            }
        }
        if let (Some(amount), Some(script)) =
            (self.change.get(me).copied().flatten(), our_change_script)
        {
            let present = self
                .tx
                .output
                .iter()
                .any(|o| &o.script_pubkey == script && o.value.to_sat() == amount);
            if !present {
                return Err(Refusal::MissingChange(amount));
            }
        }
        let agreed: u64 = self.fees.iter().sum();
        let actual = self.fee();
        if actual != agreed {
            return Err(Refusal::AmountsDiffer { actual, agreed });
        }
        let needed = fee_for_weight(self.signed_weight(), self.fee_rate);
        if actual < needed {
            return Err(Refusal::FeeTooLow {
                paid: actual,
                needed,
            });
        }
        if let Some(max) = max_fee {
            let fee = self.fees.get(me).copied().unwrap_or(0);
            if fee > max {
                return Err(Refusal::FeeTooHigh { fee, max });
            }
        }
        Ok(())
    }

    /// The BIP-341 key-spend sighash of input `index` (SIGHASH_DEFAULT).
    pub fn sighash(&self, index: usize) -> Option<[u8; 32]> {
        let mut cache = SighashCache::new(&self.tx);
        cache
            .taproot_key_spend_signature_hash(
                index,
                &Prevouts::All(&self.prevouts),
                TapSighashType::Default,
            )
            .ok()
            .map(|h| h.to_byte_array())
    }

    /// Signs every input owned by `me` with the matching key of `keys`
    /// (SIGHASH_DEFAULT, 64-byte signatures); `aux` seeds BIP-340's
    /// auxiliary randomness. Refuses if one of our inputs has no key.
    pub fn sign_ours(
        &self,
        me: usize,
        keys: &[CoinKey],
        aux: &[u8; 32],
    ) -> Result<Vec<(u32, [u8; 64])>, Refusal> {
        let secp = Secp256k1::new();
        let mut signatures = Vec::new();
        for (index, owner) in self.owners.iter().enumerate() {
            if *owner != me {
                continue;
            }
            let script = &self.prevouts[index].script_pubkey;
            let outpoint = Outpoint::from(self.tx.input[index].previous_output);
            let key = keys
                .iter()
                .find(|k| p2tr_script(&k.output_key()).as_ref() == Some(script))
                .ok_or(Refusal::NotOurInput(outpoint))?;
            let sighash = self.sighash(index).ok_or(Refusal::NotOurInput(outpoint))?;
            let mut aux_input = blake3::Hasher::new_keyed(aux);
            aux_input.update(&(index as u64).to_le_bytes());
            let aux_rand = *aux_input.finalize().as_bytes();
            let sig = secp.sign_schnorr_with_aux_rand(
                &Message::from_digest(sighash),
                key.signing_keypair(),
                &aux_rand,
            );
            signatures.push((index as u32, sig.serialize()));
        }
        Ok(signatures)
    }

    /// Checks one input's signature: 64 bytes (SIGHASH_DEFAULT) that verify
    /// under the key in the script the input spends.
    pub fn verify_signature(&self, index: usize, signature: &[u8]) -> Result<(), SignatureError> {
        match signature.len() {
            64 => {}
            65 => return Err(SignatureError::NonDefaultSighash(signature[64])),
            n => return Err(SignatureError::Length(n)),
        }
        let prevout = self
            .prevouts
            .get(index)
            .ok_or(SignatureError::NoInput(index))?;
        let key = prevout
            .script_pubkey
            .as_bytes()
            .get(2..34)
            .filter(|_| prevout.script_pubkey.is_p2tr())
            .and_then(|k| XOnlyPublicKey::from_slice(k).ok())
            .ok_or(SignatureError::Invalid(index))?;
        let sig = schnorr::Signature::from_slice(signature)
            .map_err(|_| SignatureError::Invalid(index))?;
        let sighash = self.sighash(index).ok_or(SignatureError::NoInput(index))?;
        Secp256k1::verification_only()
            .verify_schnorr(&sig, &Message::from_digest(sighash), &key)
            .map_err(|_| SignatureError::Invalid(index))
    }

    /// The signed transaction: `signatures[i]` is input i's signature.
    pub fn finalize(&self, signatures: &[[u8; 64]]) -> Transaction {
        let mut tx = self.tx.clone();
        for (input, sig) in tx.input.iter_mut().zip(signatures) {
            input.witness = Witness::from_slice(&[sig.as_slice()]);
        }
        tx
    }
}

/// Runs Bitcoin Core's script interpreter (libbitcoinconsensus 0.106, with
/// every spent output so taproot is checked) over each input of `tx`.
pub fn verify_consensus(tx: &Transaction, prevouts: &[TxOut]) -> Result<(), TxError> {
    let bytes = serialize(tx);
    let utxos: Vec<bitcoinconsensus::Utxo> = prevouts
        .iter()
        .map(|o| bitcoinconsensus::Utxo {
            script_pubkey: o.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: o.script_pubkey.len() as u32,
            value: o.value.to_sat() as i64,
        })
        .collect();
    for (input, prevout) in prevouts.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            prevout.script_pubkey.as_bytes(),
            prevout.value.to_sat(),
            &bytes,
            Some(&utxos),
            input,
            bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT,
        )
        .map_err(|e| TxError::Consensus {
            input,
            reason: format!("{e:?}"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use zeroize::Zeroizing;

    use super::*;

    pub(crate) fn key(n: u8) -> CoinKey {
        CoinKey::from_secret_bytes(&Zeroizing::new([n; 32])).unwrap()
    }

    pub(crate) fn coin(n: u8, sats: u64, k: &CoinKey) -> (Outpoint, TxOut) {
        (
            Outpoint {
                txid: [n; 32],
                vout: u32::from(n),
            },
            TxOut {
                value: Amount::from_sat(sats),
                script_pubkey: k.script_pubkey(),
            },
        )
    }

    fn three() -> (Vec<TxParticipant>, Vec<CoinKey>, Vec<[u8; 32]>) {
        let keys: Vec<CoinKey> = (1..=3).map(key).collect();
        let participants = vec![
            TxParticipant {
                inputs: vec![coin(1, 150_000, &keys[0])],
                mixed_outputs: 1,
                change_script: Some(keys[0].script_pubkey()),
            },
            TxParticipant {
                inputs: vec![coin(2, 60_000, &keys[1]), coin(4, 60_000, &keys[1])],
                mixed_outputs: 1,
                change_script: Some(keys[1].script_pubkey()),
            },
            TxParticipant {
                inputs: vec![coin(3, 100_300, &keys[2])],
                mixed_outputs: 1,
                change_script: Some(keys[2].script_pubkey()),
            },
        ];
        let outputs = (10..13).map(|n| key(n).output_key()).collect();
        (participants, keys, outputs)
    }

    #[test]
    fn a_signed_coinjoin_passes_libbitcoinconsensus_and_a_tampered_copy_does_not() {
        let (participants, keys, outputs) = three();
        let cj = build(&participants, &outputs, 100_000, 2).unwrap();
        assert_eq!(cj.tx.input.len(), 4);
        assert_eq!(cj.change[2], None, "300 sats minus fee is dust: no change");
        assert!(cj.change[0].is_some() && cj.change[1].is_some());
        assert_eq!(cj.tx.output.len(), 5);
        let ours = [
            vec![participants[0].inputs[0].0],
            vec![participants[1].inputs[0].0, participants[1].inputs[1].0],
            vec![participants[2].inputs[0].0],
        ];
        let mut sigs = vec![[0u8; 64]; cj.tx.input.len()];
        for me in 0..3 {
            cj.check_ours(
                me,
                &ours[me],
                &[outputs[me]],
                participants[me].change_script.as_ref(),
                Some(5_000),
            )
            .unwrap();
            for (i, s) in cj.sign_ours(me, &keys[me..=me], &[me as u8; 32]).unwrap() {
                cj.verify_signature(i as usize, &s).unwrap();
                sigs[i as usize] = s;
            }
        }
        let signed = cj.finalize(&sigs);
        assert_eq!(
            signed.weight().to_wu(),
            cj.signed_weight(),
            "the size estimate is exact"
        );
        assert!(cj.fee() >= fee_for_weight(signed.weight().to_wu(), 2));
        verify_consensus(&signed, &cj.prevouts).unwrap();

        let mut tampered = signed.clone();
        tampered.output[0].value = Amount::from_sat(tampered.output[0].value.to_sat() - 1);
        assert!(matches!(
            verify_consensus(&tampered, &cj.prevouts),
            Err(TxError::Consensus { .. })
        ));
        let mut wrong_sig = signed;
        let mut w = sigs[1];
        w[5] ^= 1;
        wrong_sig.input[1].witness = Witness::from_slice(&[w.as_slice()]);
        assert!(matches!(
            verify_consensus(&wrong_sig, &cj.prevouts),
            Err(TxError::Consensus { input: 1, .. })
        ));
    }

    #[test]
    fn every_peer_builds_the_same_transaction_in_sorted_order() {
        let (participants, _, outputs) = three();
        let a = build(&participants, &outputs, 100_000, 2).unwrap();
        let mut reversed = outputs.clone();
        reversed.reverse();
        let b = build(&participants, &reversed, 100_000, 2).unwrap();
        assert_eq!(a.tx, b.tx);
        let ins: Vec<Outpoint> =
            a.tx.input
                .iter()
                .map(|i| i.previous_output.into())
                .collect();
        assert!(ins.windows(2).all(|w| w[0] < w[1]));
        assert!(a.tx.output.windows(2).all(|w| w[0].value <= w[1].value));
    }

    #[test]
    fn refusals_name_what_is_wrong_and_sign_nothing() {
        let (participants, keys, outputs) = three();
        let cj = build(&participants, &outputs, 100_000, 2).unwrap();
        let mine = participants[0].inputs[0].0;
        let change = participants[0].change_script.as_ref();
        assert_eq!(
            cj.check_ours(0, &[mine], &[key(99).output_key()], change, None),
            Err(Refusal::MissingOutput(hex::encode(key(99).output_key())))
        );
        assert!(matches!(
            cj.check_ours(0, &[mine], &[outputs[0]], change, Some(10)),
            Err(Refusal::FeeTooHigh { max: 10, .. })
        ));
        let stranger = Outpoint {
            txid: [77; 32],
            vout: 0,
        };
        assert_eq!(
            cj.check_ours(0, &[stranger], &[outputs[0]], change, None),
            Err(Refusal::MissingInput(stranger))
        );
        assert_eq!(
            cj.sign_ours(0, &keys[1..2], &[0; 32]),
            Err(Refusal::NotOurInput(mine))
        );
        let mut lying = cj.clone();
        lying.tx.output[0].value = Amount::from_sat(lying.tx.output[0].value.to_sat() + 1);
        assert!(matches!(
            lying.check_ours(0, &[mine], &[outputs[0]], change, None),
            Err(Refusal::AmountsDiffer { .. })
                | Err(Refusal::MissingOutput(_))
                | Err(Refusal::MissingChange(_))
        ));
    }

    #[test]
    fn signatures_other_than_sighash_default_are_refused() {
        let (participants, keys, outputs) = three();
        let cj = build(&participants, &outputs, 100_000, 2).unwrap();
        let (index, sig) = cj.sign_ours(0, &keys[0..1], &[1; 32]).unwrap()[0];
        let mut with_type = sig.to_vec();
        with_type.push(0x01); // SIGHASH_ALL, explicitly
        assert_eq!(
            cj.verify_signature(index as usize, &with_type),
            Err(SignatureError::NonDefaultSighash(0x01))
        );
        assert_eq!(
            cj.verify_signature(index as usize, &sig[..63]),
            Err(SignatureError::Length(63))
        );
        let other = (0..cj.tx.input.len())
            .find(|&i| i != index as usize)
            .unwrap();
        assert_eq!(
            cj.verify_signature(other, &sig),
            Err(SignatureError::Invalid(other))
        );
    }

    #[test]
    fn underpaid_inputs_and_bad_output_keys_are_errors() {
        let (mut participants, _, outputs) = three();
        let mut bad = outputs.clone();
        bad[1] = (1u8..)
            .map(|x| {
                let mut k = [0u8; 32];
                k[31] = x;
                k
            })
            .find(|k| !crate::coin::is_valid_output_key(k))
            .unwrap();
        assert_eq!(
            build(&participants, &bad, 100_000, 2),
            Err(TxError::InvalidOutputKey(1))
        );
        assert!(matches!(
            build(&participants, &outputs[..2], 100_000, 2),
            Err(TxError::OutputCount {
                got: 2,
                expected: 3
            })
        ));
        participants[2].inputs[0].1.value = Amount::from_sat(100_000);
        assert!(matches!(
            build(&participants, &outputs, 100_000, 2),
            Err(TxError::Underpaid { participant: 2, .. })
        ));
        let worst = worst_case_fee(1, 1, 2);
        participants[2].inputs[0].1.value = Amount::from_sat(100_000 + worst);
        assert!(
            build(&participants, &outputs, 100_000, 2).is_ok(),
            "the worst-case fee always suffices"
        );
    }
}
