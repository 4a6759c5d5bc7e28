//! `conclaved`: the headless Conclave node (relay, bootstrap or agent server).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use clap::Parser;
use conclave_daemon::{
    check_config,
    coinjoin_control::{self, CoinJoinControl, CoinJoinFlags},
    rooms_control::RoomsControl,
    signing_control::SigningControl,
};
use conclave_node::{
    config::{ConfigFlags, NodeConfig},
    control,
    identity::keysource::KEY_FILE_ENV,
    logging, metrics,
    profile::{Profile, DEFAULT_PROFILE},
    Multiaddr, ProfileNode,
};
use conclave_signing::{supervisor::SigningSupervisor, SigningConfig};

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
    #[arg(long, env = KEY_FILE_ENV, value_name = "PATH")]
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
    #[command(flatten)]
    coinjoin: CoinJoinFlags,
    /// Check FILE as a config.toml (every section, and the policy file it
    /// names), print what it sets or each problem, and exit: 0 when it can
    /// run, 1 when not. Opens no keys, sockets or folders.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
}

impl Args {
    /// The flags that override the profile's config.
    fn config_flags(&self) -> Result<ConfigFlags> {
        Ok(ConfigFlags {
            config_file: self.config.clone(),
            listen: self.listen.clone(),
            bootstrap: self.bootstrap.clone(),
            external_addrs: self.external_addr.clone(),
            relay_server: self.relay_server,
            no_mdns: self.no_mdns,
            kad_mode: self.kad_mode.as_deref().map(str::parse).transpose()?,
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once, on one line, ending with what to do.
            eprintln!("conclaved: {}", conclave_node::error::describe(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    if let Some(file) = &args.check_config {
        let checked = check_config::check_config_file(file);
        if checked.is_valid() {
            println!("{} can run:", file.display());
            for line in &checked.summary {
                println!("  {line}");
            }
            return Ok(());
        }
        for problem in &checked.problems {
            eprintln!("{problem}");
        }
        std::process::exit(1);
    }
    let profile = Profile::resolve(&args.profile, args.data_dir.as_deref())?;
    profile.create_dirs()?;
    let _log_guard = logging::init(profile.log_dir(), "conclaved")?;
    let flags = args.config_flags()?;
    // A config that cannot work is reported before the keychain is asked.
    NodeConfig::for_profile(&profile, &flags)?;
    let (runner, created) = ProfileNode::open(profile, args.key_file.as_deref(), flags)
        .await
        .context("loading the node's keys")?;
    let runner = Arc::new(runner);
    let keys = runner.key_source();
    if created {
        tracing::info!(peer_id = %runner.peer_id(), %keys, "new identity stored");
    }
    let node = runner.start().await.context("starting the node")?;
    let profile = runner.profile();

    let control_path = args
        .control
        .clone()
        .unwrap_or_else(|| profile.control_socket());
    let inbox = Arc::new(conclave_node::inbox::TextInbox::default());
    node.register_handler(inbox.clone()).await?;
    let signing = (args.signing_keys == "keychain").then(|| {
        let config = SigningConfig::new(profile.data_dir());
        let supervisor = Arc::new(SigningSupervisor::new(runner.clone(), config));
        tokio::spawn(supervisor.clone().run());
        supervisor
    });
    // Each feature answers its own methods on the one control socket.
    let signing_control = match &signing {
        Some(supervisor) => SigningControl::new(supervisor.clone()),
        None => SigningControl::disabled("it was started with --signing-keys none"),
    };
    // One database per profile and process, shared by the features.
    let database = conclave_node::store::Database::open_profile(profile)?;
    let coinjoin_control = if args.coinjoin.enabled() {
        let (node, namespace, flags) = (
            node.clone(),
            runner.secrets_namespace(),
            args.coinjoin.clone(),
        );
        let database = database.clone();
        CoinJoinControl::spawn(async move {
            coinjoin_control::start(node, &namespace, database, &flags).await
        })
    } else {
        CoinJoinControl::disabled(
            "start conclaved with --network and --bitcoind-rpc URL --bitcoind-cookie FILE",
        )
    };
    let rooms = RoomsControl::new(
        runner.clone(),
        Some(database),
        RoomsControl::exec_config(&runner)?,
    );
    tokio::spawn(rooms.clone().run());
    let extensions: Vec<Arc<dyn control::server::ControlExtension>> = vec![
        Arc::new(signing_control),
        Arc::new(coinjoin_control),
        Arc::new(rooms.clone()),
    ];
    let extension: Option<Arc<dyn control::server::ControlExtension>> = Some(Arc::new(extensions));
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
    rooms.shutdown().await;
    if let Some(signing) = &signing {
        // Aborts sessions in progress (telling their peers) before the node goes.
        signing.shutdown().await;
    }
    runner.stop().await;
    // Only a socket is ours to remove: whatever replaced it is left alone.
    let still_a_socket = std::fs::symlink_metadata(&control_path)
        .is_ok_and(|meta| std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
    if still_a_socket {
        let _ = std::fs::remove_file(&control_path);
    }
    Ok(())
}
