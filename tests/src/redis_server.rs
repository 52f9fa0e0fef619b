//! Redis servers for tests: a `redis-server` process per test, a three-node
//! Redis Cluster, or an external server named by `SESSIONFOLD_TEST_REDIS_URL`.
//!
//! Local servers listen on a free loopback port, keep nothing on disk
//! (`--save "" --appendonly no`) and are killed by PID when dropped. An
//! external server is shared, so tests that use it must keep to their own
//! user ids (for example random UUIDs) and never flush it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Variable naming an external server to use instead of a local process.
pub const EXTERNAL_URL_VARIABLE: &str = "SESSIONFOLD_TEST_REDIS_URL";

/// How long a fresh server may take to reply to `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new cluster may take to report `cluster_state:ok`.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried before giving up, in case another process takes a free port
/// between the probe and the server's bind.
const PORT_ATTEMPTS: usize = 5;

/// A Redis server for one test. A local process is killed when this drops.
pub struct RedisServer {
    url: String,
    local: Option<LocalServer>,
}

struct LocalServer {
    port: u16,
    password: Option<String>,
    extra_args: Vec<String>,
    child: Option<Child>,
    /// Working directory with the log file, removed on drop.
    dir: TempDir,
}

impl RedisServer {
    /// Uses the server named by `SESSIONFOLD_TEST_REDIS_URL` when set, else
    /// starts a local one (see [`RedisServer::start_local`]).
    pub fn start() -> Self {
        match std::env::var(EXTERNAL_URL_VARIABLE) {
            Ok(url) if !url.is_empty() => Self { url, local: None },
            _ => Self::start_local(),
        }
    }

    /// Starts a local `redis-server` on a free loopback port and returns
    /// once it replies to `PING`. For tests that stop, restart or flush it.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not on `PATH` or does not reply within 10 s.
    pub fn start_local() -> Self {
        Self::start_local_with(None, &[])
    }

    /// Starts a local server like [`RedisServer::start_local`], with
    /// `requirepass` set. The URL carries the password.
    pub fn start_local_with_password(password: &str) -> Self {
        Self::start_local_with(Some(password), &[])
    }

    fn start_local_with(password: Option<&str>, extra_args: &[&str]) -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("sessionfold-redis-")
            .tempdir()
            .expect("create a temporary directory for redis-server");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(&[]);
            let mut local = LocalServer {
                port,
                password: password.map(str::to_owned),
                extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
                child: None,
                dir,
            };
            match local.launch() {
                Ok(()) => {
                    return Self {
                        url: local.url(),
                        local: Some(local),
                    };
                }
                Err(error) => {
                    last_error = error;
                    dir = take_dir(local);
                }
            }
        }
        panic!("redis-server did not start after {PORT_ATTEMPTS} attempts: {last_error}");
    }

    /// Returns `redis://[:password@]127.0.0.1:<port>/`, or the external URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Returns the port of a local server, or `None` for an external one.
    pub fn port(&self) -> Option<u16> {
        self.local.as_ref().map(|local| local.port)
    }

    pub fn is_external(&self) -> bool {
        self.local.is_none()
    }

    /// Kills the local server to simulate an outage. Its data is lost.
    ///
    /// # Panics
    ///
    /// For an external server, which tests must not stop.
    pub fn stop(&mut self) {
        self.local_mut("stop").kill();
    }

    /// Starts the local server again on the same port, empty, and waits
    /// for `PING`.
    ///
    /// # Panics
    ///
    /// For an external server, or when the server does not come back.
    pub fn restart(&mut self) {
        let local = self.local_mut("restart");
        local.kill();
        if let Err(error) = local.launch() {
            panic!("redis-server did not restart on port {}: {error}", local.port);
        }
    }

    /// Opens a synchronous connection, for checks a test makes beside the store.
    pub fn client(&self) -> redis::Connection {
        connect(&self.url)
    }

    fn local_mut(&mut self, action: &str) -> &mut LocalServer {
        match self.local.as_mut() {
            Some(local) => local,
            None => panic!("cannot {action} the external server named by {EXTERNAL_URL_VARIABLE}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(local) = self.local.as_mut() {
            local.kill();
        }
    }
}

impl LocalServer {
    fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut args = vec![
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            self.port.to_string(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            self.dir.path().display().to_string(),
            "--logfile".to_owned(),
            log_path(self.dir.path()).display().to_string(),
        ];
        if let Some(password) = &self.password {
            args.extend(["--requirepass".to_owned(), password.clone()]);
        }
        args.extend(self.extra_args.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| {
                format!("cannot run redis-server ({error}); install it (apt-get install redis-server) or set {EXTERNAL_URL_VARIABLE}")
            })?;
        self.child = Some(child);
        let started = wait_for_ping(&self.url(), self.child.as_mut(), START_TIMEOUT);
        if let Err(error) = started {
            self.kill();
            return Err(format!("{error}\n{}", log_tail(self.dir.path())));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL to this PID only.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn take_dir(mut local: LocalServer) -> TempDir {
    local.kill();
    local.dir
}

/// A Redis Cluster of three primaries without replicas, each a local
/// process with all 16384 slots spread by `redis-cli --cluster create`.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three `redis-server --cluster-enabled yes` processes, joins
    /// them, and returns once every node reports `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing, or the cluster is not
    /// ready within 30 s.
    pub fn start() -> Self {
        let mut nodes = Vec::new();
        let mut reserved = Vec::new();
        for _ in 0..3 {
            // A cluster node also listens on port + 10000 for the cluster bus.
            let port = free_port(&reserved);
            reserved.push(port);
            nodes.push(start_cluster_node(port));
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port().expect("local node")))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run redis-cli; install it with redis-server (apt-get install redis-server)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ready();
        cluster
    }

    /// Returns the node URLs, comma-separated, as `REDIS_URL` takes them.
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Returns one node, to stop or restart it. A restarted node keeps its
    /// cluster identity and slots (its `nodes.conf` survives) but no data.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        for node in &self.nodes {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut node.client())
                    .expect("CLUSTER INFO");
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster not ready after {CLUSTER_READY_TIMEOUT:?}; {} reports:\n{info}",
                    node.url()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn start_cluster_node(port: u16) -> RedisServer {
    let dir = tempfile::Builder::new()
        .prefix("sessionfold-redis-cluster-")
        .tempdir()
        .expect("create a temporary directory for redis-server");
    let mut local = LocalServer {
        port,
        password: None,
        extra_args: [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect(),
        child: None,
        dir,
    };
    if let Err(error) = local.launch() {
        panic!("redis-server cluster node did not start on port {port}: {error}");
    }
    RedisServer {
        url: local.url(),
        local: Some(local),
    }
}

/// Finds a loopback port that is free now, with port + 10000 free as well
/// (the cluster bus port), and not in `reserved`.
fn free_port(reserved: &[u16]) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let Some(bus_port) = port.checked_add(10_000) else {
            continue;
        };
        if reserved.contains(&port) || TcpListener::bind(("127.0.0.1", bus_port)).is_err() {
            continue;
        }
        return port;
    }
}

fn connect(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("valid Redis URL");
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", redact(url)))
}

fn wait_for_ping(url: &str, mut child: Option<&mut Child>, timeout: Duration) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|error| error.to_string())?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(child) = child.as_deref_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(format!("redis-server exited with {status}"));
        }
        let ping = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
        match ping {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(format!("no PING reply within {timeout:?}: {error}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("redis.log")
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(log_path(dir)).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(20);
    format!("redis-server log (last lines):\n{}", lines[start..].join("\n"))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<credentials>{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
