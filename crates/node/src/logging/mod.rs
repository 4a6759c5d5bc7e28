//! Logging: `tracing` to stderr and to daily rolling files (0600, see
//! [`daily_file`]) in the profile's log folder.
//!
//! Programs that want the log lines elsewhere too (the desktop app keeps the
//! recent ones for its Logs view) pass an extra layer to [`init_with_layer`],
//! so every program logs with the same filter, format and files;
//! [`buffer`] is that layer for recent lines kept in memory.

pub mod buffer;
pub mod daily_file;

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{
    fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer, Registry,
};

use self::daily_file::DailyFile;

/// A caller-supplied layer that sees every event the filter lets through.
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

/// Daily log files kept per program.
const KEPT_LOG_FILES: usize = 14;

/// Default filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,libp2p_kad=error,libp2p_gossipsub=warn,libp2p_mdns=warn";

/// Errors setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log folder could not be used.
    #[error("cannot write logs to {path}: {reason}")]
    Folder {
        /// Folder.
        path: String,
        /// Why.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("logging already initialised: {0}")]
    Init(String),
}

/// Installs the global subscriber. Keep the guard alive for the life of the
/// program: dropping it flushes and stops the file writer.
pub fn init(log_dir: &Path, file_prefix: &str) -> Result<WorkerGuard, LoggingError> {
    install(log_dir, file_prefix, None)
}

/// Like [`init`], and also hands every event that passes the filter
/// (`RUST_LOG`, else [`DEFAULT_FILTER`]) to `extra`.
pub fn init_with_layer(
    log_dir: &Path,
    file_prefix: &str,
    extra: ExtraLayer,
) -> Result<WorkerGuard, LoggingError> {
    install(log_dir, file_prefix, Some(extra))
}

fn install(
    log_dir: &Path,
    file_prefix: &str,
    extra: Option<ExtraLayer>,
) -> Result<WorkerGuard, LoggingError> {
    let appender = DailyFile::open(log_dir, file_prefix, KEPT_LOG_FILES).map_err(|e| {
        LoggingError::Folder {
            path: log_dir.display().to_string(),
            reason: e.to_string(),
        }
    })?;
    let (file_writer, guard) = tracing_appender::non_blocking(appender);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // The extra layer sits directly on the registry (the type `ExtraLayer`
    // names); the filter is global, so it still sees only what passes it.
    // Colours only for a person at a terminal (NO_COLOR still wins): a
    // journal, a pipe or a test's log file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::registry()
        .with(extra)
        .with(filter)
        .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
        .with(fmt::layer().with_ansi(false).with_writer(file_writer))
        .try_init()
        .map_err(|e| LoggingError::Init(e.to_string()))?;
    Ok(guard)
}
