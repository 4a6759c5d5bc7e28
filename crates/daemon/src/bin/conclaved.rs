//! `conclaved`: the headless Conclave node (relay, bootstrap or agent server).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use conclave_daemon::signing_control::SigningControl;
use conclave_node::{
    config::{KadMode, NodeConfig},
    control, identity, logging, metrics,
    profile::{Profile, DEFAULT_PROFILE},
    Multiaddr, Node, NodeHandle,
};
use conclave_signing::{KeychainKeyStore, SigningConfig, SigningHandle, SigningService};

/// Longest wait for the keychain when the signing service starts.
const KEYCHAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Starts the signing service with keys in the keychain under `namespace`.
async fn start_signing(
    node: NodeHandle,
    namespace: String,
    data_dir: PathBuf,
) -> Result<SigningHandle, String> {
    let open = tokio::task::spawn_blocking(move || KeychainKeyStore::open(&namespace));
    let keys = tokio::time::timeout(KEYCHAIN_TIMEOUT, open)
        .await
        .map_err(|_| format!("the keychain did not answer within {KEYCHAIN_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let start = SigningService::start(
        node,
        std::sync::Arc::new(keys),
        SigningConfig::new(data_dir),
    );
    tokio::time::timeout(KEYCHAIN_TIMEOUT, start)
        .await
        .map_err(|_| format!("the keychain did not answer within {KEYCHAIN_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())
}

/// Runs a Conclave node without a GUI, controlled through `conclavectl`.
#[derive(Parser, Debug)]
#[command(name = "conclaved", version, about)]
struct Args {
    /// Profile: separate keys, config, data and logs.
    #[arg(long, env = "CONCLAVE_PROFILE", default_value = DEFAULT_PROFILE)]
    profile: String,
    /// Put all of the profile's files under DIR: config, socket, logs and the
    /// keys (DIR/identity.key instead of the OS keychain).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on (repeatable; replaces the configured ones).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Peer to dial at start and when short of connections (repeatable;
    /// replaces the configured ones).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<Multiaddr>,
    /// Keep the node's keys in this file (created 0600 if missing) instead of
    /// the OS keychain: for servers without a keychain.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Control socket path.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Serve Prometheus metrics on HOST:PORT at /metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<SocketAddr>,
    /// An address others reach this node at (repeatable), e.g. a port
    /// forward; announced as confirmed.
    #[arg(long, value_name = "MULTIADDR")]
    external_addr: Vec<Multiaddr>,
    /// Serve circuit relay v2 to other peers (its listen addresses become its
    /// external addresses).
    #[arg(long)]
    relay_server: bool,
    /// Config file (default: the profile's config.toml, if present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Disable mDNS discovery on the local network.
    #[arg(long)]
    no_mdns: bool,
    /// DHT mode: server (default for the daemon), client or auto.
    #[arg(long, value_parser = ["server", "client", "auto"])]
    kad_mode: Option<String>,
    /// Where MuSig2 signing keys live: the OS keychain (default) or nowhere
    /// (no signing service, e.g. on a relay).
    #[arg(long, value_parser = ["keychain", "none"], default_value = "keychain")]
    signing_keys: String,
}

fn load_config(args: &Args, profile: &Profile) -> Result<NodeConfig> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::from_file(path)?,
        None => NodeConfig::from_optional_file(&profile.config_file())?,
    };
    config.apply_env()?;
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    if !args.bootstrap.is_empty() {
        config.bootstrap = args.bootstrap.clone();
    }
    if !args.external_addr.is_empty() {
        config.external_addrs = args.external_addr.clone();
    }
    if args.relay_server {
        config.relay_server = true;
    }
    if args.no_mdns {
        config.mdns = false;
    }
    if let Some(mode) = &args.kad_mode {
        config.kad_mode = match mode.as_str() {
            "client" => KadMode::Client,
            "auto" => KadMode::Auto,
            _ => KadMode::Server,
        };
    }
    if config.policy_file.is_none() {
        config.policy_file = Some(profile.data_dir().join("policy.json"));
    }
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let profile = Profile::resolve(&args.profile, args.data_dir.as_deref())?;
    profile.create_dirs()?;
    let _log_guard = logging::init(profile.log_dir(), "conclaved")?;
    let config = load_config(&args, &profile)?;

    // Keys: an explicit --key-file; with --data-dir, the key file inside it
    // (everything of the profile lives there); otherwise the OS keychain.
    let key_file = args
        .key_file
        .clone()
        .or_else(|| args.data_dir.as_ref().map(|_| profile.key_file()));
    let identity = match &key_file {
        Some(path) => identity::load_or_create_key_file(path)?,
        None => {
            let (identity, created) = identity::keystore::load_or_create_identity(profile.name())
                .await
                .context("loading the node's keys from the OS keychain")?;
            if created {
                tracing::info!(peer_id = %identity.peer_id(), "new identity stored in the keychain");
            }
            identity
        }
    };
    let node = Node::start(config, identity)
        .await
        .context("starting the node")?;

    let control_path = args
        .control
        .clone()
        .unwrap_or_else(|| profile.control_socket());
    let inbox = std::sync::Arc::new(conclave_node::inbox::TextInbox::default());
    node.register_handler(inbox.clone()).await?;
    // Signing keys belong to the profile; a daemon with its keys in a data
    // folder or key file gets its own keychain namespace, so two such daemons
    // on one machine never share signing keys.
    let signing = if args.signing_keys == "keychain" {
        let namespace = if key_file.is_some() {
            format!("{}@{}", profile.name(), node.peer_id())
        } else {
            profile.name().to_string()
        };
        Some(std::sync::Arc::new(SigningControl::spawn(start_signing(
            node.clone(),
            namespace,
            profile.data_dir().to_path_buf(),
        ))))
    } else {
        None
    };
    let extension: std::sync::Arc<dyn control::server::ControlExtension> = match &signing {
        Some(signing) => signing.clone(),
        None => std::sync::Arc::new(SigningControl::disabled(
            "it was started with --signing-keys none",
        )),
    };
    let extension = Some(extension);
    let control_task =
        control::server::serve_extended(node.clone(), &control_path, Some(inbox), extension)
            .await?;
    let metrics_addr = match args.metrics {
        Some(addr) => {
            let (bound, _task) = metrics::serve(addr, node.registry())
                .await
                .with_context(|| format!("serving metrics on {addr}"))?;
            Some(bound)
        }
        None => None,
    };

    let listen_addrs = node.listen_addrs().await?;
    // One JSON line on stdout tells scripts the daemon is ready and where.
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "peer_id": node.peer_id().to_string(),
            "listen_addrs": listen_addrs,
            "control": control_path,
            "metrics": metrics_addr.map(|a| format!("http://{a}/metrics")),
            "profile": profile.name(),
        })
    );
    tracing::info!(peer_id = %node.peer_id(), control = %control_path.display(), "conclaved ready");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        _ = terminate.recv() => tracing::info!("terminated"),
        _ = node.wait_stopped() => tracing::info!("stopped through the control socket"),
    }
    control_task.abort();
    if let Some(signing) = &signing {
        // Aborts sessions in progress (telling their peers) before the node goes.
        match signing.handle().await {
            Ok(handle) => {
                if let Err(e) = handle.stop().await {
                    tracing::warn!(%e, "stopping the signing service");
                }
            }
            Err(reason) => tracing::warn!(%reason, "signing was unavailable"),
        }
    }
    let _ = node.stop().await;
    let _ = std::fs::remove_file(&control_path);
    Ok(())
}
