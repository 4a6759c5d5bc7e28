//! The session ledger: every session id this node took part in, whether it
//! is in progress, done, failed or aborted, kept in the service's data
//! directory, owner-only, with atomic durable writes
//! ([`state_file::write_atomic`]).
//!
//! It is what keeps nonces safe across restarts: a session id in the
//! ledger never gets a second signing round, and a session still marked in
//! progress when the ledger is opened (the service stopped or crashed in
//! the middle) is marked aborted — secret nonces lived only in the old
//! process's memory, so such a session is never resumed.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use conclave_node::{clock::unix_ms, state_file};
use serde::{Deserialize, Serialize};

use crate::{
    api::{Role, SessionStatus},
    proto::SessionId,
};

/// File name of the ledger inside the data directory.
pub const LEDGER_FILE: &str = "musig2-ledger.json";
/// Finished sessions whose full status (history) is kept; older ones keep
/// only their id and state, which is all nonce safety needs.
pub const HISTORY_LEN: usize = 1000;

/// Where a session stands in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// Signing may be under way.
    InProgress,
    /// Done: the final signature exists.
    Done,
    /// Failed.
    Failed,
    /// Aborted (stopped, or found in progress after a restart).
    Aborted,
}

/// One session in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// This node's side.
    pub role: Role,
    /// Its state.
    pub state: LedgerState,
    /// When it started here (Unix milliseconds).
    pub started_at_ms: u64,
    /// Last change (Unix milliseconds).
    pub updated_at_ms: u64,
    /// Why it was aborted, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The session's last status (history), for recent sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
}

/// Why the ledger refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The file could not be read or written.
    #[error("session ledger {path}: {source}")]
    Io {
        /// The ledger file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a ledger.
    #[error("session ledger {path} is corrupted ({reason}); move it aside to start a new one (old session ids would then no longer be refused)")]
    Corrupt {
        /// The ledger file.
        path: String,
        /// The parse error.
        reason: String,
    },
    /// The session id was used before.
    #[error("session {id} already took place here ({state:?}); a session id never gets a second signing round")]
    AlreadyUsed {
        /// The session.
        id: SessionId,
        /// Its recorded state.
        state: LedgerState,
    },
}

/// The ledger, loaded in memory and written through on every change.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    entries: BTreeMap<SessionId, LedgerEntry>,
}

/// The reason recorded for sessions found in progress at start-up.
pub const INTERRUPTED: &str =
    "interrupted: the service stopped while the session was in progress (sessions are never resumed)";

impl Ledger {
    /// Opens (or creates) the ledger in `data_dir`, marking every session
    /// still in progress as aborted. Returns the ledger and those sessions.
    pub fn open(data_dir: &Path) -> Result<(Self, Vec<SessionId>), LedgerError> {
        let path = data_dir.join(LEDGER_FILE);
        let io = |source| LedgerError::Io {
            path: path.display().to_string(),
            source,
        };
        state_file::create_private_dir(data_dir).map_err(io)?;
        let entries = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LedgerError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(e)),
        };
        let mut ledger = Self { path, entries };
        let now = unix_ms();
        let mut aborted = Vec::new();
        for (id, entry) in ledger.entries.iter_mut() {
            if entry.state == LedgerState::InProgress {
                entry.state = LedgerState::Aborted;
                entry.updated_at_ms = now;
                entry.reason = Some(INTERRUPTED.into());
                if let Some(status) = entry.status.as_mut() {
                    status.phase = crate::proto::Phase::Aborted;
                    status.updated_at_ms = now;
                }
                aborted.push(*id);
            }
        }
        if !aborted.is_empty() {
            ledger.save()?;
        }
        Ok((ledger, aborted))
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry of `id`.
    pub fn get(&self, id: &SessionId) -> Option<&LedgerEntry> {
        self.entries.get(id)
    }

    /// Every entry, by id.
    pub fn entries(&self) -> &BTreeMap<SessionId, LedgerEntry> {
        &self.entries
    }

    /// Records that `id` starts here (before any nonce exists), refusing an
    /// id seen before.
    pub fn begin(&mut self, id: SessionId, role: Role) -> Result<(), LedgerError> {
        if let Some(entry) = self.entries.get(&id) {
            return Err(LedgerError::AlreadyUsed {
                id,
                state: entry.state,
            });
        }
        let now = unix_ms();
        self.entries.insert(
            id,
            LedgerEntry {
                role,
                state: LedgerState::InProgress,
                started_at_ms: now,
                updated_at_ms: now,
                reason: None,
                status: None,
            },
        );
        self.save()
    }

    /// Records how `id` ended, with its last status.
    pub fn close(
        &mut self,
        id: SessionId,
        role: Role,
        state: LedgerState,
        reason: Option<String>,
        status: SessionStatus,
    ) -> Result<(), LedgerError> {
        let now = unix_ms();
        let entry = self.entries.entry(id).or_insert(LedgerEntry {
            role,
            state,
            started_at_ms: status.created_at_ms,
            updated_at_ms: now,
            reason: None,
            status: None,
        });
        entry.state = state;
        entry.updated_at_ms = now;
        entry.reason = reason;
        entry.status = Some(status);
        self.trim_history();
        self.save()
    }

    /// Keeps the full status of the newest [`HISTORY_LEN`] closed sessions.
    fn trim_history(&mut self) {
        let mut with_status: Vec<(u64, SessionId)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.status.is_some())
            .map(|(id, e)| (e.updated_at_ms, *id))
            .collect();
        if with_status.len() <= HISTORY_LEN {
            return;
        }
        with_status.sort();
        let excess = with_status.len() - HISTORY_LEN;
        for (_, id) in with_status.into_iter().take(excess) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.status = None;
            }
        }
    }

    fn save(&self) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&self.entries).expect("ledger serialises");
        state_file::write_atomic(&self.path, &bytes).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_used_once_and_in_progress_sessions_are_aborted_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, aborted) = Ledger::open(dir.path()).unwrap();
        assert!(aborted.is_empty());
        let running = SessionId::random();
        let done = SessionId::random();
        ledger.begin(running, Role::Signer).unwrap();
        ledger.begin(done, Role::Coordinator).unwrap();
        assert!(matches!(
            ledger.begin(running, Role::Signer),
            Err(LedgerError::AlreadyUsed { .. })
        ));
        let status = SessionStatus {
            session_id: done.to_string(),
            role: Role::Coordinator,
            phase: crate::proto::Phase::Done,
            holdouts: Vec::new(),
            aggregate_pubkey: String::new(),
            signature: Some("00".repeat(64)),
            signatures: Vec::new(),
            signers: Vec::new(),
            our_keys: Vec::new(),
            coordinator: String::new(),
            signing: crate::api::Signing::Message {
                message: String::new(),
            },
            output_key: None,
            psbt: None,
            transaction: None,
            failure: None,
            timeline: Vec::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        ledger
            .close(done, Role::Coordinator, LedgerState::Done, None, status)
            .unwrap();
        drop(ledger);

        // The service "crashes" and starts again on the same directory.
        let (mut ledger, aborted) = Ledger::open(dir.path()).unwrap();
        assert_eq!(aborted, vec![running]);
        let entry = ledger.get(&running).unwrap();
        assert_eq!(entry.state, LedgerState::Aborted);
        assert_eq!(entry.reason.as_deref(), Some(INTERRUPTED));
        assert_eq!(ledger.get(&done).unwrap().state, LedgerState::Done);
        assert!(ledger.get(&done).unwrap().status.is_some(), "history kept");
        for id in [running, done] {
            assert!(
                matches!(
                    ledger.begin(id, Role::Signer),
                    Err(LedgerError::AlreadyUsed { .. })
                ),
                "no second round under {id}"
            );
        }
        assert!(!dir.path().join("musig2-ledger.json.tmp").exists());
    }

    #[test]
    fn the_ledger_and_its_folder_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let (mut ledger, _) = Ledger::open(&dir).unwrap();
        ledger.begin(SessionId::random(), Role::Signer).unwrap();
        assert_eq!(mode(ledger.path()), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_corrupted_ledger_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LEDGER_FILE), b"{not json").unwrap();
        assert!(matches!(
            Ledger::open(dir.path()),
            Err(LedgerError::Corrupt { .. })
        ));
    }
}
