//! The node's identity keys.

pub mod keyfile;

pub use keyfile::{load_or_create_key_file, KeyFileError};
