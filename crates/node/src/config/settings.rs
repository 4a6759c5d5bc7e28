//! The settings a person edits in the desktop app, read from and written
//! to the profile's `config.toml`. Other fields of the file are kept as
//! they are.

use std::path::Path;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use super::{ConfigError, NodeConfig};

/// The settings a person edits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Settings {
    /// Addresses to listen on.
    pub listen: Vec<String>,
    /// Peers dialled at start and when short of connections.
    pub bootstrap: Vec<String>,
    /// Upper bound of connections.
    pub max_connections: u32,
    /// Known peers are dialled while below this.
    pub min_connections: u32,
    /// Serve circuit relay v2 to others.
    pub relay_server: bool,
    /// Discover peers on the local network.
    pub mdns: bool,
}

/// Settings as saved, plus what overrides them in this run.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SettingsView {
    /// Values in the profile's config file (defaults where it has none).
    pub saved: Settings,
    /// Environment variables set for this run that override saved values.
    pub env_overrides: Vec<String>,
    /// The config file's path.
    pub config_file: String,
}

impl From<&NodeConfig> for Settings {
    fn from(c: &NodeConfig) -> Self {
        Self {
            listen: c.listen.iter().map(ToString::to_string).collect(),
            bootstrap: c.bootstrap.iter().map(ToString::to_string).collect(),
            max_connections: c.max_connections,
            min_connections: c.min_connections,
            relay_server: c.relay_server,
            mdns: c.mdns,
        }
    }
}

fn parse_addrs(field: &str, values: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    values
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Multiaddr>().map_err(|e| {
                ConfigError::Invalid(format!(
                    "{field}: {s:?} is not a multiaddr ({e}); write one address per line, \
                     such as /ip4/0.0.0.0/udp/0/quic-v1"
                ))
            })
        })
        .collect()
}

impl Settings {
    /// Applies these settings over `config`, checking every value.
    pub fn apply_to(&self, config: &mut NodeConfig) -> Result<(), ConfigError> {
        let listen = parse_addrs("listen addresses", &self.listen)?;
        if listen.is_empty() {
            return Err(ConfigError::Invalid(
                "listen addresses: at least one is needed; \
                 /ip4/0.0.0.0/udp/0/quic-v1 listens on QUIC on every interface"
                    .into(),
            ));
        }
        config.listen = listen;
        config.bootstrap = parse_addrs("bootstrap peers", &self.bootstrap)?;
        config.max_connections = self.max_connections;
        config.min_connections = self.min_connections;
        config.relay_server = self.relay_server;
        config.mdns = self.mdns;
        config.validate()
    }
}

/// The saved settings of the config file at `path` (defaults if absent).
pub fn load(path: &Path) -> Result<SettingsView, ConfigError> {
    let config = NodeConfig::from_optional_file(path)?;
    Ok(view(path, &config))
}

/// Writes `settings` into the config file at `path`, keeping its other
/// fields; returns the full config the node should now run with (before
/// environment overrides).
pub fn save(path: &Path, settings: &Settings) -> Result<NodeConfig, ConfigError> {
    let mut config = NodeConfig::from_optional_file(path)?;
    settings.apply_to(&mut config)?;
    config.save(path)?;
    Ok(config)
}

/// The view of `config` as saved at `path`.
pub fn view(path: &Path, config: &NodeConfig) -> SettingsView {
    SettingsView {
        saved: Settings::from(config),
        env_overrides: NodeConfig::env_overrides()
            .into_iter()
            .map(String::from)
            .collect(),
        config_file: path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saving_keeps_other_fields_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "kad_mode = \"client\"\nmdns = false\n").unwrap();
        let mut settings = load(&path).unwrap().saved;
        assert!(!settings.mdns);
        settings.max_connections = 12;
        settings.min_connections = 3;
        settings.bootstrap = vec!["/ip4/127.0.0.1/udp/4001/quic-v1".into()];
        settings.relay_server = true;
        save(&path, &settings).unwrap();

        let back = load(&path).unwrap().saved;
        assert_eq!(back, settings);
        let config = NodeConfig::from_file(&path).unwrap();
        assert_eq!(config.kad_mode, super::super::KadMode::Client);
    }

    #[test]
    fn bad_values_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut settings = load(&path).unwrap().saved;
        settings.bootstrap = vec!["not an address".into()];
        let err = save(&path, &settings).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("bootstrap"), "{err}");
        assert!(!path.exists());

        settings.bootstrap.clear();
        settings.min_connections = 90;
        let err = save(&path, &settings).unwrap_err();
        assert!(err.to_string().contains("min_connections"), "{err}");
        assert!(!path.exists());
    }
}
