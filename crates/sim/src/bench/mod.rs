//! Focused measurements beside the workload: connection set-up, DHT
//! lookups and single-node publish throughput.

pub mod connect;
pub mod dht;
pub mod throughput;
