//! This member's own tools: the MCP servers and shell commands of its
//! config, what they expose (listed once the servers run), the skills and
//! the agent card built from them, and running a skill for a task.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use libp2p_identity::PeerId;
use rmcp::model::{CallToolResult, JsonObject};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    a2a::{AgentCapabilities, AgentCard, AgentSkill, Artifact, Message, Part},
    card::libp2p_interface,
    exec::{
        mcp::{McpError, McpServer, Progress},
        shell::ShellExecutor,
        ExecConfig,
    },
};

/// How long a server may take to start before its tools are listed.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long listing a server's tools may take.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(20);

/// One exposed tool, as `rooms tools` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The skill id: `mcp.<server>.<tool>` or `shell.<name>`.
    pub skill: String,
    /// `mcp` or `shell`.
    pub kind: String,
    /// The server's (or command's) configured name.
    pub server: String,
    /// The tool's name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Its JSON Schema of arguments (MCP only).
    pub input_schema: Option<serde_json::Value>,
    /// The tool declares itself idempotent.
    pub idempotent: bool,
    /// It waits for its owner's approval before it runs.
    pub needs_approval: bool,
}

/// A local MCP server's process, as `rooms servers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its configured name.
    pub name: String,
    /// Its process id, while it runs.
    pub pid: Option<u32>,
    /// How many times it was started (a restart adds one).
    pub generation: u64,
    /// The MCP protocol version it speaks.
    pub protocol: Option<String>,
}

/// The configured tools.
#[derive(Clone, Default)]
pub struct LocalTools {
    mcp: BTreeMap<String, McpServer>,
    shell: BTreeMap<String, ShellExecutor>,
}

impl LocalTools {
    /// Starts the configured MCP servers (each under its supervisor).
    pub fn start(config: &ExecConfig) -> Self {
        Self {
            mcp: config
                .mcp
                .iter()
                .map(|m| (m.name.clone(), McpServer::start(m.clone())))
                .collect(),
            shell: config
                .shell
                .iter()
                .map(|s| (s.name.clone(), ShellExecutor::new(s.clone())))
                .collect(),
        }
    }

    /// The MCP servers' processes now.
    pub fn servers(&self) -> Vec<ServerInfo> {
        self.mcp
            .iter()
            .map(|(name, m)| ServerInfo {
                name: name.clone(),
                pid: m.pid(),
                generation: m.generation(),
                protocol: m.protocol_version(),
            })
            .collect()
    }

    /// The MCP server named `name`.
    pub fn mcp(&self, name: &str) -> Option<&McpServer> {
        self.mcp.get(name)
    }

    /// Lists every exposed tool (waiting for servers to start); a server
    /// that does not start is left out and logged.
    pub async fn list(&self, start_timeout: Duration) -> Vec<ToolInfo> {
        let mut out = Vec::new();
        for (name, server) in &self.mcp {
            let listed = async {
                server.ready(start_timeout).await?;
                server.list_tools(LIST_TIMEOUT).await
            };
            match listed.await {
                Ok(tools) => out.extend(tools.into_iter().map(|t| ToolInfo {
                    skill: t.skill,
                    kind: "mcp".into(),
                    server: name.clone(),
                    name: t.name,
                    description: t.description,
                    input_schema: Some(serde_json::Value::Object(t.input_schema)),
                    idempotent: t.idempotent,
                    needs_approval: t.needs_approval,
                })),
                Err(e) => tracing::warn!(server = %name, %e, "MCP server's tools not listed"),
            }
        }
        for (name, shell) in &self.shell {
            out.push(ToolInfo {
                skill: shell.skill_id(),
                kind: "shell".into(),
                server: name.clone(),
                name: name.clone(),
                description: Some(format!(
                    "runs {:?} with the input on stdin",
                    shell.config().argv
                )),
                input_schema: None,
                idempotent: shell.config().idempotent,
                needs_approval: false,
            });
        }
        out
    }

    /// Calls an exposed MCP tool.
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: Option<JsonObject>,
        progress: Option<mpsc::Sender<Progress>>,
        cancel: CancellationToken,
        timeout: Duration,
    ) -> Result<CallToolResult, McpError> {
        let Some(mcp) = self.mcp.get(server) else {
            return Err(McpError::NotExposed {
                server: server.to_string(),
                tool: tool.to_string(),
            });
        };
        mcp.call_tool(tool, arguments, progress, cancel, timeout)
            .await
    }

    /// Runs `skill` on a task's input and makes the result artifact.
    pub async fn run_skill(
        &self,
        skill: &str,
        input: &Message,
        progress: mpsc::Sender<Progress>,
        cancel: CancellationToken,
        timeout: Duration,
    ) -> Result<Artifact, String> {
        let artifact_id = format!("result-{}", input.message_id);
        if let Some(rest) = skill.strip_prefix("mcp.") {
            let (server, tool) = rest
                .split_once('.')
                .ok_or_else(|| format!("skill {skill:?} names no tool"))?;
            let arguments = arguments_of(input)?;
            let result = self
                .call(server, tool, arguments, Some(progress), cancel, timeout)
                .await
                .map_err(|e| e.to_string())?;
            if result.is_error == Some(true) {
                return Err(format!(
                    "the tool reported an error: {}",
                    serde_json::to_string(&result.content).unwrap_or_default()
                ));
            }
            let value = serde_json::to_value(&result).map_err(|e| e.to_string())?;
            return Ok(Artifact {
                artifact_id,
                name: Some(skill.to_string()),
                description: None,
                parts: vec![Part::data(value)],
                metadata: None,
            });
        }
        if let Some(name) = skill.strip_prefix("shell.") {
            let shell = self
                .shell
                .get(name)
                .ok_or_else(|| format!("no shell command {name:?}"))?;
            let stdin = stdin_of(input);
            let out = shell
                .run(&stdin, &cancel)
                .await
                .map_err(|e| e.to_string())?;
            if out.code != Some(0) {
                return Err(format!(
                    "{skill} exited with {:?}: {}",
                    out.code,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            return Ok(Artifact {
                artifact_id,
                name: Some(skill.to_string()),
                description: None,
                parts: vec![Part::text(String::from_utf8_lossy(&out.stdout))],
                metadata: None,
            });
        }
        Err(format!("unknown skill {skill:?}"))
    }
}

/// The tool arguments of a task's input: its first data part (an object).
fn arguments_of(input: &Message) -> Result<Option<JsonObject>, String> {
    match input.parts.iter().find_map(|p| p.data.as_ref()) {
        None => Ok(None),
        Some(serde_json::Value::Object(o)) => Ok(Some(o.clone())),
        Some(_) => Err("the input's data part must be a JSON object of tool arguments".into()),
    }
}

/// What a shell command reads: the input's text parts, else its data as JSON.
fn stdin_of(input: &Message) -> Vec<u8> {
    let text: String = input.parts.iter().filter_map(|p| p.text.clone()).collect();
    if !text.is_empty() {
        return text.into_bytes();
    }
    input
        .parts
        .iter()
        .find_map(|p| p.data.as_ref())
        .map(|d| d.to_string().into_bytes())
        .unwrap_or_default()
}

/// This member's A2A card: one skill per exposed tool.
pub fn card_of(peer: &PeerId, name: &str, tools: &[ToolInfo]) -> AgentCard {
    AgentCard {
        name: name.to_string(),
        description: "A Conclave agent peer: its MCP tools and shell commands as skills".into(),
        supported_interfaces: vec![libp2p_interface(peer)],
        version: env!("CARGO_PKG_VERSION").into(),
        capabilities: AgentCapabilities {
            streaming: Some(true),
            push_notifications: None,
        },
        default_input_modes: vec!["application/json".into(), "text/plain".into()],
        default_output_modes: vec!["application/json".into(), "text/plain".into()],
        skills: tools
            .iter()
            .map(|t| AgentSkill {
                id: t.skill.clone(),
                name: t.name.clone(),
                description: t
                    .description
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(1024)
                    .collect(),
                tags: vec![t.kind.clone()],
                examples: vec![],
                input_modes: vec![],
                output_modes: vec![],
            })
            .collect(),
    }
}

/// The tools by skill id.
pub fn by_skill(tools: &[ToolInfo]) -> BTreeMap<String, ToolInfo> {
    tools.iter().map(|t| (t.skill.clone(), t.clone())).collect()
}

/// Shared so spawned calls outlive no one.
pub type Tools = Arc<LocalTools>;
