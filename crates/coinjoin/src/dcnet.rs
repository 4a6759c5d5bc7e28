//! The two DC-nets of a run.
//!
//! **Slot reservation** (exponential DC-net over GF(2^127 − 1)): with `n`
//! messages in the run, each peer publishes `n` field elements, the k-th
//! being Σ m^k over its own messages plus, for every other peer, a pad
//! derived from their pad key: added by the lower-indexed peer of the pair,
//! subtracted by the higher. The pads cancel in the sum over all peers,
//! which leaves the power sums of all messages and nothing about who sent
//! which; [`crate::solver`] recovers the messages, and the position of
//! each in ascending order is its slot.
//!
//! **XOR DC-net**: each peer publishes `n` slots of 32 bytes, the XOR of its
//! pads with every other peer, with its output keys XORed into its
//! reserved slots. The XOR of all vectors is the list of output keys, one
//! per slot, without their owners.

use crate::{field::Fe, kex::PadKey};

/// Bytes of one XOR DC-net slot: an x-only public key.
pub const SLOT_LEN: usize = 32;

/// One XOR DC-net slot.
pub type Slot = [u8; SLOT_LEN];

fn pad_stream(key: &PadKey, purpose: &[u8]) -> blake3::OutputReader {
    let mut h = blake3::Hasher::new_keyed(key.as_bytes());
    h.update(purpose);
    h.finalize_xof()
}

/// A pad key with another peer, and that peer's index in the run.
#[derive(Debug)]
pub struct PeerPad<'a> {
    /// The other peer's index.
    pub peer: u32,
    /// Our pad key with it.
    pub key: &'a PadKey,
}

/// Our slot-reservation vector: the power sums of `messages` (k = 1..total)
/// plus our pads. `me` is our index; `pads` has one entry per other peer.
pub fn slot_reservation_vector(
    me: u32,
    messages: &[Fe],
    total: usize,
    pads: &[PeerPad<'_>],
) -> Vec<Fe> {
    let mut vector = crate::solver::power_sums(messages, total);
    for pad in pads {
        let mut stream = pad_stream(pad.key, b"slot reservation");
        for v in vector.iter_mut() {
            let mut bytes = [0u8; 16];
            stream.fill(&mut bytes);
            let element = Fe::from_uniform_bytes(&bytes);
            if me < pad.peer {
                *v += element;
            } else {
                *v -= element;
            }
        }
    }
    vector
}

/// The element-wise sum of every peer's slot-reservation vector (the power
/// sums, when every peer followed the protocol). All vectors must have the
/// same length.
pub fn sum_slot_reservations(vectors: &[&[Fe]]) -> Vec<Fe> {
    let len = vectors.first().map_or(0, |v| v.len());
    let mut sums = vec![Fe::ZERO; len];
    for vector in vectors {
        for (s, &v) in sums.iter_mut().zip(vector.iter()) {
            *s += v;
        }
    }
    sums
}

/// The slot of each of `messages` among the ascending `roots`, or `None`
/// if one is missing.
pub fn slots_of(messages: &[Fe], roots: &[Fe]) -> Option<Vec<usize>> {
    messages
        .iter()
        .map(|m| roots.binary_search(m).ok())
        .collect()
}

/// Our XOR DC-net vector: our pads over `total` slots with each of
/// `outputs` (slot, key) XORed in.
pub fn dc_net_vector(total: usize, outputs: &[(usize, Slot)], pads: &[PeerPad<'_>]) -> Vec<Slot> {
    let mut vector = vec![[0u8; SLOT_LEN]; total];
    for pad in pads {
        let mut stream = pad_stream(pad.key, b"xor dc-net");
        for slot in vector.iter_mut() {
            let mut bytes = [0u8; SLOT_LEN];
            stream.fill(&mut bytes);
            xor_into(slot, &bytes);
        }
    }
    for (index, key) in outputs {
        if let Some(slot) = vector.get_mut(*index) {
            xor_into(slot, key);
        }
    }
    vector
}

/// The XOR of every peer's DC-net vector: the output keys, slot by slot.
pub fn xor_dc_nets(vectors: &[&[Slot]]) -> Vec<Slot> {
    let len = vectors.first().map_or(0, |v| v.len());
    let mut out = vec![[0u8; SLOT_LEN]; len];
    for vector in vectors {
        for (o, v) in out.iter_mut().zip(vector.iter()) {
            xor_into(o, v);
        }
    }
    out
}

fn xor_into(target: &mut Slot, other: &Slot) {
    for (t, o) in target.iter_mut().zip(other) {
        *t ^= o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kex::{pad_key, PairSecrets, RunContext};

    /// Pad keys for `n` peers as if their key exchange had run: key[i][j].
    fn pad_keys(n: u32) -> Vec<Vec<Option<PadKey>>> {
        let run = RunContext {
            session_id: [1; 32],
            run: 0,
        };
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        (i != j).then(|| {
                            let (lo, hi) = (i.min(j), i.max(j));
                            let s = [lo as u8, hi as u8].repeat(16);
                            let s: [u8; 32] = s.try_into().unwrap();
                            pad_key(
                                &run,
                                lo,
                                hi,
                                &PairSecrets {
                                    diffie_hellman: &s,
                                    lo_to_hi: &s,
                                    hi_to_lo: &s,
                                    ciphertext_lo_to_hi: &[],
                                    ciphertext_hi_to_lo: &[],
                                    x25519_lo: &s,
                                    x25519_hi: &s,
                                },
                            )
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn pads_of(keys: &[Vec<Option<PadKey>>], me: usize) -> Vec<PeerPad<'_>> {
        keys[me]
            .iter()
            .enumerate()
            .filter_map(|(j, k)| {
                k.as_ref().map(|key| PeerPad {
                    peer: j as u32,
                    key,
                })
            })
            .collect()
    }

    #[test]
    fn pads_cancel_and_messages_come_back_in_slots() {
        let n = 5u32;
        let keys = pad_keys(n);
        // Peer i sends i + 1 messages.
        let messages: Vec<Vec<Fe>> = (0..n)
            .map(|i| {
                (0..=i)
                    .map(|j| Fe::from(u64::from(100 * i + j + 7)))
                    .collect()
            })
            .collect();
        let total: usize = messages.iter().map(Vec::len).sum();
        let vectors: Vec<Vec<Fe>> = (0..n as usize)
            .map(|i| slot_reservation_vector(i as u32, &messages[i], total, &pads_of(&keys, i)))
            .collect();
        let refs: Vec<&[Fe]> = vectors.iter().map(Vec::as_slice).collect();
        let sums = sum_slot_reservations(&refs);
        let all: Vec<Fe> = messages.iter().flatten().copied().collect();
        assert_eq!(sums, crate::solver::power_sums(&all, total));
        assert_ne!(
            vectors[0],
            crate::solver::power_sums(&messages[0], total),
            "padded"
        );
        let roots = crate::solver::solve(&sums, &[0; 32]).unwrap();

        let dc: Vec<Vec<Slot>> = (0..n as usize)
            .map(|i| {
                let slots = slots_of(&messages[i], &roots).unwrap();
                let outputs: Vec<(usize, Slot)> =
                    slots.iter().map(|&s| (s, [i as u8 + 1; 32])).collect();
                dc_net_vector(total, &outputs, &pads_of(&keys, i))
            })
            .collect();
        let refs: Vec<&[Slot]> = dc.iter().map(Vec::as_slice).collect();
        let keys_out = xor_dc_nets(&refs);
        for (i, own) in messages.iter().enumerate() {
            for s in slots_of(own, &roots).unwrap() {
                assert_eq!(keys_out[s], [i as u8 + 1; 32]);
            }
        }
        assert!(slots_of(&[Fe::from(1)], &roots).is_none());
    }
}
