//! `conclave-sim`: many real Conclave nodes on one machine, measured.
//!
//! The pure core (topology, workload plan, payload format, percentiles,
//! delivery and traffic arithmetic, `/proc` and Prometheus text parsing, the
//! report) has no I/O and is unit-tested. Around it, [`cluster`] starts nodes
//! in one of three ways (in-process over QUIC/TCP on loopback, in-process over
//! libp2p's memory transport, or as separate `conclaved` processes driven
//! through their control sockets), [`bench`] holds the focused measurements,
//! and [`experiment`] runs a whole configuration and returns a [`Report`].
#![deny(missing_docs)]

pub mod bench;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod error;
pub mod experiment;
pub mod formation;
pub mod machine;
pub mod payload;
pub mod percentiles;
pub mod procfs;
pub mod prometheus_text;
pub mod report;
pub mod sandbox;
pub mod schedule;
pub mod topology;
pub mod traffic;
pub mod workload;

pub use config::{Mode, SimConfig, TopologyKind};
pub use error::SimError;
pub use experiment::run;
pub use report::Report;
