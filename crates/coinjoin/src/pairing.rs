//! Pair requests and session formation.
//!
//! Peers that want to mix the same denomination at the same fee-rate step
//! (a [`Pairing`]) announce a [`PairRequest`] on that pairing's topic: their
//! inputs with a BIP-322 ownership proof each over the request, the number
//! of mixed outputs, a change script and an expiry. Every node checks every
//! request against its [`ChainSource`] (the coins must be unspent, as
//! claimed, and spendable in the next block). At each epoch tick the valid
//! requests form a session whose id commits to the sorted request ids, so
//! nobody can split the peers into different sessions unseen; if views
//! differ, peers re-form on the intersection.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use bitcoin::{Amount, Script, ScriptBuf, TxOut};
use serde::{Deserialize, Serialize};

use crate::{
    bip322,
    chain::{ChainError, ChainSource, Utxo, COINBASE_MATURITY, MIN_CONFIRMATIONS},
    coin::{CoinKey, Outpoint},
    exclusion::{Exclusion, Reason},
    kex::serde_bytes_vec,
    tx::{worst_case_fee, TxParticipant},
};

/// The fee-rate ladder, sat/vB: peers at the same step mix together.
pub const FEE_LADDER: [u64; 7] = [1, 2, 5, 10, 20, 50, 100];
/// The smallest denomination, sats.
pub const MIN_DENOMINATION: u64 = 10_000;
/// The largest denomination, sats (1 000 BTC).
pub const MAX_DENOMINATION: u64 = 100_000_000_000;
/// Most inputs in one request.
pub const MAX_INPUTS: usize = 8;
/// Most mixed outputs one request may ask for.
pub const MAX_MIXED_OUTPUTS: u32 = 8;
/// Longest author identity (a PeerId's bytes).
pub const MAX_AUTHOR_LEN: usize = 64;
/// Longest change script (any segwit program fits).
pub const MAX_CHANGE_SCRIPT_LEN: usize = 42;
/// Longest a request may stay open, seconds.
pub const MAX_EXPIRY_SECS: u64 = 24 * 3600;
/// Largest encoded request.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Fewest participants worth a session (with two, each knows the other's).
pub const MIN_PARTICIPANTS: usize = 3;
/// Most participants in one session.
pub const MAX_PARTICIPANTS: usize = 64;
/// Most mixed outputs in one session (the slot-reservation degree).
pub const MAX_SESSION_OUTPUTS: usize = 256;

/// What peers mix together: a denomination and a fee-rate step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pairing {
    /// Sats per mixed output.
    pub denomination: u64,
    /// Sat/vB, one of [`FEE_LADDER`].
    pub fee_rate: u64,
}

/// A pairing outside the allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// Denomination out of range.
    #[error("denomination {0} sats is outside {MIN_DENOMINATION}..={MAX_DENOMINATION}")]
    Denomination(u64),
    /// Fee rate not on the ladder.
    #[error("fee rate {0} sat/vB is not a step of the ladder {FEE_LADDER:?}: pick one of those")]
    FeeRate(u64),
}

impl Pairing {
    /// A checked pairing.
    pub fn new(denomination: u64, fee_rate: u64) -> Result<Self, PairingError> {
        let pairing = Self {
            denomination,
            fee_rate,
        };
        pairing.check()?;
        Ok(pairing)
    }

    fn check(&self) -> Result<(), PairingError> {
        if !(MIN_DENOMINATION..=MAX_DENOMINATION).contains(&self.denomination) {
            return Err(PairingError::Denomination(self.denomination));
        }
        if !FEE_LADDER.contains(&self.fee_rate) {
            return Err(PairingError::FeeRate(self.fee_rate));
        }
        Ok(())
    }

    /// The gossip topic its requests go to.
    pub fn topic(&self) -> String {
        format!(
            "conclave/coinjoin/v1/{}/{}",
            self.denomination, self.fee_rate
        )
    }

    /// The lowest step of the ladder at or above `fee_rate`.
    pub fn ladder_step(fee_rate: u64) -> Option<u64> {
        FEE_LADDER.iter().copied().find(|&s| s >= fee_rate)
    }
}

/// A request's id: BLAKE3 of its encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub [u8; 32]);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", &hex::encode(&self.0[..8]))
    }
}

/// One input of a request, as its owner claims it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputClaim {
    /// The coin.
    pub outpoint: Outpoint,
    /// Its amount, sats.
    pub amount: u64,
    /// Its script (P2TR).
    #[serde(with = "serde_bytes_vec")]
    pub script_pubkey: Vec<u8>,
    /// BIP-322 simple proof over [`PairRequest::ownership_message`].
    #[serde(with = "serde_bytes_vec")]
    pub proof: Vec<u8>,
}

/// A pair request, as announced on the pairing's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRequest {
    /// What it mixes.
    pub pairing: Pairing,
    /// Who announces it (the PeerId's bytes; the node's envelope proves it).
    #[serde(with = "serde_bytes_vec")]
    pub author: Vec<u8>,
    /// The coins it spends.
    pub inputs: Vec<InputClaim>,
    /// How many denomination outputs it wants.
    pub mixed_outputs: u32,
    /// Where its change goes.
    pub change_script: Option<Vec<u8>>,
    /// Unix seconds after which it is void.
    pub expiry: u64,
    /// Makes each request distinct.
    pub nonce: [u8; 16],
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not a request, or too large.
    #[error("malformed pair request: {0}")]
    Malformed(String),
    /// For another pairing.
    #[error("the request is for {0:?}, not this pairing")]
    WrongPairing(Pairing),
    /// A bound is exceeded.
    #[error("pair request out of bounds: {0}")]
    Bounds(String),
    /// Expired or too far in the future.
    #[error("the request expires at {expiry}, outside now ({now}) .. now + {MAX_EXPIRY_SECS} s")]
    Expiry {
        /// Its expiry.
        expiry: u64,
        /// Now.
        now: u64,
    },
    /// An input is spent or unknown.
    #[error("input {0} is not an unspent output")]
    Spent(Outpoint),
    /// The claimed amount or script differs from the chain.
    #[error("input {0}: the claimed amount or script differs from the chain")]
    Mismatch(Outpoint),
    /// An input cannot be spent in the next block: unconfirmed, or a
    /// coinbase output younger than [`COINBASE_MATURITY`] blocks. (The
    /// finished transaction would be invalid, wasting everyone's run.)
    #[error(
        "input {outpoint} has {confirmations} confirmations and, as {}, needs {needed} before \
         it can be spent: wait for more blocks",
        if *coinbase { "a coinbase output" } else { "a coin" }
    )]
    NotSpendable {
        /// The input.
        outpoint: Outpoint,
        /// Its confirmations.
        confirmations: u32,
        /// The confirmations it needs.
        needed: u32,
        /// Whether it is a coinbase output.
        coinbase: bool,
    },
    /// An input is not P2TR.
    #[error("input {0} is not a P2TR output; only taproot key-path coins can be mixed")]
    NotTaproot(Outpoint),
    /// An ownership proof fails.
    #[error("input {0}: ownership proof invalid: {1}")]
    Proof(Outpoint, bip322::Bip322Error),
    /// The inputs do not cover outputs and fee.
    #[error("inputs hold {have} sats; the outputs and worst-case fee need {need} sats")]
    Underfunded {
        /// Σ inputs.
        have: u64,
        /// Outputs + fee.
        need: u64,
    },
    /// The chain source failed: not the request's fault, so nobody is
    /// excluded for it.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl RequestError {
    /// The exclusion reason this refusal shows as.
    pub fn reason(&self) -> Reason {
        Reason::InvalidRequest(self.to_string())
    }
}

impl PairRequest {
    /// Builds and signs a request over `coins` (each spent by the matching
    /// key of `keys`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pairing: Pairing,
        author: Vec<u8>,
        coins: &[(Outpoint, TxOut)],
        keys: &[CoinKey],
        mixed_outputs: u32,
        change_script: Option<ScriptBuf>,
        expiry: u64,
        nonce: [u8; 16],
    ) -> Result<Self, RequestError> {
        let mut request = Self {
            pairing,
            author,
            inputs: coins
                .iter()
                .map(|(outpoint, txout)| InputClaim {
                    outpoint: *outpoint,
                    amount: txout.value.to_sat(),
                    script_pubkey: txout.script_pubkey.to_bytes(),
                    proof: Vec::new(),
                })
                .collect(),
            mixed_outputs,
            change_script: change_script.map(|s| s.to_bytes()),
            expiry,
            nonce,
        };
        let message = request.ownership_message();
        for input in &mut request.inputs {
            let key = keys
                .iter()
                .find(|k| k.script_pubkey().as_bytes() == input.script_pubkey.as_slice())
                .ok_or_else(|| {
                    RequestError::Bounds(format!("no key of ours spends input {}", input.outpoint))
                })?;
            input.proof = bip322::sign_simple(key, &message, &nonce_aux(&nonce, &input.outpoint));
        }
        Ok(request)
    }

    /// The encoding that is announced and hashed.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("requests serialise")
    }

    /// Decodes an announced request, refusing oversized ones first.
    pub fn decode(bytes: &[u8]) -> Result<Self, RequestError> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::Malformed(format!(
                "{} bytes exceed {MAX_REQUEST_BYTES}",
                bytes.len()
            )));
        }
        postcard::from_bytes(bytes).map_err(|e| RequestError::Malformed(e.to_string()))
    }

    /// Its id.
    pub fn id(&self) -> RequestId {
        let mut h = blake3::Hasher::new_derive_key("conclave coinjoin pair request v1");
        h.update(&self.encode());
        RequestId(*h.finalize().as_bytes())
    }

    /// What each ownership proof signs: everything but the proofs, so a
    /// proof cannot be lifted into someone else's request.
    pub fn ownership_message(&self) -> Vec<u8> {
        let mut bare = self.clone();
        for input in &mut bare.inputs {
            input.proof.clear();
        }
        let mut h = blake3::Hasher::new_derive_key("conclave coinjoin input ownership v1");
        h.update(&postcard::to_stdvec(&bare).expect("requests serialise"));
        let mut message = b"conclave coinjoin ownership ".to_vec();
        message.extend_from_slice(hex::encode(h.finalize().as_bytes()).as_bytes());
        message
    }

    /// Its outpoints.
    pub fn outpoints(&self) -> Vec<Outpoint> {
        self.inputs.iter().map(|i| i.outpoint).collect()
    }

    /// Its change script.
    pub fn change_script(&self) -> Option<ScriptBuf> {
        self.change_script.clone().map(ScriptBuf::from_bytes)
    }

    /// Its part of the transaction.
    pub fn tx_participant(&self) -> TxParticipant {
        TxParticipant {
            inputs: self
                .inputs
                .iter()
                .map(|i| {
                    (
                        i.outpoint,
                        TxOut {
                            value: Amount::from_sat(i.amount),
                            script_pubkey: ScriptBuf::from_bytes(i.script_pubkey.clone()),
                        },
                    )
                })
                .collect(),
            mixed_outputs: self.mixed_outputs,
            change_script: self.change_script(),
        }
    }

    /// Checks the request's own bounds (no chain access).
    pub fn check_bounds(&self, pairing: &Pairing, now: u64) -> Result<(), RequestError> {
        if self.pairing != *pairing {
            return Err(RequestError::WrongPairing(self.pairing));
        }
        let bounds = |what: String| Err(RequestError::Bounds(what));
        if self.author.is_empty() || self.author.len() > MAX_AUTHOR_LEN {
            return bounds(format!("author of {} bytes", self.author.len()));
        }
        if self.inputs.is_empty() || self.inputs.len() > MAX_INPUTS {
            return bounds(format!("{} inputs (1..={MAX_INPUTS})", self.inputs.len()));
        }
        if self.mixed_outputs == 0 || self.mixed_outputs > MAX_MIXED_OUTPUTS {
            return bounds(format!(
                "{} mixed outputs (1..={MAX_MIXED_OUTPUTS})",
                self.mixed_outputs
            ));
        }
        if let Some(script) = &self.change_script {
            let script = Script::from_bytes(script);
            if script.len() > MAX_CHANGE_SCRIPT_LEN || !script.is_witness_program() {
                return bounds("the change script must be a segwit program".into());
            }
        }
        if self.expiry <= now || self.expiry > now + MAX_EXPIRY_SECS {
            return Err(RequestError::Expiry {
                expiry: self.expiry,
                now,
            });
        }
        let distinct: BTreeSet<Outpoint> = self.outpoints().into_iter().collect();
        if distinct.len() != self.inputs.len() {
            return bounds("an input is listed twice".into());
        }
        Ok(())
    }
}

fn nonce_aux(nonce: &[u8; 16], outpoint: &Outpoint) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("conclave coinjoin ownership aux v1");
    h.update(nonce);
    h.update(&outpoint.txid);
    h.update(&outpoint.vout.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Checks `request` fully: bounds, each input a P2TR coin that is unspent
/// with the claimed amount and script and spendable in the next block, its
/// ownership proof, and funds covering the mixed outputs plus the
/// worst-case fee. One chain lookup (a batch) for all its inputs.
pub fn validate_request(
    request: &PairRequest,
    pairing: &Pairing,
    chain: &dyn ChainSource,
    now: u64,
) -> Result<(), RequestError> {
    check_before_lookup(request, pairing, now)?;
    let utxos = chain.unspent_outputs(&request.outpoints())?;
    check_against_chain(request, pairing, &utxos)
}

/// What can be refused without the chain.
fn check_before_lookup(
    request: &PairRequest,
    pairing: &Pairing,
    now: u64,
) -> Result<(), RequestError> {
    request.check_bounds(pairing, now)?;
    for input in &request.inputs {
        if !Script::from_bytes(&input.script_pubkey).is_p2tr() {
            return Err(RequestError::NotTaproot(input.outpoint));
        }
    }
    Ok(())
}

/// The rest, given the chain's view of each input (in input order).
fn check_against_chain(
    request: &PairRequest,
    pairing: &Pairing,
    utxos: &[Option<Utxo>],
) -> Result<(), RequestError> {
    let message = request.ownership_message();
    let mut have = 0u64;
    for (input, utxo) in request.inputs.iter().zip(utxos) {
        let script = Script::from_bytes(&input.script_pubkey);
        let utxo = utxo.as_ref().ok_or(RequestError::Spent(input.outpoint))?;
        if utxo.txout.value.to_sat() != input.amount
            || utxo.txout.script_pubkey.as_script() != script
        {
            return Err(RequestError::Mismatch(input.outpoint));
        }
        if !utxo.spendable() {
            return Err(RequestError::NotSpendable {
                outpoint: input.outpoint,
                confirmations: utxo.confirmations,
                needed: if utxo.coinbase {
                    COINBASE_MATURITY
                } else {
                    MIN_CONFIRMATIONS
                },
                coinbase: utxo.coinbase,
            });
        }
        bip322::verify_simple(script, &message, &input.proof)
            .map_err(|e| RequestError::Proof(input.outpoint, e))?;
        have = have
            .checked_add(input.amount)
            .ok_or_else(|| RequestError::Bounds("amounts overflow".into()))?;
    }
    let need = pairing.denomination * u64::from(request.mixed_outputs)
        + worst_case_fee(
            request.inputs.len(),
            request.mixed_outputs,
            pairing.fee_rate,
        );
    if have < need {
        return Err(RequestError::Underfunded { have, need });
    }
    Ok(())
}

/// Validates every request of an epoch with one chain lookup (a batch)
/// for all their inputs: the valid ones, and an exclusion (by outpoint)
/// for each refused one. If the chain source fails, nothing is decided
/// and nobody is excluded: the error says what to fix, and the epoch can
/// be validated again.
pub fn validate_all(
    requests: Vec<PairRequest>,
    pairing: &Pairing,
    chain: &dyn ChainSource,
    now: u64,
) -> Result<(Vec<PairRequest>, Vec<Exclusion>), ChainError> {
    let refuse = |request: &PairRequest, e: RequestError| Exclusion {
        outpoints: request.outpoints(),
        reason: e.reason(),
        run: 0,
    };
    let mut refused = Vec::new();
    let mut pending = Vec::new();
    for request in requests {
        match check_before_lookup(&request, pairing, now) {
            Ok(()) => pending.push(request),
            Err(e) => refused.push(refuse(&request, e)),
        }
    }
    let outpoints: Vec<Outpoint> = pending.iter().flat_map(PairRequest::outpoints).collect();
    let utxos = chain.unspent_outputs(&outpoints)?;
    if utxos.len() != outpoints.len() {
        return Err(ChainError::Config(format!(
            "the chain source answered {} of {} lookups: this is a bug in the chain source",
            utxos.len(),
            outpoints.len()
        )));
    }
    let mut valid = Vec::new();
    let mut offset = 0;
    for request in pending {
        let ours = &utxos[offset..offset + request.inputs.len()];
        offset += request.inputs.len();
        match check_against_chain(&request, pairing, ours) {
            Ok(()) => valid.push(request),
            Err(e) => refused.push(refuse(&request, e)),
        }
    }
    Ok((valid, refused))
}

/// A session formed at an epoch tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// Commits to the pairing, the epoch and the sorted request ids.
    pub session_id: [u8; 32],
    /// What is mixed.
    pub pairing: Pairing,
    /// The epoch (unix seconds of the tick).
    pub epoch: u64,
    /// The participants, in run order (sorted by a hash with the session id,
    /// so no one chooses its position).
    pub requests: Vec<PairRequest>,
    /// Requests left out for conflicts, by outpoint.
    pub excluded: Vec<Exclusion>,
    /// Valid requests that did not fit (they wait for the next epoch).
    pub deferred: Vec<RequestId>,
}

/// Too few valid requests for a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} usable requests; a session needs at least {MIN_PARTICIPANTS}")]
pub struct TooFew(pub usize);

/// The session id over `ids` (sorted here).
pub fn session_id(pairing: &Pairing, epoch: u64, ids: &[RequestId]) -> [u8; 32] {
    let mut sorted = ids.to_vec();
    sorted.sort();
    let mut h = blake3::Hasher::new_derive_key("conclave coinjoin session v1");
    h.update(&pairing.denomination.to_le_bytes());
    h.update(&pairing.fee_rate.to_le_bytes());
    h.update(&epoch.to_le_bytes());
    for id in &sorted {
        h.update(&id.0);
    }
    *h.finalize().as_bytes()
}

/// Forms the session of an epoch from the requests this node validated.
/// Requests sharing an outpoint are all excluded (only the key holder can
/// prove ownership, so every such request is the same owner's).
pub fn form_session(
    pairing: Pairing,
    epoch: u64,
    valid: Vec<PairRequest>,
) -> Result<SessionPlan, TooFew> {
    let mut by_id: BTreeMap<RequestId, PairRequest> = BTreeMap::new();
    for request in valid {
        by_id.insert(request.id(), request);
    }
    let mut owners: BTreeMap<Outpoint, Vec<RequestId>> = BTreeMap::new();
    for (id, request) in &by_id {
        for outpoint in request.outpoints() {
            owners.entry(outpoint).or_default().push(*id);
        }
    }
    let mut excluded = Vec::new();
    let mut conflicted: BTreeSet<RequestId> = BTreeSet::new();
    for (outpoint, ids) in &owners {
        if ids.len() > 1 {
            for id in ids {
                if conflicted.insert(*id) {
                    excluded.push(Exclusion {
                        outpoints: by_id[id].outpoints(),
                        reason: Reason::OutpointInTwoRequests(*outpoint),
                        run: 0,
                    });
                }
            }
        }
    }
    let mut chosen = Vec::new();
    let mut deferred = Vec::new();
    let mut outputs = 0usize;
    for (id, request) in by_id {
        if conflicted.contains(&id) {
            continue;
        }
        if chosen.len() == MAX_PARTICIPANTS
            || outputs + request.mixed_outputs as usize > MAX_SESSION_OUTPUTS
        {
            deferred.push(id);
            continue;
        }
        outputs += request.mixed_outputs as usize;
        chosen.push(request);
    }
    if chosen.len() < MIN_PARTICIPANTS {
        return Err(TooFew(chosen.len()));
    }
    let ids: Vec<RequestId> = chosen.iter().map(PairRequest::id).collect();
    let session_id = session_id(&pairing, epoch, &ids);
    chosen.sort_by_key(|r| {
        let mut h = blake3::Hasher::new_derive_key("conclave coinjoin run order v1");
        h.update(&session_id);
        h.update(&r.id().0);
        *h.finalize().as_bytes()
    });
    Ok(SessionPlan {
        session_id,
        pairing,
        epoch,
        requests: chosen,
        excluded,
        deferred,
    })
}

/// When peers' views of the valid requests differ (their key exchanges
/// list different request sets), the session re-forms on the intersection
/// of our view with every `(author, view)` that includes our own request,
/// without the authors of views that do not (they are in a session
/// without us).
pub fn reform_on_intersection(
    own_request: RequestId,
    own_view: &[RequestId],
    other_views: &[(RequestId, Vec<RequestId>)],
) -> Vec<RequestId> {
    let mut common: BTreeSet<RequestId> = own_view.iter().copied().collect();
    for (author, view) in other_views {
        if view.contains(&own_request) {
            let theirs: BTreeSet<RequestId> = view.iter().copied().collect();
            common = common.intersection(&theirs).copied().collect();
        } else {
            common.remove(author);
        }
    }
    common.into_iter().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::{chain::MemoryChain, coin::CoinKey};

    pub(crate) const NOW: u64 = 1_700_000_000;

    /// A funded peer: its key, its coin on `chain`, and a signed request.
    pub(crate) fn funded_request(
        chain: &MemoryChain,
        pairing: Pairing,
        n: u8,
        sats: u64,
        mixed: u32,
    ) -> (PairRequest, CoinKey) {
        let key = CoinKey::from_secret_bytes(&Zeroizing::new([n; 32])).unwrap();
        let outpoint = Outpoint {
            txid: [n; 32],
            vout: 0,
        };
        let txout = TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: key.script_pubkey(),
        };
        chain.add(outpoint, txout.clone());
        let request = PairRequest::new(
            pairing,
            vec![n; 38],
            &[(outpoint, txout)],
            std::slice::from_ref(&key),
            mixed,
            Some(key.script_pubkey()),
            NOW + 600,
            [n; 16],
        )
        .unwrap();
        (request, key)
    }

    fn pairing() -> Pairing {
        Pairing::new(100_000, 2).unwrap()
    }

    #[test]
    fn the_ladder_and_bounds_are_enforced() {
        assert_eq!(Pairing::new(100_000, 3), Err(PairingError::FeeRate(3)));
        assert_eq!(Pairing::new(10, 2), Err(PairingError::Denomination(10)));
        assert_eq!(Pairing::ladder_step(3), Some(5));
        assert_eq!(Pairing::ladder_step(101), None);
        assert_eq!(pairing().topic(), "conclave/coinjoin/v1/100000/2");
    }

    #[test]
    fn a_valid_request_validates_and_roundtrips() {
        let chain = MemoryChain::new();
        let (request, _) = funded_request(&chain, pairing(), 1, 150_000, 1);
        validate_request(&request, &pairing(), &chain, NOW).unwrap();
        let decoded = PairRequest::decode(&request.encode()).unwrap();
        assert_eq!(decoded, request);
        assert_eq!(decoded.id(), request.id());
        assert!(matches!(
            PairRequest::decode(&vec![0u8; MAX_REQUEST_BYTES + 1]),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn lies_and_shortfalls_are_refused() {
        let chain = MemoryChain::new();
        let (request, _) = funded_request(&chain, pairing(), 1, 150_000, 1);
        let o = request.inputs[0].outpoint;

        let mut lie = request.clone();
        lie.inputs[0].amount = 200_000;
        assert_eq!(
            validate_request(&lie, &pairing(), &chain, NOW),
            Err(RequestError::Mismatch(o))
        );

        let mut stolen = request.clone();
        stolen.author = vec![9; 38];
        assert!(
            matches!(
                validate_request(&stolen, &pairing(), &chain, NOW),
                Err(RequestError::Proof(_, bip322::Bip322Error::Invalid))
            ),
            "a proof does not carry over to another author's request"
        );

        let (poor, _) = funded_request(&chain, pairing(), 2, 100_100, 1);
        assert!(matches!(
            validate_request(&poor, &pairing(), &chain, NOW),
            Err(RequestError::Underfunded { have: 100_100, .. })
        ));

        assert!(matches!(
            validate_request(&request, &pairing(), &chain, NOW + 601),
            Err(RequestError::Expiry { .. })
        ));
        assert!(matches!(
            validate_request(&request, &Pairing::new(100_000, 5).unwrap(), &chain, NOW),
            Err(RequestError::WrongPairing(_))
        ));
        chain.spend(&o);
        assert_eq!(
            validate_request(&request, &pairing(), &chain, NOW),
            Err(RequestError::Spent(o))
        );

        let mut too_many = request.clone();
        too_many.mixed_outputs = MAX_MIXED_OUTPUTS + 1;
        assert!(matches!(
            too_many.check_bounds(&pairing(), NOW),
            Err(RequestError::Bounds(_))
        ));
    }

    #[test]
    fn coins_that_cannot_be_spent_in_the_next_block_are_refused() {
        let chain = MemoryChain::new();
        let (request, _) = funded_request(&chain, pairing(), 1, 150_000, 1);
        let o = request.inputs[0].outpoint;
        let txout = chain.unspent_output(&o).unwrap().unwrap().txout;
        let as_coin = |confirmations, coinbase| Utxo {
            txout: txout.clone(),
            confirmations,
            coinbase,
        };
        chain.add_utxo(o, as_coin(0, false));
        assert_eq!(
            validate_request(&request, &pairing(), &chain, NOW),
            Err(RequestError::NotSpendable {
                outpoint: o,
                confirmations: 0,
                needed: MIN_CONFIRMATIONS,
                coinbase: false
            })
        );
        chain.add_utxo(o, as_coin(COINBASE_MATURITY - 1, true));
        let immature = validate_request(&request, &pairing(), &chain, NOW).unwrap_err();
        assert!(
            immature
                .to_string()
                .contains("as a coinbase output, needs 100"),
            "{immature}"
        );
        chain.mine(1);
        validate_request(&request, &pairing(), &chain, NOW).unwrap();
    }

    /// A chain source whose node is down (as when bitcoind stops).
    struct Down;

    impl ChainSource for Down {
        fn unspent_outputs(&self, _: &[Outpoint]) -> Result<Vec<Option<Utxo>>, ChainError> {
            Err(ChainError::Unreachable {
                method: "gettxout".into(),
                url: "http://127.0.0.1:1".into(),
                cause: "connection refused".into(),
                network_hint: String::new(),
            })
        }
        fn transaction(
            &self,
            _: &bitcoin::Txid,
        ) -> Result<Option<crate::chain::ChainTx>, ChainError> {
            unreachable!("validation looks up outputs only")
        }
        fn test_accept(
            &self,
            _: &bitcoin::Transaction,
        ) -> Result<crate::chain::Acceptance, ChainError> {
            unreachable!("validation looks up outputs only")
        }
        fn broadcast(&self, _: &bitcoin::Transaction) -> Result<bitcoin::Txid, ChainError> {
            unreachable!("validation looks up outputs only")
        }
    }

    #[test]
    fn a_chain_source_that_is_down_excludes_nobody() {
        let chain = MemoryChain::new();
        let mut requests: Vec<PairRequest> = (1..=3)
            .map(|n| funded_request(&chain, pairing(), n, 150_000, 1).0)
            .collect();
        let (valid, refused) = validate_all(requests.clone(), &pairing(), &chain, NOW).unwrap();
        assert_eq!((valid.len(), refused.len()), (3, 0));
        assert!(matches!(
            validate_request(&requests[0], &pairing(), &Down, NOW),
            Err(RequestError::Chain(ChainError::Unreachable { .. }))
        ));
        assert!(matches!(
            validate_all(requests.clone(), &pairing(), &Down, NOW),
            Err(ChainError::Unreachable { .. })
        ));
        // Refusals that need no chain still stand on their own.
        requests[1].mixed_outputs = 0;
        let (valid, refused) = validate_all(requests, &pairing(), &chain, NOW).unwrap();
        assert_eq!((valid.len(), refused.len()), (2, 1));
    }

    #[test]
    fn sessions_commit_to_their_requests_and_drop_shared_outpoints() {
        let chain = MemoryChain::new();
        let requests: Vec<PairRequest> = (1..=4)
            .map(|n| funded_request(&chain, pairing(), n, 150_000, 1).0)
            .collect();
        let mut twin = requests[3].clone();
        twin.nonce = [99; 16];
        let mut all = requests.clone();
        all.push(twin.clone());
        let plan = form_session(pairing(), 600, all).unwrap();
        assert_eq!(plan.requests.len(), 3);
        assert_eq!(
            plan.excluded.len(),
            2,
            "both requests spending the outpoint"
        );
        assert!(plan
            .excluded
            .iter()
            .all(|e| e.outpoints == requests[3].outpoints()
                && matches!(e.reason, Reason::OutpointInTwoRequests(_))));
        let mut reversed = requests[..3].to_vec();
        reversed.reverse();
        let again = form_session(pairing(), 600, reversed).unwrap();
        assert_eq!(
            again.session_id, plan.session_id,
            "order of arrival does not matter"
        );
        assert_eq!(
            again.requests, plan.requests,
            "run order is the same everywhere"
        );
        let other_epoch = form_session(pairing(), 1200, requests[..3].to_vec()).unwrap();
        assert_ne!(other_epoch.session_id, plan.session_id);
        assert_eq!(
            form_session(pairing(), 600, requests[..2].to_vec()),
            Err(TooFew(2))
        );
    }

    #[test]
    fn differing_views_reform_on_the_intersection() {
        let id = |n: u8| RequestId([n; 32]);
        let own = [id(1), id(2), id(3), id(4)];
        let views = vec![
            (id(2), vec![id(1), id(2), id(3)]),
            (id(3), vec![id(1), id(2), id(3), id(4), id(5)]),
        ];
        assert_eq!(
            reform_on_intersection(id(1), &own, &views),
            vec![id(1), id(2), id(3)]
        );
    }

    #[test]
    fn the_author_of_a_view_without_us_is_left_out_of_the_reform() {
        let id = |n: u8| RequestId([n; 32]);
        let own = [id(1), id(2), id(3), id(4)];
        // Peer 4 formed a session without us: it will not come over.
        let views = vec![(id(4), vec![id(2), id(3), id(4)])];
        assert_eq!(
            reform_on_intersection(id(1), &own, &views),
            vec![id(1), id(2), id(3)]
        );
    }
}
