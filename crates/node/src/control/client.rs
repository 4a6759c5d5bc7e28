//! A client of the control socket.

use std::path::Path;

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{unix::OwnedReadHalf, unix::OwnedWriteHalf, UnixStream},
};

use super::{
    rpc::{Message, Request},
    ControlError,
};

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

    /// Calls `method` and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ControlError> {
        self.call_streaming(method, params, |_| {}).await
    }

    /// Calls `method`, passing each notification's params to `on_notification`
    /// until the final response arrives.
    pub async fn call_streaming(
        &mut self,
        method: &str,
        params: Value,
        mut on_notification: impl FnMut(Value),
    ) -> Result<Value, ControlError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request::new(id, method, params))
            .map_err(|e| ControlError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await.map_err(|e| self.io(e))?;
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
            if message.id.is_none() {
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
