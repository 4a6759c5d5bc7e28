//! Node configuration: defaults, then a TOML file, then environment variables,
//! then command-line flags ([`ConfigFlags`]). No file is needed to start.
//! [`NodeConfig::for_profile`] applies them in that order for a profile, the
//! one way `conclaved` and the desktop app build their config.

use std::{path::Path, time::Duration};

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::profile::Profile;

mod error;
mod overrides;
pub mod settings;

pub use error::ConfigError;
pub use overrides::{ConfigFlags, ENV_VARS};

/// When the Kademlia DHT serves records to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KadMode {
    /// Always answer DHT queries (daemons, and local or loopback networks where
    /// AutoNAT cannot confirm reachability).
    #[default]
    Server,
    /// Never answer DHT queries.
    Client,
    /// Answer once an external address is confirmed (libp2p's automatic mode).
    Auto,
}

impl std::str::FromStr for KadMode {
    type Err = ConfigError;

    /// `server`, `client` or `auto`, as in the config file and `--kad-mode`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "server" => Ok(KadMode::Server),
            "client" => Ok(KadMode::Client),
            "auto" => Ok(KadMode::Auto),
            other => Err(ConfigError::Invalid(format!(
                "kad mode {other:?}: use server, client or auto"
            ))),
        }
    }
}

/// Which transports the node listens and dials on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportMode {
    /// QUIC, TCP, WebSocket, DNS and relay circuits.
    #[default]
    Network,
    /// libp2p's in-memory transport (simulations); no sockets at all.
    Memory,
}

/// Full node configuration. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start and whenever the node is below `min_connections`.
    pub bootstrap: Vec<Multiaddr>,
    /// Upper bound of established connections (`P2P_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// The node dials known peers while it has fewer (`P2P_MIN_CONNECTIONS`).
    pub min_connections: u32,
    /// Established connections allowed per peer.
    pub max_connections_per_peer: u32,
    /// Pending (half-open) connections allowed in each direction.
    pub max_pending_connections: u32,
    /// Refuse new connections above this fraction of system memory in use.
    pub max_memory_fraction: f64,
    /// Kademlia protocol id.
    pub kad_protocol: String,
    /// Kademlia server/client behaviour.
    pub kad_mode: KadMode,
    /// Discover peers on the local network by mDNS.
    pub mdns: bool,
    /// Serve circuit relay v2 reservations and circuits to others.
    pub relay_server: bool,
    /// Largest application payload for `send_to` and `broadcast`, in bytes.
    pub max_message_size: usize,
    /// Seconds a connection without active streams is kept open.
    pub idle_timeout_secs: u64,
    /// Seconds `connect` waits for a connection before giving up.
    pub dial_timeout_secs: u64,
    /// Transport stack.
    pub transport: TransportMode,
    /// Gossipsub heartbeat interval in milliseconds.
    pub gossip_heartbeat_ms: u64,
    /// Peers whose addresses are remembered for reconnection.
    pub address_book_size: usize,
    /// Capacity of the event broadcast channel; slower subscribers get `Lagged`.
    pub event_buffer: usize,
    /// Carry application messages in signed envelopes (Ed25519 + ML-DSA-65).
    /// Every node of a network must agree; off only to measure their cost.
    pub envelopes: bool,
    /// Where the allow/deny policy is kept (none: in memory only).
    pub policy_file: Option<std::path::PathBuf>,
    /// New connections accepted per peer per second.
    pub max_new_connections_per_sec: f64,
    /// Gossip messages accepted per peer per topic per second.
    pub max_messages_per_sec: f64,
    /// Bytes of messages accepted per peer per second.
    pub max_bytes_per_sec: f64,
    /// Addresses others can reach us at (e.g. a port forward), announced as
    /// confirmed external addresses.
    pub external_addrs: Vec<Multiaddr>,
    /// Reserve slots on relays automatically while not publicly reachable.
    pub auto_relay: bool,
    /// Relay server: reservations held at once.
    pub relay_max_reservations: usize,
    /// Relay server: reservations per peer.
    pub relay_max_reservations_per_peer: usize,
    /// Relay server: circuits open at once.
    pub relay_max_circuits: usize,
    /// Relay server: circuits per peer.
    pub relay_max_circuits_per_peer: usize,
    /// Relay server: longest circuit, in seconds.
    pub relay_circuit_secs: u64,
    /// Relay server: most bytes relayed per circuit.
    pub relay_circuit_bytes: u64,
    /// `[[mcp]]` entries: local MCP servers an agent peer shares. Read by
    /// conclave-rooms (which checks them); the node only keeps them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<toml::Table>,
    /// `[[shell]]` entries: shell commands an agent peer shares (as `mcp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<toml::Table>,
    /// `[coinjoin]`: the chain source and timing of CoinJoin rounds. Read
    /// by conclave-coinjoin (which checks it); the node only keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coinjoin: Option<toml::Table>,
}

/// Default cap of established connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 50;
/// Default floor below which known peers are dialled.
pub const DEFAULT_MIN_CONNECTIONS: u32 = 10;
/// Default Kademlia protocol id.
pub const DEFAULT_KAD_PROTOCOL: &str = "/conclave/kad/1.0.0";

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/udp/0/quic-v1".parse().expect("valid literal"),
                "/ip4/0.0.0.0/tcp/0".parse().expect("valid literal"),
            ],
            bootstrap: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_connections: DEFAULT_MIN_CONNECTIONS,
            // Direct and relayed, both transports, hole punches and AutoNAT
            // dial-backs can coexist briefly.
            max_connections_per_peer: 6,
            max_pending_connections: 32,
            max_memory_fraction: 0.9,
            kad_protocol: DEFAULT_KAD_PROTOCOL.to_string(),
            kad_mode: KadMode::Server,
            mdns: true,
            relay_server: false,
            max_message_size: 1024 * 1024,
            idle_timeout_secs: 60,
            dial_timeout_secs: 20,
            transport: TransportMode::Network,
            gossip_heartbeat_ms: 1000,
            address_book_size: 1024,
            event_buffer: 1024,
            envelopes: true,
            policy_file: None,
            max_new_connections_per_sec: 10.0,
            max_messages_per_sec: 100.0,
            max_bytes_per_sec: 1_000_000.0,
            external_addrs: Vec::new(),
            auto_relay: true,
            relay_max_reservations: 128,
            relay_max_reservations_per_peer: 4,
            relay_max_circuits: 64,
            relay_max_circuits_per_peer: 8,
            relay_circuit_secs: 600,
            relay_circuit_bytes: 16 * 1024 * 1024,
            mcp: Vec::new(),
            shell: Vec::new(),
            coinjoin: None,
        }
    }
}

impl NodeConfig {
    /// A node that stays on this machine, for tests, the app's sandbox peers
    /// and the simulator: QUIC and TCP on 127.0.0.1 with ports the system
    /// picks, no mDNS, no bootstrap peers and no dialling of its own
    /// (`min_connections` 0); everything else as [`NodeConfig::default`].
    pub fn loopback() -> Self {
        Self {
            listen: vec![
                "/ip4/127.0.0.1/udp/0/quic-v1"
                    .parse()
                    .expect("valid literal"),
                "/ip4/127.0.0.1/tcp/0".parse().expect("valid literal"),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            min_connections: 0,
            ..Self::default()
        }
    }

    /// The config `profile` runs with: defaults, then its `config.toml` (or
    /// `flags.config_file`), then the `P2P_*` environment, then `flags`;
    /// the connection policy in [`Profile::policy_file`] unless the file
    /// names another. Validated.
    pub fn for_profile(profile: &Profile, flags: &ConfigFlags) -> Result<Self, ConfigError> {
        let mut config = match &flags.config_file {
            Some(path) => Self::from_file(path)?,
            None => Self::from_optional_file(&profile.config_file())?,
        };
        config.apply_env()?;
        flags.apply(&mut config);
        if config.policy_file.is_none() {
            config.policy_file = Some(profile.policy_file());
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Reads `path` if it exists, else returns the defaults.
    pub fn from_optional_file(path: &Path) -> Result<Self, ConfigError> {
        if path.exists() {
            Self::from_file(path)
        } else {
            Ok(Self::default())
        }
    }

    /// Writes the config as TOML, atomically and durably, readable by its
    /// owner only.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let write_err = |source| ConfigError::Write {
            path: path.display().to_string(),
            source,
        };
        let text = toml::to_string_pretty(self)
            .map_err(|e| ConfigError::Invalid(format!("cannot serialise configuration: {e}")))?;
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !parent.exists() => {
                crate::state_file::create_private_dir(parent).map_err(write_err)?;
            }
            _ => {}
        }
        crate::state_file::write_atomic(path, text.as_bytes()).map_err(write_err)
    }

    /// Checks that values are usable together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        if self.min_connections > self.max_connections {
            return Err(ConfigError::Invalid(format!(
                "min_connections ({}) is above max_connections ({})",
                self.min_connections, self.max_connections
            )));
        }
        if self.max_message_size == 0 || self.max_message_size > 16 * 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "max_message_size must be between 1 byte and 16 MiB".into(),
            ));
        }
        if !(0.1..=1.0).contains(&self.max_memory_fraction) {
            return Err(ConfigError::Invalid(
                "max_memory_fraction must be between 0.1 and 1.0".into(),
            ));
        }
        if !self.kad_protocol.starts_with('/') {
            return Err(ConfigError::Invalid(format!(
                "kad_protocol {:?} must start with '/'",
                self.kad_protocol
            )));
        }
        let rates = [
            self.max_new_connections_per_sec,
            self.max_messages_per_sec,
            self.max_bytes_per_sec,
        ];
        if rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
            return Err(ConfigError::Invalid(
                "rate limits must be positive numbers".into(),
            ));
        }
        if self.event_buffer == 0 || self.address_book_size == 0 {
            return Err(ConfigError::Invalid(
                "event_buffer and address_book_size must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Idle connection timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// Timeout for `connect`.
    pub fn dial_timeout(&self) -> Duration {
        Duration::from_secs(self.dial_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_stays_on_this_machine_and_is_valid() {
        let config = NodeConfig::loopback();
        assert!(config.validate().is_ok());
        assert!(!config.mdns && config.bootstrap.is_empty());
        assert_eq!(config.min_connections, 0);
        let listen: Vec<String> = config.listen.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            listen,
            ["/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"]
        );
    }

    #[test]
    fn defaults_need_no_file_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NodeConfig::from_optional_file(&dir.path().join("missing.toml")).unwrap();
        assert_eq!(cfg.max_connections, 50);
        assert_eq!(cfg.min_connections, 10);
        assert_eq!(cfg.kad_protocol, "/conclave/kad/1.0.0");
        cfg.validate().unwrap();
    }

    #[test]
    fn file_then_environment_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "max_connections = 20\nmin_connections = 2\nmdns = false\n",
        )
        .unwrap();
        let mut cfg = NodeConfig::from_file(&path).unwrap();
        assert_eq!(
            (cfg.max_connections, cfg.min_connections, cfg.mdns),
            (20, 2, false)
        );
        cfg.apply_env_from(|k| (k == "P2P_MAX_CONNECTIONS").then(|| "7".to_string()))
            .unwrap();
        assert_eq!(cfg.max_connections, 7);
        assert_eq!(cfg.min_connections, 2);
    }

    #[test]
    fn bad_values_are_named() {
        let mut cfg = NodeConfig::default();
        let err = cfg
            .apply_env_from(|k| (k == "P2P_MIN_CONNECTIONS").then(|| "ten".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("P2P_MIN_CONNECTIONS"), "{err}");
        assert_eq!(cfg.min_connections, 10, "a rejected value changes nothing");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "max_conections = 3\n").unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string())
                && err
                    .to_string()
                    .ends_with("move it aside to start with the defaults"),
            "{err}"
        );

        let cfg = NodeConfig {
            min_connections: 60,
            ..NodeConfig::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("min_connections"));
    }

    #[test]
    fn a_profile_config_is_file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::resolve("p", Some(dir.path())).unwrap();
        std::fs::write(
            profile.config_file(),
            "max_connections = 20\nmdns = true\nbootstrap = [\"/ip4/127.0.0.1/tcp/1\"]\n",
        )
        .unwrap();
        let flags = ConfigFlags {
            listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()],
            no_mdns: true,
            kad_mode: Some("client".parse().unwrap()),
            ..ConfigFlags::default()
        };
        let config = NodeConfig::for_profile(&profile, &flags).unwrap();
        assert_eq!(config.max_connections, 20, "from the file");
        assert_eq!(config.bootstrap.len(), 1, "no flag: the file's list stays");
        assert_eq!(config.listen, flags.listen, "a flag replaces the list");
        assert!(!config.mdns && config.kad_mode == KadMode::Client);
        assert_eq!(config.policy_file, Some(profile.policy_file()));

        // An explicit file must exist; a contradictory one is refused.
        let missing = ConfigFlags {
            config_file: Some(dir.path().join("missing.toml")),
            ..ConfigFlags::default()
        };
        let err = NodeConfig::for_profile(&profile, &missing).unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::write(profile.config_file(), "min_connections = 99\n").unwrap();
        let err = NodeConfig::for_profile(&profile, &ConfigFlags::default()).unwrap_err();
        assert!(err.to_string().contains("min_connections"), "{err}");
        assert!("sideways".parse::<KadMode>().is_err());
    }

    #[test]
    fn save_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let cfg = NodeConfig {
            bootstrap: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            relay_server: true,
            ..NodeConfig::default()
        };
        cfg.save(&path).unwrap();
        let back = NodeConfig::from_file(&path).unwrap();
        assert_eq!(back.bootstrap, cfg.bootstrap);
        assert!(back.relay_server);
    }

    #[test]
    fn a_saved_config_and_the_folder_made_for_it_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile/config.toml");
        NodeConfig::default().save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // Saving again replaces the file whole, still owner-only.
        NodeConfig::loopback().save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(NodeConfig::from_file(&path).unwrap().listen[0]
            .to_string()
            .starts_with("/ip4/127.0.0.1"));
    }
}
