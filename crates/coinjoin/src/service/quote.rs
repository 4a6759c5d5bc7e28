//! What a join would cost, shown before the person joins: the coins'
//! amounts as the chain has them, the fee at the ladder step, and the
//! unmixed change that comes back.
//!
//! With the `specta` feature, sats, counts and times show in TypeScript as
//! a plain `number` (`specta(type = u32)`: specta would make a u64 a
//! BigInt and an f64 `number | null`); the JSON carries the whole u64,
//! exact in JavaScript below 2^53.

use serde::{Deserialize, Serialize};

use crate::{
    pairing::{Pairing, PairingError},
    tx::{fee_for_weight, participant_weight, MAX_OVERHEAD_WEIGHT},
};

/// Bytes of a P2TR change script (the wallet's change is P2TR).
const CHANGE_SCRIPT_LEN: usize = 34;

/// One coin of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct QuotedCoin {
    /// `TXID:VOUT`.
    pub outpoint: String,
    /// Its amount on the chain, sats.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub amount_sats: u64,
}

/// The cost of mixing some coins into one output of a denomination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct JoinQuote {
    /// The coins and their amounts.
    pub coins: Vec<QuotedCoin>,
    /// Sats per mixed output.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub denomination: u64,
    /// The fee-rate step joined, sat/vB (the rate asked for, rounded up to
    /// the ladder).
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub fee_rate: u64,
    /// The fee paid in any session, at most: these inputs, the mixed
    /// output and the change output, plus the whole transaction overhead
    /// (a session shares it out, so with more peers it is a little less);
    /// without change, everything above the denomination.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub fee_sats: u64,
    /// Sats of all the coins.
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub total_sats: u64,
    /// Unmixed change back to this wallet, at least (0: any remainder is
    /// below the dust limit and goes to the fee).
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub change_sats: u64,
    /// Whether the coins cover the denomination and the fee; if not, what
    /// is missing, for people.
    pub shortfall: Option<String>,
}

/// Dust limit of a P2TR output, sats.
const P2TR_DUST_SATS: u64 = 330;

/// Quotes mixing `coins` (outpoint and amount) into one `denomination`
/// output at the ladder step of `fee_rate`.
pub fn quote(
    coins: Vec<QuotedCoin>,
    denomination: u64,
    fee_rate: u64,
) -> Result<JoinQuote, PairingError> {
    let step = Pairing::ladder_step(fee_rate).ok_or(PairingError::FeeRate(fee_rate))?;
    let pairing = Pairing::new(denomination, step)?;
    let total_sats: u64 = coins.iter().map(|c| c.amount_sats).sum();
    let fee_at = |change: Option<usize>| {
        let own = participant_weight(coins.len(), 1, change);
        fee_for_weight(own + MAX_OVERHEAD_WEIGHT, pairing.fee_rate)
    };
    let (without_change, with_change) = (fee_at(None), fee_at(Some(CHANGE_SCRIPT_LEN)));
    let owed = denomination + without_change;
    let remainder = total_sats.saturating_sub(denomination + with_change);
    let (fee_sats, change_sats) = if total_sats < owed {
        (without_change, 0)
    } else if remainder >= P2TR_DUST_SATS {
        (with_change, remainder)
    } else {
        // No change output: what is left over goes to the fee.
        (total_sats - denomination, 0)
    };
    let shortfall = (total_sats < owed).then(|| {
        format!(
            "these coins hold {total_sats} sats but a {denomination}-sat output and its fee of \
             {without_change} sats need {owed}: add a coin or pick a smaller denomination"
        )
    });
    Ok(JoinQuote {
        coins,
        denomination,
        fee_rate: pairing.fee_rate,
        fee_sats,
        total_sats,
        change_sats,
        shortfall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::worst_case_fee;

    fn coin(amount_sats: u64) -> QuotedCoin {
        QuotedCoin {
            outpoint: format!("{}:0", "11".repeat(32)),
            amount_sats,
        }
    }

    #[test]
    fn the_fee_covers_the_worst_case_with_a_change_output_at_the_ladder_step() {
        let q = quote(vec![coin(150_000)], 100_000, 2).unwrap();
        assert_eq!(q.fee_rate, 2);
        // The worst case the service checks `max_fee` against has no
        // change output; with one the fee is higher by its weight.
        let without_change = worst_case_fee(1, 1, 2);
        // A P2TR change output is 43 vB: 86 sats at 2 sat/vB.
        assert_eq!(q.fee_sats, without_change + 86);
        assert_eq!(q.change_sats, 150_000 - 100_000 - q.fee_sats);
        assert_eq!(q.shortfall, None);
        // 3 sat/vB is not a step: it rounds up to 5.
        assert_eq!(quote(vec![coin(150_000)], 100_000, 3).unwrap().fee_rate, 5);
    }

    #[test]
    fn dust_change_is_none_and_a_shortfall_is_explained() {
        // 100 000 − 99 600 leaves less than a change output's fee plus dust:
        // no change, the rest is fee.
        let exact = quote(vec![coin(100_000)], 99_600, 1).unwrap();
        assert_eq!(exact.change_sats, 0, "{exact:?}");
        assert_eq!(exact.fee_sats, 400, "{exact:?}");
        let short = quote(vec![coin(50_000), coin(40_000)], 100_000, 1).unwrap();
        let why = short.shortfall.expect("90 000 sats cannot make 100 000");
        assert!(
            why.contains("90000 sats") && why.ends_with("smaller denomination"),
            "{why}"
        );
        assert!(
            quote(vec![coin(1)], 100_000, 1000).is_err(),
            "off the ladder"
        );
    }
}
