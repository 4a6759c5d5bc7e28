//! The DHT: records and provider records put and looked up for callers
//! (at most [`MAX_PENDING_QUERIES`](super::pending::MAX_PENDING_QUERIES) at
//! once; beyond that a caller is told the node is busy), records and
//! provider records peers PUT to us (stored only as the
//! [`RecordPolicy`](super::record_policy::RecordPolicy) allows, after their
//! check off the loop), and peers the routing table learns of.
//!
//! A look-up collects every distinct record the query finds (ours
//! included) and answers with the newest one that passes the check, so
//! neither garbage nor an older copy that some peer serves first hides it.

use std::{collections::HashSet, time::Instant};

use libp2p::{
    kad::{self, store::RecordStore},
    PeerId,
};

use super::{record_policy::Stored, EventLoop, Internal, RecordChecked};
use crate::{
    clock::unix_secs,
    command::Reply,
    error::{DhtError, NodeError},
    events::DiscoverySource,
    records, resources,
    stats::DhtStoreStats,
};

impl EventLoop {
    /// Whether another query may start; if not, the caller is told so.
    fn query_room<T>(&self, reply: Reply<T>) -> Option<Reply<T>> {
        match self.pending.query_room() {
            Ok(()) => Some(reply),
            Err(busy) => {
                let _ = reply.send(Err(busy));
                None
            }
        }
    }

    pub(super) fn put_record(&mut self, record: kad::Record, reply: Reply<()>) {
        let Some(reply) = self.query_room(reply) else {
            return;
        };
        // Our own record takes the key over from whoever stored it before.
        self.records.forget(&record.key);
        let kad = &mut self.swarm.behaviour_mut().kad;
        match kad.put_record(record, kad::Quorum::One) {
            Ok(id) => self.pending.add_put(id, reply),
            Err(source) => {
                let _ = reply.send(Err(DhtError::Store {
                    op: "record",
                    source,
                }
                .into()));
            }
        }
    }

    pub(super) fn get_record(&mut self, key: kad::RecordKey, reply: Reply<kad::Record>) {
        let Some(reply) = self.query_room(reply) else {
            return;
        };
        let id = self.swarm.behaviour_mut().kad.get_record(key);
        self.pending.add_get(id, reply);
    }

    pub(super) fn start_providing(&mut self, key: kad::RecordKey, reply: Reply<()>) {
        let Some(reply) = self.query_room(reply) else {
            return;
        };
        match self.swarm.behaviour_mut().kad.start_providing(key) {
            Ok(id) => self.pending.add_providing(id, reply),
            Err(source) => {
                let _ = reply.send(Err(DhtError::Store {
                    op: "provider record",
                    source,
                }
                .into()));
            }
        }
    }

    pub(super) fn get_providers(&mut self, key: kad::RecordKey, reply: Reply<HashSet<PeerId>>) {
        let Some(reply) = self.query_room(reply) else {
            return;
        };
        let id = self.swarm.behaviour_mut().kad.get_providers(key);
        self.pending.add_providers(id, reply);
    }

    pub(super) fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => self.on_query_progress(id, result, step),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_record(source, record),
            // Stored by kad itself (unfiltered).
            kad::Event::InboundRequest {
                request: kad::InboundRequest::PutRecord { record: None, .. },
            } => self.records.handled(),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(record),
                    },
            } => self.on_inbound_provider(record),
            kad::Event::RoutingUpdated {
                peer,
                addresses,
                is_new_peer: true,
                ..
            } => {
                self.discovered(peer, addresses.into_vec(), DiscoverySource::Kad);
            }
            _ => {}
        }
    }

    fn on_query_progress(
        &mut self,
        id: kad::QueryId,
        result: kad::QueryResult,
        step: kad::ProgressStep,
    ) {
        match result {
            kad::QueryResult::PutRecord(result) => {
                if let Some(reply) = self.pending.take_put(id) {
                    let _ = reply.send(result.map(drop).map_err(|e| DhtError::Put(e).into()));
                }
            }
            kad::QueryResult::GetRecord(result) => {
                let failure = match result {
                    Ok(kad::GetRecordOk::FoundRecord(found)) => {
                        self.pending.found_record(id, found.record);
                        None
                    }
                    Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. })
                    | Err(kad::GetRecordError::NotFound { .. }) => Some(DhtError::NotFound),
                    Err(e) => Some(DhtError::Get(e)),
                };
                if step.last {
                    if let Some((found, reply)) = self.pending.take_get(id) {
                        self.answer_lookup(found, reply, failure.unwrap_or(DhtError::NotFound));
                    }
                }
            }
            kad::QueryResult::StartProviding(result) => {
                if let Some(reply) = self.pending.take_providing(id) {
                    let _ = reply.send(result.map(drop).map_err(|e| DhtError::Provide(e).into()));
                }
            }
            kad::QueryResult::GetProviders(result) => {
                let done = match result {
                    Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                        self.pending.found_providers(id, providers);
                        step.last
                    }
                    Ok(kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => true,
                    // A timeout still returns what was found so far.
                    Err(e) => {
                        tracing::debug!(%e, "provider lookup ended early");
                        true
                    }
                };
                if done || step.last {
                    if let Some((found, reply)) = self.pending.take_providers(id) {
                        let _ = reply.send(Ok(found));
                    }
                }
            }
            _ => {}
        }
    }
}

impl EventLoop {
    /// Answers a look-up with the newest valid record among `found`
    /// (checked off the loop), or `failure` if none is valid.
    fn answer_lookup(&self, found: Vec<kad::Record>, reply: Reply<kad::Record>, failure: DhtError) {
        if found.is_empty() {
            let _ = reply.send(Err(failure.into()));
            return;
        }
        let trust = self.trust.clone();
        let checks = self.lookup_checks.clone();
        tokio::spawn(async move {
            let Ok(_permit) = checks.acquire_owned().await else {
                return;
            };
            let picked =
                tokio::task::spawn_blocking(move || records::newest_valid(&trust, found)).await;
            let outcome = match picked {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(DhtError::NotFound.into()),
                Err(_) => Err(NodeError::Stopped),
            };
            let _ = reply.send(outcome);
        });
    }

    /// A record a peer PUT: cheap checks here, the envelope off the loop.
    fn on_inbound_record(&mut self, source: PeerId, record: kad::Record) {
        let permit = match self
            .records
            .admit(source, record.value.len(), Instant::now())
        {
            Ok(permit) => permit,
            Err(refusal) => {
                tracing::debug!(%source, %refusal, "DHT record not stored");
                self.records.handled();
                return;
            }
        };
        let trust = self.trust.clone();
        let internal = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let verdict = records::check(&trust, &record.key, &record.value);
            let _ = internal.blocking_send(Internal::RecordChecked(Box::new(RecordChecked {
                source,
                record,
                verdict,
            })));
            drop(permit);
        });
    }

    /// Stores a checked inbound record if the policy allows it.
    pub(super) fn on_record_checked(&mut self, checked: RecordChecked) {
        let RecordChecked {
            source,
            mut record,
            verdict,
        } = checked;
        self.records.handled();
        let meta = match verdict {
            Ok(meta) => meta,
            Err(e) => {
                tracing::debug!(%source, %e, "DHT record refused");
                return;
            }
        };
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let now = Instant::now();
        let existing = store
            .get(&record.key)
            .filter(|r| !r.is_expired(now))
            .map(|r| match records::stored_signature(&r.value) {
                Some((signer, timestamp_ms)) => Stored {
                    signer: Some(signer),
                    timestamp_ms,
                },
                None => Stored {
                    signer: None,
                    timestamp_ms: 0,
                },
            });
        if let Err(refusal) = self
            .records
            .decide(&record.key, meta, existing, unix_secs())
        {
            tracing::debug!(%source, %refusal, "DHT record not stored");
            return;
        }
        // The record lives no longer than what it carries says.
        let expiry = resources::expiry_instant(meta.expires_at);
        record.expires = Some(record.expires.map_or(expiry, |e| e.min(expiry)));
        let key = record.key.clone();
        if let Err(e) = store.put(record) {
            tracing::debug!(%source, %e, "DHT record not stored");
            self.records.forget(&key);
        }
    }

    /// A provider record a peer announced (kad checked that the peer is
    /// the provider): stored at the peer's PUT rate; the store bounds
    /// providers per key and keys.
    fn on_inbound_provider(&mut self, record: kad::ProviderRecord) {
        if let Err(refusal) = self.records.admit_provider(record.provider, Instant::now()) {
            tracing::debug!(provider = %record.provider, %refusal, "provider record not stored");
            return;
        }
        let store = self.swarm.behaviour_mut().kad.store_mut();
        if let Err(e) = store.add_provider(record) {
            tracing::debug!(%e, "provider record not stored");
        }
    }

    pub(super) fn dht_store_stats(&mut self) -> DhtStoreStats {
        let from_peers = self.records.stored();
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let (records, bytes) = store
            .records()
            .fold((0, 0), |(n, b), r| (n + 1, b + r.value.len()));
        DhtStoreStats {
            records,
            bytes,
            from_peers,
            puts_handled: self.records.handled_count(),
        }
    }

    /// Drops records whose content expired from the store.
    pub(super) fn prune_records(&mut self) {
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let now = Instant::now();
        for key in self.records.prune(unix_secs()) {
            if store.get(&key).is_some_and(|r| r.is_expired(now)) {
                store.remove(&key);
            }
        }
    }
}
