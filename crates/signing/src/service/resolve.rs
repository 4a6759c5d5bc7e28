//! Finding and reaching signers: the peer behind each signing key (this
//! node's own keys, the directory of gossiped records, then the DHT), and
//! a connection to it with its PQ identity record in hand, which sealing
//! needs.

use std::time::{Duration, Instant};

use conclave_node::{Multiaddr, NodeError, NodeEvent, NodeHandle, PeerId};

use super::{Command, SigningError, SigningHandle};
use crate::{
    advert::{SignerRecord, SIGNER_RESOURCE},
    keys::SignerKey,
};

/// First pause between DHT look-ups of a key not found yet (doubling).
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest pause between DHT look-ups.
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The peer (and its addresses) behind each of `keys`, in order.
pub(crate) async fn resolve(
    handle: &SigningHandle,
    keys: &[SignerKey],
) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, SigningError> {
    let known = handle
        .request(|reply| Command::Lookup {
            keys: keys.to_vec(),
            reply,
        })
        .await?;
    let deadline = Instant::now() + handle.shared.config.resolve_timeout;
    let found =
        futures::future::try_join_all(keys.iter().zip(known).map(|(key, known)| async move {
            match known {
                Some(record) => Ok(record),
                None => from_dht(&handle.shared.node, *key, deadline).await,
            }
        }))
        .await?;
    let fresh: Vec<SignerRecord> = found.clone();
    let _ = handle
        .commands
        .send(Command::Remember { records: fresh })
        .await;
    Ok(found.into_iter().map(|r| (r.peer, r.addrs)).collect())
}

/// Looks `key` up in the DHT until found or `deadline`.
async fn from_dht(
    node: &NodeHandle,
    key: SignerKey,
    deadline: Instant,
) -> Result<SignerRecord, SigningError> {
    let mut pause = RETRY_FIRST;
    loop {
        match node.get_resource(SIGNER_RESOURCE, &key.to_hex()).await {
            Ok(resource) => match serde_json::from_value::<SignerRecord>(resource.data) {
                Ok(record) if record.key == key => match record.verify(resource.provider) {
                    Ok(()) => return Ok(record),
                    Err(e) => tracing::warn!(%e, "signer record refused"),
                },
                Ok(_) => tracing::warn!(%key, "signer record stored under another key"),
                Err(e) => tracing::warn!(%e, %key, "malformed signer record"),
            },
            Err(e) if e.is_not_found() => {}
            Err(NodeError::Stopped) => return Err(SigningError::Stopped),
            Err(e) => tracing::debug!(%e, %key, "signer record look-up failed"),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(SigningError::UnknownSigner(key));
        }
        // Polling the DHT is the only way to learn of a record; back off.
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Connects to `peer` if needed (trying `addrs`) and waits until its PQ
/// identity record is verified, so messages can be sealed to it.
pub(crate) async fn ensure_ready(
    node: &NodeHandle,
    peer: PeerId,
    addrs: &[Multiaddr],
    timeout: Duration,
) -> Result<(), SigningError> {
    if peer == node.peer_id() {
        return Ok(());
    }
    let unreachable = |reason: String| SigningError::Unreachable { peer, reason };
    // Subscribe first: the record may arrive while we dial.
    let mut events = node.subscribe_events();
    if !node.is_connected(peer).await? {
        let mut last = "no address known".to_string();
        let mut connected = false;
        for addr in addrs {
            match node.connect(addr.clone()).await {
                Ok(p) if p == peer => {
                    connected = true;
                    break;
                }
                Ok(other) => last = format!("{addr} is {other}, not {peer}"),
                Err(e) => last = e.to_string(),
            }
        }
        if !connected {
            return Err(unreachable(last));
        }
    }
    let wait = async {
        while node.pq_record(&peer).is_none() {
            match events.recv().await {
                Some(NodeEvent::PeerUpdated(info)) | Some(NodeEvent::PeerConnected(info))
                    if info.peer_id == peer && info.pq_identity =>
                {
                    break
                }
                Some(_) => {}
                None => return Err(SigningError::Stopped),
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| unreachable("its PQ identity record did not arrive".into()))?
}
