//! What the service keeps in the profile's database
//! (`conclave_node::store`): our requests with their status and history,
//! the exclusion record with its expiries, and which wallet scripts were
//! handed out. Nothing secret: every key is re-derived from the wallet's
//! seed in the keychain.
//!
//! Writes go to one thread in the order they were made, so the actor never
//! waits on the disk and a newer status is never overwritten by an older.

use std::sync::mpsc;

use conclave_node::store::{
    redb::{self, ReadableDatabase, ReadableTable, TableDefinition},
    Database,
};
use serde::{Deserialize, Serialize};

use super::status::RequestStatus;
use crate::{
    coin::Outpoint,
    exclusion::{Strike, Strikes},
    pairing::RequestId,
};

const REQUESTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("coinjoin.requests");
const STRIKES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("coinjoin.strikes");
const WALLET: TableDefinition<&str, u32> = TableDefinition::new("coinjoin.wallet");
const NEXT_RECEIVE: &str = "next_receive";
/// Writes waiting for the writer thread.
const WRITE_QUEUE: usize = 1024;

/// A request as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRequest {
    /// The encoded [`crate::pairing::PairRequest`].
    pub request: Vec<u8>,
    /// The most fee we pay.
    pub max_fee: Option<u64>,
    /// Its status (JSON, as the daemon shows it).
    pub status: Vec<u8>,
}

/// The database failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the CoinJoin history in the profile's database cannot be used: {0}; move state.redb aside to start afresh")]
pub struct StoreError(pub String);

fn fail(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// What was stored.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Our requests, with their statuses.
    pub requests: Vec<(StoredRequest, RequestStatus)>,
    /// The exclusion record.
    pub strikes: Strikes,
    /// Receive addresses handed out.
    pub next_receive: u32,
}

enum Write {
    Request(RequestId, StoredRequest),
    Strike(Outpoint, Strike),
    NextReceive(u32),
    /// Answered once everything before it is committed.
    Flush(mpsc::Sender<()>),
}

/// The service's tables in the profile's database.
#[derive(Clone)]
pub struct CoinJoinStore {
    writes: mpsc::SyncSender<Write>,
}

impl std::fmt::Debug for CoinJoinStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoinJoinStore")
    }
}

fn outpoint_key(o: &Outpoint) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(&o.txid);
    key[32..].copy_from_slice(&o.vout.to_be_bytes());
    key
}

impl CoinJoinStore {
    /// Reads what `db` holds and starts the writer (blocking).
    pub fn open(db: Database) -> Result<(Self, Loaded), StoreError> {
        let loaded = load(&db)?;
        let (writes, queue) = mpsc::sync_channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("coinjoin-store".into())
            .spawn(move || write_all(&db, queue))
            .map_err(fail)?;
        Ok((Self { writes }, loaded))
    }

    fn send(&self, write: Write) {
        if self.writes.try_send(write).is_err() {
            tracing::warn!(
                "coinjoin: the database writer is behind or stopped; a change is not saved"
            );
        }
    }

    /// Saves a request and its status.
    pub fn save_request(&self, id: RequestId, stored: StoredRequest) {
        self.send(Write::Request(id, stored));
    }

    /// Saves one outpoint's exclusion record.
    pub fn save_strike(&self, outpoint: Outpoint, strike: Strike) {
        self.send(Write::Strike(outpoint, strike));
    }

    /// Waits until every change made so far is on disk (blocking).
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.writes.send(Write::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Saves how many receive addresses were handed out.
    pub fn save_next_receive(&self, next: u32) {
        self.send(Write::NextReceive(next));
    }
}

fn load(db: &Database) -> Result<Loaded, StoreError> {
    // Create the tables, so that reading a new database finds them.
    let tx = db.redb().begin_write().map_err(fail)?;
    tx.open_table(REQUESTS).map_err(fail)?;
    tx.open_table(STRIKES).map_err(fail)?;
    tx.open_table(WALLET).map_err(fail)?;
    tx.commit().map_err(fail)?;
    let tx = db.redb().begin_read().map_err(fail)?;
    let mut loaded = Loaded::default();
    for row in tx
        .open_table(REQUESTS)
        .map_err(fail)?
        .iter()
        .map_err(fail)?
    {
        let (_, value) = row.map_err(fail)?;
        let stored: StoredRequest = postcard::from_bytes(value.value()).map_err(fail)?;
        let status: RequestStatus = serde_json::from_slice(&stored.status).map_err(fail)?;
        loaded.requests.push((stored, status));
    }
    loaded.requests.sort_by_key(|(_, s)| s.created_ms);
    for row in tx.open_table(STRIKES).map_err(fail)?.iter().map_err(fail)? {
        let (key, value) = row.map_err(fail)?;
        let key = key.value();
        if key.len() != 36 {
            return Err(StoreError(format!(
                "an exclusion key of {} bytes",
                key.len()
            )));
        }
        let mut txid = [0u8; 32];
        txid.copy_from_slice(&key[..32]);
        let vout = u32::from_be_bytes(key[32..].try_into().expect("4 bytes"));
        let strike: Strike = postcard::from_bytes(value.value()).map_err(fail)?;
        loaded.strikes.restore(Outpoint { txid, vout }, strike);
    }
    if let Some(next) = tx
        .open_table(WALLET)
        .map_err(fail)?
        .get(NEXT_RECEIVE)
        .map_err(fail)?
    {
        loaded.next_receive = next.value();
    }
    Ok(loaded)
}

fn write_all(db: &Database, queue: mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        // What queued up meanwhile goes in the same transaction.
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let mut flushed = Vec::new();
        batch.retain(|w| match w {
            Write::Flush(done) => {
                flushed.push(done.clone());
                false
            }
            _ => true,
        });
        if !batch.is_empty() {
            if let Err(e) = write_batch(db, batch) {
                tracing::warn!(%e, "coinjoin: saving to the database failed");
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

fn write_batch(db: &Database, batch: Vec<Write>) -> Result<(), redb::Error> {
    let tx = db.redb().begin_write()?;
    {
        let mut requests = tx.open_table(REQUESTS)?;
        let mut strikes = tx.open_table(STRIKES)?;
        let mut wallet = tx.open_table(WALLET)?;
        for write in batch {
            match write {
                Write::Request(id, stored) => {
                    let bytes = postcard::to_stdvec(&stored).expect("requests serialise");
                    requests.insert(id.0.as_slice(), bytes.as_slice())?;
                }
                Write::Strike(outpoint, strike) => {
                    let bytes = postcard::to_stdvec(&strike).expect("strikes serialise");
                    strikes.insert(outpoint_key(&outpoint).as_slice(), bytes.as_slice())?;
                }
                Write::NextReceive(next) => {
                    let current = wallet.get(NEXT_RECEIVE)?.map_or(0, |v| v.value());
                    wallet.insert(NEXT_RECEIVE, current.max(next))?;
                }
                Write::Flush(_) => {}
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exclusion::FIRST_STRIKE_MS;

    #[test]
    fn requests_exclusions_and_the_address_count_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("state.redb")).unwrap();
        let (store, loaded) = CoinJoinStore::open(db.clone()).unwrap();
        assert!(loaded.requests.is_empty() && loaded.next_receive == 0);
        let outpoint = Outpoint {
            txid: [4; 32],
            vout: 2,
        };
        let mut strikes = Strikes::default();
        let until = strikes.strike(outpoint, 1_000);
        assert_eq!(until, 1_000 + FIRST_STRIKE_MS);
        store.save_strike(outpoint, strikes.get(&outpoint).unwrap());
        store.save_next_receive(7);
        store.save_next_receive(3); // never goes back
        let status = RequestStatus {
            request_id: "ab".repeat(32),
            denomination: 100_000,
            fee_rate: 2,
            inputs: vec![outpoint.to_string()],
            phase: super::super::RequestPhase::Waiting,
            peers: 1,
            run: 0,
            sessions: 0,
            excluded: Vec::new(),
            txid: None,
            tx_hex: None,
            fee_sats: None,
            our_outputs: Vec::new(),
            timeline: Vec::new(),
            last_error: None,
            created_ms: 5,
            updated_ms: 5,
        };
        let stored = StoredRequest {
            request: vec![1, 2, 3],
            max_fee: Some(900),
            status: serde_json::to_vec(&status).unwrap(),
        };
        store.save_request(RequestId([9; 32]), stored.clone());
        store.flush();
        let (_again, loaded) = CoinJoinStore::open(db).unwrap();
        assert_eq!(loaded.next_receive, 7);
        assert_eq!(loaded.strikes.banned_until(&outpoint, 1_000), Some(until));
        assert_eq!(loaded.requests.len(), 1);
        assert_eq!(loaded.requests[0].0.max_fee, Some(900));
        assert_eq!(loaded.requests[0].1, status);
    }
}
