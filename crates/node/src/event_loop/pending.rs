//! Requests that wait for the network to answer: callers' replies parked by
//! listener, connection, request or query id until the swarm reports the
//! outcome. Each table that callers can fill is capped; a full one answers
//! [`NodeError::Busy`] at once. No I/O: the event loop starts the work and
//! feeds the outcomes in.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use libp2p::{
    core::transport::ListenerId,
    gossipsub::TopicHash,
    kad::{self, QueryId},
    request_response::OutboundRequestId,
    swarm::ConnectionId,
    Multiaddr, PeerId,
};

use crate::{
    command::Reply,
    error::{NodeError, StartError},
};

/// Direct messages awaiting a reply, at most.
pub(crate) const MAX_PENDING_REQUESTS: usize = 1024;
/// DHT queries in flight, at most.
pub(crate) const MAX_PENDING_QUERIES: usize = 256;
/// Callers waiting for topic peers, at most.
pub(crate) const MAX_TOPIC_WAITS: usize = 256;

/// How many of each kind may wait at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Direct messages awaiting a reply.
    pub requests: usize,
    /// DHT queries (puts, gets, provider announcements and look-ups).
    pub queries: usize,
    /// Waits for peers on a topic.
    pub topic_waits: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            requests: MAX_PENDING_REQUESTS,
            queries: MAX_PENDING_QUERIES,
            topic_waits: MAX_TOPIC_WAITS,
        }
    }
}

/// Distinct records one look-up collects, at most (one per replica of a
/// key: the DHT's replication factor).
pub(crate) const MAX_RECORD_CANDIDATES: usize = 20;

/// A DHT provider look-up: who was found so far, and who waits for them.
type ProviderQuery = (HashSet<PeerId>, Reply<HashSet<PeerId>>);
/// A DHT record look-up: the distinct records found so far (checked when it
/// ends), and who waits for the newest valid one.
pub(crate) type RecordQuery = (Vec<kad::Record>, Reply<kad::Record>);

/// Every parked reply of the event loop.
pub(crate) struct PendingQueries {
    caps: Caps,
    /// Configured listeners not bound yet.
    listeners: HashMap<ListenerId, Multiaddr>,
    /// The first configured listener that failed, told to every waiter.
    listen_failure: Option<(Multiaddr, Arc<std::io::Error>)>,
    listening: Vec<Reply<Vec<Multiaddr>>>,
    dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
    disconnects: HashMap<PeerId, Vec<Reply<()>>>,
    requests: HashMap<OutboundRequestId, (PeerId, Reply<Vec<u8>>)>,
    puts: HashMap<QueryId, Reply<()>>,
    gets: HashMap<QueryId, RecordQuery>,
    providing: HashMap<QueryId, Reply<()>>,
    providers: HashMap<QueryId, ProviderQuery>,
    topic_waits: Vec<(TopicHash, usize, Reply<()>)>,
}

impl PendingQueries {
    /// Tables with `caps`, waiting for the configured `listeners` to bind.
    pub fn new(listeners: HashMap<ListenerId, Multiaddr>, caps: Caps) -> Self {
        Self {
            caps,
            listeners,
            listen_failure: None,
            listening: Vec::new(),
            dials: HashMap::new(),
            disconnects: HashMap::new(),
            requests: HashMap::new(),
            puts: HashMap::new(),
            gets: HashMap::new(),
            providing: HashMap::new(),
            providers: HashMap::new(),
            topic_waits: Vec::new(),
        }
    }

    // ----- listeners -------------------------------------------------------

    /// Parks a caller until every configured listener is bound (or one failed).
    pub fn wait_listening(&mut self, reply: Reply<Vec<Multiaddr>>) {
        self.listening.push(reply);
    }

    /// A listener has its address.
    pub fn listener_ready(&mut self, id: ListenerId) {
        self.listeners.remove(&id);
    }

    /// A listener closed or failed; `true` if it was a configured one still
    /// being bound (start-up fails then).
    pub fn listener_failed(&mut self, id: ListenerId, error: std::io::Error) -> bool {
        let Some(addr) = self.listeners.remove(&id) else {
            return false;
        };
        self.listen_failure = Some((addr, Arc::new(error)));
        true
    }

    /// Answers the callers waiting for the listeners, if the outcome is
    /// known: the failure, or `addrs` once every listener is bound.
    pub fn answer_listening(&mut self, addrs: Vec<Multiaddr>) {
        if let Some((addr, source)) = &self.listen_failure {
            for waiter in self.listening.drain(..) {
                let failure = StartError::Listen {
                    addr: addr.clone(),
                    source: source.clone(),
                };
                let _ = waiter.send(Err(failure.into()));
            }
        } else if self.listeners.is_empty() {
            for waiter in self.listening.drain(..) {
                let _ = waiter.send(Ok(addrs.clone()));
            }
        }
    }

    // ----- dials and disconnects --------------------------------------------

    /// Parks the caller of a dial.
    pub fn add_dial(&mut self, id: ConnectionId, addr: Multiaddr, reply: Reply<PeerId>) {
        self.dials.insert(id, (addr, reply));
    }

    /// The caller of the dial of connection `id`, if any.
    pub fn take_dial(&mut self, id: ConnectionId) -> Option<(Multiaddr, Reply<PeerId>)> {
        self.dials.remove(&id)
    }

    /// Parks a caller until `peer`'s last connection closes. Bounded by the
    /// connected peers: only a connected peer is disconnected.
    pub fn add_disconnect(&mut self, peer: PeerId, reply: Reply<()>) {
        self.disconnects.entry(peer).or_default().push(reply);
    }

    /// Everyone waiting for `peer` to disconnect.
    pub fn take_disconnects(&mut self, peer: &PeerId) -> Vec<Reply<()>> {
        self.disconnects.remove(peer).unwrap_or_default()
    }

    // ----- direct messages --------------------------------------------------

    /// Whether another direct message may await its reply.
    pub fn request_room(&self) -> Result<(), NodeError> {
        room(
            self.requests.len(),
            self.caps.requests,
            "direct messages awaiting a reply",
        )
    }

    /// Parks the caller of direct message `id` to `peer`.
    pub fn add_request(&mut self, id: OutboundRequestId, peer: PeerId, reply: Reply<Vec<u8>>) {
        self.requests.insert(id, (peer, reply));
    }

    /// The caller of direct message `id`, if any.
    pub fn take_request(&mut self, id: OutboundRequestId) -> Option<(PeerId, Reply<Vec<u8>>)> {
        self.requests.remove(&id)
    }

    // ----- DHT queries ------------------------------------------------------

    /// DHT queries in flight.
    pub fn queries(&self) -> usize {
        self.puts.len() + self.gets.len() + self.providing.len() + self.providers.len()
    }

    /// Whether another DHT query may start.
    pub fn query_room(&self) -> Result<(), NodeError> {
        room(self.queries(), self.caps.queries, "DHT queries in flight")
    }

    /// Parks the caller of put query `id`.
    pub fn add_put(&mut self, id: QueryId, reply: Reply<()>) {
        self.puts.insert(id, reply);
    }

    /// The caller of put query `id`, if any.
    pub fn take_put(&mut self, id: QueryId) -> Option<Reply<()>> {
        self.puts.remove(&id)
    }

    /// Parks the caller of get query `id`.
    pub fn add_get(&mut self, id: QueryId, reply: Reply<kad::Record>) {
        self.gets.insert(id, (Vec::new(), reply));
    }

    /// Adds a record found by get query `id`: copies of one already found
    /// are dropped, and beyond [`MAX_RECORD_CANDIDATES`] the rest.
    pub fn found_record(&mut self, id: QueryId, record: kad::Record) {
        if let Some((found, _)) = self.gets.get_mut(&id) {
            if found.len() < MAX_RECORD_CANDIDATES && !found.iter().any(|r| r.value == record.value)
            {
                found.push(record);
            }
        }
    }

    /// The records found by get query `id` and its caller, if any.
    pub fn take_get(&mut self, id: QueryId) -> Option<RecordQuery> {
        self.gets.remove(&id)
    }

    /// Parks the caller of provider announcement `id`.
    pub fn add_providing(&mut self, id: QueryId, reply: Reply<()>) {
        self.providing.insert(id, reply);
    }

    /// The caller of provider announcement `id`, if any.
    pub fn take_providing(&mut self, id: QueryId) -> Option<Reply<()>> {
        self.providing.remove(&id)
    }

    /// Parks the caller of provider look-up `id`.
    pub fn add_providers(&mut self, id: QueryId, reply: Reply<HashSet<PeerId>>) {
        self.providers.insert(id, (HashSet::new(), reply));
    }

    /// Adds providers found by look-up `id`.
    pub fn found_providers(&mut self, id: QueryId, found: impl IntoIterator<Item = PeerId>) {
        if let Some((providers, _)) = self.providers.get_mut(&id) {
            providers.extend(found);
        }
    }

    /// The providers found by look-up `id` and its caller, if any.
    pub fn take_providers(&mut self, id: QueryId) -> Option<ProviderQuery> {
        self.providers.remove(&id)
    }

    // ----- topic waits -------------------------------------------------------

    /// Whether another caller may wait for topic peers.
    pub fn topic_wait_room(&self) -> Result<(), NodeError> {
        room(
            self.topic_waits.len(),
            self.caps.topic_waits,
            "waits for topic peers",
        )
    }

    /// Parks a caller until `count` peers are subscribed to `topic`.
    pub fn add_topic_wait(&mut self, topic: TopicHash, count: usize, reply: Reply<()>) {
        self.topic_waits.push((topic, count, reply));
    }

    /// Takes the waits that `met(topic, count)` says are satisfied; waits
    /// whose caller gave up are dropped.
    pub fn take_met_topic_waits(
        &mut self,
        met: impl Fn(&TopicHash, usize) -> bool,
    ) -> Vec<Reply<()>> {
        let mut done = Vec::new();
        self.topic_waits.retain_mut(|(topic, count, reply)| {
            if reply.is_closed() {
                return false;
            }
            if !met(topic, *count) {
                return true;
            }
            // Swapped for a closed sender, which the retain drops.
            done.push(std::mem::replace(reply, tokio::sync::oneshot::channel().0));
            false
        });
        done
    }
}

fn room(used: usize, cap: usize, table: &'static str) -> Result<(), NodeError> {
    if used >= cap {
        return Err(NodeError::Busy { table, cap });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use libp2p::{
        kad::store::MemoryStore,
        request_response::{self, ProtocolSupport},
        StreamProtocol,
    };
    use tokio::sync::oneshot;

    use super::*;
    use crate::protocol::{DirectRequest, DirectResponse};

    fn caps(n: usize) -> Caps {
        Caps {
            requests: n,
            queries: n,
            topic_waits: n,
        }
    }

    /// Query ids as kad hands them out; a behaviour outside a swarm does no I/O.
    fn query_ids(n: usize) -> Vec<QueryId> {
        let me = PeerId::random();
        let mut kad = kad::Behaviour::new(me, MemoryStore::new(me));
        (0..n)
            .map(|i| kad.get_record(kad::RecordKey::new(&format!("k{i}"))))
            .collect()
    }

    fn request_ids(n: usize) -> Vec<OutboundRequestId> {
        let mut direct = request_response::cbor::Behaviour::<DirectRequest, DirectResponse>::new(
            [(StreamProtocol::new("/t"), ProtocolSupport::Full)],
            request_response::Config::default(),
        );
        let peer = PeerId::random();
        (0..n)
            .map(|_| {
                direct.send_request(
                    &peer,
                    DirectRequest {
                        protocol: "/t".into(),
                        payload: Vec::new(),
                    },
                )
            })
            .collect()
    }

    fn busy_table(result: Result<(), NodeError>) -> (&'static str, usize) {
        match result {
            Err(NodeError::Busy { table, cap }) => (table, cap),
            other => panic!("expected Busy, got {other:?}"),
        }
    }

    #[test]
    fn default_caps_are_the_documented_ones() {
        let pending = PendingQueries::new(HashMap::new(), Caps::default());
        assert!(pending.query_room().is_ok());
        let c = Caps::default();
        assert_eq!((c.requests, c.queries, c.topic_waits), (1024, 256, 256));
    }

    #[test]
    fn dht_queries_of_every_kind_share_one_cap_and_free_it_when_answered() {
        let mut pending = PendingQueries::new(HashMap::new(), caps(4));
        let ids = query_ids(5);
        pending.add_put(ids[0], oneshot::channel().0);
        pending.add_get(ids[1], oneshot::channel().0);
        pending.add_providing(ids[2], oneshot::channel().0);
        assert!(pending.query_room().is_ok(), "three of four");
        pending.add_providers(ids[3], oneshot::channel().0);
        assert_eq!(pending.queries(), 4);
        assert_eq!(
            busy_table(pending.query_room()),
            ("DHT queries in flight", 4)
        );
        assert!(pending.take_get(ids[1]).is_some());
        assert!(pending.take_get(ids[1]).is_none(), "answered once");
        assert!(pending.query_room().is_ok(), "an answer frees a slot");
        assert!(
            pending.take_put(ids[4]).is_none(),
            "unknown ids are nobody's"
        );
    }

    #[test]
    fn record_lookups_collect_distinct_records_up_to_a_bound() {
        let mut pending = PendingQueries::new(HashMap::new(), caps(4));
        let id = query_ids(1)[0];
        pending.add_get(id, oneshot::channel().0);
        let key = kad::RecordKey::new(&"k");
        let record = |v: usize| kad::Record::new(key.clone(), v.to_le_bytes().to_vec());
        pending.found_record(id, record(0));
        pending.found_record(id, record(0));
        for v in 1..MAX_RECORD_CANDIDATES * 2 {
            pending.found_record(id, record(v));
        }
        let (found, _) = pending.take_get(id).unwrap();
        assert_eq!(found.len(), MAX_RECORD_CANDIDATES);
        assert_eq!(found[0], record(0));
        assert_eq!(found[1], record(1), "copies are kept once");
    }

    #[test]
    fn provider_lookups_collect_what_they_find() {
        let mut pending = PendingQueries::new(HashMap::new(), caps(4));
        let id = query_ids(1)[0];
        let (reply, _rx) = oneshot::channel();
        pending.add_providers(id, reply);
        let (a, b) = (PeerId::random(), PeerId::random());
        pending.found_providers(id, [a]);
        pending.found_providers(id, [a, b]);
        let (found, _) = pending.take_providers(id).unwrap();
        assert_eq!(found, HashSet::from([a, b]));
        pending.found_providers(id, [a]);
        assert!(
            pending.take_providers(id).is_none(),
            "finished look-ups collect nothing"
        );
    }

    #[test]
    fn direct_requests_are_capped_apart_from_queries() {
        let mut pending = PendingQueries::new(HashMap::new(), caps(2));
        let ids = request_ids(2);
        let peer = PeerId::random();
        for id in &ids {
            pending.add_request(*id, peer, oneshot::channel().0);
        }
        assert_eq!(
            busy_table(pending.request_room()),
            ("direct messages awaiting a reply", 2)
        );
        assert!(pending.query_room().is_ok());
        assert_eq!(pending.take_request(ids[0]).map(|(p, _)| p), Some(peer));
        assert!(pending.request_room().is_ok());
    }

    #[test]
    fn topic_waits_are_capped_answered_when_met_and_dropped_when_abandoned() {
        let mut pending = PendingQueries::new(HashMap::new(), caps(3));
        let (a, b) = (TopicHash::from_raw("a"), TopicHash::from_raw("b"));
        let (met_tx, mut met_rx) = oneshot::channel();
        let (wait_tx, mut wait_rx) = oneshot::channel();
        let (gone_tx, gone_rx) = oneshot::channel();
        pending.add_topic_wait(a.clone(), 2, met_tx);
        pending.add_topic_wait(a.clone(), 3, wait_tx);
        pending.add_topic_wait(b.clone(), 1, gone_tx);
        assert_eq!(
            busy_table(pending.topic_wait_room()),
            ("waits for topic peers", 3)
        );
        drop(gone_rx);

        let peers_on = |t: &TopicHash| if *t == a { 2 } else { 5 };
        let done = pending.take_met_topic_waits(|t, count| peers_on(t) >= count);
        assert_eq!(done.len(), 1, "only the wait for 2 peers on a is met");
        for reply in done {
            reply.send(Ok(())).unwrap();
        }
        assert!(matches!(met_rx.try_recv(), Ok(Ok(()))));
        assert!(wait_rx.try_recv().is_err(), "still waiting");
        assert!(
            pending.topic_wait_room().is_ok(),
            "the met and the abandoned wait left"
        );
        let done = pending.take_met_topic_waits(|_, _| true);
        assert_eq!(done.len(), 1, "only the wait for 3 peers was left");
    }

    #[test]
    fn disconnect_waiters_are_answered_together() {
        let mut pending = PendingQueries::new(HashMap::new(), caps(1));
        let peer = PeerId::random();
        pending.add_disconnect(peer, oneshot::channel().0);
        pending.add_disconnect(peer, oneshot::channel().0);
        assert_eq!(pending.take_disconnects(&peer).len(), 2);
        assert!(pending.take_disconnects(&peer).is_empty());
    }

    #[test]
    fn listening_is_answered_once_every_listener_is_bound_or_one_failed() {
        let (one, two) = (ListenerId::next(), ListenerId::next());
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let listeners = HashMap::from([(one, addr.clone()), (two, addr.clone())]);
        let mut pending = PendingQueries::new(listeners.clone(), caps(1));
        let (reply, mut rx) = oneshot::channel();
        pending.wait_listening(reply);
        pending.listener_ready(one);
        pending.answer_listening(vec![addr.clone()]);
        assert!(rx.try_recv().is_err(), "one listener still binding");
        pending.listener_ready(two);
        pending.answer_listening(vec![addr.clone()]);
        assert_eq!(rx.try_recv().unwrap().unwrap(), [addr]);

        let mut pending = PendingQueries::new(listeners, caps(1));
        assert!(!pending.listener_failed(ListenerId::next(), std::io::Error::other("x")));
        assert!(pending.listener_failed(one, std::io::Error::other("address in use")));
        for _ in 0..2 {
            let (reply, mut rx) = oneshot::channel();
            pending.wait_listening(reply);
            pending.answer_listening(Vec::new());
            let err = rx.try_recv().unwrap().unwrap_err();
            assert!(
                matches!(err, NodeError::Start(StartError::Listen { .. })),
                "every waiter hears of the failure: {err}"
            );
            assert!(err.to_string().contains("address in use"), "{err}");
        }
    }
}
