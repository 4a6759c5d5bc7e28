//! Nodes as separate `conclaved` processes, so that memory and CPU per node
//! are real. Each daemon gets its own temporary data folder, listens on
//! 127.0.0.1 port 0 (QUIC and TCP) with mDNS off, serves metrics on
//! 127.0.0.1 port 0, and is driven through its JSON-RPC control socket.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use conclave_node::control::client::ControlClient;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdout, Command},
    task::JoinHandle,
};

use super::Cluster;
use crate::{delivery::Recorder, error::SimError, procfs, traffic::Totals};

/// Control connections kept open per daemon for requests (a subscription
/// uses one more).
const CLIENTS_PER_DAEMON: usize = 4;
/// Bound on a daemon's start-up, and on any single control request that
/// does not carry its own bound.
const REQUEST_BOUND: Duration = Duration::from_secs(60);
/// Largest metrics page read.
const MAX_METRICS_PAGE: u64 = 16 * 1024 * 1024;

/// Settings for every daemon of a process cluster.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// The `conclaved` binary.
    pub binary: PathBuf,
    /// Largest payload honest daemons accept.
    pub max_message_size: usize,
    /// Largest payload Byzantine daemons accept.
    pub byzantine_max_message_size: usize,
    /// Which daemons are Byzantine.
    pub byzantine: Vec<bool>,
    /// Upper bound of connections per daemon.
    pub max_connections: u32,
    /// Sign and verify messages as envelopes (`envelopes` in the config).
    pub envelopes: bool,
}

struct Daemon {
    child: tokio::sync::Mutex<Child>,
    // Kept open: the daemon's stdout stays a valid pipe.
    _stdout: BufReader<ChildStdout>,
    pid: u32,
    control: PathBuf,
    quic_addr: String,
    tcp_addr: Option<String>,
    metrics_addr: Option<String>,
    clients: Vec<tokio::sync::Mutex<ControlClient>>,
    next_client: AtomicUsize,
}

/// `conclaved` children.
pub struct ProcessCluster {
    daemons: Vec<Daemon>,
    receivers: Mutex<Vec<JoinHandle<()>>>,
    ticks_per_second: f64,
    // Removed (with every daemon's files) when the cluster is dropped.
    _dir: tempfile::TempDir,
}

/// Finds `conclaved`: the explicit path, else `$CONCLAVED`, else next to
/// this executable (or one folder up, for test binaries in `deps/`).
pub fn find_conclaved(explicit: Option<&Path>) -> Result<PathBuf, SimError> {
    let mut looked = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("CONCLAVED") {
            candidates.push(PathBuf::from(p));
        }
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join("conclaved"));
                if let Some(up) = dir.parent() {
                    candidates.push(up.join("conclaved"));
                }
            }
        }
    }
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        looked.push(c);
    }
    Err(SimError::DaemonBinary { looked })
}

fn control_err(node: usize) -> impl FnOnce(conclave_node::control::ControlError) -> SimError {
    move |source| SimError::Control { node, source }
}

fn daemon_err(node: usize, reason: impl Into<String>) -> SimError {
    SimError::Daemon {
        node,
        reason: reason.into(),
    }
}

/// The config file every daemon reads: the envelope switch
/// (`NodeConfig::envelopes`) and the per-peer abuse limits lifted.
fn daemon_config_toml(envelopes: bool) -> String {
    format!(
        "envelopes = {envelopes}\nmax_messages_per_sec = 1e9\nmax_bytes_per_sec = 1e12\nmax_new_connections_per_sec = 1e6\n"
    )
}

async fn start_daemon(i: usize, dir: &Path, options: &ProcessOptions) -> Result<Daemon, SimError> {
    let data_dir = dir.join(format!("n{i}"));
    std::fs::create_dir_all(&data_dir).map_err(SimError::io("creating a daemon folder"))?;
    let stderr = std::fs::File::create(data_dir.join("stderr.log"))
        .map_err(SimError::io("creating a daemon log"))?;
    // Settings without a flag or variable go in a config file. Like the
    // in-process nodes, the daemons lift the per-peer abuse limits (100 msg/s
    // per topic, 1 MB/s, 10 new connections/s): the simulator measures
    // capacity.
    let config_file = data_dir.join("sim.toml");
    std::fs::write(&config_file, daemon_config_toml(options.envelopes))
        .map_err(SimError::io("writing a daemon config"))?;
    let byzantine = options.byzantine.get(i).copied().unwrap_or(false);
    let max_message_size = if byzantine {
        options.byzantine_max_message_size
    } else {
        options.max_message_size
    };
    let mut child = Command::new(&options.binary)
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--config")
        .arg(&config_file)
        .args(["--listen", "/ip4/127.0.0.1/udp/0/quic-v1"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--metrics", "127.0.0.1:0"])
        .args(["--kad-mode", "server"])
        .arg("--no-mdns")
        .env_remove("CONCLAVE_PROFILE")
        .env_remove("P2P_LISTEN")
        .env_remove("P2P_BOOTSTRAP")
        .env("P2P_MDNS", "false")
        .env("P2P_MIN_CONNECTIONS", "0")
        .env("P2P_MAX_CONNECTIONS", options.max_connections.to_string())
        .env("P2P_MAX_MESSAGE_SIZE", max_message_size.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| daemon_err(i, format!("cannot start {}: {e}", options.binary.display())))?;
    let pid = child.id().ok_or_else(|| daemon_err(i, "exited at once"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| daemon_err(i, "no stdout"))?;
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    let read = tokio::time::timeout(REQUEST_BOUND, stdout.read_line(&mut line)).await;
    match read {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => {
            return Err(daemon_err(
                i,
                format!(
                    "exited before it was ready; see {}",
                    data_dir.join("stderr.log").display()
                ),
            ))
        }
        Err(_) => {
            return Err(SimError::Timeout {
                what: format!("conclaved {i}'s ready line"),
                secs: REQUEST_BOUND.as_secs(),
            })
        }
    }
    let ready: Value = serde_json::from_str(&line)
        .map_err(|e| daemon_err(i, format!("ready line is not JSON ({e}): {line}")))?;
    let addrs: Vec<String> = ready["listen_addrs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let quic_addr = addrs
        .iter()
        .find(|a| a.contains("/quic-v1"))
        .cloned()
        .ok_or_else(|| daemon_err(i, format!("no QUIC address in {line}")))?;
    let tcp_addr = addrs
        .iter()
        .find(|a| a.contains("/tcp/") && !a.contains("/ws"))
        .cloned();
    let control = PathBuf::from(
        ready["control"]
            .as_str()
            .ok_or_else(|| daemon_err(i, "ready line without control socket"))?,
    );
    let metrics_addr = ready["metrics"].as_str().and_then(|url| {
        url.strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .map(String::from)
    });
    let mut clients = Vec::with_capacity(CLIENTS_PER_DAEMON);
    for _ in 0..CLIENTS_PER_DAEMON {
        let client = ControlClient::connect(&control)
            .await
            .map_err(control_err(i))?;
        clients.push(tokio::sync::Mutex::new(client));
    }
    Ok(Daemon {
        child: tokio::sync::Mutex::new(child),
        _stdout: stdout,
        pid,
        control,
        quic_addr,
        tcp_addr,
        metrics_addr,
        clients,
        next_client: AtomicUsize::new(0),
    })
}

/// `GET /metrics` from a daemon's metrics server.
async fn fetch_metrics(addr: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = Vec::new();
    stream.take(MAX_METRICS_PAGE).read_to_end(&mut body).await?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

impl ProcessCluster {
    /// Starts `n` daemons.
    pub async fn start(n: usize, options: &ProcessOptions) -> Result<Self, SimError> {
        let dir = tempfile::Builder::new()
            .prefix("conclave-sim-")
            .tempdir()
            .map_err(SimError::io("creating a temporary folder"))?;
        let mut daemons = Vec::with_capacity(n);
        for i in 0..n {
            daemons.push(start_daemon(i, dir.path(), options).await?);
        }
        Ok(Self {
            daemons,
            receivers: Mutex::new(Vec::new()),
            ticks_per_second: procfs::clock_ticks_per_second(),
            _dir: dir,
        })
    }

    /// Node `node`'s TCP listen address.
    pub fn tcp_addr(&self, node: usize) -> Option<&str> {
        self.daemons[node].tcp_addr.as_deref()
    }

    /// Calls `method` on daemon `node` over one of its open connections.
    pub async fn call(&self, node: usize, method: &str, params: Value) -> Result<Value, SimError> {
        let d = &self.daemons[node];
        let k = d.next_client.fetch_add(1, Ordering::Relaxed) % d.clients.len();
        let mut client = d.clients[k].lock().await;
        tokio::time::timeout(REQUEST_BOUND, client.call(method, params))
            .await
            .map_err(|_| SimError::Timeout {
                what: format!("conclaved {node}: {method}"),
                secs: REQUEST_BOUND.as_secs(),
            })?
            .map_err(control_err(node))
    }

    /// Node `from` dials address `addr` through its control socket; returns
    /// the request's round trip.
    pub async fn connect_addr(&self, from: usize, addr: &str) -> Result<Duration, SimError> {
        let started = Instant::now();
        self.call(from, "connect", json!({ "addr": addr })).await?;
        Ok(started.elapsed())
    }

    async fn stats(&self, node: usize) -> Result<Value, SimError> {
        self.call(node, "stats", Value::Null).await
    }
}

impl Cluster for ProcessCluster {
    fn len(&self) -> usize {
        self.daemons.len()
    }

    fn transport(&self) -> &'static str {
        "quic"
    }

    fn dial_concurrency(&self) -> usize {
        // One at a time, so that each dial's time is its own.
        1
    }

    async fn connect(&self, from: usize, to: usize) -> Result<Duration, SimError> {
        let addr = self.daemons[to].quic_addr.clone();
        self.connect_addr(from, &addr).await
    }

    async fn subscribe(
        &self,
        node: usize,
        topic: &str,
        recorder: Arc<Recorder>,
        bound: Duration,
    ) -> Result<(), SimError> {
        let mut client = ControlClient::connect(&self.daemons[node].control)
            .await
            .map_err(control_err(node))?;
        let params = json!({ "topic": topic, "timeout": bound.as_secs().max(1) });
        let task = tokio::spawn(async move {
            let on_message = |m: Value| {
                if let Some(data) = m["data"].as_str() {
                    recorder.record(node, data.as_bytes());
                }
            };
            if let Err(e) = client.call_streaming("subscribe", params, on_message).await {
                tracing_free_warning(node, &e.to_string());
            }
        });
        self.receivers.lock().expect("receivers lock").push(task);
        // The daemon subscribes when it reads the request: wait until its
        // stats list the topic (no event for this over the socket).
        let deadline = Instant::now() + REQUEST_BOUND;
        loop {
            let stats = self.stats(node).await?;
            let listed = stats["topics"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t["topic"] == topic));
            if listed {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(SimError::Timeout {
                    what: format!("conclaved {node} subscribing to {topic}"),
                    secs: REQUEST_BOUND.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_topic_peers(
        &self,
        node: usize,
        topic: &str,
        count: usize,
        bound: Duration,
    ) -> Result<(), SimError> {
        let params = json!({ "topic": topic, "peers": count, "timeout": bound.as_secs().max(1) });
        self.call(node, "wait_topic", params).await.map(|_| ())
    }

    async fn mesh_peers(&self, node: usize, topic: &str) -> Result<usize, SimError> {
        let stats = self.stats(node).await?;
        Ok(stats["topics"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["topic"] == topic))
            .and_then(|t| t["mesh_peers"].as_u64())
            .unwrap_or(0) as usize)
    }

    async fn publish_raw(&self, node: usize, topic: &str, bytes: Vec<u8>) -> Result<(), SimError> {
        // The control socket has no raw publish: the daemon wraps it.
        self.publish(node, topic, bytes).await
    }

    fn raw_publish_supported(&self) -> bool {
        false
    }

    async fn peers(&self, node: usize) -> Result<usize, SimError> {
        let stats = self.stats(node).await?;
        Ok(stats["peers"].as_u64().unwrap_or(0) as usize)
    }

    async fn publish(&self, node: usize, topic: &str, data: Vec<u8>) -> Result<(), SimError> {
        let text = String::from_utf8(data)
            .map_err(|_| daemon_err(node, "the control socket publishes text only"))?;
        self.call(node, "publish", json!({ "topic": topic, "text": text }))
            .await
            .map(|_| ())
    }

    async fn traffic(&self, node: usize) -> Result<Totals, SimError> {
        let stats = self.stats(node).await?;
        Ok(Totals {
            bytes_in: stats["bytes_in"].as_u64().unwrap_or(0),
            bytes_out: stats["bytes_out"].as_u64().unwrap_or(0),
        })
    }

    async fn metrics_text(&self, node: usize) -> Result<String, SimError> {
        let Some(addr) = &self.daemons[node].metrics_addr else {
            return Ok(String::new());
        };
        tokio::time::timeout(REQUEST_BOUND, fetch_metrics(addr))
            .await
            .map_err(|_| SimError::Timeout {
                what: format!("conclaved {node}'s metrics"),
                secs: REQUEST_BOUND.as_secs(),
            })?
            .map_err(SimError::io(format!("reading conclaved {node}'s metrics")))
    }

    async fn announce(&self, node: usize, kind: &str, id: &str) -> Result<(), SimError> {
        let params = json!({ "type": kind, "id": id, "data": { "sim": true }, "ttl": 600 });
        self.call(node, "announce", params).await.map(|_| ())
    }

    async fn lookup(&self, node: usize, kind: &str, id: &str) -> Result<(), SimError> {
        self.call(node, "get", json!({ "type": kind, "id": id }))
            .await
            .map(|_| ())
    }

    fn cpu_seconds(&self) -> Result<f64, SimError> {
        let mut total = 0.0;
        for d in &self.daemons {
            total += procfs::cpu_seconds(Some(d.pid), self.ticks_per_second)
                .map_err(SimError::io(format!("reading /proc/{}/stat", d.pid)))?;
        }
        Ok(total)
    }

    fn cpu_is_per_process(&self) -> bool {
        true
    }

    fn resident(&self) -> Result<Option<Vec<procfs::Resident>>, SimError> {
        self.daemons
            .iter()
            .map(|d| {
                procfs::resident(Some(d.pid))
                    .map_err(SimError::io(format!("reading /proc/{}/status", d.pid)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn stop(&self) {
        for task in self.receivers.lock().expect("receivers lock").drain(..) {
            task.abort();
        }
        for (i, d) in self.daemons.iter().enumerate() {
            let _ = self.call(i, "shutdown", Value::Null).await;
            let mut child = d.child.lock().await;
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// A subscription that ends with an error only means fewer deliveries are
/// seen, which the report shows; say why on stderr.
fn tracing_free_warning(node: usize, error: &str) {
    eprintln!("conclave-sim: subscription of conclaved {node} ended: {error}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_switch_reaches_the_daemons_node_config() {
        let dir = tempfile::tempdir().unwrap();
        for envelopes in [true, false] {
            let path = dir.path().join(format!("{envelopes}.toml"));
            std::fs::write(&path, daemon_config_toml(envelopes)).unwrap();
            let config = conclave_node::NodeConfig::from_file(&path).unwrap();
            assert_eq!(config.envelopes, envelopes);
            assert!(config.max_messages_per_sec >= 1e9);
        }
    }
}
