//! `conclavectl rooms ...`: the arguments, the control calls they become,
//! the files they read and write, and what they print. `verify-log` runs
//! offline, without a daemon.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

/// Agent-task rooms.
#[derive(Subcommand, Debug)]
pub enum RoomsAction {
    /// Create a room owned by this daemon; prints {"room_id"}.
    Create {
        /// A name for people.
        name: String,
        /// Only peers with an owner-signed token (rooms invite) take part.
        #[arg(long)]
        invite_only: bool,
    },
    /// Join a room, by its id (found in the DHT) or with an invitation.
    Join {
        /// The room's id.
        room_id: String,
        /// An invitation file from the room's owner (rooms invite --out).
        #[arg(long, value_name = "FILE")]
        token: Option<PathBuf>,
    },
    /// As a room's owner: invite a peer (a token sealed to it, in a file).
    Invite {
        /// The room's id.
        room_id: String,
        /// The peer invited.
        peer_id: String,
        /// What it may do: propose, execute, observe (comma-separated).
        #[arg(long, default_value = "propose,execute")]
        roles: String,
        /// Where to write the invitation.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// How long the invitation is valid, in seconds (default 30 days).
        #[arg(long)]
        valid_secs: Option<u64>,
    },
    /// As a room's owner: withdraw a member.
    Revoke {
        /// The room's id.
        room_id: String,
        /// The member.
        peer_id: String,
    },
    /// Rooms this daemon is in.
    List,
    /// This daemon's A2A agent card.
    Card,
    /// This daemon's MCP server processes: pid, starts, protocol version.
    Servers,
    /// Agents seen in a room, with their cards and reputation.
    Agents {
        /// The room's id.
        room_id: String,
    },
    /// Agents offering a skill, from the DHT (across rooms).
    Find {
        /// e.g. mcp.everything.echo
        skill: String,
    },
    /// The tools a member exposes (this daemon's own for its own PeerId).
    Tools {
        /// The member.
        peer_id: String,
    },
    /// Call a member's exposed MCP tool; prints the MCP CallToolResult.
    Call {
        /// The member.
        peer_id: String,
        /// The MCP server's name in its config.
        server: String,
        /// The tool.
        tool: String,
        /// The arguments, a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Seconds to wait; then the call is canceled at the server.
        #[arg(long, default_value_t = crate::rooms_control::DEFAULT_CALL_SECS)]
        timeout: u64,
    },
    /// Propose a task in a room; prints {"task_id"}.
    Propose {
        /// The room's id.
        room_id: String,
        /// The skill asked for.
        #[arg(long)]
        skill: String,
        /// The input: a JSON object of tool arguments (or a JSON string).
        #[arg(long)]
        input: String,
        /// How long bids are taken, in ms.
        #[arg(long)]
        window_ms: Option<u64>,
        /// The highest price accepted.
        #[arg(long, default_value_t = 0)]
        max_price: u64,
        /// The lowest reputation accepted (per mille).
        #[arg(long, default_value_t = 0)]
        min_reputation: u16,
        /// How long one attempt may take, in ms.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// How long the executor may stay silent, in ms.
        #[arg(long)]
        lease_ms: Option<u64>,
        /// How many executors the task may go through.
        #[arg(long)]
        attempts: Option<u8>,
    },
    /// A task's state from its verified record.
    Task {
        /// The task's id.
        task_id: String,
        /// Wait up to SECS seconds for it to end.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Cancel a task this daemon proposed.
    Cancel {
        /// The task's id.
        task_id: String,
    },
    /// Approve a destructive tool's run for a task awarded to this daemon.
    Approve {
        /// The task's id.
        task_id: String,
    },
    /// Decline a destructive tool's run for a task awarded to this daemon:
    /// the tool does not run and the proposer awards the task to its next
    /// bidder.
    Decline {
        /// The task's id.
        task_id: String,
    },
    /// Export a task's record to a file.
    Log {
        /// The task's id.
        task_id: String,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify an exported record offline: chain, signers, transitions and
    /// the result's hash.
    VerifyLog {
        /// The record file (rooms log --out).
        file: PathBuf,
    },
}

fn json_arg(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON: {text:?}"))
}

/// The control call an action becomes (reading the files it names).
pub fn request(action: &RoomsAction) -> Result<(&'static str, Value)> {
    Ok(match action {
        RoomsAction::Create { name, invite_only } => (
            "rooms.create",
            json!({ "name": name, "invite_only": invite_only }),
        ),
        RoomsAction::Join { room_id, token } => {
            let token = match token {
                Some(path) => Some(hex::encode(std::fs::read(path).with_context(|| {
                    format!("cannot read the invitation {}", path.display())
                })?)),
                None => None,
            };
            ("rooms.join", json!({ "room_id": room_id, "token": token }))
        }
        RoomsAction::Invite {
            room_id,
            peer_id,
            roles,
            valid_secs,
            ..
        } => (
            "rooms.invite",
            json!({ "room_id": room_id, "peer_id": peer_id, "roles": roles, "valid_secs": valid_secs }),
        ),
        RoomsAction::Revoke { room_id, peer_id } => (
            "rooms.revoke",
            json!({ "room_id": room_id, "peer_id": peer_id }),
        ),
        RoomsAction::List => ("rooms.list", json!({})),
        RoomsAction::Card => ("rooms.card", json!({})),
        RoomsAction::Servers => ("rooms.servers", json!({})),
        RoomsAction::Agents { room_id } => ("rooms.agents", json!({ "room_id": room_id })),
        RoomsAction::Find { skill } => ("rooms.find", json!({ "skill": skill })),
        RoomsAction::Tools { peer_id } => ("rooms.tools", json!({ "peer_id": peer_id })),
        RoomsAction::Call {
            peer_id,
            server,
            tool,
            args,
            timeout,
        } => {
            let args = json_arg(args, "--args")?;
            if !args.is_object() {
                bail!("--args must be a JSON object, e.g. '{{\"message\": \"hi\"}}'");
            }
            (
                "rooms.call",
                json!({ "peer_id": peer_id, "server": server, "tool": tool, "args": args, "timeout_secs": timeout }),
            )
        }
        RoomsAction::Propose {
            room_id,
            skill,
            input,
            window_ms,
            max_price,
            min_reputation,
            timeout_ms,
            lease_ms,
            attempts,
        } => (
            "rooms.propose",
            json!({
                "room_id": room_id, "skill": skill, "input": json_arg(input, "--input")?,
                "window_ms": window_ms, "max_price": max_price, "min_reputation": min_reputation,
                "timeout_ms": timeout_ms, "lease_ms": lease_ms, "attempts": attempts,
            }),
        ),
        RoomsAction::Task { task_id, wait } => (
            "rooms.task",
            json!({ "task_id": task_id, "wait_secs": wait }),
        ),
        RoomsAction::Cancel { task_id } => ("rooms.cancel", json!({ "task_id": task_id })),
        RoomsAction::Approve { task_id } => ("rooms.approve", json!({ "task_id": task_id })),
        RoomsAction::Decline { task_id } => ("rooms.decline", json!({ "task_id": task_id })),
        RoomsAction::Log { task_id, .. } => ("rooms.log", json!({ "task_id": task_id })),
        RoomsAction::VerifyLog { .. } => bail!("verify-log runs offline"),
    })
}

/// `verify-log`: verifies a record file without a daemon.
pub fn verify_log(file: &Path) -> Result<Value> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let verified = conclave_rooms::verify_log(&bytes).with_context(|| {
        format!(
            "{} is not a valid task record; it was altered or is not a record (rooms log --out)",
            file.display()
        )
    })?;
    let current = verified.attempts.last();
    Ok(json!({
        "verified": true,
        "task_id": verified.task.to_string(),
        "room_id": verified.spec.room.to_string(),
        "proposer": verified.spec.proposer.to_string(),
        "skill": verified.spec.skill,
        "state": verified.state.as_str(),
        "entries": verified.entries,
        "executor": current.map(|a| a.executor.to_string()),
        "attempt": current.map_or(0, |a| a.number),
        "result_blake3": verified.result.as_ref().map(|r| hex::encode(r.blake3)),
    }))
}

/// Writes the files an action asks for and returns what to print.
pub fn finish(action: &RoomsAction, result: Value) -> Result<Value> {
    let write = |out: &Path, field: &str| -> Result<Value> {
        let bytes = result
            .get(field)
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .with_context(|| format!("the daemon's answer carries no {field}"))?;
        std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
        Ok(json!({ "out": out, "bytes": bytes.len() }))
    };
    match action {
        RoomsAction::Invite { out, .. } => write(out, "invitation"),
        RoomsAction::Log { out, .. } => write(out, "record"),
        _ => Ok(result),
    }
}

/// Prints a result for people.
pub fn print_text(action: &RoomsAction, result: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    match action {
        RoomsAction::Create { .. } => println!("{}", s(&result["room_id"])),
        RoomsAction::Propose { .. } => println!("{}", s(&result["task_id"])),
        RoomsAction::List => {
            for room in result.as_array().into_iter().flatten() {
                println!(
                    "{}  {}  {}  {} agent(s)",
                    s(&room["room_id"]),
                    s(&room["name"]),
                    s(&room["policy"]),
                    room["agents"]
                );
            }
        }
        RoomsAction::Agents { .. } => {
            for agent in result.as_array().into_iter().flatten() {
                let skills: Vec<String> = agent["card"]["skills"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| s(&k["id"]))
                    .collect();
                println!("{}  {}", s(&agent["peer_id"]), skills.join(", "));
            }
        }
        RoomsAction::Tools { .. } => {
            for tool in result.as_array().into_iter().flatten() {
                println!(
                    "{}  {}",
                    s(&tool["skill"]),
                    tool["description"].as_str().unwrap_or("")
                );
            }
        }
        RoomsAction::Task { .. } | RoomsAction::Cancel { .. } => {
            println!(
                "{}  executor {}  attempt {}  verified {}",
                s(&result["state"]),
                s(&result["executor"]),
                result["attempt"],
                result["verified"]
            );
            if let Some(hash) = result["result_blake3"].as_str() {
                println!("result blake3 {hash}");
            }
        }
        RoomsAction::VerifyLog { .. } => println!(
            "verified: {} entries, {}, result blake3 {}",
            result["entries"],
            s(&result["state"]),
            s(&result["result_blake3"])
        ),
        _ => println!(
            "{}",
            serde_json::to_string_pretty(result).unwrap_or_default()
        ),
    }
}
