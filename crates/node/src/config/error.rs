//! Why a configuration could not be read, written or used.

/// Errors reading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File that failed.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error(
        "invalid config file {path}: {source}\nfix it, or move it aside to start with the defaults"
    )]
    Parse {
        /// File that failed.
        path: String,
        /// Parser error, with line and column.
        source: Box<toml::de::Error>,
    },
    /// The config could not be written back.
    #[error("cannot write config file {path}: {source}")]
    Write {
        /// File that failed.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// An environment variable holds a value of the wrong form.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        /// Variable name.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// Values contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}
