//! The tools behind skills, run on this machine: MCP servers as child
//! processes over stdio ([`mcp`], skill `mcp.<server>.<tool>`) and fixed
//! shell commands ([`shell`], skill `shell.<name>`), configured in the
//! profile's TOML ([`config`]).

pub mod config;
pub mod mcp;
pub mod shell;

pub use config::{Approve, ExecConfig, McpServerConfig, ShellConfig};
