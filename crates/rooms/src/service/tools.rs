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
        Approve, ExecConfig,
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

/// One configured MCP server or shell command and its tools, as this
/// profile's owner sees them (the app's "Your tools").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ToolSource {
    /// Its configured name.
    pub name: String,
    /// `mcp` or `shell`.
    pub kind: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// MCP: `destructive` (destructive tools wait for approval) or `never`.
    pub approve: Option<String>,
    /// MCP: the server's process id while it runs.
    pub pid: Option<u32>,
    /// MCP: how many times it was started (0: not yet).
    #[cfg_attr(feature = "specta", specta(type = u32))]
    pub generation: u64,
    /// MCP: the protocol version it speaks.
    pub protocol: Option<String>,
    /// Its tools: every name in `expose` (MCP) or the command itself.
    pub tools: Vec<OwnTool>,
}

/// A tool of [`ToolSource`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OwnTool {
    /// The tool's name.
    pub name: String,
    /// Its skill id.
    pub skill: String,
    /// Other peers may call it: configured and listed by its server.
    pub exposed: bool,
    /// Why it is not exposed, when it is not.
    pub why_not: Option<String>,
    /// A run waits for the owner's approval.
    pub needs_approval: bool,
    /// It declares itself idempotent.
    pub idempotent: bool,
    /// What it does.
    pub description: Option<String>,
}

/// This profile's tool sources from its config, its servers' processes
/// and the tools they listed (`listed`: what the card offers).
pub fn inventory(
    config: &ExecConfig,
    servers: &[ServerInfo],
    listed: &[ToolInfo],
) -> Vec<ToolSource> {
    let mut out = Vec::new();
    for m in &config.mcp {
        let process = servers.iter().find(|s| s.name == m.name);
        let tools = m
            .expose
            .iter()
            .map(|name| {
                let skill = format!("mcp.{}.{name}", m.name);
                match listed.iter().find(|t| t.skill == skill) {
                    Some(t) => OwnTool {
                        name: name.clone(),
                        skill,
                        exposed: true,
                        why_not: None,
                        needs_approval: t.needs_approval,
                        idempotent: t.idempotent,
                        description: t.description.clone(),
                    },
                    None => OwnTool {
                        name: name.clone(),
                        skill,
                        exposed: false,
                        why_not: Some(if process.is_some_and(|p| p.pid.is_some()) {
                            format!("server {:?} does not list a tool {name:?}; check the name in expose", m.name)
                        } else {
                            format!("server {:?} is not running (yet); its log says why", m.name)
                        }),
                        needs_approval: false,
                        idempotent: false,
                        description: None,
                    },
                }
            })
            .collect();
        out.push(ToolSource {
            name: m.name.clone(),
            kind: "mcp".into(),
            command: std::iter::once(m.command.clone())
                .chain(m.args.iter().cloned())
                .collect(),
            approve: Some(
                match m.approve {
                    Approve::Destructive => "destructive",
                    Approve::Never => "never",
                }
                .into(),
            ),
            pid: process.and_then(|p| p.pid),
            generation: process.map_or(0, |p| p.generation),
            protocol: process.and_then(|p| p.protocol.clone()),
            tools,
        });
    }
    for s in &config.shell {
        let skill = format!("shell.{}", s.name);
        let tool = listed.iter().find(|t| t.skill == skill);
        out.push(ToolSource {
            name: s.name.clone(),
            kind: "shell".into(),
            command: s.argv.clone(),
            approve: None,
            pid: None,
            generation: 0,
            protocol: None,
            tools: vec![OwnTool {
                name: s.name.clone(),
                skill,
                exposed: tool.is_some(),
                why_not: tool
                    .is_none()
                    .then(|| "not listed yet: the service is starting".into()),
                needs_approval: false,
                idempotent: s.idempotent,
                description: tool.and_then(|t| t.description.clone()),
            }],
        });
    }
    out
}

/// Exactly what `skill`'s tool receives from a task's `input`: an MCP
/// tool its arguments (JSON), a shell command its stdin (text).
pub fn tool_input(skill: &str, input: &Message) -> String {
    if skill.starts_with("mcp.") {
        return match arguments_of(input) {
            Ok(Some(arguments)) => serde_json::to_string_pretty(&arguments).unwrap_or_default(),
            Ok(None) => "{}".into(),
            Err(e) => e,
        };
    }
    String::from_utf8_lossy(&stdin_of(input)).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::a2a::Role;

    fn config() -> ExecConfig {
        ExecConfig::from_toml(
            r#"
            [[mcp]]
            name = "files"
            command = "mcp-server-filesystem"
            args = ["/tmp/x"]
            expose = ["write_file", "read_text_file", "no_such_tool"]

            [[shell]]
            name = "upper"
            argv = ["/usr/bin/tr", "a-z", "A-Z"]
            idempotent = true
            "#,
        )
        .unwrap()
    }

    fn listed(server: &str, name: &str, needs_approval: bool) -> ToolInfo {
        ToolInfo {
            skill: format!("mcp.{server}.{name}"),
            kind: "mcp".into(),
            server: server.into(),
            name: name.into(),
            description: Some(format!("{name} does things")),
            input_schema: None,
            idempotent: false,
            needs_approval,
        }
    }

    #[test]
    fn the_inventory_names_every_configured_tool_and_why_one_is_not_exposed() {
        let servers = [ServerInfo {
            name: "files".into(),
            pid: Some(42),
            generation: 1,
            protocol: Some("2025-06-18".into()),
        }];
        let tools = [
            listed("files", "write_file", true),
            listed("files", "read_text_file", false),
        ];
        let listed_here = inventory(&config(), &servers, &tools);
        assert_eq!(listed_here.len(), 2);
        let files = &listed_here[0];
        assert_eq!(files.kind, "mcp");
        assert_eq!(files.pid, Some(42));
        assert_eq!(files.approve.as_deref(), Some("destructive"));
        assert_eq!(files.command, ["mcp-server-filesystem", "/tmp/x"]);
        let by_name = |n: &str| files.tools.iter().find(|t| t.name == n).unwrap();
        assert!(by_name("write_file").exposed && by_name("write_file").needs_approval);
        assert!(by_name("read_text_file").exposed && !by_name("read_text_file").needs_approval);
        let missing = by_name("no_such_tool");
        assert!(!missing.exposed);
        assert!(
            missing
                .why_not
                .as_deref()
                .unwrap()
                .contains("does not list"),
            "{missing:?}"
        );

        let upper = &listed_here[1];
        assert_eq!(upper.kind, "shell");
        assert!(upper.tools[0].idempotent);
        assert!(!upper.tools[0].exposed, "not listed yet");

        // A server that is not running: its tools say so.
        let down = inventory(&config(), &[], &[]);
        assert!(down[0].tools[0]
            .why_not
            .as_deref()
            .unwrap()
            .contains("not running"));
    }

    #[test]
    fn the_input_shown_is_what_the_tool_receives() {
        let data = Message::new(
            "m",
            Role::User,
            vec![Part::data(
                serde_json::json!({"path": "/tmp/a", "content": "hi"}),
            )],
        );
        let shown = tool_input("mcp.files.write_file", &data);
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, serde_json::json!({"path": "/tmp/a", "content": "hi"}));
        let text = Message::new("m", Role::User, vec![Part::text("hello")]);
        assert_eq!(tool_input("shell.upper", &text), "hello");
        assert_eq!(tool_input("mcp.files.list", &text), "{}");
    }
}
