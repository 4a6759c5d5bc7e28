//! `conclaved --check-config FILE`: reads a `config.toml` the way the
//! daemon would and says whether it can run, without opening keys, sockets
//! or the profile's folders. Every section is checked, so one run names
//! every problem: the node's own keys, `[coinjoin]`, `[[mcp]]`/`[[shell]]`
//! and the connection policy file it points to.

use std::path::Path;

use conclave_coinjoin::settings::{network_name, CoinJoinSettings};
use conclave_node::{config::NodeConfig, gate::Policy};
use conclave_rooms::exec::ExecConfig;

/// What a readable file configures, or each reason it cannot run.
#[derive(Debug)]
pub struct ConfigCheck {
    /// One line per fact worth confirming (listen addresses, relay, …).
    pub summary: Vec<String>,
    /// One line per problem; empty when the file can run.
    pub problems: Vec<String>,
}

impl ConfigCheck {
    /// Whether `conclaved --config FILE` would start with it.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `path` as `conclaved --config` reads it (the `P2P_*`
/// environment and flags aside: they belong to one run, not the file).
pub fn check_config_file(path: &Path) -> ConfigCheck {
    let config = match NodeConfig::from_file(path) {
        Ok(config) => config,
        // Nothing past a file that does not parse can be trusted.
        Err(e) => {
            return ConfigCheck {
                summary: Vec::new(),
                problems: vec![e.to_string()],
            }
        }
    };
    let file = path.display().to_string();
    let mut summary = Vec::new();
    let mut problems = Vec::new();
    if let Err(e) = config.validate() {
        problems.push(format!("{e} (in {file})"));
    }
    summary.push(format!("listens on {}", list(&config.listen)));
    summary.push(format!("bootstraps from {}", list(&config.bootstrap)));
    summary.push(format!(
        "relay server: {}",
        if config.relay_server { "on" } else { "off" }
    ));
    summary.push(format!(
        "connections: at most {}, at least {} kept",
        config.max_connections, config.min_connections
    ));

    if let Some(policy) = &config.policy_file {
        match Policy::load(policy) {
            Ok(_) => summary.push(format!("connection policy: {}", policy.display())),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Some(table) = &config.coinjoin {
        match CoinJoinSettings::from_table(Some(table), &file).and_then(|s| s.resolve(&file)) {
            Ok(chain) => summary.push(format!(
                "CoinJoin on {} through {}",
                network_name(chain.network),
                chain.bitcoind.url
            )),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !config.mcp.is_empty() || !config.shell.is_empty() {
        match ExecConfig::from_tables(&config.mcp, &config.shell) {
            Ok(exec) => summary.push(format!(
                "agent tools: {} MCP server(s), {} shell command(s)",
                exec.mcp.len(),
                exec.shell.len()
            )),
            Err(e) => problems.push(format!(
                "the [[mcp]]/[[shell]] entries of {file} are invalid: {e}; fix them and check again"
            )),
        }
    }
    ConfigCheck { summary, problems }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "nothing".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> ConfigCheck {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        check_config_file(&path)
    }

    #[test]
    fn the_sample_relay_config_is_valid() {
        let sample = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../packaging/systemd/config.toml"
        );
        let checked = check_config_file(Path::new(sample));
        assert!(checked.is_valid(), "{:?}", checked.problems);
        assert!(
            checked.summary.iter().any(|l| l == "relay server: on"),
            "{:?}",
            checked.summary
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_line_and_key() {
        let checked = check("max_connections = 10\nlisten = [\"/ip4/0.0.0.0/udp/0/quic-v1\"\n");
        assert!(!checked.is_valid());
        let [problem] = checked.problems.as_slice() else {
            panic!("one problem: {:?}", checked.problems)
        };
        assert!(problem.contains("config.toml"), "{problem}");
        assert!(problem.contains("line 2"), "{problem}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let checked = check("max_conections = 10\n");
        assert!(
            checked.problems[0].contains("max_conections"),
            "{:?}",
            checked.problems
        );
    }

    #[test]
    fn every_section_with_a_problem_is_named_once() {
        let checked = check(concat!(
            "max_connections = 4\nmin_connections = 9\n",
            "[coinjoin]\nnetwork = \"mainnet\"\n",
            "[[shell]]\nname = \"bad name\"\nargv = [\"echo\"]\n",
        ));
        let problems = checked.problems.join("\n");
        assert_eq!(checked.problems.len(), 3, "{problems}");
        assert!(problems.contains("min_connections (9) is above max_connections (4)"));
        assert!(problems.contains("allow_mainnet = true"));
        assert!(problems.contains("\"bad name\""));
    }

    #[test]
    fn a_damaged_policy_file_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(&policy, "{ not json").unwrap();
        let checked = check(&format!(
            "policy_file = {:?}\n",
            policy.display().to_string()
        ));
        assert!(
            checked.problems.iter().any(|p| p.contains("policy.json")),
            "{:?}",
            checked.problems
        );
    }
}
