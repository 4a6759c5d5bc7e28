//! BIP-322 "simple" signed messages for P2TR key-path addresses: the
//! ownership proof a pair request carries for each input.
//!
//! The proof is a signature by the coin's key over a virtual transaction
//! `to_sign` that spends a virtual `to_spend`, whose scriptSig commits to
//! the tagged hash of the message and whose output is the coin's script.
//! The simple encoding is the witness stack, consensus-serialised.

use bitcoin::{
    absolute::LockTime,
    consensus::{deserialize, encode::serialize},
    hashes::{sha256, Hash, HashEngine},
    key::Secp256k1,
    opcodes::{all::OP_RETURN, OP_0},
    script::{Builder, PushBytesBuf},
    secp256k1::{schnorr, Message, XOnlyPublicKey},
    sighash::{Prevouts, SighashCache},
    transaction::Version,
    Amount, OutPoint, Script, ScriptBuf, Sequence, TapSighashType, Transaction, TxIn, TxOut, Txid,
    Witness,
};

use crate::coin::CoinKey;

/// Longest proof accepted (a 65-byte signature and its framing, with room).
pub const MAX_PROOF_LEN: usize = 128;

/// Why a proof does not prove ownership.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bip322Error {
    /// Only P2TR key-path addresses are supported.
    #[error("only P2TR addresses can prove ownership here")]
    NotTaproot,
    /// Not a serialised witness with one signature.
    #[error("malformed BIP-322 proof: {0}")]
    Malformed(&'static str),
    /// The signature does not verify.
    #[error("BIP-322 signature does not verify for this address and message")]
    Invalid,
}

/// BIP-322's tagged message hash.
pub fn message_hash(message: &[u8]) -> [u8; 32] {
    let tag = sha256::Hash::hash(b"BIP0322-signed-message");
    let mut engine = sha256::Hash::engine();
    engine.input(tag.as_ref());
    engine.input(tag.as_ref());
    engine.input(message);
    sha256::Hash::from_engine(engine).to_byte_array()
}

fn to_spend(script: &Script, message: &[u8]) -> Transaction {
    let hash = PushBytesBuf::try_from(message_hash(message).to_vec()).expect("32 bytes push");
    Transaction {
        version: Version(0),
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::all_zeros(),
                vout: 0xffff_ffff,
            },
            script_sig: Builder::new()
                .push_opcode(OP_0)
                .push_slice(hash)
                .into_script(),
            sequence: Sequence::ZERO,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: script.to_owned(),
        }],
    }
}

fn to_sign(to_spend: &Transaction, witness: Witness) -> Transaction {
    Transaction {
        version: Version(0),
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: to_spend.compute_txid(),
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ZERO,
            witness,
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: Builder::new().push_opcode(OP_RETURN).into_script(),
        }],
    }
}

fn sighash(to_spend: &Transaction, to_sign: &Transaction, kind: TapSighashType) -> [u8; 32] {
    SighashCache::new(to_sign)
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&to_spend.output), kind)
        .expect("one input, one prevout")
        .to_byte_array()
}

/// Signs `message` for the P2TR coin of `key` (SIGHASH_DEFAULT); returns
/// the simple-encoded proof.
pub fn sign_simple(key: &CoinKey, message: &[u8], aux: &[u8; 32]) -> Vec<u8> {
    let spend = to_spend(&key.script_pubkey(), message);
    let unsigned = to_sign(&spend, Witness::new());
    let digest = sighash(&spend, &unsigned, TapSighashType::Default);
    let sig = Secp256k1::new().sign_schnorr_with_aux_rand(
        &Message::from_digest(digest),
        key.signing_keypair(),
        aux,
    );
    serialize(&Witness::from_slice(&[sig.serialize().as_slice()]))
}

/// Verifies a simple-encoded proof that the holder of `script` (P2TR)
/// signed `message`. Accepts SIGHASH_DEFAULT and SIGHASH_ALL, as BIP-322 does.
pub fn verify_simple(script: &Script, message: &[u8], proof: &[u8]) -> Result<(), Bip322Error> {
    if !script.is_p2tr() {
        return Err(Bip322Error::NotTaproot);
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(Bip322Error::Malformed("too long"));
    }
    let witness: Witness =
        deserialize(proof).map_err(|_| Bip322Error::Malformed("not a witness stack"))?;
    if witness.len() != 1 {
        return Err(Bip322Error::Malformed(
            "a key-path proof has exactly one element",
        ));
    }
    let element = witness.nth(0).expect("one element");
    let (sig, kind) = match element.len() {
        64 => (element, TapSighashType::Default),
        65 if element[64] == 0x01 => (&element[..64], TapSighashType::All),
        _ => {
            return Err(Bip322Error::Malformed(
                "not a 64- or 65-byte Schnorr signature",
            ))
        }
    };
    let key =
        XOnlyPublicKey::from_slice(&script.as_bytes()[2..34]).map_err(|_| Bip322Error::Invalid)?;
    let sig = schnorr::Signature::from_slice(sig).map_err(|_| Bip322Error::Invalid)?;
    let spend = to_spend(script, message);
    let signed = to_sign(&spend, witness.clone());
    let digest = sighash(&spend, &signed, kind);
    Secp256k1::verification_only()
        .verify_schnorr(&sig, &Message::from_digest(digest), &key)
        .map_err(|_| Bip322Error::Invalid)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use zeroize::Zeroizing;

    use super::*;

    #[test]
    fn message_hashes_match_bip322_vectors() {
        assert_eq!(
            hex::encode(message_hash(b"")),
            "c90c269c4f8fcbe6880f72a721ddfbf1914268a794cbb21cfafee13770ae19f1"
        );
        assert_eq!(
            hex::encode(message_hash(b"Hello World")),
            "f0eb03b1a75ac6d9847f55c624a99169b5dccba2a31f5b23bea77ba270de0a7a"
        );
    }

    #[test]
    fn the_bip322_taproot_vector_verifies() {
        let address = bitcoin::Address::from_str(
            "bc1ppv609nr0vr25u07u95waq5lucwfm6tde4nydujnu8npg4q75mr5sxq8lt3",
        )
        .unwrap()
        .assume_checked();
        let proof = hex::decode("0141ddebd3eb25012ffa82937d9f25f9644e047bb2f472ab6c5089bbb53588ada2884cb5bcc53911f32d8dcf9548733b694d120db6a4e485194559e8d8fe668d269f01").unwrap();
        verify_simple(&address.script_pubkey(), b"Hello World", &proof).unwrap();
        assert_eq!(
            verify_simple(&address.script_pubkey(), b"Hello World!", &proof),
            Err(Bip322Error::Invalid)
        );
    }

    #[test]
    fn our_proofs_verify_and_bind_the_message_and_the_script() {
        let key = CoinKey::from_secret_bytes(&Zeroizing::new([7; 32])).unwrap();
        let other = CoinKey::from_secret_bytes(&Zeroizing::new([8; 32])).unwrap();
        let proof = sign_simple(&key, b"pair request", &[0; 32]);
        verify_simple(&key.script_pubkey(), b"pair request", &proof).unwrap();
        assert_eq!(
            verify_simple(&key.script_pubkey(), b"other", &proof),
            Err(Bip322Error::Invalid)
        );
        assert_eq!(
            verify_simple(&other.script_pubkey(), b"pair request", &proof),
            Err(Bip322Error::Invalid)
        );
        assert!(matches!(
            verify_simple(&key.script_pubkey(), b"pair request", &proof[1..]),
            Err(Bip322Error::Malformed(_))
        ));
        let p2wpkh = ScriptBuf::from_hex("0014751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
        assert_eq!(
            verify_simple(&p2wpkh, b"m", &proof),
            Err(Bip322Error::NotTaproot)
        );
    }
}
