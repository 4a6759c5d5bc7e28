//! The stated ranking of bids: first the filter (price at most the task's
//! maximum, reputation at least its minimum), then lowest price, then
//! highest reputation, then earliest arrival. Ineligible bids follow in
//! arrival order, so the ranked list names every bid the task took.

use super::{RankedBid, TaskSpec};

/// Whether a ranked bid passes the task's filter.
pub fn is_eligible(bid: &RankedBid, spec: &TaskSpec) -> bool {
    bid.price <= spec.max_price && bid.reputation >= spec.min_reputation
}

/// Ranks `bids`, given in arrival order.
pub fn rank(bids: &[RankedBid], spec: &TaskSpec) -> Vec<RankedBid> {
    let mut eligible: Vec<(usize, &RankedBid)> = bids
        .iter()
        .enumerate()
        .filter(|(_, b)| is_eligible(b, spec))
        .collect();
    eligible.sort_by(|(ia, a), (ib, b)| {
        a.price
            .cmp(&b.price)
            .then(b.reputation.cmp(&a.reputation))
            .then(ia.cmp(ib))
    });
    let mut out: Vec<RankedBid> = eligible.into_iter().map(|(_, b)| b.clone()).collect();
    out.extend(bids.iter().filter(|b| !is_eligible(b, spec)).cloned());
    out
}

#[cfg(test)]
mod tests {
    use libp2p_identity::PeerId;

    use super::*;
    use crate::{a2a::JsonBytes, ids::RoomId};

    fn spec(max_price: u64, min_reputation: u16) -> TaskSpec {
        TaskSpec {
            room: RoomId([0; 32]),
            proposer: PeerId::random(),
            created_at_ms: 0,
            nonce: [0; 16],
            skill: "s".into(),
            input: JsonBytes(b"{}".to_vec()),
            bid_window_ms: 1,
            max_price,
            min_reputation,
            execution_timeout_ms: 1,
            lease_ms: 1,
            attempts: 1,
        }
    }

    fn bid(n: u8, price: u64, reputation: u16) -> RankedBid {
        RankedBid {
            bid: [n; 32],
            bidder: PeerId::random(),
            price,
            reputation,
        }
    }

    #[test]
    fn filter_then_price_then_reputation_then_arrival() {
        let bids = vec![
            bid(0, 50, 900), // too expensive
            bid(1, 10, 400),
            bid(2, 10, 800),
            bid(3, 5, 100), // reputation too low
            bid(4, 10, 800),
            bid(5, 7, 500),
        ];
        let ranked = rank(&bids, &spec(20, 300));
        let order: Vec<u8> = ranked.iter().map(|b| b.bid[0]).collect();
        // 5 is cheapest; 2 and 4 tie on price and reputation, 2 came first;
        // then 1 (lower reputation); then the ineligible in arrival order.
        assert_eq!(order, vec![5, 2, 4, 1, 0, 3]);
        let eligible = ranked.iter().filter(|b| is_eligible(b, &spec(20, 300)));
        assert_eq!(eligible.count(), 4);
    }
}
