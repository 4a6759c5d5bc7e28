//! Per-profile folders: config, data, logs and the control socket.
//!
//! Paths come from the `directories` crate, one set per profile name, so two
//! nodes (or two app instances) run side by side. `--data-dir` puts all of a
//! profile's files under one folder instead, the node's keys included (see
//! [`KeySource::for_profile`](crate::identity::keysource::KeySource::for_profile)).

use std::path::{Path, PathBuf};

/// Profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// Errors resolving profile folders.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Profile names become folder names, so they are restricted.
    #[error("invalid profile name {0:?}: use letters, digits, '-' and '_' (at most 64)")]
    InvalidName(String),
    /// The platform gave no home directory.
    #[error("no home directory found: pass --data-dir")]
    NoHome,
    /// A folder could not be created or made owner-only.
    #[error(
        "cannot make {path} a folder only its owner can open ({source}): \
         check who owns it, or pass a --data-dir you own"
    )]
    Create {
        /// Folder that failed.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
}

/// The folders and files of one profile.
#[derive(Debug, Clone)]
pub struct Profile {
    name: String,
    config_dir: PathBuf,
    data_dir: PathBuf,
    log_dir: PathBuf,
    /// Whether every file of the profile lives in one folder (`--data-dir`).
    one_folder: bool,
}

impl Profile {
    /// Resolves a profile's folders; `data_dir` overrides all of them.
    pub fn resolve(name: &str, data_dir: Option<&Path>) -> Result<Self, ProfileError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ProfileError::InvalidName(name.to_string()));
        }
        if let Some(dir) = data_dir {
            return Ok(Self {
                name: name.to_string(),
                config_dir: dir.to_path_buf(),
                data_dir: dir.to_path_buf(),
                log_dir: dir.join("logs"),
                one_folder: true,
            });
        }
        let dirs = directories::ProjectDirs::from("org", "Conclave", "conclave")
            .ok_or(ProfileError::NoHome)?;
        let data_dir = dirs.data_dir().join(name);
        Ok(Self {
            name: name.to_string(),
            config_dir: dirs.config_dir().join(name),
            log_dir: data_dir.join("logs"),
            data_dir,
            one_folder: false,
        })
    }

    /// Creates the profile's folders owner-only (0700), narrowing ones that
    /// exist already.
    pub fn create_dirs(&self) -> Result<(), ProfileError> {
        for dir in [&self.config_dir, &self.data_dir, &self.log_dir] {
            create_private_dir(dir)?;
        }
        Ok(())
    }

    /// Profile name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Folder of `config.toml`.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }
    /// Folder of state, keys and the control socket.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// Folder of the rolling log files.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }
    /// The profile's config file.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }
    /// Whether every file of the profile lives in one folder, the data
    /// folder given as `--data-dir`.
    pub fn in_one_folder(&self) -> bool {
        self.one_folder
    }
    /// The key file of a profile in one folder (servers without a keychain).
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("identity.key")
    }
    /// The default connection policy file (allow and deny lists, private
    /// mode), shared by `conclaved` and the desktop app.
    pub fn policy_file(&self) -> PathBuf {
        self.data_dir.join("policy.json")
    }
    /// The daemon's default control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ProfileError> {
    crate::state_file::create_private_dir(dir).map_err(|source| ProfileError::Create {
        path: dir.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_holds_everything() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profile::resolve("alice", Some(dir.path())).unwrap();
        p.create_dirs().unwrap();
        assert!(p.in_one_folder());
        assert!(p.key_file().starts_with(dir.path()));
        assert!(p.policy_file().starts_with(dir.path()));
        assert!(p.control_socket().starts_with(dir.path()));
        assert!(p.log_dir().is_dir());
    }

    #[test]
    fn profiles_are_separate_and_names_checked() {
        let a = Profile::resolve("a", None).unwrap();
        let b = Profile::resolve("b", None).unwrap();
        assert!(!a.in_one_folder());
        assert_ne!(a.data_dir(), b.data_dir());
        assert_ne!(a.config_file(), b.config_file());
        assert!(Profile::resolve("../x", None).is_err());
        assert!(Profile::resolve("", None).is_err());
    }
}
