//! Command line: which profile this instance uses.
//!
//! `--profile NAME` (or `CONCLAVE_PROFILE`) picks a profile with its own key,
//! config, data and logs, so two instances run side by side.
//! `--data-dir DIR` (or `CONCLAVE_DATA_DIR`) keeps all of them under DIR, the
//! keys too; `--key-file PATH` (or `CONCLAVE_KEY_FILE`) names a key file
//! (the rule: `conclave_node::identity::KeySource::for_profile`).

use std::path::PathBuf;

use clap::Parser;
use conclave_node::{identity::keysource::KEY_FILE_ENV, profile::DEFAULT_PROFILE};

/// Conclave desktop app.
#[derive(Parser, Debug, Clone)]
#[command(name = "conclave", version, about)]
pub struct Args {
    /// Profile: separate keys, config, data and logs.
    #[arg(long, env = "CONCLAVE_PROFILE", default_value = DEFAULT_PROFILE)]
    pub profile: String,
    /// Put all of the profile's files under DIR.
    #[arg(long, env = "CONCLAVE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the node's keys in this file (created 0600) instead of where the
    /// profile keeps them.
    #[arg(long, env = KEY_FILE_ENV, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_flag_is_read() {
        let args = Args::try_parse_from(["conclave", "--profile", "alice"]).unwrap();
        assert_eq!(args.profile, "alice");
        assert!(args.data_dir.is_none());
    }
}
