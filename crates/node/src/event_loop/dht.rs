//! The DHT: records and provider records put and looked up for callers
//! (at most [`MAX_PENDING_QUERIES`](super::pending::MAX_PENDING_QUERIES) at
//! once; beyond that a caller is told the node is busy), and peers the
//! routing table learns of.

use std::collections::HashSet;

use libp2p::{kad, PeerId};

use super::EventLoop;
use crate::{command::Reply, error::DhtError, events::DiscoverySource};

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
                let outcome = match result {
                    Ok(kad::GetRecordOk::FoundRecord(found)) => Ok(found.record),
                    Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. })
                    | Err(kad::GetRecordError::NotFound { .. }) => Err(DhtError::NotFound),
                    Err(e) => Err(DhtError::Get(e)),
                };
                if let Some(reply) = self.pending.take_get(id) {
                    let found = outcome.is_ok();
                    let _ = reply.send(outcome.map_err(Into::into));
                    if found {
                        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            query.finish();
                        }
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
