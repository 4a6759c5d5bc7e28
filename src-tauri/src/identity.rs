//! Where the app gets the node's keys.
//!
//! [`load_identity`] is the one place that loads them: when keys move to the
//! OS keychain, only it changes.

use conclave_node::{identity::pq::NodeIdentity, profile::Profile, Keypair};

use crate::views::PqFingerprints;

/// Errors loading the node's keys.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct IdentityError(#[from] conclave_node::identity::KeyFileError);

/// The keys the app runs with.
pub struct AppIdentity {
    /// The libp2p key behind the PeerId.
    pub keypair: Keypair,
    /// Fingerprints of the post-quantum keys, when the key store has them.
    pub pq: Option<PqFingerprints>,
}

/// What a key loader returns: a plain libp2p key, or the full key set with
/// its PQ identity record.
pub trait LoadedKeys {
    /// The keys as the app uses them.
    fn into_app_identity(self) -> AppIdentity;
}

impl LoadedKeys for Keypair {
    fn into_app_identity(self) -> AppIdentity {
        AppIdentity {
            keypair: self,
            pq: None,
        }
    }
}

impl LoadedKeys for NodeIdentity {
    fn into_app_identity(self) -> AppIdentity {
        let record = self.record();
        let short = |bytes: &[u8]| hex::encode(&blake3::hash(bytes).as_bytes()[..16]);
        let pq = (!record.ml_dsa_public.is_empty()).then(|| PqFingerprints {
            record: record.fingerprint(),
            ml_dsa_65: short(&record.ml_dsa_public),
            ml_kem_768: short(&record.ml_kem_public),
        });
        AppIdentity {
            keypair: self.keypair().clone(),
            pq,
        }
    }
}

/// Loads the profile's keys, creating them on first start.
pub fn load_identity(profile: &Profile) -> Result<AppIdentity, IdentityError> {
    Ok(conclave_node::identity::load_or_create_key_file(&profile.key_file())?.into_app_identity())
}

/// Where [`load_identity`] keeps the keys, for the Identity view.
pub fn key_storage(profile: &Profile) -> String {
    format!("key file {}", profile.key_file().display())
}
