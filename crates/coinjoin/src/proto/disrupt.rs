//! Deliberate misbehaviour, for tests only (`cfg(test)` or the
//! `disruptor` cargo feature, which release builds never enable). A
//! disrupting [`super::Session`] computes everything honestly and then
//! deviates in what it publishes, exactly as a hostile peer would.

use crate::exclusion::Phase;

/// How a disruptor misbehaves (in every run it takes part in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// Never publishes its message for this phase.
    Withhold(Phase),
    /// Publishes a second, different message for this phase.
    Equivocate(Phase),
    /// Adds garbage to its slot-reservation vector.
    SlotGarbage,
    /// Adds garbage to its DC-net vector.
    DcGarbage,
    /// Corrupts one of its ML-KEM ciphertexts (pads computed honestly).
    BadCiphertext,
    /// Publishes an invalid signature for its input.
    BadSignature,
    /// Commits to, and mixes, an output key that is not on secp256k1.
    OffCurveOutputKey,
    /// Publishes an X25519 key of small order.
    SmallOrderKey,
    /// Claims its output is missing although it is there.
    FalseAccusation,
    /// Accepts the DC-net's result, then claims a failure (hoping some
    /// peers reveal after others signed).
    AcceptThenAccuse,
    /// Reveals a seed other than the one it committed to.
    BadReveal,
    /// Publishes a DC-net vector one slot short.
    ShortDcNet,
}

use super::messages::Body;
use crate::field::Fe;

/// What a disruptor publishes instead of `body`: nothing, or a message
/// and possibly a second, conflicting one.
pub(crate) fn apply(disruption: Disruption, mut body: Body) -> Option<(Body, Option<Body>)> {
    let phase = body.phase();
    match disruption {
        Disruption::Withhold(p) if p == phase => return None,
        Disruption::Equivocate(p) if p == phase => {
            let mut other = body.clone();
            perturb(&mut other);
            return Some((body, Some(other)));
        }
        Disruption::SlotGarbage
        | Disruption::DcGarbage
        | Disruption::BadCiphertext
        | Disruption::BadSignature
        | Disruption::SmallOrderKey
        | Disruption::BadReveal => {
            let applies = matches!(
                (disruption, &body),
                (Disruption::SlotGarbage, Body::SlotReservation { .. })
                    | (Disruption::DcGarbage, Body::DcNet { .. })
                    | (Disruption::BadCiphertext, Body::Ciphertexts { .. })
                    | (Disruption::BadSignature, Body::Signatures { .. })
                    | (Disruption::SmallOrderKey, Body::KeyExchange { .. })
                    | (Disruption::BadReveal, Body::Reveal { .. })
            );
            if applies {
                perturb(&mut body);
            }
        }
        Disruption::ShortDcNet => {
            if let Body::DcNet { vector, .. } = &mut body {
                vector.pop();
            }
        }
        _ => {}
    }
    Some((body, None))
}

/// Changes a message so that it differs and is wrong.
fn perturb(body: &mut Body) {
    match body {
        Body::KeyExchange { keys, .. } => keys.x25519 = [0; 32],
        Body::Ciphertexts { ciphertexts, .. } => {
            if let Some(c) = ciphertexts.iter_mut().find(|c| !c.0.is_empty()) {
                c.0[100] ^= 0x01;
            }
        }
        Body::SlotReservation { vector, .. } => vector[0] += Fe::ONE,
        Body::DcNet { vector, .. } => vector[0][7] ^= 0x80,
        Body::Accept { seen } => seen.reverse(),
        Body::Reveal { seed, claim, .. } => {
            seed[0] ^= 0x01;
            *claim = claim.map_or(Some(Phase::DcNet), |_| None);
        }
        Body::Signatures { signatures, .. } => {
            if let Some(s) = signatures.first_mut() {
                s.signature[3] ^= 0x01;
            }
        }
    }
}
