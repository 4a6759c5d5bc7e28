//! `conclavectl`: command-line client of a running `conclaved`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use conclave_daemon::coinjoin_cli::CoinjoinAction;
use conclave_daemon::rooms_cli::{self, RoomsAction};
use conclave_node::{
    control::{client::ControlClient, rpc::ZeroizingValue},
    identity::{backup_file, keysource::KEY_FILE_ENV, KeySource},
    profile::{Profile, DEFAULT_PROFILE},
    NodeError,
};
use conclave_signing::psbt_file;
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
    /// The daemon's --data-dir, to find its socket (and its key file).
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
    /// MuSig2 signing keys of the daemon (kept in its keychain).
    Wallet {
        #[command(subcommand)]
        action: WalletAction,
    },
    /// MuSig2 signing sessions (BIP-327).
    Musig2 {
        #[command(subcommand)]
        action: Musig2Action,
    },
    /// CoinJoin rounds (CoinShuffle++ over DiceMix, no coordinator).
    Coinjoin {
        #[command(subcommand)]
        action: CoinjoinAction,
    },
    /// Agent-task rooms: rooms, agents, shared MCP tools, tasks, records.
    Rooms {
        #[command(subcommand)]
        action: RoomsAction,
    },
    /// Stop the daemon.
    Shutdown,
}

#[derive(Subcommand, Debug)]
enum WalletAction {
    /// Generate a signing key; prints its public key.
    New,
    /// Import a signing key (32-byte secret, hex) from a file or the terminal
    /// (never from the command line, where other users could see it).
    Import {
        /// Read the secret key (hex) from this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
    /// The signing keys' public keys.
    List,
    /// A fresh P2TR receive address of the CoinJoin wallet.
    Address,
}

#[derive(Subcommand, Debug)]
enum Musig2Action {
    /// Start a session: invite the peers behind the signer keys.
    Create {
        /// Signer public keys (66 hex each), comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            required = true,
            value_name = "PUBKEY,..."
        )]
        signers: Vec<String>,
        /// The message to sign, hex.
        #[arg(
            long,
            value_name = "HEX",
            conflicts_with = "psbt",
            required_unless_present = "psbt"
        )]
        message: Option<String>,
        /// A PSBT (binary or base64) whose inputs the aggregate key spends.
        #[arg(long, value_name = "FILE")]
        psbt: Option<PathBuf>,
    },
    /// Invitations waiting for this node's decision.
    Invitations {
        /// If there are none, wait up to SECS for one.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
    },
    /// Join a session (an explicit decision to sign what it shows).
    Join {
        /// Session id.
        session_id: String,
    },
    /// Decline an invitation (or withdraw from a session, failing it).
    Decline {
        /// Session id.
        session_id: String,
        /// Reason shown to the coordinator.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// A session's phase, holdouts, aggregate key and, once done, signature.
    Status {
        /// Session id.
        session_id: String,
        /// If it is still running, wait up to SECS for it to finish.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
        /// Write the signed PSBT (base64) here once done.
        #[arg(long, value_name = "FILE")]
        psbt_out: Option<PathBuf>,
        /// Write the finalized transaction (hex) here once done.
        #[arg(long, value_name = "FILE")]
        tx_out: Option<PathBuf>,
    },
    /// Every session, oldest first.
    List,
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
        /// Export the keys of this key file instead of the profile's.
        #[arg(long, env = KEY_FILE_ENV, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Restore keys from a backup where the profile keeps them (or a key file).
    Import {
        /// Backup file.
        file: PathBuf,
        /// Read the passphrase from this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Write the keys to this key file instead of the profile's.
        #[arg(long, env = KEY_FILE_ENV, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Replace another identity the profile (or the key file) holds.
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
/// cross the control socket. The keys are where the daemon keeps them
/// ([`KeySource::for_profile`]).
async fn identity_offline(args: &Args, action: &IdentityAction) -> Result<()> {
    let profile = Profile::resolve(&args.profile, args.data_dir.as_deref())?;
    match action {
        IdentityAction::Show => unreachable!("asked of the daemon"),
        IdentityAction::Export {
            file,
            passphrase_file,
            key_file,
        } => {
            let keys = KeySource::for_profile(&profile, key_file.as_deref());
            let identity = keys
                .load()
                .await?
                .with_context(|| format!("the {keys} holds no identity"))?;
            let passphrase = read_passphrase(passphrase_file.as_ref(), true)?;
            backup_file::write(file, &identity, &passphrase)?;
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
            let passphrase = read_passphrase(passphrase_file.as_ref(), false)?;
            let identity = backup_file::read(file, &passphrase)?;
            let peer_id = identity.peer_id();
            let keys = KeySource::for_profile(&profile, key_file.as_deref());
            if let Some(existing) = keys.load().await? {
                if existing.peer_id() != peer_id && !force {
                    bail!(
                        "the {keys} already holds identity {}; pass --force to replace it",
                        existing.peer_id()
                    );
                }
            }
            keys.replace(std::sync::Arc::new(identity)).await?;
            let result = json!({ "peer_id": peer_id.to_string(), "profile": args.profile });
            if args.json {
                println!("{result}")
            } else {
                println!("imported {peer_id} into the {keys}")
            }
        }
    }
    Ok(())
}

/// A signing secret key (hex) from a file or the terminal.
fn read_secret_key(file: Option<&PathBuf>) -> Result<zeroize::Zeroizing<String>> {
    let text = match file {
        Some(path) => zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the secret key file {}", path.display()))?,
        ),
        None => zeroize::Zeroizing::new(
            rpassword::prompt_password("Secret key (hex): ")
                .context("reading the secret key from the terminal (or pass --secret-file)")?,
        ),
    };
    let trimmed = text.trim();
    if trimmed.len() != 64 || hex::decode(trimmed).is_err() {
        bail!("a secret key is 64 hex characters (32 bytes)");
    }
    Ok(zeroize::Zeroizing::new(trimmed.to_string()))
}

/// Writes the exports `musig2 status --psbt-out/--tx-out` asked for, once the
/// session has them.
fn write_exports(action: &Musig2Action, status: &Value) -> Result<()> {
    let Musig2Action::Status {
        psbt_out, tx_out, ..
    } = action
    else {
        return Ok(());
    };
    for (path, field) in [(psbt_out, "psbt"), (tx_out, "transaction")] {
        let Some(path) = path else { continue };
        let Some(text) = status[field].as_str() else {
            bail!(
                "the session has no {field} to export (phase {}; only a finished PSBT session has one)",
                status["phase"]
            );
        };
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
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
        Command::Rooms { action } => rooms_cli::request(action)?,
        Command::Wallet { action } => match action {
            WalletAction::New => ("wallet.new", json!({})),
            WalletAction::Import { secret_file } => {
                let secret = read_secret_key(secret_file.as_ref())?;
                ("wallet.import", json!({ "secret": secret.as_str() }))
            }
            WalletAction::List => ("wallet.list", json!({})),
            WalletAction::Address => ("coinjoin.address", json!({})),
        },
        Command::Coinjoin { action } => action.request(),
        Command::Musig2 { action } => match action {
            Musig2Action::Create {
                signers,
                message,
                psbt,
            } => {
                for key in signers {
                    key.parse::<conclave_signing::SignerKey>()
                        .with_context(|| format!("signer key {key:?}"))?;
                }
                let mut params = json!({ "signers": signers });
                if let Some(message) = message {
                    hex::decode(message).context("--message must be hex")?;
                    params["message"] = json!(message);
                }
                if let Some(path) = psbt {
                    let binary = psbt_file::read(path)?;
                    params["psbt"] = json!(psbt_file::to_base64(&binary));
                }
                ("musig2.create", params)
            }
            Musig2Action::Invitations { wait } => {
                ("musig2.invitations", json!({ "wait_secs": wait }))
            }
            Musig2Action::Join { session_id } => {
                ("musig2.join", json!({ "session_id": session_id }))
            }
            Musig2Action::Decline { session_id, reason } => (
                "musig2.decline",
                json!({ "session_id": session_id, "reason": reason }),
            ),
            Musig2Action::Status {
                session_id, wait, ..
            } => (
                "musig2.status",
                json!({ "session_id": session_id, "wait_secs": wait }),
            ),
            Musig2Action::List => ("musig2.list", json!({})),
        },
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
        Command::Wallet {
            action: WalletAction::New | WalletAction::Import { .. },
        } => println!("signing key {}", s(&result["pubkey"])),
        Command::Wallet {
            action: WalletAction::Address,
        } => println!("{}", s(&result["address"])),
        Command::Coinjoin { action } => action.print_text(result),
        Command::Wallet {
            action: WalletAction::List,
        } => {
            let keys = result.as_array().cloned().unwrap_or_default();
            if keys.is_empty() {
                println!("no signing keys (create one with: conclavectl wallet new)");
            }
            for k in keys {
                println!("{}", s(&k["pubkey"]));
            }
        }
        Command::Musig2 {
            action: Musig2Action::Create { .. },
        } => println!(
            "session {} created; signers are invited",
            s(&result["session_id"])
        ),
        Command::Musig2 {
            action: Musig2Action::Join { session_id },
        } => println!("joined session {session_id}"),
        Command::Musig2 {
            action: Musig2Action::Invitations { .. },
        } => {
            let invitations = result.as_array().cloned().unwrap_or_default();
            if invitations.is_empty() {
                println!("no invitations waiting");
            }
            for i in invitations {
                let what = match i["signing"]["kind"].as_str() {
                    Some("message") => format!("message {}", s(&i["signing"]["message"])),
                    _ => format!("PSBT {}", i["signing"]["summary"]),
                };
                println!(
                    "session {} from {}: {what}; {} signers, {} of them ours (join with: conclavectl musig2 join {})",
                    s(&i["session_id"]),
                    s(&i["coordinator"]),
                    i["signers"].as_array().map_or(0, Vec::len),
                    i["our_keys"].as_array().map_or(0, Vec::len),
                    s(&i["session_id"]),
                );
            }
        }
        Command::Musig2 {
            action: Musig2Action::List,
        } => {
            let sessions = result.as_array().cloned().unwrap_or_default();
            if sessions.is_empty() {
                println!("no sessions yet");
            }
            for session in sessions {
                println!(
                    "{}  {}  {}",
                    s(&session["session_id"]),
                    s(&session["role"]),
                    s(&session["phase"])
                );
            }
        }
        Command::Musig2 {
            action: Musig2Action::Status { .. },
        } => {
            println!(
                "session {}: {}",
                s(&result["session_id"]),
                s(&result["phase"])
            );
            let holdouts: Vec<String> = result["holdouts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            if !holdouts.is_empty() {
                println!("waiting for: {}", holdouts.join(", "));
            }
            println!("aggregate key: {}", s(&result["aggregate_pubkey"]));
            if let Some(signature) = result["signature"].as_str() {
                println!("signature: {signature}");
            }
            if let Some(failure) = result.get("failure") {
                println!("failure: {failure}");
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
    if let Command::Rooms {
        action: RoomsAction::VerifyLog { file },
    } = &args.command
    {
        let verified = rooms_cli::verify_log(file)?;
        print_rooms(&args, &args.command, &verified);
        return Ok(());
    }
    let (method, params) = request(&args.command)?;
    // `wallet import` puts a secret key in the parameters.
    let params = ZeroizingValue(params);
    let path = socket_path(&args)?;
    let mut client = ControlClient::connect(&path).await?;
    let result = if let Command::Subscribe { .. } = args.command {
        // Each message is one JSON line, whatever --json says: scripts read them.
        let result = client
            .call_streaming(method, &params.0, |m| println!("{m}"))
            .await?;
        if !args.json {
            eprintln!("received {} message(s)", result["received"]);
        }
        return Ok(());
    } else {
        client.call(method, &params.0).await?
    };
    if let Command::Rooms { action } = &args.command {
        let result = rooms_cli::finish(action, result)?;
        print_rooms(&args, &args.command, &result);
        return Ok(());
    }
    if args.json {
        println!("{result}");
    } else {
        print_text(&args.command, &result);
    }
    if let (Command::Get { .. }, Value::Null) = (&args.command, &result) {
        bail!("not found");
    }
    if let Command::Musig2 { action } = &args.command {
        write_exports(action, &result)?;
    }
    if let Command::Coinjoin { action } = &args.command {
        action.write_exports(&result)?;
    }
    Ok(())
}

fn print_rooms(args: &Args, command: &Command, result: &Value) {
    match command {
        Command::Rooms { action } if !args.json => rooms_cli::print_text(action, result),
        _ => println!("{result}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", conclave_node::error::describe(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
