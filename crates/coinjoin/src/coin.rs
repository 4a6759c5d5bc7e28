//! Coins as the protocol names them: an outpoint on the wire, and the
//! keys that spend and receive them (P2TR key path, BIP-86 tweak).

use std::{fmt, str::FromStr};

use bitcoin::{
    hashes::Hash,
    key::{Keypair, Secp256k1, TapTweak, UntweakedPublicKey},
    secp256k1::{SecretKey, XOnlyPublicKey},
    OutPoint, ScriptBuf, Txid,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// An outpoint: a transaction id (internal byte order) and an output index.
/// Exclusions name outpoints, so a disruptor cannot shed them by taking a
/// new PeerId.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Outpoint {
    /// The transaction id, in internal byte order.
    pub txid: [u8; 32],
    /// The output index.
    pub vout: u32,
}

impl From<OutPoint> for Outpoint {
    fn from(o: OutPoint) -> Self {
        Self {
            txid: o.txid.to_byte_array(),
            vout: o.vout,
        }
    }
}

impl From<Outpoint> for OutPoint {
    fn from(o: Outpoint) -> Self {
        OutPoint {
            txid: Txid::from_byte_array(o.txid),
            vout: o.vout,
        }
    }
}

impl fmt::Display for Outpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&OutPoint::from(*self), f)
    }
}

impl fmt::Debug for Outpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outpoint({self})")
    }
}

/// Not `TXID:VOUT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid outpoint {0:?}: expected TXID:VOUT (64 hex characters, a colon, a number)")]
pub struct InvalidOutpoint(pub String);

impl FromStr for Outpoint {
    type Err = InvalidOutpoint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutPoint::from_str(s.trim())
            .map(Outpoint::from)
            .map_err(|_| InvalidOutpoint(s.to_string()))
    }
}

/// The secret of a P2TR key-path coin: the BIP-86 internal key.
pub struct CoinKey {
    keypair: Keypair,
    tweaked: Keypair,
}

impl fmt::Debug for CoinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CoinKey({})", hex::encode(self.output_key()))
    }
}

impl Drop for CoinKey {
    fn drop(&mut self) {
        // Best effort: secp256k1 offers no guaranteed erasure.
        self.keypair.non_secure_erase();
        self.tweaked.non_secure_erase();
    }
}

/// Not a valid secp256k1 secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret key: not in 1..n-1 of secp256k1")]
pub struct InvalidSecretKey;

impl CoinKey {
    /// A second handle on the same key, for the in-memory network's
    /// re-formed sessions (the wallet derives its keys afresh instead).
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            keypair: self.keypair,
            tweaked: self.tweaked,
        }
    }

    /// From the 32-byte internal secret key.
    pub fn from_secret_bytes(bytes: &Zeroizing<[u8; 32]>) -> Result<Self, InvalidSecretKey> {
        let secp = Secp256k1::new();
        let secret = SecretKey::from_slice(bytes.as_slice()).map_err(|_| InvalidSecretKey)?;
        let keypair = Keypair::from_secret_key(&secp, &secret);
        let tweaked = keypair.tap_tweak(&secp, None).to_keypair();
        Ok(Self { keypair, tweaked })
    }

    /// The internal (untweaked) x-only key.
    pub fn internal_key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    /// The BIP-86 output key: what the script holds and signatures verify
    /// under.
    pub fn output_key(&self) -> [u8; 32] {
        self.tweaked.x_only_public_key().0.serialize()
    }

    /// The P2TR script paying to this key.
    pub fn script_pubkey(&self) -> ScriptBuf {
        let secp = Secp256k1::verification_only();
        ScriptBuf::new_p2tr(&secp, self.internal_key() as UntweakedPublicKey, None)
    }

    /// The tweaked key pair that signs key-path spends.
    pub(crate) fn signing_keypair(&self) -> &Keypair {
        &self.tweaked
    }
}

/// The fresh key of one mixed output: derived from the wallet's output
/// seed, the session, the run and the output's index, so a key is never
/// reused across runs and the wallet can re-derive it to spend.
pub fn fresh_output_key(
    output_seed: &Zeroizing<[u8; 32]>,
    session_id: &[u8; 32],
    run: u32,
    index: u32,
) -> CoinKey {
    let secret = fresh_output_secret(output_seed, session_id, run, index);
    CoinKey::from_secret_bytes(&secret).expect("fresh_output_secret gives valid keys")
}

/// The secret key bytes of [`fresh_output_key`] (what the wallet spends
/// the output with).
pub fn fresh_output_secret(
    output_seed: &Zeroizing<[u8; 32]>,
    session_id: &[u8; 32],
    run: u32,
    index: u32,
) -> Zeroizing<[u8; 32]> {
    let mut counter = 0u32;
    loop {
        let mut h = blake3::Hasher::new_derive_key("conclave coinjoin output key v1");
        h.update(output_seed.as_slice());
        h.update(session_id);
        h.update(&run.to_le_bytes());
        h.update(&index.to_le_bytes());
        h.update(&counter.to_le_bytes());
        let bytes = Zeroizing::new(*h.finalize().as_bytes());
        // Fails with probability 2^-128 per attempt.
        if CoinKey::from_secret_bytes(&bytes).is_ok() {
            return bytes;
        }
        counter += 1;
    }
}

/// Whether 32 bytes are a valid x-only public key (a point on secp256k1).
pub fn is_valid_output_key(bytes: &[u8; 32]) -> bool {
    XOnlyPublicKey::from_slice(bytes).is_ok()
}

/// The P2TR script holding the output key `key` (already tweaked).
pub fn p2tr_script(key: &[u8; 32]) -> Option<ScriptBuf> {
    let xonly = XOnlyPublicKey::from_slice(key).ok()?;
    Some(ScriptBuf::new_p2tr_tweaked(
        bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(xonly),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outpoints_roundtrip_through_text_and_bitcoin() {
        let text = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b:7";
        let o: Outpoint = text.parse().unwrap();
        assert_eq!(o.vout, 7);
        assert_eq!(o.to_string(), text);
        assert_eq!(Outpoint::from(OutPoint::from(o)), o);
        assert!("nonsense".parse::<Outpoint>().is_err());
    }

    #[test]
    fn output_keys_are_fresh_per_run_and_index_and_match_their_script() {
        let seed = Zeroizing::new([3u8; 32]);
        let a = fresh_output_key(&seed, &[1; 32], 0, 0);
        assert_eq!(
            a.output_key(),
            fresh_output_key(&seed, &[1; 32], 0, 0).output_key()
        );
        assert_ne!(
            a.output_key(),
            fresh_output_key(&seed, &[1; 32], 1, 0).output_key()
        );
        assert_ne!(
            a.output_key(),
            fresh_output_key(&seed, &[1; 32], 0, 1).output_key()
        );
        assert_eq!(p2tr_script(&a.output_key()).unwrap(), a.script_pubkey());
        assert!(is_valid_output_key(&a.output_key()));
        // About half of all x are not the x coordinate of a point.
        let off_curve = (1u8..).map(|x| {
            let mut k = [0u8; 32];
            k[31] = x;
            k
        });
        let off_curve = off_curve.clone().find(|k| !is_valid_output_key(k)).unwrap();
        assert!(p2tr_script(&off_curve).is_none());
    }
}
