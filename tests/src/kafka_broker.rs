//! A Kafka-compatible broker for tests: a Tansu process per test, or an
//! external broker named by `KAFKA_BROKERS`.
//!
//! Tansu (<https://github.com/tansu-io/tansu>, 0.6.0) is one static binary
//! that speaks the Kafka protocol, including consumer groups and offset
//! commits, and keeps everything in memory with `--storage-engine
//! memory://tansu/`. `scripts/install-tansu.sh` installs it to
//! `.tools/bin/tansu`; `SESSIONFOLD_TANSU_BIN` points at another copy.
//!
//! Each test gets its own broker on a free loopback port, so tests share no
//! topics or groups. With an external broker, tests are still isolated
//! because every topic and group name goes through [`unique_name`].

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

/// How long a fresh broker may take to reply to a metadata request.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running broker; a Tansu process is killed when this value drops.
pub struct KafkaBroker {
    bootstrap: String,
    process: Option<TansuProcess>,
}

struct TansuProcess {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The broker's stdout and stderr, shown when it fails to start.
    log: tempfile::NamedTempFile,
}

impl KafkaBroker {
    /// Starts a Tansu broker on a free loopback port, or uses `KAFKA_BROKERS`
    /// when it is set. Returns once the broker replies to a metadata request.
    ///
    /// # Panics
    ///
    /// When the Tansu binary is missing (run `scripts/install-tansu.sh`) or
    /// the broker does not become ready within 15 seconds.
    pub fn start() -> Self {
        if let Some(brokers) = std::env::var("KAFKA_BROKERS")
            .ok()
            .filter(|value| !value.is_empty())
        {
            wait_for_metadata(&brokers, None);
            return Self {
                bootstrap: brokers,
                process: None,
            };
        }

        let binary = tansu_binary();
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("create a temporary file for the Tansu log");
        let mut process = TansuProcess {
            binary,
            port,
            child: None,
            log,
        };
        process.spawn();
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for_metadata(&bootstrap, Some(&mut process));
        Self {
            bootstrap,
            process: Some(process),
        }
    }

    /// Returns the `bootstrap.servers` value for clients.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Returns whether this is an external broker from `KAFKA_BROKERS`, which tests
    /// cannot stop.
    pub fn is_external(&self) -> bool {
        self.process.is_none()
    }

    /// Creates a topic with `partitions` partitions and waits until its
    /// metadata lists every partition.
    ///
    /// # Panics
    ///
    /// When the broker rejects the topic or the metadata does not show it
    /// within 15 seconds.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .expect("create a Kafka admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .unwrap_or_else(|err| panic!("create topic {name}: request failed: {err}"));
        for result in results {
            if let Err((topic, code)) = result {
                panic!("create topic {topic}: broker returned {code}");
            }
        }

        let bootstrap = self.bootstrap.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || wait_for_topic(&bootstrap, &name, partitions))
            .await
            .expect("topic metadata wait panicked");
    }

    /// Returns a client configuration with the bootstrap servers set.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// Creates a producer that waits for the broker to store each record
    /// (`acks=all`).
    pub fn producer(&self) -> FutureProducer {
        self.client_config()
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .create()
            .expect("create a Kafka producer")
    }

    /// Fetches the committed offset of `group` on each partition of `topic`, in
    /// partition order; `None` where the group has committed nothing.
    ///
    /// Reads with an OffsetFetch request and never joins the group, so it
    /// does not trigger a rebalance of the consumers under test.
    pub async fn committed_offsets(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let mut config = self.client_config();
        config.set("group.id", group);
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config.create().expect("create a Kafka consumer");
            let mut list = TopicPartitionList::new();
            for partition in 0..partitions {
                list.add_partition(&topic, partition);
            }
            let committed = consumer
                .committed_offsets(list, Duration::from_secs(10))
                .unwrap_or_else(|err| panic!("fetch committed offsets of group on {topic}: {err}"));
            (0..partitions)
                .map(|partition| {
                    let element = committed
                        .find_partition(&topic, partition)
                        .expect("the reply lists every requested partition");
                    match element.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    }
                })
                .collect()
        })
        .await
        .expect("committed offsets fetch panicked")
    }

    /// The end offset (high watermark) of each partition of `topic`, in
    /// partition order.
    ///
    /// NOTE: Tansu 0.6.0 reports the base offset of the partition's last
    /// record batch plus one, which is too low when a producer sent several
    /// records in one batch. The value is exact only for an empty partition
    /// (0) or one whose last batch contains one record. Count produced
    /// records instead to know the offsets of a caught-up group.
    pub async fn end_offsets(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let config = self.client_config();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config.create().expect("create a Kafka consumer");
            (0..partitions)
                .map(|partition| {
                    let (_low, high) = consumer
                        .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                        .unwrap_or_else(|err| panic!("fetch watermarks of {topic}/{partition}: {err}"));
                    high
                })
                .collect()
        })
        .await
        .expect("watermark fetch panicked")
    }

    /// Kills the broker process (SIGKILL). Clients see connection failures
    /// until [`restart`](Self::restart).
    ///
    /// # Panics
    ///
    /// With an external broker, which tests do not control.
    pub fn stop(&mut self) {
        let process = self
            .process
            .as_mut()
            .expect("cannot stop an external broker (KAFKA_BROKERS)");
        process.kill();
    }

    /// Starts the broker again on the same port after [`stop`](Self::stop).
    /// With memory storage every topic, record and committed offset is gone,
    /// so this exercises client reconnects, not durability.
    ///
    /// # Panics
    ///
    /// With an external broker, or when the broker does not become ready.
    pub fn restart(&mut self) {
        let process = self
            .process
            .as_mut()
            .expect("cannot restart an external broker (KAFKA_BROKERS)");
        process.kill();
        process.spawn();
        wait_for_metadata(&self.bootstrap, Some(process));
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill();
        }
    }
}

impl TansuProcess {
    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let stdout = self.log.reopen().expect("open the Tansu log");
        let stderr = self.log.reopen().expect("open the Tansu log");
        let child = Command::new(&self.binary)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", self.binary.display()));
        self.child = Some(child);
    }

    /// Kills this process by its PID and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only when the process has already exited, which is fine.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Panics when the process has exited, with the tail of its log.
    fn check_alive(&mut self) {
        let child = self.child.as_mut().expect("broker process started");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "tansu exited during start-up ({status}) on port {}; its output:\n{}",
                self.port,
                self.log_tail()
            );
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Creates a name no other test uses, such as `users-3f2a…`, for topics and
/// consumer groups.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Returns the root of the workspace, which contains `.tools/`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
        .to_path_buf()
}

fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SESSIONFOLD_TANSU_BIN").filter(|value| !value.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "SESSIONFOLD_TANSU_BIN={} is not a file; point it at a tansu binary or unset it",
            path.display()
        );
        return path;
    }
    let path = workspace_root().join(".tools/bin/tansu");
    assert!(
        path.is_file(),
        "tansu not found at {}: run scripts/install-tansu.sh, set SESSIONFOLD_TANSU_BIN, \
         or set KAFKA_BROKERS to use an external broker",
        path.display()
    );
    path
}

/// Returns a loopback port that was free a moment ago. Another process may take it
/// before the broker binds it; the broker then exits and start-up panics
/// with its log.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("read the bound address").port()
}

fn wait_for_metadata(bootstrap: &str, mut process: Option<&mut TansuProcess>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create a Kafka client");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(process) = process.as_deref_mut() {
            process.check_alive();
        }
        let error = match consumer.fetch_metadata(None, Duration::from_millis(500)) {
            Ok(_) => return,
            Err(err) => err,
        };
        if Instant::now() >= deadline {
            let log = process.map(|process| process.log_tail()).unwrap_or_default();
            panic!(
                "Kafka broker at {bootstrap} did not answer a metadata request within {START_TIMEOUT:?}: {error}\n{log}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create a Kafka client");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let listed = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()
            .and_then(|metadata| {
                metadata
                    .topics()
                    .iter()
                    .find(|entry| entry.name() == topic && entry.error().is_none())
                    .map(|entry| entry.partitions().len())
            });
        if listed == Some(partitions as usize) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} did not show {partitions} partitions in metadata within {START_TIMEOUT:?} (saw {listed:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
