//! `conclave-rooms`: agent-task rooms between Conclave peers.
//!
//! The parts that need no network:
//! - [`statement`]: detached statements signed with Ed25519 AND ML-DSA-65,
//!   valid long after the node's envelope window; the [`StatementSigner`]
//!   the node implements over its identity keys.
//! - [`a2a`]: A2A 1.0 shapes (AgentCard, Message, Part, Artifact, task
//!   states) with A2A's JSON names.
//! - [`ids`]: room and task ids.
//! - [`room`]: owner-signed room descriptors, membership tokens and
//!   revocations, and the [`Membership`] check every message passes.
//! - [`card`]: signed agent cards and the bounded book of cards seen.
//! - [`task`]: the task lifecycle as pure state machines (proposer,
//!   executor) and the rules of its record ([`task::track`]).
//! - [`record`]: the verifiable task record, its export and `verify_log`.
//! - [`reputation`]: local scores per peer and skill.
//! - [`exec`]: the tools behind skills: MCP servers over stdio and shell
//!   commands.
//!
//! And the part that does: [`service`], the actor over the node that
//! drives them, with its state in the profile's database.
#![deny(missing_docs)]

pub mod a2a;
pub mod card;
pub mod exec;

pub mod ids;
pub mod record;
pub mod reputation;
pub mod room;
pub mod service;
pub mod statement;
pub mod task;

pub use ids::{RoomId, TaskId};
pub use libp2p_identity::PeerId;
pub use record::{verify_log, TaskRecord, VerifiedRecord};
pub use reputation::Reputation;
pub use room::{Membership, Policy, Roles, RoomDescriptor};
pub use statement::{LocalSigner, Statement, StatementSigner};
