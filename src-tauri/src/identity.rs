//! Where the app gets the node's keys.
//!
//! [`load_identity`] is the one place that loads them: when keys move to the
//! OS keychain, only it changes.

use conclave_node::{identity::NodeIdentity, profile::Profile};

use crate::views::PqFingerprints;

/// Errors loading the node's keys.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct IdentityError(#[from] conclave_node::identity::KeyFileError);

/// Loads the profile's keys (Ed25519 and the post-quantum set), creating
/// them on first start.
pub fn load_identity(profile: &Profile) -> Result<NodeIdentity, IdentityError> {
    Ok(conclave_node::identity::load_or_create_key_file(
        &profile.key_file(),
    )?)
}

/// Where [`load_identity`] keeps the keys, for the Identity view.
pub fn key_storage(profile: &Profile) -> String {
    format!("key file {}", profile.key_file().display())
}

/// Fingerprints (BLAKE3, first 16 bytes, hex) of the PQ keys the identity
/// record binds to the PeerId.
pub fn pq_fingerprints(identity: &NodeIdentity) -> Option<PqFingerprints> {
    let record = identity.record();
    let short = |bytes: &[u8]| hex::encode(&blake3::hash(bytes).as_bytes()[..16]);
    (!record.ml_dsa_public.is_empty()).then(|| PqFingerprints {
        record: record.fingerprint(),
        ml_dsa_65: short(&record.ml_dsa_public),
        ml_kem_768: short(&record.ml_kem_public),
    })
}
