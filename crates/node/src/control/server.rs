//! Serving the control socket for a running node.

use std::{
    os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::Path,
    sync::Arc,
    time::Duration,
};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{unix::OwnedWriteHalf, UnixListener, UnixStream},
    sync::Semaphore,
    task::JoinHandle,
};
use zeroize::{Zeroize as _, Zeroizing};

use super::{
    rpc::{self, params, to_value as to_json, Message, Request, RpcError, ZeroizingValue},
    ControlError,
};
use crate::{
    events::NodeEvent,
    inbox::{TextInbox, TEXT_PROTOCOL},
    NodeError, NodeHandle, PolicyChange,
};

/// Clients served at once; more wait for a slot.
const MAX_CLIENTS: usize = 32;
/// The superuser's uid.
const ROOT: u32 = 0;
/// Starting size of a client's receive buffer, in bytes.
const LINE_CAPACITY: usize = 64 * 1024;
/// Longest `subscribe --timeout` and `publish --timeout`, in seconds.
const MAX_WAIT_SECS: u64 = 24 * 3600;

/// Binds `path` (mode 0600 from the start) and serves `node` on it, to its
/// owner's uid (and root) only, until the returned task is aborted. A stale socket
/// file from a crashed daemon is replaced; a live one is an error, and so
/// is anything at `path` that is not a socket (it is left as it is).
pub async fn serve(node: NodeHandle, path: &Path) -> Result<JoinHandle<()>, ControlError> {
    serve_with_inbox(node, path, None).await
}

/// Like [`serve`], also answering `inbox` from `inbox`.
pub async fn serve_with_inbox(
    node: NodeHandle,
    path: &Path,
    inbox: Option<Arc<TextInbox>>,
) -> Result<JoinHandle<()>, ControlError> {
    serve_extended(node, path, inbox, None).await
}

/// Methods a program serves on the control socket beside the node's own
/// (the daemon's signing service): a method the node does not know is
/// offered to the extension.
pub trait ControlExtension: Send + Sync + 'static {
    /// Answers `method`, or `None` when it is not one of the extension's.
    fn call(
        &self,
        method: &str,
        params: Value,
    ) -> Option<BoxFuture<'static, Result<Value, rpc::RpcError>>>;
}

/// Several extensions on one socket (signing, CoinJoin, rooms): a method
/// goes to the first extension that knows it.
impl ControlExtension for Vec<Arc<dyn ControlExtension>> {
    fn call(
        &self,
        method: &str,
        params: Value,
    ) -> Option<BoxFuture<'static, Result<Value, rpc::RpcError>>> {
        let params = ZeroizingValue(params);
        self.iter()
            .find_map(|extension| extension.call(method, params.0.clone()))
    }
}

/// Like [`serve_with_inbox`], also offering unknown methods to `extension`.
pub async fn serve_extended(
    node: NodeHandle,
    path: &Path,
    inbox: Option<Arc<TextInbox>>,
    extension: Option<Arc<dyn ControlExtension>>,
) -> Result<JoinHandle<()>, ControlError> {
    let (listener, owner) = bind_private(path).await?;
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(%e, "control socket accept failed");
                    continue;
                }
            };
            let node = node.clone();
            let inbox = inbox.clone();
            let extension = extension.clone();
            tokio::spawn(async move {
                let peer_uid = stream.peer_cred().ok().map(|cred| cred.uid());
                let served = match admit(peer_uid, owner) {
                    Ok(()) => serve_client(node, inbox, extension, stream).await,
                    Err(refusal) => {
                        tracing::warn!(?peer_uid, "control client of another user refused");
                        refuse(&mut stream, &refusal).await
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(%e, "control client ended");
                }
                drop(permit);
            });
        }
    }))
}

/// Binds the socket at `path` so that it never exists with a wider mode
/// than 0600: bound inside a fresh 0700 folder beside `path`, narrowed
/// there, then linked into place, which fails rather than replace anything
/// that appeared at `path` meanwhile. Returns the listener and the uid that
/// owns the socket, the only user it serves.
async fn bind_private(path: &Path) -> Result<(UnixListener, u32), ControlError> {
    let display = path.display().to_string();
    let io = |source| ControlError::Io {
        path: display.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ControlError::NotASocket(display));
        }
        Ok(_) => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(ControlError::InUse(display));
            }
            // A stale socket of a daemon that crashed.
            std::fs::remove_file(path).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Short names: a socket path has at most 107 bytes.
    let staging = parent.join(format!(".ctl-{:08x}", rand::random::<u32>()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(io)?;
    let staged = staging.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        let owner = std::fs::symlink_metadata(&staged)?.uid();
        std::fs::hard_link(&staged, path)?;
        Ok((listener, owner))
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    bound.map_err(io)
}

/// Whether a client whose credentials say `peer_uid` may use a socket
/// owned by `owner`: the same user, so that a socket made reachable by
/// mistake (a wider mode, a shared folder) still serves nobody else, and
/// root, who can read the daemon's memory anyway and is how a system
/// service's daemon (its own dynamic user) is administered.
fn admit(peer_uid: Option<u32>, owner: u32) -> Result<(), String> {
    match peer_uid {
        Some(uid) if uid == owner || uid == ROOT => Ok(()),
        Some(uid) => Err(format!(
            "refused: this control socket serves only uid {owner} (and root) and you are uid \
             {uid}; run conclavectl as the user that runs conclaved"
        )),
        None => Err(format!(
            "refused: the connecting user is unknown and this control socket serves only uid \
             {owner} (and root); run conclavectl as the user that runs conclaved"
        )),
    }
}

/// Tells a refused client why, then hangs up.
async fn refuse(stream: &mut UnixStream, refusal: &str) -> std::io::Result<()> {
    let message = Message::error(Value::Null, rpc::NOT_PERMITTED, refusal);
    let mut line = serde_json::to_vec(&message).expect("messages serialise");
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

async fn write(out: &mut OwnedWriteHalf, message: &Message) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).expect("messages serialise");
    line.push(b'\n');
    out.write_all(&line).await
}

async fn serve_client(
    node: NodeHandle,
    inbox: Option<Arc<TextInbox>>,
    extension: Option<Arc<dyn ControlExtension>>,
    stream: UnixStream,
) -> std::io::Result<()> {
    let (mut read, mut out) = stream.into_split();
    // Requests may carry a secret (`wallet.import`), so what is received
    // lives in this one buffer (no reader's buffer beside it), wiped as it
    // is consumed, and large enough from the start not to reallocate (which
    // would leave a copy) for any request but a big one.
    let mut received = Zeroizing::new(Vec::with_capacity(LINE_CAPACITY));
    loop {
        let len = match next_line(&mut read, &mut received).await? {
            NextLine::End => return Ok(()),
            NextLine::TooLarge => {
                let msg = Message::error(Value::Null, rpc::INVALID_REQUEST, "request too large");
                write(&mut out, &msg).await?;
                return Ok(());
            }
            NextLine::Line(len) => len,
        };
        let parsed = serde_json::from_slice::<Request>(&received[..len]);
        consume(&mut received, len);
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                let msg = Message::error(
                    Value::Null,
                    rpc::PARSE_ERROR,
                    format!("invalid JSON-RPC: {e}"),
                );
                write(&mut out, &msg).await?;
                continue;
            }
        };
        if request.jsonrpc != "2.0" {
            let msg = Message::error(request.id, rpc::INVALID_REQUEST, "jsonrpc must be \"2.0\"");
            write(&mut out, &msg).await?;
            continue;
        }
        let id = request.id.clone();
        let mut params = ZeroizingValue(request.params);
        let response = match request.method.as_str() {
            "subscribe" => subscribe(&node, std::mem::take(&mut params.0), &mut out).await,
            "inbox" => match &inbox {
                Some(inbox) => to_json(inbox.recent()),
                None => Err(RpcError::new(
                    rpc::METHOD_NOT_FOUND,
                    "this node keeps no inbox",
                )),
            },
            method => match extension
                .as_ref()
                .and_then(|x| x.call(method, params.0.clone()))
            {
                Some(call) => call.await,
                None => dispatch(&node, method, std::mem::take(&mut params.0)).await,
            },
        };
        drop(params);
        let message = match response {
            Ok(result) => Message::result(id, result),
            Err(e) => Message::error(id, e.code, e.message),
        };
        write(&mut out, &message).await?;
    }
}

/// What [`next_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum NextLine {
    /// The first this many bytes of the buffer are a line (with its
    /// newline, unless the client hung up after it).
    Line(usize),
    /// The client hung up.
    End,
    /// More than [`rpc::MAX_LINE`] bytes without a newline.
    TooLarge,
}

/// Reads from `read` until `received` starts with a whole line.
async fn next_line(
    read: &mut (impl AsyncRead + Unpin),
    received: &mut Vec<u8>,
) -> std::io::Result<NextLine> {
    let mut searched = 0;
    loop {
        if let Some(at) = received[searched..].iter().position(|&b| b == b'\n') {
            return Ok(NextLine::Line(searched + at + 1));
        }
        searched = received.len();
        if received.len() > rpc::MAX_LINE {
            return Ok(NextLine::TooLarge);
        }
        if received.len() == received.capacity() {
            received.reserve(LINE_CAPACITY);
        }
        if read.read_buf(received).await? == 0 {
            return Ok(if received.is_empty() {
                NextLine::End
            } else {
                NextLine::Line(received.len())
            });
        }
    }
}

/// Drops the first `len` bytes of `received` and wipes where they were.
fn consume(received: &mut Vec<u8>, len: usize) {
    received[..len].zeroize();
    received.drain(..len);
    // The bytes after the line moved forward; their old places are spare.
    received.spare_capacity_mut().zeroize();
}

type CallResult = Result<Value, RpcError>;

fn node_err(e: NodeError) -> RpcError {
    RpcError::new(rpc::NODE_ERROR, e.to_string())
}

#[derive(Deserialize)]
struct AddrParams {
    addr: String,
}
#[derive(Deserialize)]
struct PeerParams {
    peer_id: String,
}
#[derive(Deserialize)]
struct TopicParams {
    topic: String,
}
#[derive(Deserialize)]
struct PublishParams {
    topic: String,
    text: String,
    #[serde(default)]
    wait_peers: usize,
    #[serde(default = "default_wait")]
    timeout: u64,
}
#[derive(Deserialize)]
struct SendParams {
    peer_id: String,
    text: String,
}
#[derive(Deserialize)]
struct PolicyParams {
    private: Option<bool>,
}
#[derive(Deserialize)]
struct WaitTopicParams {
    topic: String,
    peers: usize,
    #[serde(default = "default_wait")]
    timeout: u64,
}
#[derive(Deserialize)]
struct SubscribeParams {
    topic: String,
    count: Option<u64>,
    timeout: Option<u64>,
}
#[derive(Deserialize)]
struct AnnounceParams {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    data: Value,
    #[serde(default = "default_ttl")]
    ttl: u64,
}
#[derive(Deserialize)]
struct TypeParams {
    #[serde(rename = "type")]
    kind: String,
}
#[derive(Deserialize)]
struct ResourceParams {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

fn default_wait() -> u64 {
    30
}
fn default_ttl() -> u64 {
    3600
}

async fn dispatch(node: &NodeHandle, method: &str, raw: Value) -> CallResult {
    match method {
        "id" => {
            let addrs = node.listen_addrs().await.map_err(node_err)?;
            Ok(json!({ "peer_id": node.peer_id().to_string(), "listen_addrs": addrs }))
        }
        "peers" => to_json(node.peers().await.map_err(node_err)?),
        "connect" => {
            let p: AddrParams = params(raw)?;
            let addr = NodeError::parse_multiaddr(&p.addr).map_err(node_err)?;
            let peer = node.connect(addr).await.map_err(node_err)?;
            Ok(json!({ "peer_id": peer.to_string() }))
        }
        "disconnect" => {
            let p: PeerParams = params(raw)?;
            let peer = NodeError::parse_peer_id(&p.peer_id).map_err(node_err)?;
            node.disconnect(peer).await.map_err(node_err)?;
            Ok(json!({ "peer_id": peer.to_string(), "disconnected": true }))
        }
        "unsubscribe" => {
            let p: TopicParams = params(raw)?;
            let was = node.unsubscribe(&p.topic).await.map_err(node_err)?;
            Ok(json!({ "topic": p.topic, "was_subscribed": was }))
        }
        "publish" => {
            let p: PublishParams = params(raw)?;
            if p.wait_peers > 0 {
                let wait = Duration::from_secs(p.timeout.min(MAX_WAIT_SECS));
                node.wait_for_topic_peers(&p.topic, p.wait_peers, wait)
                    .await
                    .map_err(node_err)?;
            }
            let id = node
                .broadcast(&p.topic, p.text.into_bytes())
                .await
                .map_err(node_err)?;
            Ok(json!({ "message_id": id }))
        }
        "send" => {
            let p: SendParams = params(raw)?;
            let peer = NodeError::parse_peer_id(&p.peer_id).map_err(node_err)?;
            let reply = node
                .send_to(peer, TEXT_PROTOCOL, p.text.into_bytes())
                .await
                .map_err(node_err)?;
            Ok(json!({ "peer_id": peer.to_string(), "reply": String::from_utf8_lossy(&reply) }))
        }
        "allow" | "deny" | "unlist" => {
            let p: PeerParams = params(raw)?;
            let peer = NodeError::parse_peer_id(&p.peer_id).map_err(node_err)?;
            let change = match method {
                "allow" => PolicyChange::Allow(peer),
                "deny" => PolicyChange::Deny(peer),
                _ => PolicyChange::Unlist(peer),
            };
            to_json(node.update_policy(change).await.map_err(node_err)?)
        }
        "policy" => {
            let p: PolicyParams = params(raw)?;
            let change = p.private.map_or(PolicyChange::None, PolicyChange::Private);
            to_json(node.update_policy(change).await.map_err(node_err)?)
        }
        "wait_topic" => {
            let p: WaitTopicParams = params(raw)?;
            let wait = Duration::from_secs(p.timeout.min(MAX_WAIT_SECS));
            node.wait_for_topic_peers(&p.topic, p.peers, wait)
                .await
                .map_err(node_err)?;
            Ok(json!({ "topic": p.topic, "peers": p.peers }))
        }
        "announce" => {
            let p: AnnounceParams = params(raw)?;
            let record = node
                .announce_resource(&p.kind, &p.id, p.data, Duration::from_secs(p.ttl))
                .await
                .map_err(node_err)?;
            to_json(record)
        }
        "discover" => {
            let p: TypeParams = params(raw)?;
            to_json(node.discover_resources(&p.kind).await.map_err(node_err)?)
        }
        "get" => {
            let p: ResourceParams = params(raw)?;
            to_json(node.get_resource(&p.kind, &p.id).await.map_err(node_err)?)
        }
        "stats" => to_json(node.stats().await.map_err(node_err)?),
        "nat" => to_json(node.nat_status().await.map_err(node_err)?),
        "identity" => {
            let identity = node.identity();
            let record = identity.record();
            Ok(json!({
                "peer_id": node.peer_id().to_string(),
                "pq_fingerprint": record.fingerprint(),
                "ml_dsa_public_bytes": record.ml_dsa_public.len(),
                "ml_kem_public_bytes": record.ml_kem_public.len(),
                "record_issued_at": record.issued_at,
            }))
        }
        "shutdown" => {
            let node = node.clone();
            // Answer first, then stop: the client gets its reply.
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let _ = node.stop().await;
            });
            Ok(json!({ "stopping": true }))
        }
        other => Err(RpcError::new(
            rpc::METHOD_NOT_FOUND,
            format!("unknown method {other:?}"),
        )),
    }
}

/// Subscribes the node to a topic and streams its messages to the client as
/// `message` notifications, until `count` messages or `timeout` seconds.
async fn subscribe(node: &NodeHandle, raw: Value, out: &mut OwnedWriteHalf) -> CallResult {
    let p: SubscribeParams = params(raw)?;
    // Listen before subscribing so that no early message is missed.
    let mut events = node.subscribe_events();
    node.subscribe(&p.topic).await.map_err(node_err)?;
    let deadline = p
        .timeout
        .map(|t| tokio::time::Instant::now() + Duration::from_secs(t.min(MAX_WAIT_SECS)));
    let mut received = 0u64;
    let mut lagged = 0u64;
    while p.count.is_none_or(|c| received < c) {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, events.recv()).await {
                Ok(e) => e,
                Err(_) => break,
            },
            None => events.recv().await,
        };
        match next {
            None => return Err(node_err(NodeError::Stopped)),
            Some(NodeEvent::Message(m)) if m.topic == p.topic => {
                received += 1;
                let params = json!({
                    "topic": m.topic,
                    "from": m.from.map(|p| p.to_string()),
                    "data": String::from_utf8_lossy(&m.data),
                    "id": m.id,
                });
                write(out, &Message::notification("message", params))
                    .await
                    .map_err(|e| RpcError::new(rpc::NODE_ERROR, e.to_string()))?;
            }
            Some(NodeEvent::Lagged { missed }) => lagged += missed,
            Some(_) => {}
        }
    }
    Ok(json!({ "topic": p.topic, "received": received, "lagged_events": lagged }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_in_one_buffer_that_never_grows_for_small_requests() {
        let mut client: &[u8] = b"{\"a\":1}\n{\"secret\":\"00ff\"}\ntail";
        let mut received = Vec::with_capacity(LINE_CAPACITY);
        let mut lines = Vec::new();
        loop {
            match next_line(&mut client, &mut received).await.unwrap() {
                NextLine::Line(len) => {
                    lines.push(String::from_utf8(received[..len].to_vec()).unwrap());
                    consume(&mut received, len);
                    assert_eq!(received.capacity(), LINE_CAPACITY, "never reallocated");
                }
                NextLine::End => break,
                NextLine::TooLarge => panic!("too large"),
            }
        }
        assert_eq!(lines, ["{\"a\":1}\n", "{\"secret\":\"00ff\"}\n", "tail"]);
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_is_too_large() {
        let long = vec![b'x'; rpc::MAX_LINE + 2];
        let mut client: &[u8] = &long;
        let mut received = Vec::new();
        assert_eq!(
            next_line(&mut client, &mut received).await.unwrap(),
            NextLine::TooLarge
        );
    }

    #[test]
    fn only_the_owners_uid_and_root_are_admitted() {
        assert!(admit(Some(1000), 1000).is_ok());
        assert!(admit(Some(0), 1000).is_ok(), "root administers services");
        let refusal = admit(Some(1001), 1000).unwrap_err();
        assert!(refusal.contains("serves only uid 1000 (and root) and you are uid 1001"));
        assert!(admit(None, 1000).is_err());
        assert!(admit(Some(65_534), 0).is_err());
    }
}
