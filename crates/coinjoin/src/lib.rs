//! `conclave-coinjoin`: CoinJoin rounds without a coordinator, after
//! CoinShuffle++ over DiceMix Light (Ruffing, Moreno-Sanchez, Kate,
//! NDSS 2017). The protocol core does no I/O; the service runs it over the
//! node.
//!
//! - [`field`]: GF(2^127 − 1), the field of the slot reservation.
//! - [`solver`]: power sums → Newton's identities → the roots.
//! - [`kex`]: per-run keys from one seed; X25519 + ML-KEM-768 pad keys.
//! - [`dcnet`]: the exponential (slot reservation) and XOR DC-nets.
//! - [`coin`]: outpoints, P2TR coin keys and fresh output keys.
//! - [`tx`]: the transaction every peer builds, checks and signs.
//! - [`bip322`]: BIP-322 simple ownership proofs for P2TR inputs.
//! - [`chain`]: the [`chain::ChainSource`] trait, Bitcoin Core's JSON-RPC
//!   behind it, and an in-memory chain.
//! - [`pairing`]: pair requests, their validation against a chain
//!   source, and session formation at an epoch tick.
//! - [`exclusion`]: who was excluded, by outpoint, and why.
//! - [`proto`]: the session protocol as a pure state machine (events in,
//!   messages and deadlines out), with blame by replay.
//! - `memnet` (tests and benchmarks only, feature `test-support`): whole
//!   sessions between in-memory peers.
//! - [`service`]: the actor that runs sessions over the node (gossip on
//!   each pairing's topic, signed envelopes), and its handle.
//! - [`settings`]: the `[coinjoin]` section of a profile's config.
//! - [`wallet`]: P2TR key-path keys derived from a seed in the OS
//!   keychain; fresh output and change keys per request and run.
#![deny(missing_docs)]

pub mod bip322;
pub mod chain;
pub mod coin;
pub mod dcnet;
pub mod exclusion;
pub mod field;
pub mod kex;
#[cfg(any(test, feature = "test-support"))]
pub mod memnet;
pub mod pairing;
pub mod proto;
pub mod service;
pub mod settings;
pub mod solver;
pub mod tx;
pub mod wallet;
