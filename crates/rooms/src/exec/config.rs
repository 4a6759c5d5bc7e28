//! Executor configuration, as a profile's TOML lists it:
//!
//! ```toml
//! [[mcp]]
//! name = "everything"
//! command = "npx"
//! args = ["@modelcontextprotocol/server-everything"]
//! expose = ["echo", "get-sum"]
//! approve = "destructive"   # or "never"
//!
//! [[shell]]
//! name = "wc"
//! argv = ["/usr/bin/wc", "-c"]
//! timeout_secs = 10
//! max_output_bytes = 65536
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// When a tool call waits for the owner's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Approve {
    /// Tools that declare themselves destructive (MCP `destructiveHint`,
    /// which MCP presumes for a tool that says nothing) wait for a click.
    #[default]
    Destructive,
    /// No tool of this server waits.
    Never,
}

/// One local MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The server's name in skills (`mcp.<name>.<tool>`).
    pub name: String,
    /// The program to run.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The tools other peers may call; every other tool stays hidden.
    #[serde(default)]
    pub expose: Vec<String>,
    /// When a call waits for approval.
    #[serde(default)]
    pub approve: Approve,
}

/// One shell command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// The name in skills (`shell.<name>`).
    pub name: String,
    /// The fixed argument vector: program first, no shell.
    pub argv: Vec<String>,
    /// How long a run may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The most bytes of output kept (more fails the run).
    #[serde(default = "default_max_output")]
    pub max_output_bytes: usize,
    /// Whether running it twice is harmless.
    #[serde(default)]
    pub idempotent: bool,
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_max_output() -> usize {
    1024 * 1024
}

/// A profile's executors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// MCP servers.
    #[serde(default)]
    pub mcp: Vec<McpServerConfig>,
    /// Shell commands.
    #[serde(default)]
    pub shell: Vec<ShellConfig>,
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML for the executors.
    #[error("executor configuration does not parse: {0}")]
    Parse(String),
    /// A value is out of bounds.
    #[error("executor configuration: {0}; fix the entry in the profile's config file")]
    Invalid(String),
}

/// Most servers or commands in one profile.
pub const MAX_EXECUTORS: usize = 64;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl ExecConfig {
    /// Parses and checks the TOML.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// From the `[[mcp]]` and `[[shell]]` tables of a profile's
    /// config.toml (as the node's config keeps them), checked.
    pub fn from_tables(mcp: &[toml::Table], shell: &[toml::Table]) -> Result<Self, ConfigError> {
        let list = |tables: &[toml::Table]| {
            toml::Value::Array(tables.iter().cloned().map(toml::Value::Table).collect())
        };
        let mut table = toml::Table::new();
        table.insert("mcp".into(), list(mcp));
        table.insert("shell".into(), list(shell));
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Checks names (unique, `[A-Za-z0-9_-]`), commands and bounds.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |s: String| Err(ConfigError::Invalid(s));
        if self.mcp.len() > MAX_EXECUTORS || self.shell.len() > MAX_EXECUTORS {
            return invalid(format!("at most {MAX_EXECUTORS} servers and commands"));
        }
        let mut names = BTreeSet::new();
        for m in &self.mcp {
            if !valid_name(&m.name) || !names.insert(format!("mcp.{}", m.name)) {
                return invalid(format!(
                    "MCP server name {:?} is empty, repeated or not [A-Za-z0-9_-]",
                    m.name
                ));
            }
            if m.command.is_empty() {
                return invalid(format!("MCP server {:?} has no command", m.name));
            }
        }
        for s in &self.shell {
            if !valid_name(&s.name) || !names.insert(format!("shell.{}", s.name)) {
                return invalid(format!(
                    "shell command name {:?} is empty, repeated or not [A-Za-z0-9_-]",
                    s.name
                ));
            }
            if s.argv.is_empty() || s.argv[0].is_empty() {
                return invalid(format!("shell command {:?} has no program", s.name));
            }
            if s.timeout_secs == 0 || s.max_output_bytes == 0 {
                return invalid(format!(
                    "shell command {:?} needs a timeout and an output cap above zero",
                    s.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_and_bad_entries_are_named() {
        let text = r#"
            [[mcp]]
            name = "everything"
            command = "npx"
            args = ["@modelcontextprotocol/server-everything"]
            expose = ["echo", "get-sum"]
            approve = "never"

            [[shell]]
            name = "wc"
            argv = ["/usr/bin/wc", "-c"]
        "#;
        let c = ExecConfig::from_toml(text).unwrap();
        assert_eq!(c.mcp[0].expose, vec!["echo", "get-sum"]);
        assert_eq!(c.mcp[0].approve, Approve::Never);
        assert_eq!(c.shell[0].timeout_secs, 30);

        let repeated = format!("{text}\n[[shell]]\nname = \"wc\"\nargv = [\"/bin/true\"]\n");
        let err = ExecConfig::from_toml(&repeated).unwrap_err();
        assert!(err.to_string().contains("\"wc\""), "{err}");
        let typo = "[[mcp]]\nname = \"x\"\ncommand = \"y\"\nexpose_tools = []\n";
        assert!(matches!(
            ExecConfig::from_toml(typo),
            Err(ConfigError::Parse(_))
        ));
        let dotted = "[[mcp]]\nname = \"a.b\"\ncommand = \"y\"\n";
        assert!(
            ExecConfig::from_toml(dotted).is_err(),
            "dots would break skill ids"
        );
    }
}
