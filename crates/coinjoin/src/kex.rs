//! Per-run key exchange: everything a peer uses in one run comes from one
//! 32-byte seed, so that revealing the seed in blame lets every other peer
//! replay that peer's run exactly.
//!
//! From the seed (and the session id and run number, for domain
//! separation) a peer derives an X25519 secret, an ML-KEM-768 decapsulation
//! key, the randomness of each ML-KEM encapsulation it makes, and its
//! slot-reservation messages. It publishes the two public keys and a
//! commitment to the seed and its output keys; in the ciphertext phase it
//! encapsulates to every other peer. Two peers' pad key is BLAKE3 over the
//! X25519 shared secret AND both ML-KEM shared secrets (one encapsulated
//! by each side) and the transcript, so recorded traffic stays private
//! unless both X25519 and ML-KEM are broken, and neither peer alone
//! chooses the key.

use std::fmt;

use ml_kem::{kem::Decapsulate, DecapsulationKey, EncapsulationKey, KeyExport, MlKem768, B32};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::field::Fe;

/// Bytes of a run seed.
pub const SEED_LEN: usize = 32;
/// Bytes of an X25519 public key.
pub const X25519_PUBLIC_LEN: usize = 32;
/// Bytes of an ML-KEM-768 encapsulation key.
pub const ML_KEM_PUBLIC_LEN: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext.
pub const ML_KEM_CIPHERTEXT_LEN: usize = 1088;

const X25519_CONTEXT: &str = "conclave coinjoin x25519 secret v1";
const ML_KEM_CONTEXT: &str = "conclave coinjoin ml-kem seed v1";
const ENCAPSULATION_CONTEXT: &str = "conclave coinjoin ml-kem encapsulation v1";
const SLOT_MESSAGE_CONTEXT: &str = "conclave coinjoin slot messages v1";
const COMMITMENT_CONTEXT: &str = "conclave coinjoin secrets commitment v1";
const PAD_KEY_CONTEXT: &str = "conclave coinjoin pairwise pad key v1";

/// Why a public key or ciphertext is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KexError {
    /// The X25519 key is not canonical or has small order (it would make
    /// the shared secret known to everyone).
    #[error("invalid X25519 public key: {0}")]
    X25519(&'static str),
    /// The ML-KEM key has the wrong length or fails the FIPS 203 check.
    #[error("invalid ML-KEM-768 encapsulation key: {0}")]
    MlKem(&'static str),
    /// A ciphertext of the wrong length.
    #[error("ML-KEM-768 ciphertext of {0} bytes, expected {ML_KEM_CIPHERTEXT_LEN}")]
    Ciphertext(usize),
}

/// Which run a derivation belongs to: the session id and run number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunContext {
    /// The session id.
    pub session_id: [u8; 32],
    /// The run number within the session (0, 1, ... after exclusions).
    pub run: u32,
}

impl RunContext {
    fn hasher(&self, context: &str) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(&self.session_id);
        h.update(&self.run.to_le_bytes());
        h
    }
}

/// The secret a peer derives all of one run from. Revealed only in blame.
#[derive(Clone)]
pub struct RunSeed(Zeroizing<[u8; SEED_LEN]>);

impl RunSeed {
    /// From its bytes.
    pub fn from_bytes(bytes: [u8; SEED_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes (to reveal in blame, never to log).
    pub fn expose(&self) -> &[u8; SEED_LEN] {
        &self.0
    }

    fn derive(&self, context: &str, run: &RunContext, extra: &[u8]) -> blake3::OutputReader {
        let mut h = run.hasher(context);
        h.update(self.0.as_slice());
        h.update(extra);
        h.finalize_xof()
    }

    /// The commitment published in the key exchange: binds the seed and
    /// the output keys this peer will put into the DC-net.
    pub fn commitment(&self, run: &RunContext, output_keys: &[[u8; 32]]) -> [u8; 32] {
        let mut h = run.hasher(COMMITMENT_CONTEXT);
        h.update(self.0.as_slice());
        h.update(&(output_keys.len() as u64).to_le_bytes());
        for key in output_keys {
            h.update(key);
        }
        *h.finalize().as_bytes()
    }

    /// This peer's `count` slot-reservation messages for the run.
    pub fn slot_messages(&self, run: &RunContext, count: usize) -> Vec<Fe> {
        let mut xof = self.derive(SLOT_MESSAGE_CONTEXT, run, &[]);
        (0..count)
            .map(|_| {
                let mut bytes = [0u8; 16];
                xof.fill(&mut bytes);
                Fe::from_uniform_bytes(&bytes)
            })
            .collect()
    }
}

impl fmt::Debug for RunSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunSeed(<secret>)")
    }
}

/// A peer's public keys for one run, as published in its key exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeys {
    /// X25519 public key.
    pub x25519: [u8; X25519_PUBLIC_LEN],
    /// ML-KEM-768 encapsulation key.
    #[serde(with = "serde_bytes_vec")]
    pub ml_kem: Vec<u8>,
}

/// Another peer's public keys, checked.
#[derive(Clone)]
pub struct ValidPublicKeys {
    x25519: x25519_dalek::PublicKey,
    ml_kem: EncapsulationKey<MlKem768>,
    ml_kem_hash: [u8; 32],
}

impl PublicKeys {
    /// Checks both keys: the X25519 key canonical and not of small order,
    /// the ML-KEM key of the right length and passing its modulus check.
    pub fn validate(&self) -> Result<ValidPublicKeys, KexError> {
        // Canonical: the integer is below 2^255 − 19 (top bit clear).
        let mut big_endian = self.x25519;
        big_endian.reverse();
        let p25519: [u8; 32] = {
            let mut p = [0xffu8; 32];
            p[0] = 0x7f;
            p[31] = 0xed;
            p
        };
        if big_endian >= p25519 {
            return Err(KexError::X25519("not a canonical encoding"));
        }
        let x25519 = x25519_dalek::PublicKey::from(self.x25519);
        // A clamped scalar times a point of small order is the identity,
        // whatever the scalar: such a key gives an all-zero shared secret.
        let probe = x25519_dalek::StaticSecret::from([0x42u8; 32]);
        if !probe.diffie_hellman(&x25519).was_contributory() {
            return Err(KexError::X25519("a point of small order"));
        }
        let bytes: &ml_kem::Key<EncapsulationKey<MlKem768>> = self
            .ml_kem
            .as_slice()
            .try_into()
            .map_err(|_| KexError::MlKem("wrong length"))?;
        let ml_kem = EncapsulationKey::<MlKem768>::new(bytes)
            .map_err(|_| KexError::MlKem("coefficients out of range"))?;
        Ok(ValidPublicKeys {
            x25519,
            ml_kem,
            ml_kem_hash: *blake3::hash(&self.ml_kem).as_bytes(),
        })
    }
}

/// A peer's own key-exchange secrets for one run, all derived from its seed.
pub struct RunKeys {
    seed: RunSeed,
    run: RunContext,
    x25519: x25519_dalek::StaticSecret,
    ml_kem: DecapsulationKey<MlKem768>,
    public: PublicKeys,
}

impl fmt::Debug for RunKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunKeys")
            .field("run", &self.run.run)
            .field("x25519_public", &hex::encode(self.public.x25519))
            .finish_non_exhaustive()
    }
}

/// One encapsulation to another peer: the ciphertext and its shared secret.
pub struct Encapsulated {
    /// What is sent.
    pub ciphertext: Vec<u8>,
    /// What both sides then know.
    pub shared: Zeroizing<[u8; 32]>,
}

impl RunKeys {
    /// Derives the run's keys from `seed`.
    pub fn derive(seed: &RunSeed, run: &RunContext) -> Self {
        let mut x = Zeroizing::new([0u8; 32]);
        seed.derive(X25519_CONTEXT, run, &[]).fill(x.as_mut_slice());
        let x25519 = x25519_dalek::StaticSecret::from(*x);
        let mut kem_seed = Zeroizing::new([0u8; 64]);
        seed.derive(ML_KEM_CONTEXT, run, &[])
            .fill(kem_seed.as_mut_slice());
        let ml_kem = DecapsulationKey::<MlKem768>::from_seed((*kem_seed).into());
        let public = PublicKeys {
            x25519: x25519_dalek::PublicKey::from(&x25519).to_bytes(),
            ml_kem: ml_kem.encapsulation_key().to_bytes().to_vec(),
        };
        Self {
            seed: seed.clone(),
            run: *run,
            x25519,
            ml_kem,
            public,
        }
    }

    /// The public keys to publish.
    pub fn public(&self) -> &PublicKeys {
        &self.public
    }

    /// Encapsulates to the peer at `recipient` (its index in the run) with
    /// randomness derived from the seed, so the ciphertext can be replayed.
    pub fn encapsulate(&self, recipient: u32, keys: &ValidPublicKeys) -> Encapsulated {
        let mut extra = recipient.to_le_bytes().to_vec();
        extra.extend_from_slice(&keys.ml_kem_hash);
        let mut m = Zeroizing::new([0u8; 32]);
        self.seed
            .derive(ENCAPSULATION_CONTEXT, &self.run, &extra)
            .fill(m.as_mut_slice());
        let m: B32 = (*m).into();
        // Deterministic encapsulation is what makes blame replay possible
        // (as in DiceMix: the randomness comes from the committed seed).
        let (ciphertext, shared) = keys.ml_kem.encapsulate_deterministic(&m);
        Encapsulated {
            ciphertext: ciphertext.to_vec(),
            shared: Zeroizing::new(shared.into()),
        }
    }

    /// Decapsulates a ciphertext addressed to us. ML-KEM rejects
    /// implicitly: a bad ciphertext yields a pseudorandom secret, not an
    /// error, and shows later as a failed slot reservation.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Zeroizing<[u8; 32]>, KexError> {
        let ct: &ml_kem::Ciphertext<MlKem768> = ciphertext
            .try_into()
            .map_err(|_| KexError::Ciphertext(ciphertext.len()))?;
        Ok(Zeroizing::new(self.ml_kem.decapsulate(ct).into()))
    }

    /// The X25519 shared secret with another peer.
    pub fn diffie_hellman(&self, keys: &ValidPublicKeys) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.x25519.diffie_hellman(&keys.x25519).to_bytes())
    }

    /// Our pad key with the peer at index `other`, we being `me`: our
    /// encapsulation to it (re-derived from the seed), its ciphertext to us
    /// decapsulated, and the X25519 secret. Both sides (and a replay from
    /// revealed seeds) compute the same key.
    pub fn pad_key_with(
        &self,
        me: u32,
        other: u32,
        their_public: &PublicKeys,
        their_keys: &ValidPublicKeys,
        their_ciphertext_to_us: &[u8],
    ) -> Result<PadKey, KexError> {
        let ours = self.encapsulate(other, their_keys);
        let theirs = self.decapsulate(their_ciphertext_to_us)?;
        let dh = self.diffie_hellman(their_keys);
        let (lo, hi) = (me.min(other), me.max(other));
        let secrets = if me < other {
            PairSecrets {
                diffie_hellman: &dh,
                lo_to_hi: &ours.shared,
                hi_to_lo: &theirs,
                ciphertext_lo_to_hi: &ours.ciphertext,
                ciphertext_hi_to_lo: their_ciphertext_to_us,
                x25519_lo: &self.public.x25519,
                x25519_hi: &their_public.x25519,
            }
        } else {
            PairSecrets {
                diffie_hellman: &dh,
                lo_to_hi: &theirs,
                hi_to_lo: &ours.shared,
                ciphertext_lo_to_hi: their_ciphertext_to_us,
                ciphertext_hi_to_lo: &ours.ciphertext,
                x25519_lo: &their_public.x25519,
                x25519_hi: &self.public.x25519,
            }
        };
        Ok(pad_key(&self.run, lo, hi, &secrets))
    }
}

/// The key two peers derive their DC-net pads from.
pub struct PadKey(Zeroizing<[u8; 32]>);

impl PadKey {
    /// The key bytes (for pad derivation).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for PadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PadKey(<secret>)")
    }
}

/// What two peers `lo < hi` both know after the ciphertext phase.
pub struct PairSecrets<'a> {
    /// The X25519 shared secret.
    pub diffie_hellman: &'a [u8; 32],
    /// The ML-KEM secret `lo` encapsulated to `hi`.
    pub lo_to_hi: &'a [u8; 32],
    /// The ML-KEM secret `hi` encapsulated to `lo`.
    pub hi_to_lo: &'a [u8; 32],
    /// The ciphertext `lo` sent to `hi`.
    pub ciphertext_lo_to_hi: &'a [u8],
    /// The ciphertext `hi` sent to `lo`.
    pub ciphertext_hi_to_lo: &'a [u8],
    /// `lo`'s X25519 public key.
    pub x25519_lo: &'a [u8; 32],
    /// `hi`'s X25519 public key.
    pub x25519_hi: &'a [u8; 32],
}

/// The pad key of peers `lo < hi` (indices in the run).
pub fn pad_key(run: &RunContext, lo: u32, hi: u32, secrets: &PairSecrets<'_>) -> PadKey {
    let mut h = run.hasher(PAD_KEY_CONTEXT);
    h.update(&lo.to_le_bytes());
    h.update(&hi.to_le_bytes());
    for part in [
        secrets.diffie_hellman.as_slice(),
        secrets.lo_to_hi.as_slice(),
        secrets.hi_to_lo.as_slice(),
        secrets.ciphertext_lo_to_hi,
        secrets.ciphertext_hi_to_lo,
        secrets.x25519_lo.as_slice(),
        secrets.x25519_hi.as_slice(),
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    PadKey(Zeroizing::new(*h.finalize().as_bytes()))
}

/// Serialises `Vec<u8>` as bytes (postcard: a length and the bytes).
pub(crate) mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let bytes: &[u8] = Deserialize::deserialize(d)?;
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunContext {
        RunContext {
            session_id: [5; 32],
            run: 2,
        }
    }

    #[test]
    fn everything_is_deterministic_from_the_seed() {
        let seed = RunSeed::from_bytes([9; 32]);
        let a = RunKeys::derive(&seed, &run());
        let b = RunKeys::derive(&seed, &run());
        assert_eq!(a.public(), b.public());
        assert_eq!(a.public().ml_kem.len(), ML_KEM_PUBLIC_LEN);
        let other = RunKeys::derive(&RunSeed::from_bytes([1; 32]), &run());
        let keys = other.public().validate().unwrap();
        let (e1, e2) = (a.encapsulate(1, &keys), b.encapsulate(1, &keys));
        assert_eq!(e1.ciphertext, e2.ciphertext);
        assert_eq!(*e1.shared, *e2.shared);
        assert_eq!(e1.ciphertext.len(), ML_KEM_CIPHERTEXT_LEN);
        assert_ne!(
            a.encapsulate(2, &keys).ciphertext,
            e1.ciphertext,
            "fresh randomness per recipient"
        );
        assert_eq!(seed.slot_messages(&run(), 3), seed.slot_messages(&run(), 3));
        let next_run = RunContext { run: 3, ..run() };
        assert_ne!(RunKeys::derive(&seed, &next_run).public(), a.public());
    }

    #[test]
    fn both_sides_derive_the_same_pad_key() {
        let (a, b) = (
            RunKeys::derive(&RunSeed::from_bytes([1; 32]), &run()),
            RunKeys::derive(&RunSeed::from_bytes([2; 32]), &run()),
        );
        let (pa, pb) = (
            a.public().validate().unwrap(),
            b.public().validate().unwrap(),
        );
        let a_to_b = a.encapsulate(1, &pb);
        let b_to_a = b.encapsulate(0, &pa);
        let at_b = b.decapsulate(&a_to_b.ciphertext).unwrap();
        let at_a = a.decapsulate(&b_to_a.ciphertext).unwrap();
        assert_eq!(*at_b, *a_to_b.shared);
        let (dh_a, dh_b) = (a.diffie_hellman(&pb), b.diffie_hellman(&pa));
        assert_eq!(*dh_a, *dh_b);
        let key_a = pad_key(
            &run(),
            0,
            1,
            &PairSecrets {
                diffie_hellman: &dh_a,
                lo_to_hi: &a_to_b.shared,
                hi_to_lo: &at_a,
                ciphertext_lo_to_hi: &a_to_b.ciphertext,
                ciphertext_hi_to_lo: &b_to_a.ciphertext,
                x25519_lo: &a.public().x25519,
                x25519_hi: &b.public().x25519,
            },
        );
        let key_b = pad_key(
            &run(),
            0,
            1,
            &PairSecrets {
                diffie_hellman: &dh_b,
                lo_to_hi: &at_b,
                hi_to_lo: &b_to_a.shared,
                ciphertext_lo_to_hi: &a_to_b.ciphertext,
                ciphertext_hi_to_lo: &b_to_a.ciphertext,
                x25519_lo: &a.public().x25519,
                x25519_hi: &b.public().x25519,
            },
        );
        assert_eq!(key_a.as_bytes(), key_b.as_bytes());
        let via_a = a
            .pad_key_with(0, 1, b.public(), &pb, &b_to_a.ciphertext)
            .unwrap();
        let via_b = b
            .pad_key_with(1, 0, a.public(), &pa, &a_to_b.ciphertext)
            .unwrap();
        assert_eq!(via_a.as_bytes(), key_a.as_bytes());
        assert_eq!(via_b.as_bytes(), key_a.as_bytes());
    }

    #[test]
    fn a_tampered_ciphertext_decapsulates_to_a_different_secret() {
        let a = RunKeys::derive(&RunSeed::from_bytes([1; 32]), &run());
        let b = RunKeys::derive(&RunSeed::from_bytes([2; 32]), &run());
        let mut e = a.encapsulate(1, &b.public().validate().unwrap());
        e.ciphertext[10] ^= 1;
        assert_ne!(*b.decapsulate(&e.ciphertext).unwrap(), *e.shared);
        assert_eq!(
            b.decapsulate(&e.ciphertext[1..]).err(),
            Some(KexError::Ciphertext(ML_KEM_CIPHERTEXT_LEN - 1))
        );
    }

    #[test]
    fn bad_public_keys_are_refused() {
        let good = RunKeys::derive(&RunSeed::from_bytes([1; 32]), &run())
            .public()
            .clone();
        assert!(good.validate().is_ok());
        // u = 0 and u = 1 have small order.
        for low in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let bad = PublicKeys {
                x25519: low,
                ..good.clone()
            };
            assert_eq!(
                bad.validate().err(),
                Some(KexError::X25519("a point of small order"))
            );
        }
        let non_canonical = PublicKeys {
            x25519: [0xff; 32],
            ..good.clone()
        };
        assert!(matches!(non_canonical.validate(), Err(KexError::X25519(_))));
        let short = PublicKeys {
            ml_kem: good.ml_kem[..100].to_vec(),
            ..good.clone()
        };
        assert_eq!(
            short.validate().err(),
            Some(KexError::MlKem("wrong length"))
        );
        let out_of_range = PublicKeys {
            ml_kem: vec![0xff; ML_KEM_PUBLIC_LEN],
            ..good
        };
        assert!(matches!(out_of_range.validate(), Err(KexError::MlKem(_))));
    }

    #[test]
    fn the_commitment_binds_seed_and_outputs() {
        let seed = RunSeed::from_bytes([3; 32]);
        let c = seed.commitment(&run(), &[[1; 32]]);
        assert_eq!(c, seed.commitment(&run(), &[[1; 32]]));
        assert_ne!(c, seed.commitment(&run(), &[[2; 32]]));
        assert_ne!(
            c,
            RunSeed::from_bytes([4; 32]).commitment(&run(), &[[1; 32]])
        );
        assert_eq!(format!("{seed:?}"), "RunSeed(<secret>)");
    }
}
