//! PSBTs signed by a session: every input is a taproot key-path spend by the
//! session's aggregate key with the BIP-341 tweak and no script tree
//! (`tr(musig(...))`). Each input's BIP-341 signature hash is one message of
//! the session; the result is the PSBT with the signatures in place (plus
//! the BIP-373 MuSig2 fields) and the finalized transaction.

use std::collections::BTreeMap;

use bitcoin::{
    hashes::Hash,
    key::XOnlyPublicKey,
    psbt::{raw, Psbt},
    sighash::{Prevouts, SighashCache, TapSighashType},
    taproot, Amount, Transaction, TxOut, Witness,
};
use serde::{Deserialize, Serialize};

/// Largest PSBT a session accepts, in bytes.
pub const MAX_PSBT_LEN: usize = 256 * 1024;

/// BIP-373 `PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS`.
pub const PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS: u8 = 0x1a;
/// BIP-373 `PSBT_IN_MUSIG2_PUB_NONCE`.
pub const PSBT_IN_MUSIG2_PUB_NONCE: u8 = 0x1b;
/// BIP-373 `PSBT_IN_MUSIG2_PARTIAL_SIG`.
pub const PSBT_IN_MUSIG2_PARTIAL_SIG: u8 = 0x1c;

/// Why a PSBT cannot be signed or finalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsbtError {
    /// Not a PSBT.
    #[error("not a valid PSBT: {0}")]
    Parse(String),
    /// Too large.
    #[error("PSBT of {0} bytes exceeds the limit of {MAX_PSBT_LEN} bytes")]
    TooLarge(usize),
    /// Nothing to sign.
    #[error("the PSBT has no inputs")]
    NoInputs,
    /// An input lacks the output it spends.
    #[error(
        "input {0} has no witness_utxo (nor non_witness_utxo): the spent output is needed to sign"
    )]
    MissingUtxo(usize),
    /// An input is not a key-path spend of the aggregate key.
    #[error("input {input} spends {script}, not the session's taproot output key {expected}")]
    NotOurOutput {
        /// Input index.
        input: usize,
        /// The spent script, hex.
        script: String,
        /// Expected output key, hex.
        expected: String,
    },
    /// The input names another internal key.
    #[error("input {0} has a tap_internal_key other than the session's aggregate key")]
    InternalKeyMismatch(usize),
    /// An input asks for a sighash type taproot does not know.
    #[error("input {0} has a sighash type that is not valid for taproot")]
    BadSighashType(usize),
    /// The signature hash could not be computed.
    #[error("cannot compute the signature hash of input {input}: {reason}")]
    Sighash {
        /// Input index.
        input: usize,
        /// Why.
        reason: String,
    },
    /// Signatures do not match the inputs.
    #[error("expected {expected} signatures, got {got}")]
    SignatureCount {
        /// Inputs.
        expected: usize,
        /// Signatures given.
        got: usize,
    },
    /// The transaction could not be extracted.
    #[error("cannot finalize the transaction: {0}")]
    Finalize(String),
    /// An amount (or a sum of them) larger than all bitcoin that can exist.
    #[error(
        "{what} is {sats} sat, more than the 21 000 000 BTC that can exist: \
         the PSBT is invalid; ask its creator for a corrected one"
    )]
    AmountOutOfRange {
        /// Which amount: "input 3", "output 0", "the inputs together", ...
        what: String,
        /// The claimed amount in satoshis (saturated for sums).
        sats: u64,
    },
    /// The outputs pay more than the inputs spend.
    #[error(
        "the outputs pay {outputs} sat but the inputs spend only {inputs} sat: \
         the PSBT is invalid; ask its creator for a corrected one"
    )]
    OutputsExceedInputs {
        /// Sum of the inputs, in satoshis.
        inputs: u64,
        /// Sum of the outputs, in satoshis.
        outputs: u64,
    },
}

/// What a PSBT spends and pays, as shown to a signer before joining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PsbtSummary {
    /// Transaction id of the unsigned transaction.
    pub txid: String,
    /// Number of inputs (one signature each).
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub inputs: usize,
    /// Total value spent, in satoshis.
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub input_value_sat: u64,
    /// The outputs.
    pub outputs: Vec<OutputSummary>,
    /// Fee, in satoshis.
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub fee_sat: u64,
}

/// One output of a PSBT's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OutputSummary {
    /// Value in satoshis.
    #[cfg_attr(feature = "specta", specta(type = f64))]
    pub value_sat: u64,
    /// The output script, hex.
    pub script_pubkey: String,
}

/// The BIP-373 MuSig2 fields a participant can fill in.
#[derive(Debug, Clone)]
pub struct MusigFields {
    /// The plain (untweaked) aggregate key, compressed.
    pub aggregate_key: [u8; 33],
    /// Participant keys in KeySort order.
    pub participants: Vec<[u8; 33]>,
    /// Public nonces by participant, one per input.
    pub pub_nonces: BTreeMap<[u8; 33], Vec<[u8; 66]>>,
    /// Partial signatures by participant, one per input.
    pub partial_sigs: BTreeMap<[u8; 33], Vec<[u8; 32]>>,
}

/// A signed PSBT and its finalized transaction.
#[derive(Debug, Clone)]
pub struct SignedPsbt {
    /// The PSBT with `tap_key_sig` (and BIP-373 fields) on every input.
    pub psbt: Psbt,
    /// The finalized, extracted transaction.
    pub transaction: Transaction,
}

impl SignedPsbt {
    /// The PSBT in base64, as wallets exchange it.
    pub fn psbt_base64(&self) -> String {
        self.psbt.to_string()
    }

    /// The transaction in consensus encoding, hex (ready to broadcast).
    pub fn transaction_hex(&self) -> String {
        bitcoin::consensus::encode::serialize_hex(&self.transaction)
    }
}

/// Parses a PSBT from its binary form.
pub fn parse(bytes: &[u8]) -> Result<Psbt, PsbtError> {
    if bytes.len() > MAX_PSBT_LEN {
        return Err(PsbtError::TooLarge(bytes.len()));
    }
    Psbt::deserialize(bytes).map_err(|e| PsbtError::Parse(e.to_string()))
}

/// Parses a PSBT file's contents: binary, or base64 text.
pub fn parse_file(contents: &[u8]) -> Result<Psbt, PsbtError> {
    if contents.starts_with(b"psbt\xff") {
        return parse(contents);
    }
    let text = std::str::from_utf8(contents)
        .map_err(|_| PsbtError::Parse("neither binary nor base64".into()))?;
    text.trim()
        .parse::<Psbt>()
        .map_err(|e| PsbtError::Parse(e.to_string()))
}

fn prevouts(psbt: &Psbt) -> Result<Vec<TxOut>, PsbtError> {
    if psbt.inputs.is_empty() {
        return Err(PsbtError::NoInputs);
    }
    psbt.inputs
        .iter()
        .zip(&psbt.unsigned_tx.input)
        .enumerate()
        .map(|(i, (input, txin))| {
            if let Some(utxo) = &input.witness_utxo {
                return Ok(utxo.clone());
            }
            input
                .non_witness_utxo
                .as_ref()
                .filter(|tx| tx.compute_txid() == txin.previous_output.txid)
                .and_then(|tx| tx.output.get(txin.previous_output.vout as usize))
                .cloned()
                .ok_or(PsbtError::MissingUtxo(i))
        })
        .collect()
}

fn sighash_type(psbt: &Psbt, input: usize) -> Result<TapSighashType, PsbtError> {
    match psbt.inputs[input].sighash_type {
        None => Ok(TapSighashType::Default),
        Some(t) => t
            .taproot_hash_ty()
            .map_err(|_| PsbtError::BadSighashType(input)),
    }
}

/// Checks that every input is a key-path spend of `output_key` (the tweaked
/// aggregate key) whose internal key, if named, is `internal_key`, and
/// returns the BIP-341 signature hash of each input.
pub fn sighashes(
    psbt: &Psbt,
    internal_key: &[u8; 32],
    output_key: &[u8; 32],
) -> Result<Vec<[u8; 32]>, PsbtError> {
    let prevouts = prevouts(psbt)?;
    let mut expected_script = vec![0x51, 0x20];
    expected_script.extend_from_slice(output_key);
    let mut cache = SighashCache::new(&psbt.unsigned_tx);
    let mut hashes = Vec::with_capacity(prevouts.len());
    for (i, prevout) in prevouts.iter().enumerate() {
        if prevout.script_pubkey.as_bytes() != expected_script.as_slice() {
            return Err(PsbtError::NotOurOutput {
                input: i,
                script: hex::encode(prevout.script_pubkey.as_bytes()),
                expected: hex::encode(output_key),
            });
        }
        if let Some(named) = psbt.inputs[i].tap_internal_key {
            if named.serialize() != *internal_key {
                return Err(PsbtError::InternalKeyMismatch(i));
            }
        }
        let hash = cache
            .taproot_key_spend_signature_hash(i, &Prevouts::All(&prevouts), sighash_type(psbt, i)?)
            .map_err(|e| PsbtError::Sighash {
                input: i,
                reason: e.to_string(),
            })?;
        hashes.push(hash.to_byte_array());
    }
    Ok(hashes)
}

/// What the PSBT spends and pays. Every amount comes from whoever made the
/// PSBT (a remote coordinator too), so each one and their sums are checked
/// against the 21 M BTC supply before anything adds them up.
pub fn summary(psbt: &Psbt) -> Result<PsbtSummary, PsbtError> {
    let input_values: Vec<u64> = prevouts(psbt)?.iter().map(|o| o.value.to_sat()).collect();
    let input_value_sat = checked_total("input", &input_values, "the inputs together")?;
    let outputs: Vec<OutputSummary> = psbt
        .unsigned_tx
        .output
        .iter()
        .map(|o| OutputSummary {
            value_sat: o.value.to_sat(),
            script_pubkey: hex::encode(o.script_pubkey.as_bytes()),
        })
        .collect();
    let output_values: Vec<u64> = outputs.iter().map(|o| o.value_sat).collect();
    let output_value = checked_total("output", &output_values, "the outputs together")?;
    let fee_sat =
        input_value_sat
            .checked_sub(output_value)
            .ok_or(PsbtError::OutputsExceedInputs {
                inputs: input_value_sat,
                outputs: output_value,
            })?;
    Ok(PsbtSummary {
        txid: psbt.unsigned_tx.compute_txid().to_string(),
        inputs: psbt.inputs.len(),
        input_value_sat,
        fee_sat,
        outputs,
    })
}

/// The sum of `values`, each and the total within the supply.
fn checked_total(each: &str, values: &[u64], together: &str) -> Result<u64, PsbtError> {
    let max = Amount::MAX_MONEY.to_sat();
    let mut total: u64 = 0;
    for (index, &sats) in values.iter().enumerate() {
        if sats > max {
            return Err(PsbtError::AmountOutOfRange {
                what: format!("{each} {index}"),
                sats,
            });
        }
        // Each term is below 2^51, so the sum of two cannot overflow u64.
        total += sats;
        if total > max {
            return Err(PsbtError::AmountOutOfRange {
                what: together.into(),
                sats: total,
            });
        }
    }
    Ok(total)
}

fn musig_key(participant: &[u8; 33], aggregate: &[u8; 33]) -> Vec<u8> {
    let mut key = participant.to_vec();
    key.extend_from_slice(aggregate);
    key
}

/// Puts one BIP-340 signature per input in place (`tap_key_sig`, with the
/// input's sighash type), fills in `tap_internal_key` and the BIP-373 MuSig2
/// fields, and finalizes a copy into the spending transaction.
pub fn apply_signatures(
    psbt: &Psbt,
    signatures: &[[u8; 64]],
    internal_key: &[u8; 32],
    musig: &MusigFields,
) -> Result<SignedPsbt, PsbtError> {
    if signatures.len() != psbt.inputs.len() {
        return Err(PsbtError::SignatureCount {
            expected: psbt.inputs.len(),
            got: signatures.len(),
        });
    }
    let internal = XOnlyPublicKey::from_slice(internal_key)
        .map_err(|e| PsbtError::Finalize(format!("internal key: {e}")))?;
    let mut signed = psbt.clone();
    let mut finalized = psbt.clone();
    for (i, sig) in signatures.iter().enumerate() {
        let signature = taproot::Signature {
            signature: bitcoin::secp256k1::schnorr::Signature::from_slice(sig)
                .map_err(|e| PsbtError::Finalize(format!("signature {i}: {e}")))?,
            sighash_type: sighash_type(psbt, i)?,
        };
        let input = &mut signed.inputs[i];
        input.tap_key_sig = Some(signature);
        input.tap_internal_key = Some(internal);
        input.unknown.insert(
            raw::Key {
                type_value: PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS,
                key: musig.aggregate_key.to_vec(),
            },
            musig.participants.concat(),
        );
        for (participant, nonces) in &musig.pub_nonces {
            if let Some(nonce) = nonces.get(i) {
                input.unknown.insert(
                    raw::Key {
                        type_value: PSBT_IN_MUSIG2_PUB_NONCE,
                        key: musig_key(participant, &musig.aggregate_key),
                    },
                    nonce.to_vec(),
                );
            }
        }
        for (participant, partials) in &musig.partial_sigs {
            if let Some(partial) = partials.get(i) {
                input.unknown.insert(
                    raw::Key {
                        type_value: PSBT_IN_MUSIG2_PARTIAL_SIG,
                        key: musig_key(participant, &musig.aggregate_key),
                    },
                    partial.to_vec(),
                );
            }
        }
        // BIP-174 finalizer: the final witness, and only the UTXO besides.
        let done = &mut finalized.inputs[i];
        let utxo = (done.witness_utxo.take(), done.non_witness_utxo.take());
        *done = Default::default();
        (done.witness_utxo, done.non_witness_utxo) = utxo;
        done.final_script_witness = Some(Witness::from_slice(&[signature.to_vec()]));
    }
    let transaction = finalized
        .extract_tx()
        .map_err(|e| PsbtError::Finalize(e.to_string()))?;
    Ok(SignedPsbt {
        psbt: signed,
        transaction,
    })
}

#[cfg(test)]
mod tests {
    use bitcoin::{
        absolute::LockTime, hashes::Hash, transaction::Version, OutPoint, ScriptBuf, Sequence,
        TxIn, Txid,
    };

    use super::*;

    fn psbt_spending(inputs: &[u64], outputs: &[u64]) -> Psbt {
        let unsigned = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: (0..inputs.len())
                .map(|i| TxIn {
                    previous_output: OutPoint {
                        txid: Txid::from_byte_array([i as u8 + 1; 32]),
                        vout: 0,
                    },
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs
                .iter()
                .map(|&sats| TxOut {
                    value: Amount::from_sat(sats),
                    script_pubkey: ScriptBuf::new_op_return([0u8; 4]),
                })
                .collect(),
        };
        let mut psbt = Psbt::from_unsigned_tx(unsigned).unwrap();
        for (input, &sats) in psbt.inputs.iter_mut().zip(inputs) {
            input.witness_utxo = Some(TxOut {
                value: Amount::from_sat(sats),
                script_pubkey: ScriptBuf::new_op_return([1u8; 4]),
            });
        }
        psbt
    }

    #[test]
    fn a_summary_adds_up_inputs_outputs_and_fee() {
        let summary = summary(&psbt_spending(&[50_000, 30_000], &[79_000])).unwrap();
        assert_eq!(summary.input_value_sat, 80_000);
        assert_eq!(summary.fee_sat, 1_000);
        assert_eq!(summary.outputs.len(), 1);
    }

    #[test]
    fn amounts_past_the_supply_are_refused_before_they_are_added() {
        // Two inputs whose sum overflows u64: adding them would panic in a
        // debug build and wrap in a release build.
        let half = u64::MAX / 2 + 1;
        let err = summary(&psbt_spending(&[half, half], &[1])).unwrap_err();
        assert_eq!(
            err,
            PsbtError::AmountOutOfRange {
                what: "input 0".into(),
                sats: half
            }
        );
        assert!(err
            .to_string()
            .ends_with("ask its creator for a corrected one"));

        // Each input is possible, their sum is not.
        let max = Amount::MAX_MONEY.to_sat();
        let err = summary(&psbt_spending(&[max, 1], &[1])).unwrap_err();
        assert!(
            matches!(&err, PsbtError::AmountOutOfRange { what, .. } if what == "the inputs together"),
            "{err}"
        );

        let err = summary(&psbt_spending(&[1_000], &[max + 1])).unwrap_err();
        assert!(
            matches!(&err, PsbtError::AmountOutOfRange { what, .. } if what == "output 0"),
            "{err}"
        );
    }

    #[test]
    fn outputs_paying_more_than_the_inputs_are_refused() {
        let err = summary(&psbt_spending(&[1_000], &[2_000])).unwrap_err();
        assert_eq!(
            err,
            PsbtError::OutputsExceedInputs {
                inputs: 1_000,
                outputs: 2_000
            }
        );
    }
}
