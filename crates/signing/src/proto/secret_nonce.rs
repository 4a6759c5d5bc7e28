//! A MuSig2 secret nonce that signs once and is wiped when dropped.
//!
//! `musig2::FirstRound` keeps its `SecNonce` in plain memory and does not
//! wipe it on drop, so a session that ends before signing (declined,
//! timed out, failed) would leave both nonce scalars in freed memory. This
//! holds the nonce in its BIP-327 encoding inside a `Zeroizing` buffer
//! instead, decodes it only for the one signature, and cannot be cloned.

use musig2::{
    errors::SigningError,
    secp::{Point, Scalar},
    BinaryEncoding, KeyAggContext, PartialSignature, PubNonce, SecNonce, SecNonceSpices,
};
use zeroize::Zeroizing;

/// BIP-327's secret nonce encoding: two scalars and the signer's key.
const ENCODED_LEN: usize = 97;

/// One secret nonce for one message, bound to our key in one session.
pub(super) struct SecretNonce {
    encoded: Zeroizing<[u8; ENCODED_LEN]>,
    public: PubNonce,
}

impl SecretNonce {
    /// Derives the nonce as BIP-327 does (and as `FirstRound::new` would):
    /// from `seed`, our key, the aggregated key, our index and `spices`.
    /// `None` if `index` is not a signer of `key_agg`.
    pub(super) fn new(
        key_agg: &KeyAggContext,
        seed: Zeroizing<[u8; 32]>,
        index: usize,
        spices: SecNonceSpices<'_>,
    ) -> Option<Self> {
        let signer: Point = key_agg.get_pubkey(index)?;
        let nonce = SecNonce::build_with_pubkey(*seed, signer)
            .with_aggregated_pubkey(key_agg.aggregated_pubkey::<Point>())
            .with_extra_input(&(index as u32).to_be_bytes())
            .with_spices(spices)
            .build();
        Some(Self {
            encoded: Zeroizing::new(nonce.to_bytes()),
            public: nonce.public_nonce(),
        })
    }

    /// What the other signers get.
    pub(super) fn public(&self) -> &PubNonce {
        &self.public
    }

    /// Signs `message` and is gone: a nonce never signs twice.
    pub(super) fn sign(
        self,
        key_agg: &KeyAggContext,
        secret: Scalar,
        aggregated: &musig2::AggNonce,
        message: &[u8],
    ) -> Result<PartialSignature, SigningError> {
        let nonce = SecNonce::from_bytes(&self.encoded[..])
            .expect("encoded by SecNonce::to_bytes: decodes");
        musig2::sign_partial(key_agg, secret, nonce, aggregated, message)
    }
}

#[cfg(test)]
mod tests {
    use musig2::{AggNonce, FirstRound};

    use super::*;

    fn key_agg_of(secrets: &[Scalar]) -> KeyAggContext {
        KeyAggContext::new(secrets.iter().map(|s| s.base_point_mul())).unwrap()
    }

    fn secrets() -> Vec<Scalar> {
        (1u8..=3)
            .map(|b| Scalar::from_slice(&[b; 32]).unwrap())
            .collect()
    }

    #[test]
    fn the_nonce_is_the_one_first_round_derives_and_its_signature_aggregates() {
        let secrets = secrets();
        let key_agg = key_agg_of(&secrets);
        let message = b"conclave secret nonce test";
        let seeds = |i: u8| Zeroizing::new([0x50 + i; 32]);
        let nonces: Vec<SecretNonce> = (0..3)
            .map(|i| {
                let spices = SecNonceSpices::new().with_seckey(secrets[i]);
                SecretNonce::new(&key_agg, seeds(i as u8), i, spices).unwrap()
            })
            .collect();
        for (i, nonce) in nonces.iter().enumerate() {
            let spices = SecNonceSpices::new().with_seckey(secrets[i]);
            let round = FirstRound::new(key_agg.clone(), *seeds(i as u8), i, spices).unwrap();
            assert_eq!(*nonce.public(), round.our_public_nonce());
        }
        let aggregated = AggNonce::sum(nonces.iter().map(|n| n.public().clone()));
        let partials: Vec<PartialSignature> = nonces
            .into_iter()
            .zip(&secrets)
            .map(|(n, s)| n.sign(&key_agg, *s, &aggregated, message).unwrap())
            .collect();
        let signature: [u8; 64] =
            musig2::aggregate_partial_signatures(&key_agg, &aggregated, partials, message).unwrap();
        musig2::verify_single(key_agg.aggregated_pubkey::<Point>(), signature, message).unwrap();
    }
}
