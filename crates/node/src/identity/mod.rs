//! The node's identity: its keys (keychain or key file), its PQ identity
//! record, signed envelopes, sealed payloads and encrypted backups.

pub mod backup;
pub mod backup_file;
pub mod envelope;
pub mod keyfile;
pub mod keysource;
pub mod keystore;
pub mod ml_dsa;
pub mod pq;
pub mod registry;
pub mod replay;
pub mod sealed;

pub use keyfile::{load_or_create_key_file, KeyFileError};
pub use keysource::{KeySource, KeySourceError};
pub use pq::{NodeIdentity, PqIdentityRecord};
