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

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use libp2p::{kad, PeerId};
use serde::{Deserialize, Serialize};

use crate::{
    clock::unix_secs, error::NodeError, handle::NodeHandle, identity::envelope::MessageKind,
};

/// Longest accepted resource type or id.
pub const MAX_NAME_LEN: usize = 128;
/// Largest accepted resource data (JSON), in bytes.
pub const MAX_DATA_LEN: usize = 16 * 1024;
/// Longest accepted TTL (one week).
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Live resources one provider keeps per type.
pub const MAX_PER_TYPE: usize = 256;

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
}

fn check_name(what: &str, value: &str) -> Result<(), NodeError> {
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

fn record_key(kind: &str, id: &str) -> String {
    format!("/conclave/res/{kind}/{id}")
}

fn type_key(kind: &str) -> kad::RecordKey {
    kad::RecordKey::new(&format!("/conclave/res-type/{kind}"))
}

fn index_key(kind: &str, provider: &PeerId) -> String {
    format!("/conclave/res-index/{kind}/{provider}")
}

/// Our own live announcements, per type (bounded).
#[derive(Debug, Default)]
pub(crate) struct ResourceIndex {
    by_type: HashMap<String, BTreeMap<String, ResourceRecord>>,
}

impl ResourceIndex {
    /// Adds or replaces a record and returns the live records of its type.
    fn insert(&mut self, record: ResourceRecord) -> Result<Vec<ResourceRecord>, NodeError> {
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

fn parse_record(bytes: &[u8]) -> Result<ResourceRecord, NodeError> {
    serde_json::from_slice(bytes)
        .map_err(|e| NodeError::InvalidResource(format!("malformed record: {e}")))
}

/// Converts Unix seconds in the future to a DHT expiry instant.
fn expiry_instant(expires_at: u64) -> Instant {
    Instant::now() + Duration::from_secs(expires_at.saturating_sub(unix_secs()))
}

impl NodeHandle {
    /// Announces a resource for `ttl`. Stored locally at once and replicated
    /// to the peers closest to its key when there are any.
    pub async fn announce_resource(
        &self,
        kind: &str,
        id: &str,
        data: serde_json::Value,
        ttl: Duration,
    ) -> Result<ResourceRecord, NodeError> {
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
            provider: self.peer_id(),
            expires_at: unix_secs() + ttl.as_secs(),
        };
        let value = serde_json::to_vec(&record).expect("records serialise");
        if value.len() > MAX_DATA_LEN {
            return Err(NodeError::InvalidResource(format!(
                "record of {} bytes exceeds {MAX_DATA_LEN} bytes",
                value.len()
            )));
        }
        let live = self
            .shared
            .resources
            .lock()
            .expect("resource index lock")
            .insert(record.clone())?;
        let index_expiry = live
            .iter()
            .map(|r| r.expires_at)
            .max()
            .unwrap_or(record.expires_at);

        // Records are signed envelopes bound to their key: nobody else can
        // publish under our name, nor move a record to another key.
        let key = record_key(kind, id);
        let mut dht_record = kad::Record::new(
            kad::RecordKey::new(&key),
            self.wrap(MessageKind::Resource, &key, value).await?,
        );
        dht_record.expires = Some(expiry_instant(record.expires_at));
        let index_name = index_key(kind, &self.peer_id());
        let index_value = serde_json::to_vec(&live).expect("records serialise");
        if index_value.len() + 8 * 1024 > crate::behaviour::KAD_MAX_VALUE {
            return Err(NodeError::InvalidResource(format!(
                "the live resources of type {kind:?} no longer fit one DHT record; use shorter data or fewer ids"
            )));
        }
        let mut index = kad::Record::new(
            kad::RecordKey::new(&index_name),
            self.wrap(MessageKind::Resource, &index_name, index_value)
                .await?,
        );
        index.expires = Some(expiry_instant(index_expiry));

        // Replication failures (e.g. no peers yet) leave the local copy in
        // place, served to anyone who asks us; they are not fatal.
        for r in [dht_record, index] {
            if let Err(e) = self.put_record(r).await {
                tracing::warn!(%e, kind, id, "resource stored locally only");
            }
        }
        if let Err(e) = self.start_providing(type_key(kind)).await {
            tracing::warn!(%e, kind, "provider record stored locally only");
        }
        Ok(record)
    }

    /// Finds live resources of `kind` from every provider.
    pub async fn discover_resources(&self, kind: &str) -> Result<Vec<ResourceRecord>, NodeError> {
        check_name("type", kind)?;
        let providers = self.get_providers(type_key(kind)).await?;
        let now = unix_secs();
        let mut found = Vec::new();
        for provider in providers {
            let index_name = index_key(kind, &provider);
            let record = match self.get_record(kad::RecordKey::new(&index_name)).await {
                Ok(r) => r,
                Err(NodeError::NotFound(_)) => continue,
                Err(e) => {
                    tracing::debug!(%e, %provider, "resource index unavailable");
                    continue;
                }
            };
            let value = match self.unwrap(
                &record.value,
                MessageKind::Resource,
                &index_name,
                Some(provider),
            ) {
                Ok((_, value)) => value,
                Err(e) => {
                    tracing::debug!(%e, %provider, "resource index refused");
                    continue;
                }
            };
            let Ok(list) = serde_json::from_slice::<Vec<ResourceRecord>>(&value) else {
                tracing::debug!(%provider, "malformed resource index ignored");
                continue;
            };
            found.extend(
                list.into_iter()
                    .filter(|r| r.kind == kind && r.provider == provider && !r.is_expired(now)),
            );
        }
        found.sort_by(|a, b| (&a.id, a.provider).cmp(&(&b.id, b.provider)));
        Ok(found)
    }

    /// Fetches one resource; `NotFound` if it does not exist or has expired.
    pub async fn get_resource(&self, kind: &str, id: &str) -> Result<ResourceRecord, NodeError> {
        check_name("type", kind)?;
        check_name("id", id)?;
        let not_found = || NodeError::NotFound(format!("resource {kind}/{id}"));
        let key = record_key(kind, id);
        let record = match self.get_record(kad::RecordKey::new(&key)).await {
            Ok(r) => r,
            Err(NodeError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e),
        };
        let (signer, value) = self.unwrap(&record.value, MessageKind::Resource, &key, None)?;
        let parsed = parse_record(&value)?;
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
            return Err(not_found());
        }
        Ok(parsed)
    }
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
