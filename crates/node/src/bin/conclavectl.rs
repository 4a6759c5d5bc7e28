//! `conclavectl`: command-line client of a running `conclaved`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use conclave_node::{
    control::client::ControlClient,
    profile::{Profile, DEFAULT_PROFILE},
    NodeError,
};
use serde_json::{json, Value};

/// Talks to a running conclaved over its control socket.
#[derive(Parser, Debug)]
#[command(name = "conclavectl", version, about)]
struct Args {
    /// Control socket (default: the profile's).
    #[arg(long, global = true, env = "CONCLAVE_CONTROL", value_name = "PATH")]
    control: Option<PathBuf>,
    /// Profile whose daemon to talk to.
    #[arg(long, global = true, env = "CONCLAVE_PROFILE", default_value = DEFAULT_PROFILE)]
    profile: String,
    /// The daemon's --data-dir, to find its socket.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Our peer id and listen addresses.
    Id,
    /// Connected peers.
    Peers,
    /// Connect to a peer by multiaddr.
    Connect {
        /// e.g. /ip4/192.0.2.1/udp/4001/quic-v1/p2p/12D3Koo...
        multiaddr: String,
    },
    /// Close every connection to a peer.
    Disconnect {
        /// Peer id.
        peer_id: String,
    },
    /// Subscribe to a topic and print each message as one JSON line.
    Subscribe {
        /// Topic name.
        topic: String,
        /// Stop after N messages.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after SECS seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Leave a topic.
    Unsubscribe {
        /// Topic name.
        topic: String,
    },
    /// Publish a text message on a topic.
    Publish {
        /// Topic name.
        topic: String,
        /// Message text.
        text: String,
        /// First wait until N connected peers subscribe to the topic.
        #[arg(long, default_value_t = 0)]
        wait_peers: usize,
        /// Seconds to wait for those peers.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Wait until at least N connected peers are subscribed to a topic.
    WaitTopic {
        /// Topic name.
        topic: String,
        /// Number of peers.
        #[arg(long, default_value_t = 1)]
        peers: usize,
        /// Seconds to wait.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Announce a resource in the DHT.
    Announce {
        /// Resource type.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Resource id.
        id: String,
        /// Resource data, as JSON.
        #[arg(value_name = "JSON")]
        data: String,
        /// Seconds until the resource expires.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Find resources of a type.
    Discover {
        /// Resource type.
        #[arg(value_name = "TYPE")]
        kind: String,
    },
    /// Fetch one resource.
    Get {
        /// Resource type.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// Resource id.
        id: String,
    },
    /// Counters: peers, topics, DHT, bytes.
    Stats,
    /// Send a text as a direct (signed) message; prints the peer's reply.
    Send {
        /// Peer id.
        peer_id: String,
        /// Text.
        text: String,
    },
    /// Texts this daemon received by `send`, oldest first.
    Inbox,
    /// Reachability (AutoNAT), relay reservations and hole punching.
    Nat,
    /// Always admit a peer (also in private mode).
    Allow {
        /// Peer id.
        peer_id: String,
    },
    /// Refuse a peer and close its connections.
    Deny {
        /// Peer id.
        peer_id: String,
    },
    /// Take a peer off the allow and deny lists.
    Unlist {
        /// Peer id.
        peer_id: String,
    },
    /// Show the connection policy, or switch private mode.
    Policy {
        /// Admit only allow-listed peers (on) or everyone not denied (off).
        #[arg(long, value_parser = ["on", "off"])]
        private: Option<String>,
    },
    /// The node's identity: show it (from the daemon), or export and import
    /// passphrase-encrypted backups (offline, from the profile's keychain or
    /// a key file).
    Identity {
        #[command(subcommand)]
        action: IdentityAction,
    },
    /// Stop the daemon.
    Shutdown,
}

#[derive(Subcommand, Debug)]
enum IdentityAction {
    /// PeerId and PQ key fingerprint of the running daemon.
    Show,
    /// Write an encrypted backup of the profile's keys to FILE.
    Export {
        /// Backup file to create (mode 0600; never overwritten).
        file: PathBuf,
        /// Read the passphrase from this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Export the keys of this key file instead of the keychain.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Restore keys from a backup into the profile's keychain (or a key file).
    Import {
        /// Backup file.
        file: PathBuf,
        /// Read the passphrase from this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Write the keys to this new key file instead of the keychain.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Replace an identity the keychain already holds for the profile.
        #[arg(long)]
        force: bool,
    },
}

fn read_passphrase(file: Option<&PathBuf>, confirm: bool) -> Result<String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the passphrase file {}", path.display()))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("Backup passphrase: ")
        .context("reading the passphrase from the terminal (or pass --passphrase-file)")?;
    if confirm && rpassword::prompt_password("Repeat passphrase: ")? != first {
        bail!("the passphrases differ");
    }
    Ok(first)
}

/// Export and import run here, not in the daemon: keys and passphrases never
/// cross the control socket.
async fn identity_offline(args: &Args, action: &IdentityAction) -> Result<()> {
    use conclave_node::identity::{backup, keyfile, keystore};
    match action {
        IdentityAction::Show => unreachable!("asked of the daemon"),
        IdentityAction::Export {
            file,
            passphrase_file,
            key_file,
        } => {
            let identity = match key_file {
                Some(path) => keyfile::load_existing_key_file(path)?,
                None => keystore::with_keychain(&args.profile, |k| k.load())
                    .await?
                    .with_context(|| {
                        format!(
                            "the keychain holds no identity for profile {:?}",
                            args.profile
                        )
                    })?,
            };
            let passphrase = read_passphrase(passphrase_file.as_ref(), true)?;
            let bytes = backup::export(&identity, &passphrase)?;
            use std::{io::Write, os::unix::fs::OpenOptionsExt};
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
                .with_context(|| format!("creating {}", file.display()))?;
            out.write_all(&bytes)?;
            let result = json!({ "peer_id": identity.peer_id().to_string(), "file": file });
            if args.json {
                println!("{result}")
            } else {
                println!("exported {} to {}", identity.peer_id(), file.display())
            }
        }
        IdentityAction::Import {
            file,
            passphrase_file,
            key_file,
            force,
        } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let passphrase = read_passphrase(passphrase_file.as_ref(), false)?;
            let identity = backup::import(&bytes, &passphrase)?;
            let peer_id = identity.peer_id();
            match key_file {
                Some(path) => keyfile::write_key_file(path, &identity)?,
                None => {
                    let force = *force;
                    keystore::with_keychain(&args.profile, move |k| {
                        if !force {
                            if let Some(existing) = k.load()? {
                                if existing.peer_id() != identity.peer_id() {
                                    return Err(keystore::KeystoreError::Failed(format!(
                                        "profile already has identity {}; pass --force to replace it",
                                        existing.peer_id()
                                    )));
                                }
                            }
                        }
                        k.store(&identity)
                    })
                    .await?
                }
            }
            let result = json!({ "peer_id": peer_id.to_string(), "profile": args.profile });
            if args.json {
                println!("{result}")
            } else {
                println!("imported {peer_id} into profile {}", args.profile)
            }
        }
    }
    Ok(())
}

fn socket_path(args: &Args) -> Result<PathBuf> {
    if let Some(path) = &args.control {
        return Ok(path.clone());
    }
    Ok(Profile::resolve(&args.profile, args.data_dir.as_deref())?.control_socket())
}

/// Validates arguments before contacting the daemon and builds the call.
fn request(command: &Command) -> Result<(&'static str, Value)> {
    Ok(match command {
        Command::Id => ("id", json!({})),
        Command::Peers => ("peers", json!({})),
        Command::Connect { multiaddr } => {
            NodeError::parse_multiaddr(multiaddr)?;
            ("connect", json!({ "addr": multiaddr }))
        }
        Command::Disconnect { peer_id } => {
            NodeError::parse_peer_id(peer_id)?;
            ("disconnect", json!({ "peer_id": peer_id }))
        }
        Command::Subscribe {
            topic,
            count,
            timeout,
        } => (
            "subscribe",
            json!({ "topic": topic, "count": count, "timeout": timeout }),
        ),
        Command::Unsubscribe { topic } => ("unsubscribe", json!({ "topic": topic })),
        Command::Publish {
            topic,
            text,
            wait_peers,
            timeout,
        } => (
            "publish",
            json!({ "topic": topic, "text": text, "wait_peers": wait_peers, "timeout": timeout }),
        ),
        Command::Announce {
            kind,
            id,
            data,
            ttl,
        } => {
            let data: Value = serde_json::from_str(data)
                .with_context(|| format!("resource data {data:?} is not valid JSON"))?;
            (
                "announce",
                json!({ "type": kind, "id": id, "data": data, "ttl": ttl }),
            )
        }
        Command::WaitTopic {
            topic,
            peers,
            timeout,
        } => (
            "wait_topic",
            json!({ "topic": topic, "peers": peers, "timeout": timeout }),
        ),
        Command::Discover { kind } => ("discover", json!({ "type": kind })),
        Command::Get { kind, id } => ("get", json!({ "type": kind, "id": id })),
        Command::Stats => ("stats", json!({})),
        Command::Send { peer_id, text } => {
            NodeError::parse_peer_id(peer_id)?;
            ("send", json!({ "peer_id": peer_id, "text": text }))
        }
        Command::Inbox => ("inbox", json!({})),
        Command::Nat => ("nat", json!({})),
        Command::Allow { peer_id } | Command::Deny { peer_id } | Command::Unlist { peer_id } => {
            NodeError::parse_peer_id(peer_id)?;
            let method = match command {
                Command::Allow { .. } => "allow",
                Command::Deny { .. } => "deny",
                _ => "unlist",
            };
            (method, json!({ "peer_id": peer_id }))
        }
        Command::Policy { private } => (
            "policy",
            json!({ "private": private.as_deref().map(|p| p == "on") }),
        ),
        Command::Identity { .. } => ("identity", json!({})),
        Command::Shutdown => ("shutdown", json!({})),
    })
}

fn print_text(command: &Command, result: &Value) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    match command {
        Command::Id => {
            println!("peer id: {}", s(&result["peer_id"]));
            for a in result["listen_addrs"].as_array().into_iter().flatten() {
                println!("listening: {}", s(a));
            }
        }
        Command::Peers => {
            let peers = result.as_array().cloned().unwrap_or_default();
            if peers.is_empty() {
                println!("no peers connected (connect one with: conclavectl connect MULTIADDR)");
            }
            for p in peers {
                let rtt = p["rtt_ms"]
                    .as_f64()
                    .map(|r| format!("{r:.1} ms"))
                    .unwrap_or("-".into());
                println!(
                    "{}  {} {} {}  rtt {}  {}",
                    s(&p["peer_id"]),
                    s(&p["transport"]),
                    s(&p["direction"]),
                    s(&p["path"]),
                    rtt,
                    p["agent_version"].as_str().unwrap_or("-")
                );
            }
        }
        Command::Connect { .. } => println!("connected to {}", s(&result["peer_id"])),
        Command::Disconnect { peer_id } => println!("disconnected from {peer_id}"),
        Command::Publish { .. } => println!("published {}", s(&result["message_id"])),
        Command::Discover { .. } => {
            let list = result.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("nothing found");
            }
            for r in list {
                println!(
                    "{}/{} from {}: {}",
                    s(&r["type"]),
                    s(&r["id"]),
                    s(&r["provider"]),
                    r["data"]
                );
            }
        }
        _ => println!(
            "{}",
            serde_json::to_string_pretty(result).unwrap_or_default()
        ),
    }
}

async fn run(args: Args) -> Result<()> {
    if let Command::Identity { action } = &args.command {
        if !matches!(action, IdentityAction::Show) {
            return identity_offline(&args, action).await;
        }
    }
    let (method, params) = request(&args.command)?;
    let path = socket_path(&args)?;
    let mut client = ControlClient::connect(&path).await?;
    let result = if let Command::Subscribe { .. } = args.command {
        // Each message is one JSON line, whatever --json says: scripts read them.
        let result = client
            .call_streaming(method, params, |m| println!("{m}"))
            .await?;
        if !args.json {
            eprintln!("received {} message(s)", result["received"]);
        }
        return Ok(());
    } else {
        client.call(method, params).await?
    };
    if args.json {
        println!("{result}");
    } else {
        print_text(&args.command, &result);
    }
    if let (Command::Get { .. }, Value::Null) = (&args.command, &result) {
        bail!("not found");
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
