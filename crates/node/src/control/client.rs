//! A client of the control socket.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{unix::OwnedReadHalf, unix::OwnedWriteHalf, UnixStream},
};

use zeroize::Zeroizing;

use super::{rpc::Message, ControlError};

/// A connection to a daemon's control socket.
pub struct ControlClient {
    path: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl ControlClient {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Self, ControlError> {
        let display = path.display().to_string();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| ControlError::Connect {
                path: display.clone(),
                reason: e.to_string(),
            })?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            path: display,
            reader: BufReader::new(read),
            writer,
            next_id: 1,
        })
    }

    fn io(&self, source: std::io::Error) -> ControlError {
        ControlError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The daemon's refusal of this connection, if that is what it sent.
    async fn refusal(&mut self) -> Option<ControlError> {
        let mut buf = String::new();
        self.reader.read_line(&mut buf).await.ok()?;
        let message: Message = serde_json::from_str(&buf).ok()?;
        let error = message.error?;
        Some(ControlError::Remote {
            code: error.code,
            message: error.message,
        })
    }

    /// Calls `method` and returns its result. The request line is wiped
    /// once sent, so `params` may hold a secret (keep it in a
    /// [`ZeroizingValue`](super::rpc::ZeroizingValue)).
    pub async fn call(
        &mut self,
        method: &str,
        params: impl Serialize,
    ) -> Result<Value, ControlError> {
        self.call_streaming(method, params, |_| {}).await
    }

    /// Calls `method`, passing each notification's params to `on_notification`
    /// until the final response arrives.
    pub async fn call_streaming(
        &mut self,
        method: &str,
        params: impl Serialize,
        mut on_notification: impl FnMut(Value),
    ) -> Result<Value, ControlError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = OutgoingRequest {
            jsonrpc: "2.0",
            id,
            method,
            params,
        };
        let line = encode_line(&request).map_err(|e| ControlError::Protocol(e.to_string()))?;
        if let Err(e) = self.writer.write_all(&line).await {
            // A daemon that refuses this user says why and hangs up, maybe
            // before the request is written.
            return Err(self.refusal().await.unwrap_or_else(|| self.io(e)));
        }
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = self
                .reader
                .read_line(&mut buf)
                .await
                .map_err(|e| self.io(e))?;
            if n == 0 {
                return Err(ControlError::Protocol(
                    "the daemon closed the connection".into(),
                ));
            }
            let message: Message = serde_json::from_str(&buf)
                .map_err(|e| ControlError::Protocol(format!("{e}: {buf}")))?;
            // An error without an id answers no request in particular: the
            // daemon refused the connection.
            if message.id.is_none() && message.error.is_none() {
                if let Some(params) = message.params {
                    on_notification(params);
                }
                continue;
            }
            if let Some(error) = message.error {
                return Err(ControlError::Remote {
                    code: error.code,
                    message: error.message,
                });
            }
            return Ok(message.result.unwrap_or(Value::Null));
        }
    }
}

/// A request as sent, its parameters borrowed from the caller.
#[derive(Serialize)]
struct OutgoingRequest<'a, P> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: P,
}

/// `request` as one JSON line in a buffer wiped on drop, sized before it is
/// written so that it never grows and leaves a copy behind.
fn encode_line(request: &impl Serialize) -> serde_json::Result<Zeroizing<Vec<u8>>> {
    let mut size = ByteCount(0);
    serde_json::to_writer(&mut size, request)?;
    let mut line = Zeroizing::new(Vec::with_capacity(size.0 + 1));
    serde_json::to_writer(&mut *line, request)?;
    line.push(b'\n');
    Ok(line)
}

/// A writer that only counts.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_is_sized_exactly_and_parses() {
        let params = serde_json::json!({ "secret": "ab".repeat(32) });
        let line = encode_line(&OutgoingRequest {
            jsonrpc: "2.0",
            id: 7,
            method: "wallet.import",
            params: &params,
        })
        .unwrap();
        assert_eq!(line.len(), line.capacity(), "the buffer never grew");
        let parsed: super::super::rpc::Request = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed.method, "wallet.import");
        assert_eq!(parsed.params, params);
    }
}
