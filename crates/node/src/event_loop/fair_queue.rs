//! A bounded queue served round-robin across senders: what waits for a
//! scarce resource (envelope verification) when it is busy. A sender that
//! sends more than its share only lengthens its own queue, and when the
//! queue is full the sender queueing the most loses its newest item, so
//! peers flooding from many identities cannot push out the few items of
//! honest peers. No I/O.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
};

/// What a [`FairQueue`] may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FairQueueCaps {
    /// Items of one sender.
    pub per_sender: usize,
    /// Bytes of one sender.
    pub per_sender_bytes: usize,
    /// Items in all.
    pub total: usize,
    /// Bytes in all.
    pub total_bytes: usize,
}

struct Queued<T> {
    item: T,
    bytes: usize,
}

#[derive(Default)]
struct SenderQueue<T> {
    items: VecDeque<Queued<T>>,
    bytes: usize,
}

/// Items waiting per sender, served one sender at a time in turn.
pub(crate) struct FairQueue<K, T> {
    queues: HashMap<K, SenderQueue<T>>,
    /// Senders with items, in serving order.
    turns: VecDeque<K>,
    len: usize,
    bytes: usize,
    caps: FairQueueCaps,
}

impl<K: Hash + Eq + Clone, T> FairQueue<K, T> {
    pub fn new(caps: FairQueueCaps) -> Self {
        Self {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
            bytes: 0,
            caps,
        }
    }

    /// Queues `item` of `bytes` from `sender`. Returns what was dropped to
    /// keep the caps: `item` itself when its sender is over its own share
    /// (or would queue the most when the queue is full), else the newest
    /// items of the senders queueing the most.
    pub fn push(&mut self, sender: K, item: T, bytes: usize) -> Vec<T> {
        let own = self.queues.get(&sender);
        let own_len = own.map_or(0, |q| q.items.len());
        let own_bytes = own.map_or(0, |q| q.bytes);
        if own_len >= self.caps.per_sender
            || own_bytes + bytes > self.caps.per_sender_bytes
            || bytes > self.caps.total_bytes
        {
            return vec![item];
        }
        let mut dropped = Vec::new();
        while self.len >= self.caps.total || self.bytes + bytes > self.caps.total_bytes {
            let (largest, size) = self
                .queues
                .iter()
                .map(|(k, q)| (k, (q.items.len(), q.bytes)))
                .max_by_key(|(_, size)| *size)
                .map(|(k, size)| (k.clone(), size))
                .expect("a full queue has senders");
            if size <= (own_len + 1, own_bytes + bytes) {
                // With this item the sender would queue the most (or as
                // much as the most): this item is the one to drop.
                dropped.push(item);
                return dropped;
            }
            dropped.extend(self.pop_newest(&largest));
        }
        let queue = self.queues.entry(sender.clone()).or_insert_with(|| {
            self.turns.push_back(sender);
            SenderQueue {
                items: VecDeque::new(),
                bytes: 0,
            }
        });
        queue.items.push_back(Queued { item, bytes });
        queue.bytes += bytes;
        self.len += 1;
        self.bytes += bytes;
        dropped
    }

    /// The next item: the oldest of the sender whose turn it is.
    pub fn pop(&mut self) -> Option<(K, T)> {
        let sender = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&sender).expect("turns name queues");
        let Queued { item, bytes } = queue.items.pop_front().expect("queues are not empty");
        queue.bytes -= bytes;
        self.len -= 1;
        self.bytes -= bytes;
        if queue.items.is_empty() {
            self.queues.remove(&sender);
        } else {
            self.turns.push_back(sender.clone());
        }
        Some((sender, item))
    }

    fn pop_newest(&mut self, sender: &K) -> Option<T> {
        let queue = self.queues.get_mut(sender)?;
        let Queued { item, bytes } = queue.items.pop_back()?;
        queue.bytes -= bytes;
        self.len -= 1;
        self.bytes -= bytes;
        if queue.items.is_empty() {
            self.queues.remove(sender);
            self.turns.retain(|k| k != sender);
        }
        Some(item)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(per_sender: usize, total: usize) -> FairQueueCaps {
        FairQueueCaps {
            per_sender,
            per_sender_bytes: usize::MAX / 4,
            total,
            total_bytes: usize::MAX / 2,
        }
    }

    #[test]
    fn senders_are_served_in_turn_each_in_its_own_order() {
        let mut q = FairQueue::new(caps(10, 100));
        for i in 0..3 {
            assert!(q.push("flood", i, 1).is_empty());
        }
        assert!(q.push("honest", 100, 1).is_empty());
        let order: Vec<(&str, i32)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            [("flood", 0), ("honest", 100), ("flood", 1), ("flood", 2)]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn a_sender_over_its_share_loses_only_its_own_items() {
        let mut q = FairQueue::new(caps(2, 100));
        assert!(q.push("a", 1, 1).is_empty());
        assert!(q.push("a", 2, 1).is_empty());
        assert_eq!(q.push("a", 3, 1), [3]);
        assert!(q.push("b", 4, 1).is_empty());
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn a_full_queue_drops_from_the_sender_queueing_the_most() {
        let mut q = FairQueue::new(caps(100, 10));
        for i in 0..10 {
            assert!(q.push("flood", i, 1).is_empty());
        }
        assert_eq!(q.push("honest", 100, 1), [9], "the flood's newest");
        assert_eq!(q.len(), 10);
        // Many one-item senders fill it: a newcomer with as many is refused.
        let mut q = FairQueue::new(caps(100, 3));
        for s in ["x", "y", "z"] {
            assert!(q.push(s, 0, 1).is_empty());
        }
        assert_eq!(q.push("w", 1, 1), [1]);
        let served: Vec<&str> = std::iter::from_fn(|| q.pop()).map(|(s, _)| s).collect();
        assert_eq!(served, ["x", "y", "z"]);
    }

    #[test]
    fn bytes_are_capped_per_sender_and_in_all() {
        let mut q = FairQueue::new(FairQueueCaps {
            per_sender: 100,
            per_sender_bytes: 1000,
            total: 100,
            total_bytes: 1500,
        });
        assert!(q.push("a", 1, 900).is_empty());
        assert_eq!(q.push("a", 2, 200), [2], "over a's 1000 bytes");
        assert!(q.push("b", 3, 500).is_empty());
        // 1400 queued; 300 more from c: a (the largest by bytes among
        // equals in count) loses its item.
        assert_eq!(q.push("c", 4, 300), [1]);
        assert_eq!(q.pop(), Some(("b", 3)));
        assert_eq!(q.pop(), Some(("c", 4)));
        assert_eq!(q.pop(), None);
    }
}
