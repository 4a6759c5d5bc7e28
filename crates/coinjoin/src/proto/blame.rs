//! Blame by replay: with every participant's revealed seed, recompute
//! what each should have sent in each phase, given what the others
//! actually sent, and name whoever's messages differ.
//!
//! The replay goes phase by phase and stops at the first phase with a
//! deviator (later phases depend on it) or at the first phase whose
//! messages are not all at hand. An honest peer's messages always replay
//! exactly, so no honest peer is ever named here.

use crate::{
    coin::is_valid_output_key,
    dcnet::{self, PeerPad, Slot},
    exclusion::{Phase, Reason},
    field::Fe,
    kex::{PadKey, PublicKeys, RunContext, RunKeys, RunSeed, ValidPublicKeys},
    proto::messages::Ciphertext,
    solver,
};

/// Everything published in a run, plus the revealed secrets.
#[derive(Debug)]
pub struct Transcript<'a> {
    /// The run.
    pub run: RunContext,
    /// Mixed outputs per participant, in run order.
    pub counts: &'a [u32],
    /// Each participant's published keys and commitment.
    pub key_exchanges: Vec<(&'a PublicKeys, &'a [u8; 32])>,
    /// Each participant's ciphertexts, if all arrived.
    pub ciphertexts: Option<Vec<&'a [Ciphertext]>>,
    /// Each participant's slot-reservation vector, if all arrived.
    pub slot_reservations: Option<Vec<&'a [Fe]>>,
    /// Each participant's DC-net vector, if all arrived.
    pub dc_nets: Option<Vec<&'a [Slot]>>,
    /// Each participant's revealed seed and output keys.
    pub reveals: Vec<(RunSeed, &'a [Slot])>,
}

/// The participants (by run index) whose messages do not follow from
/// their revealed secrets, with the reason for each.
pub fn replay(t: &Transcript<'_>) -> Vec<(usize, Reason)> {
    let n = t.key_exchanges.len();
    let mut blamed = Vec::new();
    // Key exchange: the seed gives the published keys and commitment.
    let mut keys = Vec::with_capacity(n);
    let mut valid = Vec::with_capacity(n);
    for (p, ((public, commitment), (seed, outputs))) in
        t.key_exchanges.iter().zip(&t.reveals).enumerate()
    {
        let derived = RunKeys::derive(seed, &t.run);
        if derived.public() != *public
            || seed.commitment(&t.run, outputs) != **commitment
            || outputs.len() != t.counts[p] as usize
        {
            blamed.push((p, Reason::Deviated(Phase::KeyExchange)));
        } else if !outputs.iter().all(is_valid_output_key) {
            blamed.push((p, Reason::InvalidOutputKey));
        }
        keys.push(derived);
        match public.validate() {
            Ok(v) => valid.push(v),
            // Refused at key exchange already; nothing further to replay.
            Err(e) => {
                blamed.push((p, Reason::InvalidKey(e.to_string())));
                return blamed;
            }
        }
    }
    if !blamed.is_empty() {
        return blamed;
    }
    let Some(ciphertexts) = &t.ciphertexts else {
        return blamed;
    };
    // Ciphertexts: deterministic encapsulations from each seed.
    for p in 0..n {
        for q in (0..n).filter(|&q| q != p) {
            let expected = keys[p].encapsulate(q as u32, &valid[q]).ciphertext;
            if ciphertexts[p].get(q).map(|c| &c.0) != Some(&expected) {
                blamed.push((p, Reason::Deviated(Phase::Ciphertexts)));
                break;
            }
        }
    }
    if !blamed.is_empty() {
        return blamed;
    }
    let Some(reservations) = &t.slot_reservations else {
        return blamed;
    };
    // Slot reservation: each peer's pads as it must have computed them.
    let total: usize = t.counts.iter().map(|&c| c as usize).sum();
    let mut pad_keys: Vec<Vec<(u32, PadKey)>> = Vec::with_capacity(n);
    let mut messages = Vec::with_capacity(n);
    for p in 0..n {
        let mut pads = Vec::with_capacity(n - 1);
        for q in (0..n).filter(|&q| q != p) {
            match keys[p].pad_key_with(
                p as u32,
                q as u32,
                t.key_exchanges[q].0,
                &valid[q],
                &ciphertexts[q][p].0,
            ) {
                Ok(key) => pads.push((q as u32, key)),
                // A ciphertext of the wrong size was refused on arrival.
                Err(_) => blamed.push((q, Reason::Deviated(Phase::Ciphertexts))),
            }
        }
        pad_keys.push(pads);
        messages.push(t.reveals[p].0.slot_messages(&t.run, t.counts[p] as usize));
    }
    if !blamed.is_empty() {
        blamed.sort_by_key(|(p, _)| *p);
        blamed.dedup();
        return blamed;
    }
    let peer_pads = |p: usize| -> Vec<PeerPad<'_>> {
        pad_keys[p]
            .iter()
            .map(|(peer, key)| PeerPad { peer: *peer, key })
            .collect()
    };
    for p in 0..n {
        let expected = dcnet::slot_reservation_vector(p as u32, &messages[p], total, &peer_pads(p));
        if reservations[p] != expected.as_slice() {
            blamed.push((p, Reason::Deviated(Phase::SlotReservation)));
        }
    }
    if !blamed.is_empty() {
        return blamed;
    }
    let Some(dc_nets) = &t.dc_nets else {
        return blamed;
    };
    // XOR DC-net: the slots follow from the (now trusted) reservation.
    let sums = dcnet::sum_slot_reservations(reservations);
    let Ok(roots) = solver::solve(&sums, &t.run.session_id) else {
        // Every reservation replayed exactly yet they do not solve: two
        // peers' random messages collided. Nobody deviated.
        return blamed;
    };
    for p in 0..n {
        let Some(slots) = dcnet::slots_of(&messages[p], &roots) else {
            return blamed;
        };
        let outputs: Vec<(usize, Slot)> = slots
            .into_iter()
            .zip(t.reveals[p].1.iter().copied())
            .collect();
        let expected = dcnet::dc_net_vector(total, &outputs, &peer_pads(p));
        if dc_nets[p] != expected.as_slice() {
            blamed.push((p, Reason::Deviated(Phase::DcNet)));
        }
    }
    blamed
}

/// Our own keys' view used by the live run, shared with the replay so both
/// compute pads the same way.
pub(crate) fn pads_for(
    keys: &RunKeys,
    me: usize,
    publics: &[&PublicKeys],
    valid: &[ValidPublicKeys],
    ciphertexts_to_me: &[&[u8]],
) -> Result<Vec<(u32, PadKey)>, usize> {
    let mut pads = Vec::with_capacity(publics.len());
    for q in (0..publics.len()).filter(|&q| q != me) {
        let key = keys
            .pad_key_with(
                me as u32,
                q as u32,
                publics[q],
                &valid[q],
                ciphertexts_to_me[q],
            )
            .map_err(|_| q)?;
        pads.push((q as u32, key));
    }
    Ok(pads)
}
