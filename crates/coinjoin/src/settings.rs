//! The `[coinjoin]` section of a profile's `config.toml`: which Bitcoin
//! network to mix on, how to reach Bitcoin Core, and (for tests) shorter
//! epochs and phase timeouts. Parsed and checked here so that the app and
//! the daemon read the same keys the same way.
//!
//! ```toml
//! [coinjoin]
//! network = "regtest"            # regtest | signet | testnet | mainnet
//! bitcoind_rpc = "http://127.0.0.1:18443"
//! bitcoind_cookie = "/home/me/.bitcoin/regtest/.cookie"
//! # allow_mainnet = true         # required with network = "mainnet"
//! # epoch_secs = 600             # seconds between epoch ticks
//! # phase_timeout_secs = 30      # seconds each phase may take
//! ```

use std::{path::PathBuf, time::Duration};

use bitcoin::Network;
use serde::{Deserialize, Serialize};

use crate::{chain::bitcoind::BitcoindConfig, service::CoinJoinConfig};

/// The `[coinjoin]` section as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoinJoinSettings {
    /// `regtest`, `signet`, `testnet` or `mainnet`.
    pub network: Option<String>,
    /// Mix real bitcoin: required with `network = "mainnet"`.
    pub allow_mainnet: bool,
    /// Bitcoin Core's JSON-RPC endpoint, `http://HOST:PORT`.
    pub bitcoind_rpc: Option<String>,
    /// Bitcoin Core's cookie file (its `.cookie`, per network).
    pub bitcoind_cookie: Option<PathBuf>,
    /// Seconds between epoch ticks (default 600).
    pub epoch_secs: Option<u64>,
    /// Seconds each phase may take (default 30).
    pub phase_timeout_secs: Option<u64>,
}

/// Why the settings cannot run CoinJoin. Each message names the key to
/// set, in the `[coinjoin]` section of `config.toml` (the daemon's flags
/// have the same names with dashes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// There is no `[coinjoin]` section: no chain source.
    #[error(
        "CoinJoin has no chain source: add a [coinjoin] section with network, bitcoind_rpc \
         and bitcoind_cookie (Bitcoin Core's RPC URL and .cookie file) to {config_file}"
    )]
    NotConfigured {
        /// The profile's `config.toml`.
        config_file: String,
    },
    /// The section does not parse.
    #[error("the [coinjoin] section of {config_file} is invalid ({reason}): fix it and restart")]
    Invalid {
        /// The profile's `config.toml`.
        config_file: String,
        /// What the parser said.
        reason: String,
    },
    /// A key is missing.
    #[error("the [coinjoin] section of {config_file} has no {key}: add {key} = {example}")]
    Missing {
        /// The profile's `config.toml`.
        config_file: String,
        /// The key.
        key: &'static str,
        /// What a value looks like.
        example: &'static str,
    },
    /// An unknown network name.
    #[error(
        "unknown CoinJoin network {name:?} in {config_file}: set network to regtest, signet, \
         testnet or mainnet"
    )]
    UnknownNetwork {
        /// The profile's `config.toml`.
        config_file: String,
        /// What was written.
        name: String,
    },
    /// Mainnet without `allow_mainnet`.
    #[error(
        "network = \"mainnet\" in {config_file} mixes real bitcoin: add allow_mainnet = true to \
         mean it, or pick regtest, signet or testnet"
    )]
    MainnetNotAllowed {
        /// The profile's `config.toml`.
        config_file: String,
    },
}

/// Settings that can run: the chain source and the service's timing.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// The network mixed on.
    pub network: Network,
    /// How to reach Bitcoin Core.
    pub bitcoind: BitcoindConfig,
    /// Epochs and timeouts.
    pub service: CoinJoinConfig,
}

/// The network a setting or flag names: regtest, signet, testnet or
/// mainnet.
pub fn parse_network(name: &str) -> Option<Network> {
    match name {
        "regtest" => Some(Network::Regtest),
        "signet" => Some(Network::Signet),
        "testnet" => Some(Network::Testnet),
        "mainnet" => Some(Network::Bitcoin),
        _ => None,
    }
}

impl CoinJoinSettings {
    /// Reads the `[coinjoin]` table of `config_file` (`None`: there is none).
    pub fn from_table(
        table: Option<&toml::Table>,
        config_file: &str,
    ) -> Result<Self, SettingsError> {
        let Some(table) = table else {
            return Err(SettingsError::NotConfigured {
                config_file: config_file.to_string(),
            });
        };
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::Invalid {
                config_file: config_file.to_string(),
                reason: e.message().trim().to_string(),
            })
    }

    /// Checks the settings of `config_file`: a known network (mainnet only
    /// with `allow_mainnet`), an RPC URL and a cookie file.
    pub fn resolve(&self, config_file: &str) -> Result<ChainSettings, SettingsError> {
        let file = || config_file.to_string();
        let name = self.network.as_deref().ok_or(SettingsError::Missing {
            config_file: file(),
            key: "network",
            example: "\"regtest\" (or signet, testnet, mainnet)",
        })?;
        let network = parse_network(name).ok_or_else(|| SettingsError::UnknownNetwork {
            config_file: file(),
            name: name.to_string(),
        })?;
        if network == Network::Bitcoin && !self.allow_mainnet {
            return Err(SettingsError::MainnetNotAllowed {
                config_file: file(),
            });
        }
        let url = self.bitcoind_rpc.clone().ok_or(SettingsError::Missing {
            config_file: file(),
            key: "bitcoind_rpc",
            example: "\"http://127.0.0.1:18443\"",
        })?;
        let cookie = self.bitcoind_cookie.clone().ok_or(SettingsError::Missing {
            config_file: file(),
            key: "bitcoind_cookie",
            example: "\"/path/to/bitcoin/regtest/.cookie\"",
        })?;
        let mut bitcoind = BitcoindConfig::new(url, cookie, network);
        bitcoind.allow_mainnet = self.allow_mainnet;
        Ok(ChainSettings {
            network,
            bitcoind,
            service: self.service_config(),
        })
    }

    fn service_config(&self) -> CoinJoinConfig {
        let mut config = CoinJoinConfig::default();
        if let Some(epoch) = self.epoch_secs {
            let phase = config.timeouts.phase;
            config = CoinJoinConfig::quick(Duration::from_secs(epoch.max(1)), phase);
        }
        if let Some(phase) = self.phase_timeout_secs {
            config.timeouts.phase = Duration::from_secs(phase.max(1));
        }
        config
    }
}

/// The name people know a network by (`mainnet`, not `bitcoin`).
pub fn network_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "mainnet",
        Network::Testnet => "testnet",
        Network::Signet => "signet",
        _ => "regtest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/p/config.toml";

    fn parse(text: &str) -> Result<CoinJoinSettings, SettingsError> {
        let table: toml::Table = toml::from_str(text).unwrap();
        CoinJoinSettings::from_table(table.get("coinjoin").and_then(|v| v.as_table()), FILE)
    }

    #[test]
    fn a_full_section_resolves_to_its_network_node_and_timing() {
        let settings = parse(
            "[coinjoin]\nnetwork = \"regtest\"\nbitcoind_rpc = \"http://127.0.0.1:1\"\n\
             bitcoind_cookie = \"/c/.cookie\"\nepoch_secs = 2\nphase_timeout_secs = 5\n",
        )
        .unwrap();
        let chain = settings.resolve(FILE).unwrap();
        assert_eq!(chain.network, Network::Regtest);
        assert_eq!(chain.bitcoind.url, "http://127.0.0.1:1");
        assert_eq!(chain.bitcoind.cookie_file, PathBuf::from("/c/.cookie"));
        assert!(!chain.bitcoind.allow_mainnet);
        assert_eq!(chain.service.epoch, Duration::from_secs(2));
        assert_eq!(chain.service.timeouts.phase, Duration::from_secs(5));
    }

    #[test]
    fn defaults_keep_the_ten_minute_epoch_and_thirty_second_phases() {
        let settings = parse(
            "[coinjoin]\nnetwork = \"signet\"\nbitcoind_rpc = \"http://h:1\"\nbitcoind_cookie = \"c\"\n",
        )
        .unwrap();
        let chain = settings.resolve(FILE).unwrap();
        assert_eq!(chain.service.epoch, Duration::from_secs(600));
        assert_eq!(chain.service.timeouts.phase, Duration::from_secs(30));
    }

    #[test]
    fn no_section_says_what_to_add_and_where() {
        let err = parse("mdns = false\n").unwrap_err();
        assert!(matches!(err, SettingsError::NotConfigured { .. }));
        let text = err.to_string();
        assert!(
            text.contains("[coinjoin]") && text.ends_with(FILE),
            "{text}"
        );
    }

    #[test]
    fn mainnet_is_refused_unless_allowed() {
        let base = "[coinjoin]\nnetwork = \"mainnet\"\nbitcoind_rpc = \"http://h:1\"\nbitcoind_cookie = \"c\"\n";
        let err = parse(base).unwrap().resolve(FILE).unwrap_err();
        assert!(matches!(err, SettingsError::MainnetNotAllowed { .. }));
        assert!(err.to_string().contains("allow_mainnet = true"));
        let allowed = parse(&format!("{base}allow_mainnet = true\n"))
            .unwrap()
            .resolve(FILE)
            .unwrap();
        assert_eq!(allowed.network, Network::Bitcoin);
        assert!(allowed.bitcoind.allow_mainnet);
    }

    #[test]
    fn missing_keys_unknown_networks_and_typos_are_named() {
        let no_rpc = parse("[coinjoin]\nnetwork = \"regtest\"\n")
            .unwrap()
            .resolve(FILE)
            .unwrap_err();
        assert!(
            matches!(
                no_rpc,
                SettingsError::Missing {
                    key: "bitcoind_rpc",
                    ..
                }
            ),
            "{no_rpc}"
        );
        let unknown = parse("[coinjoin]\nnetwork = \"regnet\"\n")
            .unwrap()
            .resolve(FILE)
            .unwrap_err();
        assert!(unknown.to_string().contains("\"regnet\""), "{unknown}");
        let typo = parse("[coinjoin]\nnetwrok = \"regtest\"\n").unwrap_err();
        assert!(
            matches!(&typo, SettingsError::Invalid { reason, .. } if reason.contains("netwrok")),
            "{typo}"
        );
    }
}
