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

use crate::{
    behaviour::KAD_MAX_VALUE, clock::unix_secs, error::NodeError,
    identity::envelope::RESOURCE_MAX_TTL,
};

/// Longest accepted resource type or id.
pub const MAX_NAME_LEN: usize = 128;
/// Largest accepted resource data (JSON), in bytes.
pub const MAX_DATA_LEN: usize = 16 * 1024;
/// Longest accepted TTL (one week), as long as a resource record's envelope
/// stays valid.
pub const MAX_TTL: Duration = RESOURCE_MAX_TTL;
/// Live resources one provider keeps per type.
pub const MAX_PER_TYPE: usize = 256;
/// Room left in an index record for its envelope.
const ENVELOPE_ROOM: usize = 8 * 1024;

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
    ) -> Result<(Self, Vec<u8>), NodeError> {
        check_name("type", kind)?;
        check_name("id", id)?;
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(NodeError::InvalidResource(format!(
                "ttl must be between 1 s and {} s",
                MAX_TTL.as_secs()
            )));
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
            return Err(NodeError::InvalidResource(format!(
                "record of {} bytes exceeds {MAX_DATA_LEN} bytes",
                value.len()
            )));
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
    ) -> Result<Self, NodeError> {
        let parsed: ResourceRecord = serde_json::from_slice(value)
            .map_err(|e| NodeError::InvalidResource(format!("malformed record: {e}")))?;
        if parsed.kind != kind || parsed.id != id {
            return Err(NodeError::InvalidResource(
                "record stored under the wrong key".into(),
            ));
        }
        if signer.is_some_and(|s| s != parsed.provider) {
            return Err(NodeError::InvalidResource(format!(
                "record names provider {} but is signed by someone else",
                parsed.provider
            )));
        }
        if parsed.is_expired(unix_secs()) {
            return Err(not_found(kind, id));
        }
        Ok(parsed)
    }
}

/// The error for a resource that does not exist or has expired.
pub(crate) fn not_found(kind: &str, id: &str) -> NodeError {
    NodeError::NotFound(format!("resource {kind}/{id}"))
}

/// Checks a resource type or id.
pub(crate) fn check_name(what: &str, value: &str) -> Result<(), NodeError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(NodeError::InvalidResource(format!(
            "{what} {value:?} must be 1 to {MAX_NAME_LEN} printable characters without '/'"
        )))
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
    pub fn insert(&mut self, record: ResourceRecord) -> Result<Vec<ResourceRecord>, NodeError> {
        let now = unix_secs();
        let entries = self.by_type.entry(record.kind.clone()).or_default();
        entries.retain(|_, r| !r.is_expired(now));
        if entries.len() >= MAX_PER_TYPE && !entries.contains_key(&record.id) {
            return Err(NodeError::InvalidResource(format!(
                "already {MAX_PER_TYPE} live resources of type {:?}",
                record.kind
            )));
        }
        entries.insert(record.id.clone(), record);
        Ok(entries.values().cloned().collect())
    }
}

/// The value of an index record listing `live` (of type `kind`), if it fits
/// one DHT record with its envelope.
pub(crate) fn index_value(kind: &str, live: &[ResourceRecord]) -> Result<Vec<u8>, NodeError> {
    let value = serde_json::to_vec(live).expect("records serialise");
    if value.len() + ENVELOPE_ROOM > KAD_MAX_VALUE {
        return Err(NodeError::InvalidResource(format!(
            "the live resources of type {kind:?} no longer fit one DHT record; use shorter data or fewer ids"
        )));
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
        assert!(ResourceRecord::fetched(&bytes(&good), "t", "b", Some(provider)).is_err());
        assert!(ResourceRecord::fetched(&bytes(&good), "u", "a", Some(provider)).is_err());
        assert!(
            ResourceRecord::fetched(&bytes(&good), "t", "a", Some(PeerId::random())).is_err(),
            "signed by someone other than its provider"
        );
        let expired = record("t", "a", provider, unix_secs() - 1);
        assert!(matches!(
            ResourceRecord::fetched(&bytes(&expired), "t", "a", Some(provider)),
            Err(NodeError::NotFound(_))
        ));
        assert!(ResourceRecord::fetched(b"{not json", "t", "a", None).is_err());
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
        assert!(index.insert(rec("one-too-many", unix_secs() + 60)).is_err());
        assert!(
            index.insert(rec("new", unix_secs() + 90)).is_ok(),
            "replacing is allowed"
        );
    }
}
