//! Resources announced in the DHT: typed records with an expiry.
//!
//! Layout in the DHT, for a resource `(type, id)` announced by provider `P`:
//! - `/conclave/res/<type>/<id>`: the record itself (found by `get_resource`);
//! - provider record on `/conclave/res-type/<type>`: `P` offers this type;
//! - `/conclave/res-index/<type>/<P>`: every live record of that type by `P`.
//!
//! `discover_resources(type)` finds the providers, then reads each provider's
//! index. Records carry `expires_at` and the DHT copies expire with them, so an
//! expired resource is never returned.
//!
//! This module holds the records, their keys and checks and our own index;
//! the [`NodeHandle`](crate::NodeHandle) methods (`announce_resource`,
//! `discover_resources`, `get_resource`) do the DHT work with them.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use libp2p::{kad, PeerId};
use serde::{Deserialize, Serialize};

use crate::{clock::unix_secs, identity::envelope::RESOURCE_MAX_TTL, records::MAX_RECORD_BYTES};

/// Longest accepted resource type or id.
pub const MAX_NAME_LEN: usize = 128;
/// Largest accepted resource record (JSON), in bytes: with its envelope it
/// fits one DHT record ([`MAX_RECORD_BYTES`]).
pub const MAX_DATA_LEN: usize = MAX_RECORD_BYTES - ENVELOPE_ROOM;
/// Longest accepted TTL (one week), as long as a resource record's envelope
/// stays valid.
pub const MAX_TTL: Duration = RESOURCE_MAX_TTL;
/// Live resources one provider keeps per type.
pub const MAX_PER_TYPE: usize = 256;
/// Room left in a DHT record for its envelope (ML-DSA-65 key and
/// signature, Ed25519 signature, key, about 5.5 KiB).
const ENVELOPE_ROOM: usize = 6 * 1024;

/// Why a resource was refused or not found.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A type or id is empty, too long or contains '/' or spaces.
    #[error(
        "resource {what} {value:?} must be 1 to {MAX_NAME_LEN} printable characters without '/'"
    )]
    Name {
        /// "type" or "id".
        what: &'static str,
        /// What was given.
        value: String,
    },
    /// The TTL is zero or longer than [`MAX_TTL`].
    #[error("resource ttl must be between 1 s and {} s", MAX_TTL.as_secs())]
    Ttl,
    /// The record is larger than [`MAX_DATA_LEN`].
    #[error("resource record of {size} bytes exceeds {MAX_DATA_LEN} bytes; use shorter data")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// We announce [`MAX_PER_TYPE`] live resources of the type already.
    #[error("already {MAX_PER_TYPE} live resources of type {kind:?}; reuse their ids or let some expire")]
    TooMany {
        /// The type.
        kind: String,
    },
    /// Our index of the type would not fit one DHT record.
    #[error("the live resources of type {kind:?} no longer fit one DHT record; use shorter data or fewer ids")]
    IndexTooLarge {
        /// The type.
        kind: String,
    },
    /// A fetched record is not a resource record.
    #[error("malformed resource record: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A fetched record belongs to another type or id.
    #[error("resource record stored under the wrong key")]
    WrongKey,
    /// A fetched record was signed by someone other than its provider.
    #[error("resource record names provider {provider} but is signed by someone else")]
    WrongSigner {
        /// The provider it names.
        provider: PeerId,
    },
    /// No such resource, or it expired.
    #[error("resource {kind}/{id} not found")]
    NotFound {
        /// Its type.
        kind: String,
        /// Its id.
        id: String,
    },
}

/// One announced resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecord {
    /// Resource type, such as `signer` or `agent`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Id, unique within the type and provider.
    pub id: String,
    /// Application data.
    pub data: serde_json::Value,
    /// The peer that announced it.
    pub provider: PeerId,
    /// Unix time (seconds) after which it is gone.
    pub expires_at: u64,
}

impl ResourceRecord {
    /// Whether the record has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at <= now
    }

    /// A record `provider` announces for `ttl` from now, with its JSON
    /// encoding; names, TTL and size are checked.
    pub(crate) fn announce(
        kind: &str,
        id: &str,
        data: serde_json::Value,
        provider: PeerId,
        ttl: Duration,
    ) -> Result<(Self, Vec<u8>), ResourceError> {
        check_name("type", kind)?;
        check_name("id", id)?;
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(ResourceError::Ttl);
        }
        let record = ResourceRecord {
            kind: kind.to_string(),
            id: id.to_string(),
            data,
            provider,
            expires_at: unix_secs() + ttl.as_secs(),
        };
        let value = serde_json::to_vec(&record).expect("records serialise");
        if value.len() > MAX_DATA_LEN {
            return Err(ResourceError::TooLarge { size: value.len() });
        }
        Ok((record, value))
    }

    /// Checks a record fetched from `key` (type `kind`, id `id`) whose
    /// envelope `signer` signed: it must be stored under its own key, be
    /// signed by its provider and be live.
    pub(crate) fn fetched(
        value: &[u8],
        kind: &str,
        id: &str,
        signer: Option<PeerId>,
    ) -> Result<Self, ResourceError> {
        let parsed: ResourceRecord =
            serde_json::from_slice(value).map_err(ResourceError::Malformed)?;
        if parsed.kind != kind || parsed.id != id {
            return Err(ResourceError::WrongKey);
        }
        if signer.is_some_and(|s| s != parsed.provider) {
            return Err(ResourceError::WrongSigner {
                provider: parsed.provider,
            });
        }
        if parsed.is_expired(unix_secs()) {
            return Err(not_found(kind, id));
        }
        Ok(parsed)
    }
}

/// The error for a resource that does not exist or has expired.
pub(crate) fn not_found(kind: &str, id: &str) -> ResourceError {
    ResourceError::NotFound {
        kind: kind.to_string(),
        id: id.to_string(),
    }
}

/// Checks a resource type or id.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), ResourceError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(ResourceError::Name {
            what,
            value: value.to_string(),
        })
    }
}

/// The DHT key of the record of resource `(kind, id)`.
pub(crate) fn record_key(kind: &str, id: &str) -> String {
    format!("/conclave/res/{kind}/{id}")
}

/// The DHT key whose providers offer resources of `kind`.
pub(crate) fn type_key(kind: &str) -> kad::RecordKey {
    kad::RecordKey::new(&format!("/conclave/res-type/{kind}"))
}

/// The DHT key of `provider`'s index of its resources of `kind`.
pub(crate) fn index_key(kind: &str, provider: &PeerId) -> String {
    format!("/conclave/res-index/{kind}/{provider}")
}

/// Our own live announcements, per type (bounded).
#[derive(Debug, Default)]
pub(crate) struct ResourceIndex {
    by_type: HashMap<String, BTreeMap<String, ResourceRecord>>,
}

impl ResourceIndex {
    /// Adds or replaces a record and returns the live records of its type.
    pub fn insert(&mut self, record: ResourceRecord) -> Result<Vec<ResourceRecord>, ResourceError> {
        let now = unix_secs();
        let entries = self.by_type.entry(record.kind.clone()).or_default();
        entries.retain(|_, r| !r.is_expired(now));
        if entries.len() >= MAX_PER_TYPE && !entries.contains_key(&record.id) {
            return Err(ResourceError::TooMany { kind: record.kind });
        }
        entries.insert(record.id.clone(), record);
        Ok(entries.values().cloned().collect())
    }
}

/// The value of an index record listing `live` (of type `kind`), if it fits
/// one DHT record with its envelope.
pub(crate) fn index_value(kind: &str, live: &[ResourceRecord]) -> Result<Vec<u8>, ResourceError> {
    let value = serde_json::to_vec(live).expect("records serialise");
    if value.len() > MAX_DATA_LEN {
        return Err(ResourceError::IndexTooLarge {
            kind: kind.to_string(),
        });
    }
    Ok(value)
}

/// The live records of `kind` by `provider` in an index record's value;
/// `None` if it is malformed.
pub(crate) fn parse_index(
    value: &[u8],
    kind: &str,
    provider: PeerId,
    now: u64,
) -> Option<Vec<ResourceRecord>> {
    let list: Vec<ResourceRecord> = serde_json::from_slice(value).ok()?;
    Some(
        list.into_iter()
            .filter(|r| r.kind == kind && r.provider == provider && !r.is_expired(now))
            .collect(),
    )
}

/// Converts Unix seconds in the future to a DHT expiry instant.
pub(crate) fn expiry_instant(expires_at: u64) -> Instant {
    Instant::now() + Duration::from_secs(expires_at.saturating_sub(unix_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("type", "signer").is_ok());
        assert!(check_name("type", "a/b").is_err());
        assert!(check_name("type", "").is_err());
        assert!(check_name("id", &"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    fn record(kind: &str, id: &str, provider: PeerId, expires_at: u64) -> ResourceRecord {
        ResourceRecord {
            kind: kind.into(),
            id: id.into(),
            data: serde_json::json!({}),
            provider,
            expires_at,
        }
    }

    #[test]
    fn announcements_check_names_ttl_and_size() {
        let me = PeerId::random();
        let data = || serde_json::json!({"k": 1});
        let ttl = Duration::from_secs(60);
        let (record, value) = ResourceRecord::announce("t", "a", data(), me, ttl).unwrap();
        assert_eq!((record.kind.as_str(), record.id.as_str()), ("t", "a"));
        assert!(record.expires_at.abs_diff(unix_secs() + 60) <= 1);
        assert_eq!(
            serde_json::from_slice::<ResourceRecord>(&value).unwrap(),
            record
        );
        for bad_ttl in [Duration::ZERO, MAX_TTL + Duration::from_secs(1)] {
            assert!(ResourceRecord::announce("t", "a", data(), me, bad_ttl).is_err());
        }
        assert!(ResourceRecord::announce("t/x", "a", data(), me, ttl).is_err());
        assert!(ResourceRecord::announce("t", "", data(), me, ttl).is_err());
        let big = serde_json::json!("x".repeat(MAX_DATA_LEN));
        assert!(ResourceRecord::announce("t", "a", big, me, ttl).is_err());
    }

    #[test]
    fn fetched_records_must_match_their_key_signer_and_clock() {
        let provider = PeerId::random();
        let live = unix_secs() + 60;
        let bytes = |r: &ResourceRecord| serde_json::to_vec(r).unwrap();
        let good = record("t", "a", provider, live);
        assert_eq!(
            ResourceRecord::fetched(&bytes(&good), "t", "a", Some(provider)).unwrap(),
            good
        );
        for (kind, id) in [("t", "b"), ("u", "a")] {
            assert!(matches!(
                ResourceRecord::fetched(&bytes(&good), kind, id, Some(provider)),
                Err(ResourceError::WrongKey)
            ));
        }
        let forger = PeerId::random();
        assert!(matches!(
            ResourceRecord::fetched(&bytes(&good), "t", "a", Some(forger)),
            Err(ResourceError::WrongSigner { provider: p }) if p == provider
        ));
        let expired = record("t", "a", provider, unix_secs() - 1);
        assert!(matches!(
            ResourceRecord::fetched(&bytes(&expired), "t", "a", Some(provider)),
            Err(ResourceError::NotFound { .. })
        ));
        assert!(matches!(
            ResourceRecord::fetched(b"{not json", "t", "a", None),
            Err(ResourceError::Malformed(_))
        ));
    }

    #[test]
    fn an_index_yields_only_the_providers_live_records_of_its_type() {
        let provider = PeerId::random();
        let live = unix_secs() + 60;
        let list = vec![
            record("t", "a", provider, live),
            record("u", "b", provider, live),
            record("t", "c", PeerId::random(), live),
            record("t", "d", provider, 1),
        ];
        let value = index_value("t", &list).unwrap();
        let found = parse_index(&value, "t", provider, unix_secs()).unwrap();
        assert_eq!(found, [record("t", "a", provider, live)]);
        assert!(parse_index(b"[{]", "t", provider, 0).is_none());
        let many: Vec<ResourceRecord> = (0..MAX_PER_TYPE)
            .map(|i| ResourceRecord {
                data: serde_json::json!("x".repeat(MAX_DATA_LEN / 2)),
                ..record("t", &format!("r{i}"), provider, live)
            })
            .collect();
        assert!(
            index_value("t", &many).is_err(),
            "larger than one DHT record"
        );
    }

    #[test]
    fn index_drops_expired_and_is_bounded() {
        let provider = PeerId::random();
        let rec = |id: &str, expires_at| ResourceRecord {
            kind: "t".into(),
            id: id.into(),
            data: serde_json::json!({}),
            provider,
            expires_at,
        };
        let mut index = ResourceIndex::default();
        index.insert(rec("old", 1)).unwrap();
        let live = index.insert(rec("new", unix_secs() + 60)).unwrap();
        assert_eq!(live.len(), 1, "expired record pruned");
        for i in 0..MAX_PER_TYPE - 1 {
            index
                .insert(rec(&format!("r{i}"), unix_secs() + 60))
                .unwrap();
        }
        assert!(matches!(
            index.insert(rec("one-too-many", unix_secs() + 60)),
            Err(ResourceError::TooMany { kind }) if kind == "t"
        ));
        assert!(
            index.insert(rec("new", unix_secs() + 90)).is_ok(),
            "replacing is allowed"
        );
    }
}
