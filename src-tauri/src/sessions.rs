//! MuSig2 signing sessions in the app: the signing service on the running
//! node (restarted with it), the typed commands of the Sessions view, and
//! the events that keep it live (invitations, phases, results). The shapes
//! are the signing crate's own (`conclave_signing::api`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use conclave_node::ProfileNode;
use conclave_signing::{
    psbt_file, supervisor::SigningSupervisor, InvitationInfo, KeyInfo, Payload, Phase,
    SessionStatus, SignerKey, SigningConfig, SigningEvent,
};
use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::State;
use tauri_specta::Event;

use crate::error::{CommandError, CommandResult, ErrorCode};

/// Something happened to the sessions: the Sessions view updates, and a new
/// invitation is announced to the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SigningChanged {
    /// A new invitation arrived.
    Invitation {
        /// It.
        invitation: Box<InvitationInfo>,
    },
    /// A session's phase or holdouts changed.
    Phase {
        /// The session.
        session_id: String,
        /// Its phase.
        phase: Phase,
        /// Keys still owed.
        holdouts: Vec<SignerKey>,
    },
    /// A session ended (done, failed or aborted).
    Finished {
        /// Its final state.
        session: Box<SessionStatus>,
    },
    /// Events were missed or the service restarted: fetch everything again.
    Resync,
}

impl From<SigningEvent> for SigningChanged {
    fn from(event: SigningEvent) -> Self {
        match event {
            SigningEvent::Invitation(invitation) => Self::Invitation {
                invitation: Box::new(invitation),
            },
            SigningEvent::Phase {
                session_id,
                phase,
                holdouts,
            } => Self::Phase {
                session_id,
                phase,
                holdouts,
            },
            SigningEvent::Finished(session) => Self::Finished { session },
            SigningEvent::Lagged { .. } => Self::Resync,
        }
    }
}

/// Where the signing events go (Tauri in the app).
pub type SigningSink = Arc<dyn Fn(SigningChanged) + Send + Sync>;

/// The profile's signing service, started with its node and kept on it
/// through restarts; the events of each service started go to `sink`,
/// after a `Resync`.
pub fn supervisor(node: Arc<ProfileNode>, sink: SigningSink) -> SigningSupervisor {
    let config = SigningConfig::new(node.profile().data_dir());
    SigningSupervisor::new(node, config).on_start(move |service| {
        let (mut events, forward) = (service.subscribe(), sink.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                forward(event.into());
            }
        });
        sink(SigningChanged::Resync);
    })
}

type Signing<'a> = State<'a, Arc<SigningSupervisor>>;

/// This profile's signing keys.
#[tauri::command]
#[specta::specta]
pub async fn signing_keys(signing: Signing<'_>) -> CommandResult<Vec<KeyInfo>> {
    Ok(signing.handle().await?.keys().await?)
}

/// Generates a signing key (kept in the keychain) and advertises it.
#[tauri::command]
#[specta::specta]
pub async fn signing_new_key(signing: Signing<'_>) -> CommandResult<KeyInfo> {
    Ok(signing.handle().await?.new_key().await?)
}

/// Starts a session signed by `signers` over a message (hex) or a PSBT file
/// (binary or base64); returns its id.
#[tauri::command]
#[specta::specta]
pub async fn signing_create(
    signing: Signing<'_>,
    signers: Vec<String>,
    message_hex: Option<String>,
    psbt_path: Option<String>,
) -> CommandResult<String> {
    let signers = signers
        .iter()
        .map(|k| k.trim().parse::<SignerKey>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CommandError::new(ErrorCode::InvalidInput, format!("signer key: {e}")))?;
    let payload = match (message_hex, psbt_path) {
        (Some(hex_text), None) => Payload::Message(hex::decode(hex_text.trim()).map_err(|e| {
            CommandError::new(
                ErrorCode::InvalidInput,
                format!("the message is not hex: {e}"),
            )
        })?),
        (None, Some(path)) => {
            let read = tokio::task::spawn_blocking(move || psbt_file::read(Path::new(&path)))
                .await
                .map_err(|e| CommandError::new(ErrorCode::Storage, e.to_string()))?;
            Payload::Psbt(read.map_err(|e| {
                let code = match e {
                    psbt_file::PsbtFileError::Unreadable { .. } => ErrorCode::Storage,
                    _ => ErrorCode::InvalidInput,
                };
                CommandError::new(code, e.to_string())
            })?)
        }
        _ => {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                "give a message or a PSBT file, not both",
            ))
        }
    };
    let handle = signing.handle().await?;
    Ok(handle.create(&signers, payload).await?.session_id)
}

/// Invitations waiting for a decision.
#[tauri::command]
#[specta::specta]
pub async fn signing_invitations(signing: Signing<'_>) -> CommandResult<Vec<InvitationInfo>> {
    let handle = signing.handle().await?;
    Ok(handle.invitations().await?)
}

/// Joins an invitation: this person agrees to sign what it shows.
#[tauri::command]
#[specta::specta]
pub async fn signing_join(signing: Signing<'_>, session_id: String) -> CommandResult<()> {
    let handle = signing.handle().await?;
    Ok(handle.join(&session_id).await?)
}

/// Declines an invitation (or withdraws from a session, failing it).
#[tauri::command]
#[specta::specta]
pub async fn signing_decline(
    signing: Signing<'_>,
    session_id: String,
    reason: String,
) -> CommandResult<()> {
    let handle = signing.handle().await?;
    let reason = if reason.trim().is_empty() {
        "declined".to_string()
    } else {
        reason
    };
    Ok(handle.decline(&session_id, &reason).await?)
}

/// Every session, live and finished, newest first.
#[tauri::command]
#[specta::specta]
pub async fn signing_sessions(signing: Signing<'_>) -> CommandResult<Vec<SessionStatus>> {
    let handle = signing.handle().await?;
    let mut list = handle.list().await?;
    list.reverse();
    Ok(list)
}

/// What [`signing_export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// The signed PSBT (base64).
    Psbt,
    /// The finalized transaction (hex).
    Transaction,
}

/// Writes a finished PSBT session's signed PSBT or transaction to a new file
/// at `path` (never overwriting one); returns the path.
#[tauri::command]
#[specta::specta]
pub async fn signing_export(
    signing: Signing<'_>,
    session_id: String,
    kind: ExportKind,
    path: String,
) -> CommandResult<String> {
    let handle = signing.handle().await?;
    let status = handle.status(&session_id).await?;
    let text = match kind {
        ExportKind::Psbt => status.psbt,
        ExportKind::Transaction => status.transaction,
    }
    .ok_or_else(|| {
        CommandError::new(
            ErrorCode::InvalidInput,
            "only a finished PSBT session has a signed PSBT and a transaction",
        )
    })?;
    let target = PathBuf::from(path.trim());
    let write = {
        let target = target.clone();
        move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)?;
            file.write_all(format!("{text}\n").as_bytes())
        }
    };
    tokio::task::spawn_blocking(write)
        .await
        .map_err(CommandError::internal)?
        .map_err(|e| {
            CommandError::new(
                ErrorCode::Storage,
                format!("writing {}: {e}", target.display()),
            )
            .with_hint("choose a new file name; existing files are never overwritten")
        })?;
    Ok(target.display().to_string())
}
