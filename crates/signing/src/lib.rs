//! `conclave-signing`: MuSig2 (BIP-327) signing sessions between Conclave
//! peers, built on the node's public API only.
#![deny(missing_docs)]

pub mod keys;
pub mod proto;
pub mod psbt;
