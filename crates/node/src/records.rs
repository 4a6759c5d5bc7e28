//! DHT records the node stores and serves: the keys it knows, who may sign
//! each, and the check every record passes before it is stored (an inbound
//! PUT) or returned (a look-up).
//!
//! Two namespaces exist (see [`resources`](crate::resources)):
//! `/conclave/res/<type>/<id>`, a resource whose provider signed it, and
//! `/conclave/res-index/<type>/<provider>`, the index that provider signed.
//! Any other key is refused: nobody can park data in our store under a
//! name we do not check.

use libp2p::{kad, PeerId};

use crate::{
    clock::unix_secs,
    identity::envelope::{Envelope, EnvelopeError, MessageKind},
    resources::{self, ResourceError, ResourceRecord, MAX_TTL},
    trust::Trust,
};

/// Largest DHT record value (its envelope included) stored, served or
/// returned.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// Records the DHT store holds, at most (with [`MAX_RECORD_BYTES`] each,
/// 16 MiB).
pub const MAX_STORED_RECORDS: usize = 1024;

/// Why a DHT record was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Larger than [`MAX_RECORD_BYTES`].
    #[error("DHT record of {size} bytes exceeds {MAX_RECORD_BYTES} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// The key is in none of the node's namespaces.
    #[error("DHT key {0:?} is not a resource or resource index key")]
    UnknownKey(String),
    /// The envelope does not verify.
    #[error("DHT record refused: {0}")]
    Envelope(#[source] EnvelopeError),
    /// The resource inside is malformed, stored under another key, signed
    /// by someone other than its provider, or expired.
    #[error("DHT record refused: {0}")]
    Resource(#[source] ResourceError),
    /// An index signed by someone other than the provider its key names
    /// (the signer).
    #[error("resource index signed by {0}, not by the provider its key names")]
    IndexSigner(PeerId),
    /// An index whose value is not a list of resource records.
    #[error("malformed resource index")]
    MalformedIndex,
}

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordName {
    /// A resource `(kind, id)`.
    Resource { kind: String, id: String },
    /// `provider`'s index of its resources of `kind`.
    Index { kind: String, provider: PeerId },
}

impl RecordName {
    /// Parses a DHT key; the key is also the context its envelope is signed in.
    pub fn parse(key: &kad::RecordKey) -> Result<(String, Self), RecordError> {
        let unknown = || RecordError::UnknownKey(String::from_utf8_lossy(key.as_ref()).into());
        let text = std::str::from_utf8(key.as_ref()).map_err(|_| unknown())?;
        let name = if let Some(rest) = text.strip_prefix("/conclave/res/") {
            let (kind, id) = rest.split_once('/').ok_or_else(unknown)?;
            resources::check_name("type", kind).map_err(|_| unknown())?;
            resources::check_name("id", id).map_err(|_| unknown())?;
            RecordName::Resource {
                kind: kind.into(),
                id: id.into(),
            }
        } else if let Some(rest) = text.strip_prefix("/conclave/res-index/") {
            let (kind, provider) = rest.split_once('/').ok_or_else(unknown)?;
            resources::check_name("type", kind).map_err(|_| unknown())?;
            RecordName::Index {
                kind: kind.into(),
                provider: provider.parse().map_err(|_| unknown())?,
            }
        } else {
            return Err(unknown());
        };
        Ok((text.to_string(), name))
    }
}

/// Who signed a checked record and when: what the store policy compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordMeta {
    /// The signer (`None` when envelopes are off).
    pub signer: Option<PeerId>,
    /// Signing time, ms since the epoch (arrival time when envelopes are
    /// off, so the last one stored wins).
    pub timestamp_ms: u64,
    /// Unix seconds after which the record is gone.
    pub expires_at: u64,
}

/// Checks a record fully: size, key, both signatures, that the key's owner
/// signed it and that it is live. Costs two signature checks: run it off
/// the event loop.
pub(crate) fn check(
    trust: &Trust,
    key: &kad::RecordKey,
    value: &[u8],
) -> Result<RecordMeta, RecordError> {
    if value.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { size: value.len() });
    }
    let (context, name) = RecordName::parse(key)?;
    let claimed = match &name {
        RecordName::Index { provider, .. } => Some(*provider),
        RecordName::Resource { .. } => None,
    };
    let (signer, timestamp_ms, payload) = if trust.envelopes() {
        let verified = trust
            .verify(value, MessageKind::Resource, &context, claimed)
            .map_err(RecordError::Envelope)?;
        (
            Some(verified.sender),
            verified.timestamp_ms,
            verified.payload,
        )
    } else {
        (None, crate::clock::unix_ms(), value.to_vec())
    };
    let now = unix_secs();
    let expires_at = match name {
        RecordName::Resource { kind, id } => {
            ResourceRecord::fetched(&payload, &kind, &id, signer)
                .map_err(RecordError::Resource)?
                .expires_at
        }
        RecordName::Index { kind, provider } => {
            if let Some(signer) = signer.filter(|s| *s != provider) {
                return Err(RecordError::IndexSigner(signer));
            }
            let live = resources::parse_index(&payload, &kind, provider, now)
                .ok_or(RecordError::MalformedIndex)?;
            // An index lives as long as its longest-lived entry; an empty
            // one no longer than any resource may.
            live.iter()
                .map(|r| r.expires_at)
                .max()
                .unwrap_or(timestamp_ms / 1000 + MAX_TTL.as_secs())
        }
    };
    Ok(RecordMeta {
        signer,
        timestamp_ms,
        expires_at,
    })
}

/// Signer and signing time of a record that was checked before it was
/// stored (or that we signed): read from its envelope without verifying.
/// `None` if it is no envelope (envelopes off).
pub(crate) fn stored_signature(value: &[u8]) -> Option<(PeerId, u64)> {
    let envelope: Envelope = postcard::from_bytes(value).ok()?;
    Some((envelope.sender, envelope.timestamp_ms))
}

/// Picks the newest record among `candidates` that passes [`check`];
/// `None` if none does. Runs the checks: call it off the event loop.
pub(crate) fn newest_valid(trust: &Trust, candidates: Vec<kad::Record>) -> Option<kad::Record> {
    candidates
        .into_iter()
        .filter_map(|record| match check(trust, &record.key, &record.value) {
            Ok(meta) => Some((meta.timestamp_ms, record)),
            Err(e) => {
                tracing::debug!(%e, "DHT record skipped");
                None
            }
        })
        .max_by_key(|(timestamp, _)| *timestamp)
        .map(|(_, record)| record)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::identity::NodeIdentity;

    fn signed(trust: &Trust, key: &str, payload: Vec<u8>) -> kad::Record {
        kad::Record::new(
            kad::RecordKey::new(&key),
            trust.wrap(MessageKind::Resource, key, payload).unwrap(),
        )
    }

    fn resource(trust: &Trust, kind: &str, id: &str, data: serde_json::Value) -> kad::Record {
        let me = trust.identity().peer_id();
        let (_, value) =
            ResourceRecord::announce(kind, id, data, me, Duration::from_secs(60)).unwrap();
        signed(trust, &resources::record_key(kind, id), value)
    }

    #[test]
    fn keys_outside_the_namespaces_are_unknown() {
        for key in [
            "/other/x",
            "/conclave/res/only-type",
            "/conclave/res-index/t/not-a-peer",
            "/conclave/res/t/a b",
        ] {
            assert!(
                matches!(
                    RecordName::parse(&kad::RecordKey::new(&key)),
                    Err(RecordError::UnknownKey(_))
                ),
                "{key}"
            );
        }
        let peer = PeerId::random();
        let (context, name) =
            RecordName::parse(&kad::RecordKey::new(&resources::index_key("t", &peer))).unwrap();
        assert_eq!(context, format!("/conclave/res-index/t/{peer}"));
        assert_eq!(
            name,
            RecordName::Index {
                kind: "t".into(),
                provider: peer
            }
        );
    }

    #[test]
    fn a_signed_resource_passes_and_garbage_or_a_moved_record_does_not() {
        let trust = Trust::new(NodeIdentity::generate(), true);
        let good = resource(&trust, "t", "a", serde_json::json!(1));
        let meta = check(&trust, &good.key, &good.value).unwrap();
        assert_eq!(meta.signer, Some(trust.identity().peer_id()));
        assert!(meta.expires_at > unix_secs());

        assert!(matches!(
            check(&trust, &good.key, b"garbage"),
            Err(RecordError::Envelope(EnvelopeError::UnknownVersion { .. }))
        ));
        assert!(matches!(
            check(&trust, &good.key, b"\x02garbage"),
            Err(RecordError::Envelope(EnvelopeError::Malformed(_)))
        ));
        // The same envelope under another key: its context does not match.
        let moved = kad::RecordKey::new(&resources::record_key("t", "b"));
        assert!(matches!(
            check(&trust, &moved, &good.value),
            Err(RecordError::Envelope(EnvelopeError::WrongKind { .. }))
        ));
        let big = vec![0; MAX_RECORD_BYTES + 1];
        assert!(matches!(
            check(&trust, &good.key, &big),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_resource_naming_another_provider_or_an_index_of_another_peer_is_refused() {
        let trust = Trust::new(NodeIdentity::generate(), true);
        let other = PeerId::random();
        let (_, value) = ResourceRecord::announce(
            "t",
            "a",
            serde_json::json!(1),
            other,
            Duration::from_secs(60),
        )
        .unwrap();
        let record = signed(&trust, &resources::record_key("t", "a"), value);
        assert!(matches!(
            check(&trust, &record.key, &record.value),
            Err(RecordError::Resource(ResourceError::WrongSigner { .. }))
        ));

        let index = signed(&trust, &resources::index_key("t", &other), b"[]".to_vec());
        assert!(matches!(
            check(&trust, &index.key, &index.value),
            Err(RecordError::IndexSigner(_))
        ));
        let me = trust.identity().peer_id();
        let own = signed(&trust, &resources::index_key("t", &me), b"[]".to_vec());
        assert!(check(&trust, &own.key, &own.value).is_ok());
        let bad = signed(&trust, &resources::index_key("t", &me), b"{".to_vec());
        assert!(matches!(
            check(&trust, &bad.key, &bad.value),
            Err(RecordError::MalformedIndex)
        ));
    }

    #[test]
    fn the_newest_valid_candidate_wins_whatever_comes_first() {
        let trust = Trust::new(NodeIdentity::generate(), true);
        let old = resource(&trust, "t", "a", serde_json::json!("old"));
        std::thread::sleep(Duration::from_millis(2));
        let new = resource(&trust, "t", "a", serde_json::json!("new"));
        let garbage = kad::Record::new(old.key.clone(), b"garbage".to_vec());
        let picked = newest_valid(&trust, vec![garbage.clone(), old.clone(), new.clone()]);
        assert_eq!(picked.map(|r| r.value), Some(new.value.clone()));
        let picked = newest_valid(&trust, vec![new.clone(), old]);
        assert_eq!(picked.map(|r| r.value), Some(new.value));
        assert!(newest_valid(&trust, vec![garbage]).is_none());
        assert_eq!(
            stored_signature(&new_value(&trust)).map(|(s, _)| s),
            Some(trust.identity().peer_id())
        );
        assert!(stored_signature(b"garbage").is_none());
    }

    fn new_value(trust: &Trust) -> Vec<u8> {
        resource(trust, "t", "b", serde_json::json!(0)).value
    }
}
