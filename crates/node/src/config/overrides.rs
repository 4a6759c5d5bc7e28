//! What overrides the config file: the `P2P_*` environment and the
//! command-line flags.

use std::path::PathBuf;

use libp2p::Multiaddr;

use super::{ConfigError, KadMode, NodeConfig};

/// The environment variables that override the config file, in the order
/// [`NodeConfig::apply_env`] applies them.
pub const ENV_VARS: [&str; 6] = [
    "P2P_MAX_CONNECTIONS",
    "P2P_MIN_CONNECTIONS",
    "P2P_LISTEN",
    "P2P_BOOTSTRAP",
    "P2P_MAX_MESSAGE_SIZE",
    "P2P_MDNS",
];

/// Command-line flags over a profile's config: each one given replaces what
/// the file and the environment say (lists replace lists; none given keeps
/// them).
#[derive(Debug, Clone, Default)]
pub struct ConfigFlags {
    /// Read this file instead of the profile's `config.toml` (which must
    /// then exist).
    pub config_file: Option<PathBuf>,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers.
    pub bootstrap: Vec<Multiaddr>,
    /// Addresses others reach this node at.
    pub external_addrs: Vec<Multiaddr>,
    /// Serve circuit relay v2.
    pub relay_server: bool,
    /// Turn mDNS off.
    pub no_mdns: bool,
    /// DHT mode.
    pub kad_mode: Option<KadMode>,
}

impl ConfigFlags {
    pub(super) fn apply(&self, config: &mut NodeConfig) {
        let replace = |target: &mut Vec<Multiaddr>, given: &[Multiaddr]| {
            if !given.is_empty() {
                *target = given.to_vec();
            }
        };
        replace(&mut config.listen, &self.listen);
        replace(&mut config.bootstrap, &self.bootstrap);
        replace(&mut config.external_addrs, &self.external_addrs);
        config.relay_server |= self.relay_server;
        config.mdns &= !self.no_mdns;
        if let Some(mode) = self.kad_mode {
            config.kad_mode = mode;
        }
    }
}

impl NodeConfig {
    /// The [`ENV_VARS`] set in this process's environment: they override
    /// the file for this run.
    pub fn env_overrides() -> Vec<&'static str> {
        ENV_VARS
            .into_iter()
            .filter(|name| std::env::var_os(name).is_some())
            .collect()
    }

    /// Applies `P2P_*` environment variables over the current values.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_env_from(|name| std::env::var(name).ok())
    }

    /// Applies `P2P_*` variables read through `lookup` (testable without the
    /// process environment).
    pub fn apply_env_from(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn number<T: std::str::FromStr>(
            name: &'static str,
            value: String,
        ) -> Result<T, ConfigError> {
            value.trim().parse().map_err(|_| ConfigError::Env {
                name,
                value,
                reason: "expected a non-negative whole number".into(),
            })
        }
        fn addrs(name: &'static str, value: String) -> Result<Vec<Multiaddr>, ConfigError> {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|e| ConfigError::Env {
                        name,
                        value: value.clone(),
                        reason: format!("{s:?} is not a multiaddr: {e}"),
                    })
                })
                .collect()
        }
        if let Some(v) = lookup("P2P_MAX_CONNECTIONS") {
            self.max_connections = number("P2P_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = lookup("P2P_MIN_CONNECTIONS") {
            self.min_connections = number("P2P_MIN_CONNECTIONS", v)?;
        }
        if let Some(v) = lookup("P2P_LISTEN") {
            self.listen = addrs("P2P_LISTEN", v)?;
        }
        if let Some(v) = lookup("P2P_BOOTSTRAP") {
            self.bootstrap = addrs("P2P_BOOTSTRAP", v)?;
        }
        if let Some(v) = lookup("P2P_MAX_MESSAGE_SIZE") {
            self.max_message_size = number("P2P_MAX_MESSAGE_SIZE", v)?;
        }
        if let Some(v) = lookup("P2P_MDNS") {
            self.mdns = matches!(v.trim(), "1" | "true" | "yes" | "on");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_lists_every_variable_apply_env_reads() {
        let read = std::cell::RefCell::new(Vec::new());
        NodeConfig::default()
            .apply_env_from(|name| {
                read.borrow_mut().push(name.to_string());
                None
            })
            .unwrap();
        assert_eq!(read.into_inner(), ENV_VARS);
    }
}
