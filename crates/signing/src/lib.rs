//! `conclave-signing`: MuSig2 (BIP-327) signing sessions between Conclave
//! peers, built on the node's public API only.
//!
//! - [`keys`]: the secp256k1 keys this node signs with, in a [`keys::KeyStore`]
//!   (the OS keychain, or memory in tests).
//! - [`advert`]: signer records binding keys to PeerIds (DHT and gossip).
//! - [`proto`]: the session protocol as pure state machines.
//! - [`psbt`]: taproot key-path PSBTs signed by a session; [`psbt_file`]:
//!   PSBT files (binary or base64) as wallets write them.
//! - [`ledger`]: session ids used here, persisted, so none is signed twice.
//! - [`service`]: the actor running sessions over the node, and the
//!   [`SigningHandle`] the daemon, CLI and app call.
//! - [`supervisor`]: the service kept on whichever node a profile runs now.
//! - [`api`]: the serialisable shapes they exchange.
#![deny(missing_docs)]

pub mod advert;
pub mod api;
pub mod keys;
pub mod ledger;
pub mod proto;
pub mod psbt;
pub mod psbt_file;
pub mod service;
pub mod supervisor;

pub use api::{CreateResponse, InvitationInfo, Role, SessionStatus, Signing, SigningEvent};
pub use keys::{KeyInfo, KeyStore, KeychainKeyStore, MemoryKeyStore, SecretKey, SignerKey};
pub use proto::{Payload, Phase, SessionId, Timeouts};
pub use service::{
    SigningConfig, SigningError, SigningEvents, SigningHandle, SigningService,
    PROTOCOL as PROTOCOL_ID,
};
