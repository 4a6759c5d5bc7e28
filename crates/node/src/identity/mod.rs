//! The node's identity keys.

pub mod backup;
pub mod envelope;
pub mod keyfile;
pub mod pq;
pub mod sealed;

pub use keyfile::{load_or_create_key_file, KeyFileError};
