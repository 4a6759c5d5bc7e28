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
    /// Stop the daemon.
    Shutdown,
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
