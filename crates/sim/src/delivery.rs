//! Deliveries: the [`Recorder`] every receiver writes into, and the pure
//! arithmetic that turns its log into a delivery ratio and latencies.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use serde::Serialize;
use tokio::sync::Notify;

use crate::{
    clock::Clock,
    payload,
    percentiles::{summarize_us, Summary},
};

/// A valid message received by one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Message sequence number.
    pub seq: u32,
    /// Receiving node.
    pub receiver: u32,
    /// Publish-to-receipt time in microseconds.
    pub latency_us: u64,
}

#[derive(Default)]
struct Log {
    deliveries: Vec<Delivery>,
    seen: HashSet<(u32, u32)>,
    invalid: Vec<u32>,
    oversized: Vec<u32>,
}

/// Collects what every receiver gets, from any task or thread.
pub struct Recorder {
    run: u32,
    clock: Clock,
    oversized_above: usize,
    log: Mutex<Log>,
    valid: AtomicU64,
    repeated: AtomicU64,
    lagged: AtomicU64,
    progress: Notify,
}

impl Recorder {
    /// A recorder for run `run`, stamping receipts on `clock`. Messages
    /// longer than `oversized_above` bytes are counted as oversized.
    pub fn new(run: u32, clock: Clock, oversized_above: usize) -> Self {
        Self {
            run,
            clock,
            oversized_above,
            log: Mutex::new(Log::default()),
            valid: AtomicU64::new(0),
            repeated: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            progress: Notify::new(),
        }
    }

    /// Records that `receiver` got `data` now.
    pub fn record(&self, receiver: usize, data: &[u8]) {
        let now = self.clock.now_us();
        if data.len() > self.oversized_above {
            self.lock().oversized.push(receiver as u32);
            return;
        }
        let Ok(header) = payload::decode(data, self.run) else {
            self.lock().invalid.push(receiver as u32);
            return;
        };
        let delivery = Delivery {
            seq: header.seq,
            receiver: receiver as u32,
            latency_us: now.saturating_sub(header.sent_us),
        };
        let fresh = {
            let mut log = self.lock();
            let fresh = log.seen.insert((delivery.seq, delivery.receiver));
            if fresh {
                log.deliveries.push(delivery);
            }
            fresh
        };
        if fresh {
            self.valid.fetch_add(1, Ordering::Relaxed);
            self.progress.notify_one();
        } else {
            self.repeated.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().expect("delivery log lock")
    }

    /// Records that a receiver missed `missed` node events (its queue
    /// overflowed): deliveries may have happened without being seen.
    pub fn lagged(&self, missed: u64) {
        self.lagged.fetch_add(missed, Ordering::Relaxed);
    }

    /// Distinct valid deliveries so far.
    pub fn valid(&self) -> u64 {
        self.valid.load(Ordering::Relaxed)
    }

    /// Waits until `expected` valid deliveries are recorded or `bound`
    /// passes; returns whether they all arrived.
    pub async fn wait_for(&self, expected: u64, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let notified = self.progress.notified();
            if self.valid() >= expected {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.valid() >= expected;
            }
        }
    }

    /// What was recorded.
    pub fn snapshot(&self) -> RecordedTotals {
        let log = self.lock();
        RecordedTotals {
            deliveries: log.deliveries.clone(),
            invalid: log.invalid.clone(),
            oversized: log.oversized.clone(),
            repeated: self.repeated.load(Ordering::Relaxed),
            lagged_events: self.lagged.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a recorder's log and counters.
#[derive(Debug, Clone, Default)]
pub struct RecordedTotals {
    /// Distinct valid deliveries.
    pub deliveries: Vec<Delivery>,
    /// Receiver of each message that was not a valid payload of this run.
    pub invalid: Vec<u32>,
    /// Receiver of each message larger than any valid payload.
    pub oversized: Vec<u32>,
    /// Valid messages the node handed to us more than once.
    pub repeated: u64,
    /// Node events missed by slow receivers.
    pub lagged_events: u64,
}

/// Delivery figures of a workload.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryStats {
    /// Valid messages published successfully.
    pub published: usize,
    /// Deliveries expected: each published message at every other node.
    pub expected: u64,
    /// Distinct deliveries seen.
    pub delivered: u64,
    /// `delivered / expected`.
    pub ratio: f64,
    /// Messages that reached every other node.
    pub complete_messages: usize,
    /// Publish-to-receipt latency over all deliveries.
    pub latency: Option<Summary>,
}

/// Computes delivery figures for the valid messages `published` as
/// `(seq, publisher)` in a network of `nodes`.
pub fn delivery_stats(
    published: &[(u32, usize)],
    deliveries: &[Delivery],
    nodes: usize,
) -> DeliveryStats {
    let wanted: std::collections::HashMap<u32, usize> = published.iter().copied().collect();
    let mut per_message: std::collections::HashMap<u32, usize> = Default::default();
    let mut latencies = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        match wanted.get(&d.seq) {
            Some(&publisher) if publisher != d.receiver as usize => {
                *per_message.entry(d.seq).or_default() += 1;
                latencies.push(d.latency_us);
            }
            _ => {}
        }
    }
    let expected = (published.len() * (nodes - 1)) as u64;
    let delivered = latencies.len() as u64;
    DeliveryStats {
        published: published.len(),
        expected,
        delivered,
        ratio: if expected == 0 {
            0.0
        } else {
            delivered as f64 / expected as f64
        },
        complete_messages: per_message.values().filter(|&&c| c == nodes - 1).count(),
        latency: summarize_us(&mut latencies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seq: u32, receiver: u32, latency_us: u64) -> Delivery {
        Delivery {
            seq,
            receiver,
            latency_us,
        }
    }

    #[test]
    fn full_and_partial_delivery() {
        let published = [(0, 0), (1, 2)];
        let all = [d(0, 1, 1000), d(0, 2, 2000), d(1, 0, 3000), d(1, 1, 4000)];
        let s = delivery_stats(&published, &all, 3);
        assert_eq!((s.expected, s.delivered, s.complete_messages), (4, 4, 2));
        assert_eq!(s.ratio, 1.0);
        assert_eq!(s.latency.unwrap().max, 4.0);

        let s = delivery_stats(&published, &all[..3], 3);
        assert_eq!(s.ratio, 0.75);
        assert_eq!(s.complete_messages, 1);
    }

    #[test]
    fn unpublished_and_self_deliveries_do_not_count() {
        let s = delivery_stats(&[(0, 0)], &[d(0, 0, 1), d(9, 1, 1), d(0, 1, 5)], 2);
        assert_eq!((s.delivered, s.ratio), (1, 1.0));
    }

    #[tokio::test]
    async fn recorder_counts_valid_once_and_invalid_separately() {
        let clock = Clock::monotonic();
        let rec = Recorder::new(7, clock, 1000);
        let header = payload::Header {
            run: 7,
            seq: 3,
            publisher: 0,
            sent_us: clock.now_us(),
        };
        let bytes = payload::encode(&header, 100).unwrap();
        rec.record(1, &bytes);
        rec.record(1, &bytes);
        rec.record(2, &bytes);
        rec.record(2, b"garbage");
        rec.record(2, &[b'X'; 1001]);
        assert!(rec.wait_for(2, Duration::from_millis(10)).await);
        assert!(!rec.wait_for(3, Duration::from_millis(10)).await);
        let t = rec.snapshot();
        assert_eq!(t.deliveries.len(), 2);
        assert_eq!((t.invalid, t.oversized, t.repeated), (vec![2], vec![2], 1));
    }
}
