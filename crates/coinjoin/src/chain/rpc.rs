//! The JSON-RPC transport to Bitcoin Core: HTTP POST with Basic auth from
//! Core's cookie file (re-read when Core restarted and answers 401), a
//! connect and an overall timeout, a bound on every reply, batches, and
//! Core's reply shapes (JSON-RPC 1.0 with HTTP error statuses, and 2.0).
//!
//! What a Core error means depends on the method, so errors inside a
//! reply come back as [`Failure`] for the caller to judge; everything
//! else (no connection, a timeout, a reply that is not Core's) is a
//! [`ChainError`] here.

use std::{
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use attohttpc::{header::CONTENT_TYPE, ErrorKind, ProxySettings};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::ChainError;

/// Largest cookie file read (Core's is `__cookie__:` and 64 hex digits).
const MAX_COOKIE_BYTES: usize = 1024;

/// An error Core put in a reply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Failure {
    /// Core's code (src/rpc/protocol.h).
    pub code: i64,
    /// Core's message.
    pub message: String,
}

/// A call's outcome, or the news that Core has a new cookie.
#[derive(Debug)]
pub(crate) enum Answer<T> {
    /// Core answered.
    Done(T),
    /// Core refused the old cookie and the file holds a new one (Core
    /// restarted): the caller checks the chain again, then retries.
    CookieRenewed,
}

/// `user:password` from the cookie file; never printed.
#[derive(PartialEq, Eq)]
struct Cookie(Zeroizing<String>);

impl Cookie {
    fn parts(&self) -> (&str, &str) {
        self.0.split_once(':').expect("checked when read")
    }
}

/// The connection settings and the cached cookie.
pub(crate) struct RpcClient {
    url: String,
    cookie_file: PathBuf,
    cookie: Mutex<Option<Cookie>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// " with -regtest" and the like, for hints.
    network_hint: String,
    next_id: AtomicU64,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<Failure>,
    #[serde(default)]
    id: Value,
}

enum Sent {
    Reply(u16, Vec<u8>),
    Unauthorized,
}

impl RpcClient {
    pub(crate) fn new(
        url: String,
        cookie_file: PathBuf,
        connect_timeout: Duration,
        request_timeout: Duration,
        network_hint: String,
    ) -> Self {
        Self {
            url,
            cookie_file,
            cookie: Mutex::new(None),
            connect_timeout,
            request_timeout,
            network_hint,
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn cookie_file(&self) -> &Path {
        &self.cookie_file
    }

    /// Calls `method`; the reply may be at most `limit` bytes.
    pub(crate) fn call(
        &self,
        method: &str,
        params: Value,
        limit: usize,
    ) -> Result<Answer<Result<Value, Failure>>, ChainError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = request_json(id, method, params);
        let (status, reply) = match self.post(method, body.to_string().into_bytes(), limit)? {
            Answer::Done(r) => r,
            Answer::CookieRenewed => return Ok(Answer::CookieRenewed),
        };
        parse_single(status, &reply, id)
            .map(Answer::Done)
            .map_err(|e| self.reply_error(method, e))
    }

    /// Calls `method` once per entry of `params` in one HTTP request;
    /// outcomes in the order of `params`.
    pub(crate) fn batch(
        &self,
        method: &str,
        params: Vec<Value>,
        limit: usize,
    ) -> Result<Answer<Vec<Result<Value, Failure>>>, ChainError> {
        if params.is_empty() {
            return Ok(Answer::Done(Vec::new()));
        }
        let first = self
            .next_id
            .fetch_add(params.len() as u64, Ordering::Relaxed);
        let ids: Vec<u64> = (first..first + params.len() as u64).collect();
        let body: Vec<Value> = ids
            .iter()
            .zip(params)
            .map(|(id, p)| request_json(*id, method, p))
            .collect();
        let body = Value::Array(body).to_string().into_bytes();
        let (status, reply) = match self.post(method, body, limit)? {
            Answer::Done(r) => r,
            Answer::CookieRenewed => return Ok(Answer::CookieRenewed),
        };
        parse_batch(status, &reply, &ids)
            .map(Answer::Done)
            .map_err(|e| self.reply_error(method, e))
    }

    fn post(
        &self,
        method: &str,
        body: Vec<u8>,
        limit: usize,
    ) -> Result<Answer<(u16, Vec<u8>)>, ChainError> {
        let cookie = {
            let mut cached = self.cookie.lock().unwrap_or_else(|e| e.into_inner());
            match cached.as_ref() {
                Some(c) => Cookie(c.0.clone()),
                None => {
                    let c = read_cookie(&self.cookie_file, &self.network_hint)?;
                    *cached = Some(Cookie(c.0.clone()));
                    c
                }
            }
        };
        match self.send(method, body, &cookie, limit)? {
            Sent::Reply(status, reply) => Ok(Answer::Done((status, reply))),
            Sent::Unauthorized => {
                let fresh = read_cookie(&self.cookie_file, &self.network_hint)?;
                if fresh == cookie {
                    return Err(ChainError::Unauthorized {
                        method: method.into(),
                        url: self.url.clone(),
                        cookie_file: self.cookie_file.clone(),
                    });
                }
                *self.cookie.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
                Ok(Answer::CookieRenewed)
            }
        }
    }

    fn send(
        &self,
        method: &str,
        body: Vec<u8>,
        cookie: &Cookie,
        limit: usize,
    ) -> Result<Sent, ChainError> {
        let (user, password) = cookie.parts();
        let response = attohttpc::post(&self.url)
            // Never through a proxy from the environment: the cookie goes
            // to bitcoind and nowhere else.
            .proxy_settings(ProxySettings::builder().build())
            .follow_redirects(false)
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.request_timeout)
            .timeout(self.request_timeout)
            .header(CONTENT_TYPE, "application/json")
            .basic_auth(user, Some(password))
            .bytes(body)
            .send()
            .map_err(|e| self.transport_error(method, e))?;
        let (status, headers, reader) = response.split();
        if status.as_u16() == 401 {
            return Ok(Sent::Unauthorized);
        }
        let too_large = || ChainError::TooLarge {
            method: method.into(),
            url: self.url.clone(),
            limit,
        };
        let declared = headers
            .get(attohttpc::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut reply = Vec::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut reply)
            .map_err(|e| self.io_error(method, e))?;
        if reply.len() > limit {
            return Err(too_large());
        }
        Ok(Sent::Reply(status.as_u16(), reply))
    }

    fn transport_error(&self, method: &str, e: attohttpc::Error) -> ChainError {
        match e.into_kind() {
            ErrorKind::Io(io) => self.io_error(method, io),
            ErrorKind::InvalidBaseUrl | ErrorKind::InvalidUrlHost | ErrorKind::InvalidUrlPort => {
                ChainError::Config(format!(
                    "--bitcoind-rpc {:?} is not a usable URL: use http://HOST:PORT, e.g. http://127.0.0.1:18443",
                    self.url
                ))
            }
            ErrorKind::InvalidResponse(kind) => ChainError::BadReply {
                method: method.into(),
                url: self.url.clone(),
                cause: format!("invalid HTTP: {kind}"),
            },
            other => ChainError::Unreachable {
                method: method.into(),
                url: self.url.clone(),
                cause: format!("{other:?}"),
                network_hint: self.network_hint.clone(),
            },
        }
    }

    fn io_error(&self, method: &str, e: io::Error) -> ChainError {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ChainError::Timeout {
                method: method.into(),
                url: self.url.clone(),
                after: self.request_timeout,
            },
            _ => ChainError::Unreachable {
                method: method.into(),
                url: self.url.clone(),
                cause: e.to_string(),
                network_hint: self.network_hint.clone(),
            },
        }
    }

    fn reply_error(&self, method: &str, e: ReplyError) -> ChainError {
        match e {
            ReplyError::Malformed(cause) => ChainError::BadReply {
                method: method.into(),
                url: self.url.clone(),
                cause,
            },
            ReplyError::Status(status) => ChainError::Http {
                method: method.into(),
                url: self.url.clone(),
                status,
                hint: status_hint(status).into(),
            },
        }
    }
}

fn request_json(id: u64, method: &str, params: Value) -> Value {
    serde_json::json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params})
}

/// A reply that carries no JSON-RPC answer.
#[derive(Debug, PartialEq, Eq)]
enum ReplyError {
    /// Not Core's JSON-RPC.
    Malformed(String),
    /// An HTTP error status without a JSON-RPC body.
    Status(u16),
}

fn status_hint(status: u16) -> &'static str {
    match status {
        403 => {
            "bitcoind does not let this address use its RPC: allow it with bitcoind's -rpcallowip"
        }
        404 | 405 => {
            "is --bitcoind-rpc the RPC port of bitcoind, without a path other than /wallet/NAME?"
        }
        503 => {
            "bitcoind's RPC work queue is full: retry shortly, or raise bitcoind's -rpcworkqueue"
        }
        _ => "is --bitcoind-rpc the RPC port of bitcoind? see bitcoind's debug.log",
    }
}

/// One reply: Core answers 200 with a result, or (JSON-RPC 1.0) an HTTP
/// error status with `error` set, or (2.0) 200 with `error` set.
fn parse_single(status: u16, body: &[u8], id: u64) -> Result<Result<Value, Failure>, ReplyError> {
    let reply: Reply = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(_) if status != 200 => return Err(ReplyError::Status(status)),
        Err(e) => return Err(ReplyError::Malformed(format!("not a JSON-RPC reply: {e}"))),
    };
    judge(status, reply, id)
}

fn judge(status: u16, reply: Reply, id: u64) -> Result<Result<Value, Failure>, ReplyError> {
    if let Some(failure) = reply.error {
        return Ok(Err(failure));
    }
    if status != 200 {
        return Err(ReplyError::Status(status));
    }
    if reply.id.as_u64() != Some(id) {
        return Err(ReplyError::Malformed(format!(
            "the reply is for request {}, not {id}",
            reply.id
        )));
    }
    Ok(Ok(reply.result))
}

/// A batch's replies, matched to `ids` (Core may answer in any order).
fn parse_batch(
    status: u16,
    body: &[u8],
    ids: &[u64],
) -> Result<Vec<Result<Value, Failure>>, ReplyError> {
    let replies: Vec<Reply> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(_) if status != 200 => return Err(ReplyError::Status(status)),
        Err(e) => {
            return Err(ReplyError::Malformed(format!(
                "not a JSON-RPC batch reply: {e}"
            )))
        }
    };
    if replies.len() != ids.len() {
        return Err(ReplyError::Malformed(format!(
            "{} replies to a batch of {}",
            replies.len(),
            ids.len()
        )));
    }
    let mut by_id: std::collections::BTreeMap<u64, Reply> = std::collections::BTreeMap::new();
    for reply in replies {
        let Some(id) = reply.id.as_u64().filter(|id| ids.contains(id)) else {
            return Err(ReplyError::Malformed(format!(
                "a batch reply for request {}, which was not asked",
                reply.id
            )));
        };
        by_id.insert(id, reply);
    }
    ids.iter()
        .map(|id| {
            let reply = by_id
                .remove(id)
                .ok_or_else(|| ReplyError::Malformed(format!("no reply for request {id}")))?;
            // A batch is answered 200 as a whole; each entry stands alone.
            judge(200, reply, *id)
        })
        .collect()
}

/// Reads Core's cookie file: `user:password` on one line, at most
/// [`MAX_COOKIE_BYTES`], kept in erasable memory.
fn read_cookie(path: &Path, network_hint: &str) -> Result<Cookie, ChainError> {
    let error = |cause: String, hint: String| ChainError::Cookie {
        path: path.to_path_buf(),
        cause,
        hint,
    };
    let file = File::open(path).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => format!(
                "bitcoind writes it while it runs: is bitcoind running{network_hint}? check --bitcoind-cookie"
            ),
            io::ErrorKind::PermissionDenied => "this user may not read it: start bitcoind with \
                 -rpccookieperms=group and add this user to bitcoind's group, or check --bitcoind-cookie"
                .into(),
            _ => "check --bitcoind-cookie".into(),
        };
        error(e.to_string(), hint)
    })?;
    // Room for the whole bound up front, so reading never reallocates and
    // leaves a copy of the secret behind.
    let mut text = Zeroizing::new(String::with_capacity(MAX_COOKIE_BYTES + 1));
    let not_a_cookie =
        || "point --bitcoind-cookie at the .cookie file in bitcoind's data directory";
    file.take(MAX_COOKIE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| error(e.to_string(), not_a_cookie().into()))?;
    if text.len() > MAX_COOKIE_BYTES {
        return Err(error(
            format!("larger than {MAX_COOKIE_BYTES} bytes, so not a cookie"),
            not_a_cookie().into(),
        ));
    }
    let line = text.trim_end_matches(['\r', '\n']);
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            let mut cookie = Zeroizing::new(String::with_capacity(line.len()));
            cookie.push_str(line);
            Ok(Cookie(cookie))
        }
        _ => Err(error(
            "its content is not USER:PASSWORD".into(),
            not_a_cookie().into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cores_reply_shapes_are_told_apart() {
        // JSON-RPC 1.0: a result with HTTP 200.
        let ok = br#"{"result":{"chain":"regtest"},"error":null,"id":7}"#;
        assert_eq!(
            parse_single(200, ok, 7),
            Ok(Ok(json!({"chain": "regtest"})))
        );
        // gettxout of a spent output: a null result.
        assert_eq!(
            parse_single(200, br#"{"result":null,"error":null,"id":3}"#, 3),
            Ok(Ok(Value::Null))
        );
        // JSON-RPC 1.0 errors come with HTTP 500 (404 for an unknown method).
        let refused = br#"{"result":null,"error":{"code":-26,"message":"mandatory-script-verify-flag-failed (Invalid Schnorr signature)"},"id":8}"#;
        assert_eq!(
            parse_single(500, refused, 8),
            Ok(Err(Failure {
                code: -26,
                message: "mandatory-script-verify-flag-failed (Invalid Schnorr signature)".into()
            }))
        );
        let unknown =
            br#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":9}"#;
        assert!(matches!(
            parse_single(404, unknown, 9),
            Ok(Err(Failure { code: -32601, .. }))
        ));
        // JSON-RPC 2.0: errors with HTTP 200, no result member.
        let v2 =
            br#"{"jsonrpc":"2.0","error":{"code":-28,"message":"Loading block index..."},"id":4}"#;
        assert!(matches!(
            parse_single(200, v2, 4),
            Ok(Err(Failure { code: -28, .. }))
        ));
        // HTTP errors without a JSON-RPC body (403 from -rpcallowip, 503 work queue).
        assert_eq!(parse_single(403, b"", 1), Err(ReplyError::Status(403)));
        assert_eq!(
            parse_single(503, b"Work queue depth exceeded", 1),
            Err(ReplyError::Status(503))
        );
        assert!(status_hint(403).contains("-rpcallowip"));
        assert!(status_hint(503).contains("-rpcworkqueue"));
        // Not Core at all, or an answer to another request.
        assert!(matches!(
            parse_single(200, b"<html>hello</html>", 1),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_single(200, br#"{"result":1,"error":null,"id":2}"#, 1),
            Err(ReplyError::Malformed(_))
        ));
    }

    #[test]
    fn batch_replies_are_matched_by_id_in_any_order() {
        let body = br#"[{"result":null,"error":null,"id":11},{"result":{"value":1.5},"error":null,"id":10},{"result":null,"error":{"code":-8,"message":"bad"},"id":12}]"#;
        let got = parse_batch(200, body, &[10, 11, 12]).unwrap();
        assert_eq!(got[0], Ok(json!({"value": 1.5})));
        assert_eq!(got[1], Ok(Value::Null));
        assert!(matches!(got[2], Err(Failure { code: -8, .. })));
        assert!(matches!(
            parse_batch(200, br#"[{"result":null,"error":null,"id":10}]"#, &[10, 11]),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(
                200,
                br#"[{"result":null,"error":null,"id":10},{"result":null,"error":null,"id":10}]"#,
                &[10, 11]
            ),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(200, br#"[{"result":null,"error":null,"id":99}]"#, &[10]),
            Err(ReplyError::Malformed(_))
        ));
    }

    #[test]
    fn cookie_files_are_checked_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cookie");
        let missing = read_cookie(&path, " with -regtest").err().unwrap();
        assert!(
            missing
                .to_string()
                .contains("is bitcoind running with -regtest?"),
            "{missing}"
        );
        std::fs::write(&path, "__cookie__:00ff\n").unwrap();
        assert_eq!(
            read_cookie(&path, "").unwrap().parts(),
            ("__cookie__", "00ff")
        );
        for bad in ["no colon", "__cookie__:", ":secret"] {
            std::fs::write(&path, bad).unwrap();
            let e = read_cookie(&path, "").err().unwrap();
            assert!(e.to_string().contains("not USER:PASSWORD"), "{bad}: {e}");
        }
        std::fs::write(&path, "a:".to_string() + &"b".repeat(MAX_COOKIE_BYTES)).unwrap();
        let e = read_cookie(&path, "").err().unwrap();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
