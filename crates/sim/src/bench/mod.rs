//! Focused measurements beside the workload: connection set-up, DHT
//! lookups, single-node publish throughput and the cost of one envelope.

pub mod connect;
pub mod dht;
pub mod envelope;
pub mod throughput;
