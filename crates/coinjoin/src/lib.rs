//! `conclave-coinjoin`: CoinJoin rounds without a coordinator, after
//! CoinShuffle++ over DiceMix Light (Ruffing, Moreno-Sanchez, Kate,
//! NDSS 2017). This crate holds the protocol core; nothing here does I/O.
//!
//! - [`field`]: GF(2^127 − 1), the field of the slot reservation.
//! - [`solver`]: power sums → Newton's identities → the roots.
//! - [`kex`]: per-run keys from one seed; X25519 + ML-KEM-768 pad keys.
//! - [`dcnet`]: the exponential (slot reservation) and XOR DC-nets.
#![deny(missing_docs)]

pub mod coin;
pub mod dcnet;
pub mod field;
pub mod kex;
pub mod solver;
pub mod tx;
