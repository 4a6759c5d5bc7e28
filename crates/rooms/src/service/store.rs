//! What rooms keep in the profile's database (`conclave_node::store`):
//! rooms joined (descriptor, our token, revocations), cards seen, task
//! records (in their export format) and the reputation table. Each write is
//! one redb transaction, so it is on disk entirely or not at all.

use conclave_node::store::{
    redb::{self, ReadableDatabase, ReadableTable, TableDefinition},
    Database,
};
use serde::{Deserialize, Serialize};

use crate::{
    ids::{RoomId, TaskId},
    record::TaskRecord,
    reputation::Reputation,
    statement::Statement,
};

const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms.joined");
const CARDS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms.cards");
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms.entries");
const TASK_ROOMS: TableDefinition<&str, &str> = TableDefinition::new("rooms.task-rooms");
const REPUTATION: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms.reputation");
const REPUTATION_KEY: &str = "local";

/// Why the rooms' state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the rooms' state in {path} could not be {doing}: {source}")]
pub struct StoreError {
    path: String,
    doing: &'static str,
    #[source]
    source: Box<redb::Error>,
}

/// A room as kept: enough to take part again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRoom {
    /// The signed descriptor.
    pub descriptor: Statement,
    /// Our token, in an invite-only room.
    pub token: Option<Statement>,
    /// The owner's revocations seen.
    pub revocations: Vec<Statement>,
}

/// The rooms' tables in a profile database.
#[derive(Clone, Debug)]
pub struct RoomsStore {
    db: Database,
}

/// Everything read back at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rooms joined.
    pub rooms: Vec<StoredRoom>,
    /// Cards seen, per room.
    pub cards: Vec<(RoomId, Statement)>,
    /// Task ids with a stored record, and their rooms.
    pub records: Vec<(TaskId, RoomId)>,
    /// The reputation table.
    pub reputation: Reputation,
}

impl RoomsStore {
    /// Over the profile's database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn err(&self, doing: &'static str) -> impl Fn(redb::Error) -> StoreError + '_ {
        move |source| StoreError {
            path: self.db.path().display().to_string(),
            doing,
            source: Box::new(source),
        }
    }

    fn put(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let write = || -> Result<(), redb::Error> {
            let tx = self.db.redb().begin_write()?;
            tx.open_table(table)?.insert(key, value)?;
            tx.commit()?;
            Ok(())
        };
        write().map_err(self.err("written"))
    }

    fn all(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let read = || -> Result<Vec<(String, Vec<u8>)>, redb::Error> {
            let tx = self.db.redb().begin_read()?;
            let table = match tx.open_table(table) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        };
        read().map_err(self.err("read"))
    }

    fn get(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let tx = self.db.redb().begin_read()?;
            let table = match tx.open_table(table) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(table.get(key)?.map(|v| v.value().to_vec()))
        };
        read().map_err(self.err("read"))
    }

    /// Keeps a room joined (replacing what was kept for it).
    pub fn put_room(&self, id: &RoomId, room: &StoredRoom) -> Result<(), StoreError> {
        self.put(
            ROOMS,
            &id.to_string(),
            &postcard::to_stdvec(room).expect("serialises"),
        )
    }

    /// Keeps a card seen in a room.
    pub fn put_card(&self, room: &RoomId, card: &Statement) -> Result<(), StoreError> {
        let key = format!("{room}/{}", card.signer);
        self.put(CARDS, &key, &card.to_bytes())
    }

    /// Keeps record entries of a task of `room`, all in one transaction
    /// (an entry already kept under its sequence number is replaced).
    pub fn put_entries(
        &self,
        task: &TaskId,
        room: &RoomId,
        entries: &[(u64, &Statement)],
    ) -> Result<(), StoreError> {
        let write = || -> Result<(), redb::Error> {
            let tx = self.db.redb().begin_write()?;
            {
                let mut table = tx.open_table(ENTRIES)?;
                for (seq, entry) in entries {
                    table.insert(entry_key(task, *seq).as_str(), entry.to_bytes().as_slice())?;
                }
                let mut rooms = tx.open_table(TASK_ROOMS)?;
                rooms.insert(task.to_string().as_str(), room.to_string().as_str())?;
            }
            tx.commit()?;
            Ok(())
        };
        write().map_err(self.err("written"))
    }

    /// A kept record and its room.
    pub fn record(&self, task: &TaskId) -> Result<Option<(RoomId, TaskRecord)>, StoreError> {
        let read = || -> Result<Option<(RoomId, TaskRecord)>, redb::Error> {
            let tx = self.db.redb().begin_read()?;
            let rooms = match tx.open_table(TASK_ROOMS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Some(room) = rooms
                .get(task.to_string().as_str())?
                .and_then(|r| r.value().parse().ok())
            else {
                return Ok(None);
            };
            let table = tx.open_table(ENTRIES)?;
            let (from, to) = (entry_key(task, 0), entry_key(task, u64::MAX));
            let mut record = TaskRecord::default();
            for row in table.range(from.as_str()..=to.as_str())? {
                let (_, v) = row?;
                match Statement::from_bytes(v.value()) {
                    Ok(s) => record.entries.push(s),
                    Err(e) => tracing::warn!(%task, %e, "stored entry skipped"),
                }
            }
            Ok(Some((room, record)))
        };
        read().map_err(self.err("read"))
    }

    /// Keeps the reputation table.
    pub fn put_reputation(&self, reputation: &Reputation) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(reputation).expect("serialises");
        self.put(REPUTATION, REPUTATION_KEY, &bytes)
    }

    /// Reads everything back; rows that no longer decode are skipped (and
    /// logged), so one bad row does not lose the rest.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for (key, bytes) in self.all(ROOMS)? {
            match postcard::from_bytes::<StoredRoom>(&bytes) {
                Ok(room) => loaded.rooms.push(room),
                Err(e) => tracing::warn!(%key, %e, "stored room skipped"),
            }
        }
        for (key, bytes) in self.all(CARDS)? {
            let room = key.split('/').next().and_then(|r| r.parse().ok());
            match (room, Statement::from_bytes(&bytes)) {
                (Some(room), Ok(card)) => loaded.cards.push((room, card)),
                _ => tracing::warn!(%key, "stored card skipped"),
            }
        }
        let read = || -> Result<Vec<(TaskId, RoomId)>, redb::Error> {
            let tx = self.db.redb().begin_read()?;
            let table = match tx.open_table(TASK_ROOMS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                if let (Ok(t), Ok(r)) = (k.value().parse(), v.value().parse()) {
                    out.push((t, r));
                }
            }
            Ok(out)
        };
        loaded.records = read().map_err(self.err("read"))?;
        if let Some(bytes) = self.get(REPUTATION, REPUTATION_KEY)? {
            match postcard::from_bytes(&bytes) {
                Ok(r) => loaded.reputation = r,
                Err(e) => tracing::warn!(%e, "stored reputation skipped"),
            }
        }
        Ok(loaded)
    }
}

/// Entries sort by task, then sequence number (zero-padded).
fn entry_key(task: &TaskId, seq: u64) -> String {
    format!("{task}/{seq:020}")
}
