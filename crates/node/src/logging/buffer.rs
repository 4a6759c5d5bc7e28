//! Recent log lines kept in memory, for a program that shows them (the
//! desktop app's Logs view): [`init`] installs the usual logging plus one
//! more layer that keeps the newest [`LOG_CAPACITY`] lines in a ring buffer.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    path::Path,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use tracing::{field::Field, Event, Level, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{layer::Context, Layer};

use super::LoggingError;

/// Lines kept in memory; older ones are dropped (the log files keep them).
pub const LOG_CAPACITY: usize = 2000;
/// Longest message kept per line, in bytes.
const MAX_MESSAGE_LEN: usize = 2000;

/// Severity of a log line, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal operation.
    Info,
    /// Detail for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl From<&Level> for LogLevel {
    fn from(level: &Level) -> Self {
        match *level {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        }
    }
}

/// One captured log line.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct LogLine {
    /// Position in the stream of captured lines (wraps after 2^32 lines).
    pub seq: u32,
    /// Unix time in milliseconds (an f64: exact for any date in range).
    pub at_ms: f64,
    /// Severity.
    pub level: LogLevel,
    /// Module that logged it, such as `conclave_node::event_loop`.
    pub target: String,
    /// The message followed by its fields (`key=value`).
    pub message: String,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    next_seq: u32,
}

/// A bounded, shared buffer of recent log lines.
#[derive(Clone, Default)]
pub struct LogBuffer {
    ring: Arc<Mutex<Ring>>,
}

impl LogBuffer {
    fn push(&self, level: LogLevel, target: &str, message: String) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let seq = ring.next_seq;
        ring.next_seq = ring.next_seq.wrapping_add(1);
        if ring.lines.len() == LOG_CAPACITY {
            ring.lines.pop_front();
        }
        ring.lines.push_back(LogLine {
            seq,
            // A JavaScript-safe number: exact below 2^53 ms.
            at_ms: crate::clock::unix_ms() as f64,
            level,
            target: target.to_string(),
            message,
        });
    }

    /// The newest `limit` lines at `max_level` or more severe, oldest first.
    pub fn recent(&self, max_level: LogLevel, limit: usize) -> Vec<LogLine> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines: Vec<LogLine> = ring
            .lines
            .iter()
            .rev()
            .filter(|l| l.level <= max_level)
            .take(limit)
            .cloned()
            .collect();
        lines.reverse();
        lines
    }
}

/// Formats an event's message and fields into one line.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl tracing::field::Visit for LineVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

/// The `tracing` layer that fills a [`LogBuffer`].
pub struct BufferLayer {
    buffer: LogBuffer,
}

impl<S: Subscriber> Layer<S> for BufferLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let mut message = visitor.message;
        message.push_str(&visitor.fields);
        if message.len() > MAX_MESSAGE_LEN {
            let mut end = MAX_MESSAGE_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let meta = event.metadata();
        self.buffer
            .push(LogLevel::from(meta.level()), meta.target(), message);
    }
}

/// Installs the usual logging (stderr and daily files in `log_dir` named
/// after `file_prefix`, the same filter) with the in-memory buffer it
/// returns as an extra layer. Keep the guard alive while the program runs.
pub fn init(log_dir: &Path, file_prefix: &str) -> Result<(LogBuffer, WorkerGuard), LoggingError> {
    let buffer = LogBuffer::default();
    let layer = BufferLayer {
        buffer: buffer.clone(),
    };
    let guard = super::init_with_layer(log_dir, file_prefix, Box::new(layer))?;
    Ok((buffer, guard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn ring_is_bounded_and_filters_by_level() {
        let buffer = LogBuffer::default();
        for i in 0..LOG_CAPACITY + 10 {
            let level = if i % 2 == 0 {
                LogLevel::Info
            } else {
                LogLevel::Warn
            };
            buffer.push(level, "t", format!("line {i}"));
        }
        let all = buffer.recent(LogLevel::Trace, usize::MAX);
        assert_eq!(all.len(), LOG_CAPACITY);
        assert_eq!(all.first().unwrap().message, "line 10");
        assert_eq!(all.last().unwrap().seq as usize, LOG_CAPACITY + 9);

        let warnings = buffer.recent(LogLevel::Warn, 3);
        assert_eq!(warnings.len(), 3);
        assert!(warnings.iter().all(|l| l.level == LogLevel::Warn));
        assert_eq!(
            warnings.last().unwrap().message,
            format!("line {}", LOG_CAPACITY + 9)
        );
    }

    #[test]
    fn layer_captures_message_and_fields() {
        let buffer = LogBuffer::default();
        let subscriber = tracing_subscriber::registry().with(BufferLayer {
            buffer: buffer.clone(),
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(peer = "abc", "dial failed");
        });
        let lines = buffer.recent(LogLevel::Trace, 10);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].level, LogLevel::Warn);
        assert_eq!(lines[0].message, "dial failed peer=abc");
    }
}
