//! The profile's embedded database: state that must survive a restart.
//!
//! One [redb](https://docs.rs/redb) file per profile (`state.redb` in its
//! data folder), opened once per process and shared by the features that
//! keep history in it (CoinJoin requests, runs and exclusions; agent rooms,
//! cards, task records and reputation). Each feature defines its own tables
//! (`redb::TableDefinition`s with a name prefixed by the feature), so the
//! node knows nothing of their contents. redb commits are atomic and
//! durable: a write transaction is either entirely on disk or not at all.

use std::{
    fs::OpenOptions,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

pub use redb;

use crate::profile::Profile;

/// File name of the database in a profile's data folder.
pub const DATABASE_FILE: &str = "state.redb";

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (an app or daemon on the same profile) has it open.
    #[error(
        "the database {path} is in use by another Conclave process on this profile: \
         stop that app or daemon, or use another profile"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The file exists but is not a database we can read.
    #[error(
        "cannot open the database {path}: {source}; \
         move the file aside to start with empty history"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::DatabaseError,
    },
    /// The file could not be created or its permissions set.
    #[error("cannot create the database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The profile's database, cheap to clone and shared between features.
#[derive(Clone)]
pub struct Database {
    inner: Arc<redb::Database>,
    path: PathBuf,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish()
    }
}

impl Database {
    /// The database file of `profile`.
    pub fn file_of(profile: &Profile) -> PathBuf {
        profile.data_dir().join(DATABASE_FILE)
    }

    /// Opens the database of `profile`, creating it if it does not exist.
    pub fn open_profile(profile: &Profile) -> Result<Self, StoreError> {
        Self::open(&Self::file_of(profile))
    }

    /// Opens (or creates) the database at `path`, readable by the owner
    /// only.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Created 0600 from the start, and tightened if it was made wider.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        drop(file);
        let inner = redb::Database::create(path).map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                path: path.to_path_buf(),
            },
            source => StoreError::Open {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Ok(Self {
            inner: Arc::new(inner),
            path: path.to_path_buf(),
        })
    }

    /// The redb database, for the feature's own transactions.
    pub fn redb(&self) -> &redb::Database {
        &self.inner
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableDefinition};

    const TABLE: TableDefinition<&str, u64> = TableDefinition::new("test.counts");

    #[test]
    fn written_state_survives_reopening_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        {
            let db = Database::open(&path).unwrap();
            let tx = db.redb().begin_write().unwrap();
            tx.open_table(TABLE).unwrap().insert("runs", 3).unwrap();
            tx.commit().unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let db = Database::open(&path).unwrap();
        let tx = db.redb().begin_read().unwrap();
        let table = tx.open_table(TABLE).unwrap();
        assert_eq!(table.get("runs").unwrap().unwrap().value(), 3);
    }

    #[test]
    fn a_second_open_while_in_use_says_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        let _held = Database::open(&path).unwrap();
        let err = Database::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("another Conclave process"));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        std::fs::write(&path, b"not a database at all, just some bytes").unwrap();
        let err = Database::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"not a database at all, just some bytes"
        );
    }

    #[test]
    fn a_wider_file_is_tightened_to_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        drop(Database::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Database::open(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
