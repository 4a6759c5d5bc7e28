//! Who was excluded from a session, and why. Exclusions name outpoints,
//! not PeerIds: a disruptor can take a new PeerId for free, not new coins.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::coin::Outpoint;

/// The phase of a run, as exclusions and the UI name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Public keys and the commitment to the run's secrets.
    KeyExchange,
    /// ML-KEM ciphertexts to every other peer.
    Ciphertexts,
    /// The exponential DC-net reserving anonymous slots.
    SlotReservation,
    /// The XOR DC-net revealing the output keys.
    DcNet,
    /// Everyone states that its outputs are present (or reveals).
    Acceptance,
    /// Everyone signs its own inputs.
    Signatures,
    /// Everyone reveals its seed so the run can be replayed.
    Blame,
    /// The transaction is complete.
    Done,
    /// The session ended without a transaction.
    Failed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::KeyExchange => "key_exchange",
            Phase::Ciphertexts => "ciphertexts",
            Phase::SlotReservation => "slot_reservation",
            Phase::DcNet => "dc_net",
            Phase::Acceptance => "acceptance",
            Phase::Signatures => "signatures",
            Phase::Blame => "blame",
            Phase::Done => "done",
            Phase::Failed => "failed",
        })
    }
}

/// Why a participant was excluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Its message for a phase did not arrive by the deadline.
    Holdout(Phase),
    /// It sent two different messages for one phase (both are the proof).
    Equivocation(Phase),
    /// Its message was malformed or inconsistent (public for all to check).
    InvalidMessage(Phase, String),
    /// Its published key-exchange keys are invalid.
    InvalidKey(String),
    /// Replaying its revealed seed does not give the messages it sent.
    Deviated(Phase),
    /// It claimed a failure that the replay shows did not happen.
    FalseAccusation,
    /// Its committed output key is not a valid x-only key.
    InvalidOutputKey,
    /// Its transaction signature is invalid (or not SIGHASH_DEFAULT).
    BadSignature(String),
    /// One of its inputs was spent during the session.
    InputSpent(Outpoint),
    /// Its pair request failed validation.
    InvalidRequest(String),
    /// Another request spends one of its outpoints.
    OutpointInTwoRequests(Outpoint),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Holdout(p) => write!(f, "sent nothing in {p} before the deadline"),
            Reason::Equivocation(p) => write!(f, "sent two different messages in {p}"),
            Reason::InvalidMessage(p, what) => write!(f, "invalid {p} message: {what}"),
            Reason::InvalidKey(what) => write!(f, "invalid key: {what}"),
            Reason::Deviated(p) => write!(
                f,
                "its {p} message does not follow from its revealed secrets"
            ),
            Reason::FalseAccusation => f.write_str("claimed a disruption that did not happen"),
            Reason::InvalidOutputKey => f.write_str("put an invalid output key into the DC-net"),
            Reason::BadSignature(what) => write!(f, "bad signature: {what}"),
            Reason::InputSpent(o) => write!(f, "input {o} was spent during the session"),
            Reason::InvalidRequest(what) => write!(f, "invalid pair request: {what}"),
            Reason::OutpointInTwoRequests(o) => write!(f, "outpoint {o} is in two requests"),
        }
    }
}

/// One participant excluded from a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// Every outpoint of its request.
    pub outpoints: Vec<Outpoint>,
    /// Why.
    pub reason: Reason,
    /// The run it was excluded in (0 for pairing).
    pub run: u32,
}

/// How long an outpoint stays out after its first exclusion.
pub const FIRST_STRIKE_MS: u64 = 3600 * 1000;
/// How long after its second (and every later) exclusion: two strikes
/// mean a day.
pub const SECOND_STRIKE_MS: u64 = 24 * 3600 * 1000;
/// Outpoints remembered at most (the oldest bans go first).
pub const MAX_STRUCK_OUTPOINTS: usize = 4096;

/// One outpoint's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strike {
    /// Exclusions so far.
    pub count: u32,
    /// Unix ms until which requests spending it are left out.
    pub until_ms: u64,
}

/// Exclusions with their expiry, by outpoint: what keeps a disruptor's
/// coins out of the next sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strikes {
    by_outpoint: std::collections::BTreeMap<Outpoint, Strike>,
}

impl Strikes {
    /// Counts one exclusion of `outpoint` at `now_ms`; until when it is out.
    pub fn strike(&mut self, outpoint: Outpoint, now_ms: u64) -> u64 {
        if self.by_outpoint.len() >= MAX_STRUCK_OUTPOINTS
            && !self.by_outpoint.contains_key(&outpoint)
        {
            self.forget_expired(now_ms);
            if self.by_outpoint.len() >= MAX_STRUCK_OUTPOINTS {
                let soonest = self
                    .by_outpoint
                    .iter()
                    .min_by_key(|(_, s)| s.until_ms)
                    .map(|(o, _)| *o);
                if let Some(o) = soonest {
                    self.by_outpoint.remove(&o);
                }
            }
        }
        let strike = self.by_outpoint.entry(outpoint).or_insert(Strike {
            count: 0,
            until_ms: 0,
        });
        strike.count = strike.count.saturating_add(1);
        let ban = if strike.count >= 2 {
            SECOND_STRIKE_MS
        } else {
            FIRST_STRIKE_MS
        };
        strike.until_ms = strike.until_ms.max(now_ms + ban);
        strike.until_ms
    }

    /// Until when `outpoint` is out, if it is at `now_ms`.
    pub fn banned_until(&self, outpoint: &Outpoint, now_ms: u64) -> Option<u64> {
        self.by_outpoint
            .get(outpoint)
            .map(|s| s.until_ms)
            .filter(|&until| until > now_ms)
    }

    /// Drops the records whose ban ended (their count goes too).
    pub fn forget_expired(&mut self, now_ms: u64) {
        self.by_outpoint.retain(|_, s| s.until_ms > now_ms);
    }

    /// The record of `outpoint`.
    pub fn get(&self, outpoint: &Outpoint) -> Option<Strike> {
        self.by_outpoint.get(outpoint).copied()
    }

    /// Every record.
    pub fn iter(&self) -> impl Iterator<Item = (&Outpoint, &Strike)> {
        self.by_outpoint.iter()
    }

    /// Puts back a record (as loaded from the database).
    pub fn restore(&mut self, outpoint: Outpoint, strike: Strike) {
        self.by_outpoint.insert(outpoint, strike);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_strikes_mean_a_day_and_bans_expire() {
        let o = Outpoint {
            txid: [7; 32],
            vout: 1,
        };
        let mut strikes = Strikes::default();
        assert_eq!(strikes.banned_until(&o, 0), None);
        assert_eq!(strikes.strike(o, 1_000), 1_000 + FIRST_STRIKE_MS);
        assert_eq!(
            strikes.banned_until(&o, 1_000),
            Some(1_000 + FIRST_STRIKE_MS)
        );
        assert_eq!(strikes.strike(o, 2_000), 2_000 + SECOND_STRIKE_MS);
        let later = 2_000 + SECOND_STRIKE_MS;
        assert_eq!(strikes.banned_until(&o, later), None);
        strikes.forget_expired(later);
        assert_eq!(strikes.iter().count(), 0, "an expired record goes");
        assert_eq!(strikes.strike(o, later), later + FIRST_STRIKE_MS);
    }

    #[test]
    fn the_record_is_bounded() {
        let mut strikes = Strikes::default();
        for i in 0..=MAX_STRUCK_OUTPOINTS as u32 {
            strikes.strike(
                Outpoint {
                    txid: [1; 32],
                    vout: i,
                },
                u64::from(i),
            );
        }
        assert_eq!(strikes.iter().count(), MAX_STRUCK_OUTPOINTS);
        let first = Outpoint {
            txid: [1; 32],
            vout: 0,
        };
        assert_eq!(
            strikes.banned_until(&first, 0),
            None,
            "the soonest to end went"
        );
    }
}
