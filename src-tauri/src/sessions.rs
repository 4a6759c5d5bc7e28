//! MuSig2 signing sessions in the app: the signing service on the running
//! node (restarted with it), the typed commands of the Sessions view, and
//! the events that keep it live (invitations, phases, results).

use std::{path::PathBuf, sync::Arc, time::Duration};

use conclave_signing::{
    api::{PhaseChange, Signing},
    psbt_file, InvitationInfo, KeychainKeyStore, Payload, Phase, SessionStatus, SignerKey,
    SigningConfig, SigningError, SigningEvent, SigningHandle, SigningService,
};
use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::State;
use tauri_specta::Event;

use crate::{
    error::{CommandError, CommandResult, ErrorCode},
    service::NodeService,
};

/// How often the supervisor checks that the signing service runs on the
/// current node (the node restarts when settings change).
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);

/// A signing key of this profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct SigningKeyView {
    /// Compressed public key, 66 hex characters.
    pub pubkey: String,
}

/// One output of a PSBT's transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct OutputView {
    /// Value in satoshis (exact below 2^53).
    pub value_sat: f64,
    /// The output script, hex.
    pub script_pubkey: String,
}

/// What a session signs, as shown to people before they join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SigningView {
    /// A message.
    Message {
        /// The message, hex.
        hex: String,
        /// The message as text, when it is UTF-8 without control characters.
        text: Option<String>,
    },
    /// A PSBT.
    Psbt {
        /// Transaction id of the unsigned transaction.
        txid: String,
        /// Inputs (one signature each).
        inputs: u32,
        /// Total spent, in satoshis.
        input_value_sat: f64,
        /// Fee, in satoshis.
        fee_sat: f64,
        /// The outputs.
        outputs: Vec<OutputView>,
    },
}

/// An invitation waiting for this person's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct InvitationView {
    /// The session's id.
    pub session_id: String,
    /// The coordinating peer.
    pub coordinator: String,
    /// Every signer key, in KeySort order.
    pub signers: Vec<String>,
    /// This profile's keys among them.
    pub our_keys: Vec<String>,
    /// The aggregate key (x-only, 64 hex).
    pub aggregate_pubkey: String,
    /// What would be signed.
    pub signing: SigningView,
    /// When it arrived (Unix milliseconds).
    pub received_at_ms: f64,
    /// When it expires (Unix milliseconds).
    pub expires_at_ms: f64,
}

/// A phase entered, on a session's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct PhaseChangeView {
    /// The phase (`invitation`, `join`, `nonces`, `partial_signatures`,
    /// `aggregation`, `done`, `failed`, `aborted`).
    pub phase: String,
    /// When (Unix milliseconds).
    pub at_ms: f64,
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct FailureView {
    /// The kind of failure (`timeout`, `invalid_partial_signature`, ...).
    pub kind: String,
    /// The phase it failed in.
    pub phase: String,
    /// What happened, for people.
    pub reason: String,
    /// Keys whose contribution was bad.
    pub culprits: Vec<String>,
    /// Keys that had not answered.
    pub holdouts: Vec<String>,
}

/// A session, live or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct SessionView {
    /// The session's id.
    pub session_id: String,
    /// `coordinator` or `signer`.
    pub role: String,
    /// Where it stands.
    pub phase: String,
    /// Keys still owed in the phase.
    pub holdouts: Vec<String>,
    /// The aggregate key recomputed from the sorted keys (x-only, 64 hex).
    pub aggregate_pubkey: String,
    /// The final BIP-340 signature (128 hex), once done.
    pub signature: Option<String>,
    /// Every final signature (one per PSBT input).
    pub signatures: Vec<String>,
    /// Every signer key, in KeySort order.
    pub signers: Vec<String>,
    /// This profile's keys among them.
    pub our_keys: Vec<String>,
    /// The coordinating peer.
    pub coordinator: String,
    /// What is signed.
    pub signing: SigningView,
    /// For a PSBT: the tweaked output key the signatures verify under.
    pub output_key: Option<String>,
    /// For a PSBT, once done: the signed PSBT (base64).
    pub psbt: Option<String>,
    /// For a PSBT, once done: the finalized transaction (hex).
    pub transaction: Option<String>,
    /// Why it failed.
    pub failure: Option<FailureView>,
    /// Every phase entered, in order.
    pub timeline: Vec<PhaseChangeView>,
    /// Created or received (Unix milliseconds).
    pub created_at_ms: f64,
    /// Last change (Unix milliseconds).
    pub updated_at_ms: f64,
}

/// Something happened to the sessions: the Sessions view updates, and a new
/// invitation is announced to the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, Event)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SigningChanged {
    /// A new invitation arrived.
    Invitation {
        /// It.
        invitation: Box<InvitationView>,
    },
    /// A session's phase or holdouts changed.
    Phase {
        /// The session.
        session_id: String,
        /// Its phase.
        phase: String,
        /// Keys still owed.
        holdouts: Vec<String>,
    },
    /// A session ended (done, failed or aborted).
    Finished {
        /// Its final state.
        session: Box<SessionView>,
    },
    /// Events were missed or the service restarted: fetch everything again.
    Resync,
}

fn keys(keys: &[SignerKey]) -> Vec<String> {
    keys.iter().map(SignerKey::to_hex).collect()
}

fn phase_name(phase: Phase) -> String {
    phase.to_string()
}

fn printable(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.chars().any(|c| c.is_control() && c != '\n')).then(|| text.to_string())
}

impl From<&Signing> for SigningView {
    fn from(signing: &Signing) -> Self {
        match signing {
            Signing::Message { message } => Self::Message {
                text: hex::decode(message).ok().and_then(|b| printable(&b)),
                hex: message.clone(),
            },
            Signing::Psbt { summary } => Self::Psbt {
                txid: summary.txid.clone(),
                inputs: u32::try_from(summary.inputs).unwrap_or(u32::MAX),
                input_value_sat: summary.input_value_sat as f64,
                fee_sat: summary.fee_sat as f64,
                outputs: summary
                    .outputs
                    .iter()
                    .map(|o| OutputView {
                        value_sat: o.value_sat as f64,
                        script_pubkey: o.script_pubkey.clone(),
                    })
                    .collect(),
            },
        }
    }
}

impl From<&InvitationInfo> for InvitationView {
    fn from(i: &InvitationInfo) -> Self {
        Self {
            session_id: i.session_id.clone(),
            coordinator: i.coordinator.clone(),
            signers: keys(&i.signers),
            our_keys: keys(&i.our_keys),
            aggregate_pubkey: i.aggregate_pubkey.clone(),
            signing: (&i.signing).into(),
            received_at_ms: i.received_at_ms as f64,
            expires_at_ms: i.expires_at_ms as f64,
        }
    }
}

impl From<&PhaseChange> for PhaseChangeView {
    fn from(p: &PhaseChange) -> Self {
        Self {
            phase: phase_name(p.phase),
            at_ms: p.at_ms as f64,
        }
    }
}

impl From<&SessionStatus> for SessionView {
    fn from(s: &SessionStatus) -> Self {
        let as_text = |v: serde_json::Value| v.as_str().unwrap_or("?").to_string();
        Self {
            session_id: s.session_id.clone(),
            role: as_text(serde_json::to_value(s.role).unwrap_or_default()),
            phase: phase_name(s.phase),
            holdouts: keys(&s.holdouts),
            aggregate_pubkey: s.aggregate_pubkey.clone(),
            signature: s.signature.clone(),
            signatures: s.signatures.clone(),
            signers: keys(&s.signers),
            our_keys: keys(&s.our_keys),
            coordinator: s.coordinator.clone(),
            signing: (&s.signing).into(),
            output_key: s.output_key.clone(),
            psbt: s.psbt.clone(),
            transaction: s.transaction.clone(),
            failure: s.failure.as_ref().map(|f| FailureView {
                kind: as_text(serde_json::to_value(f.kind).unwrap_or_default()),
                phase: phase_name(f.phase),
                reason: f.reason.clone(),
                culprits: keys(&f.culprits),
                holdouts: keys(&f.holdouts),
            }),
            timeline: s.timeline.iter().map(Into::into).collect(),
            created_at_ms: s.created_at_ms as f64,
            updated_at_ms: s.updated_at_ms as f64,
        }
    }
}

impl From<SigningError> for CommandError {
    fn from(e: SigningError) -> Self {
        let message = e.to_string();
        match e {
            SigningError::Node(e) => e.into(),
            SigningError::KeyStore(_) => Self::new(ErrorCode::Keychain, message)
                .with_hint("unlock the system keychain and try again; nothing was changed"),
            SigningError::Key(_)
            | SigningError::Spec(_)
            | SigningError::Psbt(_)
            | SigningError::SessionId(_)
            | SigningError::UnknownSession(_)
            | SigningError::NotOurKey(_) => Self::new(ErrorCode::InvalidInput, message),
            SigningError::UnknownSigner(_) => Self::new(ErrorCode::Network, message).with_hint(
                "connect to the signer's node (Peers view) and check that it holds the key",
            ),
            SigningError::Unreachable { .. } => Self::new(ErrorCode::Network, message),
            SigningError::Stopped => CommandError::node_unavailable(),
            _ => Self::new(ErrorCode::Internal, message),
        }
    }
}

/// Where the sessions service sends its events (Tauri in the app).
pub type SigningSink = Arc<dyn Fn(SigningChanged) + Send + Sync>;

/// The signing service of the profile, kept running on the current node.
pub struct SessionsService {
    profile: String,
    data_dir: PathBuf,
    running: tokio::sync::Mutex<Option<SigningHandle>>,
    sink: SigningSink,
}

impl SessionsService {
    /// The service of `profile`, with its ledger in `data_dir`.
    pub fn new(profile: &str, data_dir: PathBuf, sink: SigningSink) -> Self {
        Self {
            profile: profile.to_string(),
            data_dir,
            running: tokio::sync::Mutex::new(None),
            sink,
        }
    }

    /// The signing service on the running node, started if the node is new.
    pub async fn handle(&self, node: &NodeService) -> CommandResult<SigningHandle> {
        let mut running = self.running.lock().await;
        if let Some(handle) = running.as_ref() {
            if handle.node().is_running() {
                return Ok(handle.clone());
            }
        }
        let node = node.handle()?;
        let profile = self.profile.clone();
        let store = tokio::task::spawn_blocking(move || KeychainKeyStore::open(&profile))
            .await
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(SigningError::from)?;
        let handle =
            SigningService::start(node, Arc::new(store), SigningConfig::new(&self.data_dir))
                .await?;
        tokio::spawn(forward(handle.clone(), self.sink.clone()));
        (self.sink)(SigningChanged::Resync);
        *running = Some(handle.clone());
        Ok(handle)
    }

    /// Keeps the service on the current node, so invitations arrive without
    /// the Sessions view being open. Runs until the app ends.
    pub async fn supervise(self: Arc<Self>, node: Arc<NodeService>) {
        let mut tick = tokio::time::interval(SUPERVISE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error = None;
        loop {
            tick.tick().await;
            if node.handle().is_err() {
                continue;
            }
            match self.handle(&node).await {
                Ok(_) => last_error = None,
                Err(e) if last_error.as_ref() != Some(&e.message) => {
                    tracing::warn!(error = %e.message, "signing service unavailable");
                    last_error = Some(e.message);
                }
                Err(_) => {}
            }
        }
    }

    /// Stops the service (aborting sessions in progress) before the node.
    pub async fn shutdown(&self) {
        if let Some(handle) = self.running.lock().await.take() {
            if let Err(e) = handle.stop().await {
                tracing::debug!(%e, "signing service already stopped");
            }
        }
    }
}

async fn forward(handle: SigningHandle, sink: SigningSink) {
    let mut events = handle.subscribe();
    while let Some(event) = events.recv().await {
        let change = match event {
            SigningEvent::Invitation(invitation) => SigningChanged::Invitation {
                invitation: Box::new((&invitation).into()),
            },
            SigningEvent::Phase {
                session_id,
                phase,
                holdouts,
            } => SigningChanged::Phase {
                session_id,
                phase: phase_name(phase),
                holdouts: keys(&holdouts),
            },
            SigningEvent::Finished(status) => SigningChanged::Finished {
                session: Box::new(status.as_ref().into()),
            },
            SigningEvent::Lagged { .. } => SigningChanged::Resync,
        };
        sink(change);
    }
}

type Node<'a> = State<'a, Arc<NodeService>>;
type Sessions<'a> = State<'a, Arc<SessionsService>>;

/// This profile's signing keys.
#[tauri::command]
#[specta::specta]
pub async fn signing_keys(
    node: Node<'_>,
    sessions: Sessions<'_>,
) -> CommandResult<Vec<SigningKeyView>> {
    let handle = sessions.handle(&node).await?;
    Ok(handle
        .keys()
        .await?
        .into_iter()
        .map(|k| SigningKeyView { pubkey: k.pubkey })
        .collect())
}

/// Generates a signing key (kept in the keychain) and advertises it.
#[tauri::command]
#[specta::specta]
pub async fn signing_new_key(
    node: Node<'_>,
    sessions: Sessions<'_>,
) -> CommandResult<SigningKeyView> {
    let handle = sessions.handle(&node).await?;
    let key = handle.new_key().await?;
    Ok(SigningKeyView { pubkey: key.pubkey })
}

/// Starts a session signed by `signers` over a message (hex) or a PSBT file
/// (binary or base64); returns its id.
#[tauri::command]
#[specta::specta]
pub async fn signing_create(
    node: Node<'_>,
    sessions: Sessions<'_>,
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
            let contents = tokio::fs::read(&path).await.map_err(|e| {
                CommandError::new(ErrorCode::Storage, format!("reading {path}: {e}"))
            })?;
            Payload::Psbt(
                psbt_file::decode(&contents).map_err(|e| {
                    CommandError::new(ErrorCode::InvalidInput, format!("{path}: {e}"))
                })?,
            )
        }
        _ => {
            return Err(CommandError::new(
                ErrorCode::InvalidInput,
                "give a message or a PSBT file, not both",
            ))
        }
    };
    let handle = sessions.handle(&node).await?;
    Ok(handle.create(&signers, payload).await?.session_id)
}

/// Invitations waiting for a decision.
#[tauri::command]
#[specta::specta]
pub async fn signing_invitations(
    node: Node<'_>,
    sessions: Sessions<'_>,
) -> CommandResult<Vec<InvitationView>> {
    let handle = sessions.handle(&node).await?;
    Ok(handle.invitations().await?.iter().map(Into::into).collect())
}

/// Joins an invitation: this person agrees to sign what it shows.
#[tauri::command]
#[specta::specta]
pub async fn signing_join(
    node: Node<'_>,
    sessions: Sessions<'_>,
    session_id: String,
) -> CommandResult<()> {
    let handle = sessions.handle(&node).await?;
    Ok(handle.join(&session_id).await?)
}

/// Declines an invitation (or withdraws from a session, failing it).
#[tauri::command]
#[specta::specta]
pub async fn signing_decline(
    node: Node<'_>,
    sessions: Sessions<'_>,
    session_id: String,
    reason: String,
) -> CommandResult<()> {
    let handle = sessions.handle(&node).await?;
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
pub async fn signing_sessions(
    node: Node<'_>,
    sessions: Sessions<'_>,
) -> CommandResult<Vec<SessionView>> {
    let handle = sessions.handle(&node).await?;
    let mut list: Vec<SessionView> = handle.list().await?.iter().map(Into::into).collect();
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
    node: Node<'_>,
    sessions: Sessions<'_>,
    session_id: String,
    kind: ExportKind,
    path: String,
) -> CommandResult<String> {
    let handle = sessions.handle(&node).await?;
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
        .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| {
            CommandError::new(
                ErrorCode::Storage,
                format!("writing {}: {e}", target.display()),
            )
            .with_hint("choose a new file name; existing files are never overwritten")
        })?;
    Ok(target.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_as_text_only_when_printable() {
        let view = SigningView::from(&Signing::Message {
            message: hex::encode("Pay Bob 1 BTC"),
        });
        assert!(
            matches!(view, SigningView::Message { text: Some(ref t), .. } if t == "Pay Bob 1 BTC")
        );
        let binary = SigningView::from(&Signing::Message {
            message: "00ff1b".into(),
        });
        assert!(matches!(binary, SigningView::Message { text: None, .. }));
    }

    #[test]
    fn errors_tell_bad_input_from_unreachable_signers() {
        let bad: CommandError = SigningError::UnknownSession("x".into()).into();
        assert_eq!(bad.code, ErrorCode::InvalidInput);
        let key = conclave_signing::SecretKey::generate().public_key();
        let unknown: CommandError = SigningError::UnknownSigner(key).into();
        assert_eq!(unknown.code, ErrorCode::Network);
        assert!(unknown.hint.is_some());
    }
}
