//! The signing service on the daemon's control socket: the `wallet.*` and
//! `musig2.*` methods behind `conclavectl wallet ...` and `conclavectl
//! musig2 ...`.
//!
//! The service runs on the daemon's node under a [`SigningSupervisor`],
//! which starts it in the background (opening the keychain may take a
//! moment or fail) and tries again after a failure; calls wait for it, and
//! if it cannot run they fail with the reason, while the node itself keeps
//! serving.

use std::{sync::Arc, time::Duration};

use conclave_node::control::{
    rpc::{self, params, to_value, RpcError, ZeroizingValue},
    server::ControlExtension,
};
use conclave_signing::{
    supervisor::SigningSupervisor, InvitationInfo, Payload, SessionStatus, SignerKey, SigningEvent,
    SigningHandle,
};
use futures::{future::BoxFuture, FutureExt};
use serde::Deserialize;
use serde_json::{json, Value};

use conclave_signing::psbt_file;

/// Longest `--wait` of `musig2 invitations` and `musig2 status`, in seconds.
pub const MAX_WAIT_SECS: u64 = 3600;

/// Serves the signing methods of the service a supervisor keeps running.
pub struct SigningControl {
    /// The supervisor, or why signing is switched off.
    service: Result<Arc<SigningSupervisor>, String>,
}

impl SigningControl {
    /// Serves the service `supervisor` runs (start its
    /// [`run`](SigningSupervisor::run) so that it advertises this node's
    /// keys without waiting for a first call).
    pub fn new(supervisor: Arc<SigningSupervisor>) -> Self {
        Self {
            service: Ok(supervisor),
        }
    }

    /// Answers every signing call with `reason` (signing is switched off).
    pub fn disabled(reason: &str) -> Self {
        Self {
            service: Err(reason.to_string()),
        }
    }

    /// The running service, or why it is not running.
    pub async fn handle(&self) -> Result<SigningHandle, String> {
        service_of(self.service.clone()).await
    }
}

async fn service_of(
    service: Result<Arc<SigningSupervisor>, String>,
) -> Result<SigningHandle, String> {
    service?.handle().await.map_err(|e| e.to_string())
}

impl ControlExtension for SigningControl {
    fn call(
        &self,
        method: &str,
        params: Value,
    ) -> Option<BoxFuture<'static, Result<Value, RpcError>>> {
        if !(method.starts_with("wallet.") || method.starts_with("musig2.")) {
            return None;
        }
        let service = self.service.clone();
        let method = method.to_string();
        // `wallet.import` carries a secret key: wiped whichever way this ends.
        let mut params = ZeroizingValue(params);
        Some(
            async move {
                let handle = service_of(service).await.map_err(|reason| {
                    RpcError::node(format!("signing is unavailable on this daemon: {reason}"))
                })?;
                dispatch(&handle, &method, std::mem::take(&mut params.0)).await
            }
            .boxed(),
        )
    }
}

#[derive(Deserialize)]
struct ImportParams {
    secret: String,
}

impl Drop for ImportParams {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

#[derive(Deserialize)]
struct CreateParams {
    signers: Vec<String>,
    message: Option<String>,
    psbt: Option<String>,
}

#[derive(Deserialize)]
struct SessionParams {
    session_id: String,
    #[serde(default)]
    wait_secs: u64,
}

#[derive(Deserialize)]
struct DeclineParams {
    session_id: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct WaitParams {
    #[serde(default)]
    wait_secs: u64,
}

/// What `musig2.create` signs, from its parameters.
fn payload(p: &CreateParams) -> Result<Payload, RpcError> {
    match (&p.message, &p.psbt) {
        (Some(message), None) => hex::decode(message.trim())
            .map(Payload::Message)
            .map_err(|e| RpcError::invalid_params(format!("message is not hex: {e}"))),
        (None, Some(psbt)) => psbt_file::from_base64(psbt)
            .map(Payload::Psbt)
            .map_err(|e| RpcError::invalid_params(e.to_string())),
        _ => Err(RpcError::invalid_params(
            "give exactly one of message (hex) and psbt (base64)",
        )),
    }
}

async fn dispatch(handle: &SigningHandle, method: &str, raw: Value) -> Result<Value, RpcError> {
    let fail = |e: conclave_signing::SigningError| RpcError::node(e.to_string());
    match method {
        "wallet.new" => to_value(handle.new_key().await.map_err(fail)?),
        "wallet.import" => {
            let p: ImportParams = params(raw)?;
            to_value(handle.import_key(&p.secret).await.map_err(fail)?)
        }
        "wallet.list" => to_value(handle.keys().await.map_err(fail)?),
        "musig2.create" => {
            let p: CreateParams = params(raw)?;
            let signers = p
                .signers
                .iter()
                .map(|k| k.parse::<SignerKey>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RpcError::invalid_params(format!("signer key: {e}")))?;
            let payload = payload(&p)?;
            to_value(handle.create(&signers, payload).await.map_err(fail)?)
        }
        "musig2.invitations" => {
            let p: WaitParams = params(raw)?;
            to_value(invitations(handle, wait(p.wait_secs)).await.map_err(fail)?)
        }
        "musig2.join" => {
            let p: SessionParams = params(raw)?;
            handle.join(&p.session_id).await.map_err(fail)?;
            Ok(json!({ "session_id": p.session_id, "joined": true }))
        }
        "musig2.decline" => {
            let p: DeclineParams = params(raw)?;
            let reason = if p.reason.is_empty() {
                "declined"
            } else {
                &p.reason
            };
            handle.decline(&p.session_id, reason).await.map_err(fail)?;
            Ok(json!({ "session_id": p.session_id, "declined": true }))
        }
        "musig2.status" => {
            let p: SessionParams = params(raw)?;
            to_value(
                status(handle, &p.session_id, wait(p.wait_secs))
                    .await
                    .map_err(fail)?,
            )
        }
        "musig2.list" => to_value(handle.list().await.map_err(fail)?),
        other => Err(RpcError::new(
            rpc::METHOD_NOT_FOUND,
            format!("unknown method {other:?}"),
        )),
    }
}

fn wait(secs: u64) -> Duration {
    Duration::from_secs(secs.min(MAX_WAIT_SECS))
}

/// The pending invitations; if there are none, waits up to `wait` for one.
async fn invitations(
    handle: &SigningHandle,
    wait: Duration,
) -> Result<Vec<InvitationInfo>, conclave_signing::SigningError> {
    // Subscribe before looking, so an invitation arriving in between is seen.
    let mut events = handle.subscribe();
    let pending = handle.invitations().await?;
    if !pending.is_empty() || wait.is_zero() {
        return Ok(pending);
    }
    let _ = tokio::time::timeout(wait, async {
        while let Some(event) = events.recv().await {
            if matches!(
                event,
                SigningEvent::Invitation(_) | SigningEvent::Lagged { .. }
            ) {
                return;
            }
        }
    })
    .await;
    handle.invitations().await
}

/// A session's status; if it is still running, waits up to `wait` for it to
/// finish (done, failed or aborted).
async fn status(
    handle: &SigningHandle,
    session_id: &str,
    wait: Duration,
) -> Result<SessionStatus, conclave_signing::SigningError> {
    let mut events = handle.subscribe();
    let current = handle.status(session_id).await?;
    if current.phase.is_terminal() || wait.is_zero() {
        return Ok(current);
    }
    let _ = tokio::time::timeout(wait, async {
        while let Some(event) = events.recv().await {
            match event {
                SigningEvent::Finished(status) if status.session_id == session_id => return,
                // Missed events may include ours: look again.
                SigningEvent::Lagged { .. } => return,
                _ => {}
            }
        }
    })
    .await;
    handle.status(session_id).await
}
