//! What one signed envelope costs: bytes added around a payload, and the
//! time to sign and to verify one (Ed25519 + ML-DSA-65), on this machine,
//! one core, with the node's own envelope code.

use std::time::{Duration, Instant};

use conclave_node::identity::{
    envelope::{Envelope, MessageKind},
    NodeIdentity,
};
use serde::Serialize;

use crate::error::SimError;

/// Envelope figures.
#[derive(Debug, Clone, Serialize)]
pub struct EnvelopeCost {
    /// Bytes an envelope adds to a payload of the run's size.
    pub overhead_bytes: usize,
    /// Mean time to sign one, microseconds.
    pub sign_us: f64,
    /// Mean time to verify one, microseconds.
    pub verify_us: f64,
    /// Envelopes signed and verified.
    pub samples: usize,
}

/// Signs and verifies `samples` envelopes of `size`-byte payloads on
/// `topic`, on a blocking thread.
pub async fn measure(size: usize, topic: &str, samples: usize) -> Result<EnvelopeCost, SimError> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let identity = NodeIdentity::generate();
        let payload = vec![b'.'; size];
        let failed = |what: &str, e: &dyn std::fmt::Display| SimError::Daemon {
            node: 0,
            reason: format!("envelope {what} failed: {e}"),
        };
        let started = Instant::now();
        let mut signed = Vec::with_capacity(samples.max(1));
        for _ in 0..samples.max(1) {
            let bytes = Envelope::sign(&identity, MessageKind::Gossip, &topic, &payload)
                .map_err(|e| failed("signing", &e))?;
            signed.push(bytes);
        }
        let sign = started.elapsed();
        let started = Instant::now();
        for bytes in &signed {
            Envelope::verify(
                bytes,
                MessageKind::Gossip,
                &topic,
                None,
                Duration::from_secs(600),
            )
            .map_err(|e| failed("verification", &e))?;
        }
        let verify = started.elapsed();
        let n = signed.len() as f64;
        Ok(EnvelopeCost {
            overhead_bytes: signed[0].len().saturating_sub(size),
            sign_us: sign.as_secs_f64() * 1e6 / n,
            verify_us: verify.as_secs_f64() * 1e6 / n,
            samples: signed.len(),
        })
    })
    .await
    .expect("envelope measurement does not panic")
}
