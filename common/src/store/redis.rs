//! Redis projection store, for one server or a Redis Cluster.
//!
//! Key layout (format `v1`). The `{…}` hash tag puts both keys of a user in
//! one cluster slot, so one script can update them together:
//! - `sf:v1:{<user id>}:doc`: string, the stored session document, served
//!   with one `GET`.
//! - `sf:v1:{<user id>}:state`: hash with `rev` (decimal revision) and
//!   `data` (fold state bytes).
//!
//! User ids are escaped inside the tag (`%` as `%25`, `{` as `%7B`, `}` as
//! `%7D`), because a brace would end or split the tag. The empty id is
//! stored as `%`, which no escaped id produces: an empty tag would make
//! Redis hash the whole key and split the pair across slots.
//!
//! Every projection write is one Lua script (`EVALSHA`, loading the script
//! on `NOSCRIPT`) that compares the state revision, writes state and
//! document, and publishes the user id on [`INVALIDATION_CHANNEL`] when the
//! document changed. On one server a batch is one pipeline. In a cluster,
//! where a pipeline cannot span slots, a batch runs as concurrent calls.
//!
//! Every operation is bounded by the command timeout, connecting included.
//! Connection failures and timeouts are [`StoreError::Unavailable`], and
//! replies the store cannot use are [`StoreError::Protocol`]. A write that
//! timed out may still have been applied, which is safe because the caller
//! reloads the state and retries with compare-and-set.

mod config;
mod invalidations;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    Cmd, ErrorKind, RedisError, RedisFuture, RedisResult, Script, ScriptInvocation, ServerErrorKind, Value,
};
use tokio::sync::{Mutex, broadcast};

pub use self::config::RedisConfig;
use self::invalidations::Invalidations;
use super::{DocumentWrite, ProjectionStore, ProjectionWrite, StoreError, StoredState, WriteOutcome};

/// Prefix of every key this store writes. The version changes with the layout.
pub const KEY_PREFIX: &str = "sf:v1:";
/// Pub/sub channel carrying the id of each user whose document changed.
pub const INVALIDATION_CHANNEL: &str = "sf:v1:invalidate";

/// Concurrent calls per batch in cluster mode.
const CLUSTER_CONCURRENCY: usize = 64;
/// Keys per `SCAN` call, a hint to the server rather than a limit.
const SCAN_COUNT: usize = 1000;
/// Reconnect attempts of the single-node connection before it reports the
/// error, after which the next command starts a new round. Few, so the cause
/// (refused, wrong password) reaches the caller before the command timeout.
const RECONNECT_RETRIES: usize = 2;
/// Maximum pause between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Minimum time between replacing the single-node connection after an
/// error, so a stream of failing commands does not open a connection each.
const CONNECTION_RESET_INTERVAL: Duration = Duration::from_secs(1);

/// Compare-and-set of one user's projection.
/// KEYS: state hash, document. ARGV: expected revision, state bytes,
/// document mode (`put`, `delete` or `keep`), document bytes, document
/// expiry in ms (0 = none), invalidation channel, user id.
/// Returns `{1, new revision}` or `{0, current revision}`.
const WRITE_SCRIPT: &str = r#"
local current = redis.call('HGET', KEYS[1], 'rev')
if current then
  current = tonumber(current)
  if not current then
    return redis.error_reply('ERR sessionfold: field rev of ' .. KEYS[1] .. ' is not a number')
  end
else
  current = 0
end
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
local revision = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('HSET', KEYS[1], 'data', ARGV[2])
if ARGV[3] == 'put' then
  if ARGV[5] == '0' then
    redis.call('SET', KEYS[2], ARGV[4])
  else
    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  end
  redis.call('PUBLISH', ARGV[6], ARGV[7])
elseif ARGV[3] == 'delete' then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[6], ARGV[7])
end
return {1, revision}
"#;

/// Create-only store of a live-assembled document.
/// KEYS: document. ARGV: document bytes, expiry in ms, channel, user id.
/// Returns 1 when stored, 0 when a document already existed.
const BACKFILL_SCRIPT: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
"#;

/// Removes a document and notifies subscribers.
/// KEYS: document. ARGV: channel, user id.
const DELETE_DOCUMENT_SCRIPT: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"#;

/// Returns the key of a user's stored session document.
pub fn document_key(user_id: &str) -> String {
    format!("{KEY_PREFIX}{{{}}}:doc", escape_user_id(user_id))
}

/// Returns the key of a user's fold state hash.
pub fn state_key(user_id: &str) -> String {
    format!("{KEY_PREFIX}{{{}}}:state", escape_user_id(user_id))
}

fn escape_user_id(user_id: &str) -> Cow<'_, str> {
    if user_id.is_empty() {
        return Cow::Borrowed("%");
    }
    if !user_id.contains(['%', '{', '}']) {
        return Cow::Borrowed(user_id);
    }
    let mut escaped = String::with_capacity(user_id.len() + 8);
    for character in user_id.chars() {
        match character {
            '%' => escaped.push_str("%25"),
            '{' => escaped.push_str("%7B"),
            '}' => escaped.push_str("%7D"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

fn unescape_user_id(escaped: &str) -> Option<String> {
    if escaped == "%" {
        return Some(String::new());
    }
    let mut user_id = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(position) = rest.find('%') {
        user_id.push_str(&rest[..position]);
        let code = rest.get(position + 1..position + 3)?;
        user_id.push(match code {
            "25" => '%',
            "7B" => '{',
            "7D" => '}',
            _ => return None,
        });
        rest = &rest[position + 3..];
    }
    user_id.push_str(rest);
    Some(user_id)
}

/// Returns the user id of a document or state key, or `None` for other keys.
pub fn user_id_from_key(key: &str) -> Option<String> {
    let tagged = key.strip_prefix(KEY_PREFIX)?.strip_prefix('{')?;
    let (escaped, suffix) = tagged.split_once('}')?;
    match suffix {
        ":doc" | ":state" => unescape_user_id(escaped),
        _ => None,
    }
}

/// A data connection: both kinds reconnect by themselves. Public so other
/// Redis users of the projection store's settings (the change-stream
/// checkpoints) share one adapter.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "one value per store, never moved in a hot path"
)]
enum Backend {
    Single {
        client: redis::Client,
        manager: std::sync::Mutex<SingleManager>,
    },
    Cluster {
        client: ClusterClient,
        /// Set after the first successful connect. The connection then
        /// follows the cluster by itself.
        connection: ArcSwapOption<ClusterConnection>,
        /// Lets one caller at a time try the first connect.
        connecting: Mutex<()>,
    },
}

/// The single-node connection, created on first use.
///
/// `ConnectionManager` (redis 1.8) reconnects by itself only after I/O
/// errors. When a reconnect fails otherwise (wrong password, `LOADING` from
/// a restarting server), it returns that error to every later command and
/// never tries again, so the store drops it and builds a new one.
#[derive(Default)]
struct SingleManager {
    current: Option<ConnectionManager>,
    last_reset: Option<Instant>,
}

/// Cause of a failed operation, before it is named in a [`StoreError`].
enum Failure {
    Redis(RedisError),
    /// A command for one user of a batch failed.
    User {
        user_id: String,
        error: RedisError,
    },
    Reply(String),
}

impl From<RedisError> for Failure {
    fn from(error: RedisError) -> Self {
        Self::Redis(error)
    }
}

/// Projection store on Redis. The module docs describe the key layout.
///
/// Creating it does not connect: connections open on first use and
/// reconnect by themselves, so the store works once Redis is reachable.
pub struct RedisStore {
    backend: Backend,
    config: RedisConfig,
    write_script: Script,
    backfill_script: Script,
    delete_document_script: Script,
    invalidations: Invalidations,
}

impl RedisStore {
    /// Builds the clients without connecting. Fails only on settings the
    /// client library rejects (such as cluster nodes with different
    /// passwords), never on an unreachable server.
    pub fn new(config: RedisConfig) -> RedisResult<Self> {
        let backend = if config.cluster {
            let client = ClusterClientBuilder::new(config.nodes.clone())
                .connection_timeout(config.command_timeout)
                .response_timeout(config.command_timeout)
                .build()?;
            Backend::Cluster {
                client,
                connection: ArcSwapOption::empty(),
                connecting: Mutex::new(()),
            }
        } else {
            Backend::Single {
                client: redis::Client::open(config.nodes[0].clone())?,
                manager: std::sync::Mutex::new(SingleManager::default()),
            }
        };
        let pubsub_clients = config
            .nodes
            .iter()
            .map(|node| redis::Client::open(node.clone()))
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(Self {
            backend,
            invalidations: Invalidations::new(pubsub_clients, config.command_timeout),
            config,
            write_script: Script::new(WRITE_SCRIPT),
            backfill_script: Script::new(BACKFILL_SCRIPT),
            delete_document_script: Script::new(DELETE_DOCUMENT_SCRIPT),
        })
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Scans for every user id that has a document or fold state, sorted.
    /// Covers each primary of a cluster, and each `SCAN` call has the
    /// command timeout.
    // NOTE: keeps every id in memory, an estimated 100 bytes per user. That
    // is fine for millions of users but not for an unbounded keyspace.
    pub async fn scan_user_ids(&self) -> Result<Vec<String>, StoreError> {
        let subject = || "all users".to_owned();
        let mut connection = self.bounded("scan_user_ids", subject, self.connection()).await?;
        let nodes = match &connection {
            Connection::Single(_) => vec![None],
            Connection::Cluster(_) => {
                let primaries = self
                    .bounded("scan_user_ids", subject, cluster_primaries(&mut connection))
                    .await?;
                primaries.into_iter().map(Some).collect()
            }
        };

        let mut user_ids = BTreeSet::new();
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{KEY_PREFIX}*"))
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let page = async {
                    let reply = match (&mut connection, &node) {
                        (Connection::Cluster(cluster), Some((host, port))) => {
                            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                host: host.clone(),
                                port: *port,
                            });
                            cluster.route_command(scan, route).await?
                        }
                        _ => scan.query_async::<Value>(&mut connection).await?,
                    };
                    redis::from_redis_value::<(u64, Vec<String>)>(reply)
                        .map_err(|error| Failure::Reply(format!("SCAN reply: {error}")))
                };
                let (next, keys) = self.bounded("scan_user_ids", subject, page).await?;
                user_ids.extend(keys.iter().filter_map(|key| user_id_from_key(key)));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(user_ids.into_iter().collect())
    }

    async fn connection(&self) -> Result<Connection, Failure> {
        match &self.backend {
            Backend::Single { client, manager } => {
                let mut manager = manager.lock().expect("connection manager lock");
                if let Some(current) = &manager.current {
                    return Ok(Connection::Single(current.clone()));
                }
                let settings = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.config.command_timeout))
                    .set_response_timeout(Some(self.config.command_timeout))
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_max_delay(MAX_RECONNECT_DELAY);
                // Lazy: connects on the first command, so this never waits.
                let created = ConnectionManager::new_lazy_with_config(client.clone(), settings)?;
                manager.current = Some(created.clone());
                Ok(Connection::Single(created))
            }
            Backend::Cluster {
                client,
                connection,
                connecting,
            } => {
                if let Some(ready) = connection.load_full() {
                    return Ok(Connection::Cluster((*ready).clone()));
                }
                let _turn = connecting.lock().await;
                if let Some(ready) = connection.load_full() {
                    return Ok(Connection::Cluster((*ready).clone()));
                }
                let ready = client.get_async_connection().await?;
                connection.store(Some(Arc::new(ready.clone())));
                Ok(Connection::Cluster(ready))
            }
        }
    }

    /// Drops the single-node connection after an error other than I/O, at
    /// most once per [`CONNECTION_RESET_INTERVAL`], for the reason given at
    /// [`SingleManager`].
    fn reset_connection_after(&self, error: &RedisError) {
        let Backend::Single { manager, .. } = &self.backend else {
            return;
        };
        if error.is_io_error() {
            return;
        }
        let mut manager = manager.lock().expect("connection manager lock");
        let now = Instant::now();
        if manager
            .last_reset
            .is_some_and(|last| now.duration_since(last) < CONNECTION_RESET_INTERVAL)
        {
            return;
        }
        manager.current = None;
        manager.last_reset = Some(now);
    }

    /// Runs `work` within the command timeout and names the operation and
    /// the users in any error.
    async fn bounded<T>(
        &self,
        operation: &str,
        subject: impl Fn() -> String,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, StoreError> {
        let timeout = self.config.command_timeout;
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Failure::Redis(error))) => {
                self.reset_connection_after(&error);
                Err(classify(operation, &subject(), &error))
            }
            Ok(Err(Failure::User { user_id, error })) => {
                Err(classify(operation, &format!("user {user_id}"), &error))
            }
            Ok(Err(Failure::Reply(problem))) => Err(StoreError::Protocol(format!(
                "{operation} for {}: {problem}",
                subject()
            ))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "{operation} for {} timed out after {} ms (REDIS_COMMAND_TIMEOUT_MS)",
                subject(),
                timeout.as_millis()
            ))),
        }
    }

    /// Runs one command per entry: one pipeline on a single server,
    /// concurrent calls in a cluster. One result per command, in order.
    async fn query_each(
        &self,
        connection: &mut Connection,
        commands: Vec<Cmd>,
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        match connection {
            Connection::Single(_) => {
                let mut pipeline = redis::pipe();
                pipeline.ignore_errors();
                for command in commands {
                    pipeline.add_command(command);
                }
                pipeline.query_async(connection).await
            }
            Connection::Cluster(cluster) => {
                // Futures built in a loop, not in a `map` closure: a closure
                // over borrowed data trips the compiler's `Send` check of the
                // `async_trait` future.
                let mut calls = Vec::with_capacity(commands.len());
                for command in commands {
                    let mut cluster = cluster.clone();
                    calls.push(async move { command.query_async::<Value>(&mut cluster).await });
                }
                Ok(futures::stream::iter(calls)
                    .buffered(CLUSTER_CONCURRENCY)
                    .collect()
                    .await)
            }
        }
    }

    /// Runs one script call per entry, like [`Self::query_each`], loading
    /// the script where the server does not know it.
    async fn invoke_each(
        &self,
        connection: &mut Connection,
        script: &Script,
        invocations: &[ScriptInvocation<'_>],
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        match connection {
            Connection::Single(_) => {
                let mut pipeline = redis::pipe();
                pipeline.ignore_errors();
                for invocation in invocations {
                    pipeline.invoke_script(invocation);
                }
                let mut replies: Vec<RedisResult<Value>> = pipeline.query_async(connection).await?;

                let missing: Vec<usize> = (0..replies.len())
                    .filter(|&index| is_no_script(&replies[index]))
                    .collect();
                if missing.is_empty() {
                    return Ok(replies);
                }
                // The server lost its script cache (restart, SCRIPT FLUSH).
                // Refused calls did not run, so running them again cannot
                // apply a write twice.
                let mut retry = redis::pipe();
                retry.ignore_errors();
                retry.load_script(script).ignore();
                for &index in &missing {
                    retry.invoke_script(&invocations[index]);
                }
                let retried: Vec<RedisResult<Value>> = retry.query_async(connection).await?;
                for (index, reply) in missing.into_iter().zip(retried) {
                    replies[index] = reply;
                }
                Ok(replies)
            }
            Connection::Cluster(cluster) => {
                let mut calls = Vec::with_capacity(invocations.len());
                for invocation in invocations {
                    let mut cluster = cluster.clone();
                    calls.push(async move { invocation.invoke_async::<Value>(&mut cluster).await });
                }
                Ok(futures::stream::iter(calls)
                    .buffered(CLUSTER_CONCURRENCY)
                    .collect()
                    .await)
            }
        }
    }

    fn write_invocation<'a>(&'a self, write: &ProjectionWrite) -> ScriptInvocation<'a> {
        let (mode, document): (&str, &[u8]) = match &write.document {
            DocumentWrite::Put(document) => ("put", document),
            DocumentWrite::Delete => ("delete", b""),
            DocumentWrite::Keep => ("keep", b""),
        };
        let expiry_ms = self.config.projection_ttl.map_or(0, |ttl| ttl.as_millis() as u64);
        let mut invocation = self.write_script.prepare_invoke();
        invocation
            .key(state_key(&write.user_id))
            .key(document_key(&write.user_id))
            .arg(write.expected_revision)
            .arg(write.state.as_ref())
            .arg(mode)
            .arg(document)
            .arg(expiry_ms)
            .arg(INVALIDATION_CHANNEL)
            .arg(&write.user_id);
        invocation
    }
}

#[async_trait]
impl ProjectionStore for RedisStore {
    async fn load_states(&self, user_ids: &[String]) -> Result<Vec<Option<StoredState>>, StoreError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let subject = || describe_users(user_ids.iter().map(String::as_str));
        let work = async {
            let mut connection = self.connection().await?;
            let commands = user_ids
                .iter()
                .map(|user_id| {
                    redis::cmd("HMGET")
                        .arg(state_key(user_id))
                        .arg("rev")
                        .arg("data")
                        .clone()
                })
                .collect();
            let replies = self.query_each(&mut connection, commands).await?;
            user_ids
                .iter()
                .zip(replies)
                .map(|(user_id, reply)| parse_state(user_id, reply))
                .collect()
        };
        self.bounded("load_states", subject, work).await
    }

    async fn write_batch(&self, writes: &[ProjectionWrite]) -> Result<Vec<WriteOutcome>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let subject = || describe_users(writes.iter().map(|write| write.user_id.as_str()));
        let work = async {
            let mut connection = self.connection().await?;
            let invocations: Vec<_> = writes.iter().map(|write| self.write_invocation(write)).collect();
            let replies = self
                .invoke_each(&mut connection, &self.write_script, &invocations)
                .await?;
            writes
                .iter()
                .zip(replies)
                .map(|(write, reply)| parse_write_outcome(&write.user_id, reply))
                .collect()
        };
        self.bounded("write_batch", subject, work).await
    }

    async fn get_document(&self, user_id: &str) -> Result<Option<Bytes>, StoreError> {
        let work = async {
            let mut connection = self.connection().await?;
            let document = redis::cmd("GET")
                .arg(document_key(user_id))
                .query_async::<Option<Bytes>>(&mut connection)
                .await?;
            Ok(document)
        };
        self.bounded("get_document", || format!("user {user_id}"), work)
            .await
    }

    /// Stores with the `SESSION_CACHE_TTL` expiry. With a zero TTL nothing
    /// is stored and this returns `false`.
    async fn backfill_document(&self, user_id: &str, document: Bytes) -> Result<bool, StoreError> {
        if self.config.backfill_ttl.is_zero() {
            return Ok(false);
        }
        let work = async {
            let mut connection = self.connection().await?;
            let stored = self
                .backfill_script
                .key(document_key(user_id))
                .arg(document.as_ref())
                .arg(self.config.backfill_ttl.as_millis() as u64)
                .arg(INVALIDATION_CHANNEL)
                .arg(user_id)
                .invoke_async::<i64>(&mut connection)
                .await?;
            Ok(stored == 1)
        };
        self.bounded("backfill_document", || format!("user {user_id}"), work)
            .await
    }

    async fn delete_documents(&self, user_ids: &[String]) -> Result<(), StoreError> {
        if user_ids.is_empty() {
            return Ok(());
        }
        let subject = || describe_users(user_ids.iter().map(String::as_str));
        let work = async {
            let mut connection = self.connection().await?;
            let invocations: Vec<_> = user_ids
                .iter()
                .map(|user_id| {
                    let mut invocation = self.delete_document_script.prepare_invoke();
                    invocation
                        .key(document_key(user_id))
                        .arg(INVALIDATION_CHANNEL)
                        .arg(user_id);
                    invocation
                })
                .collect();
            let replies = self
                .invoke_each(&mut connection, &self.delete_document_script, &invocations)
                .await?;
            for (user_id, reply) in user_ids.iter().zip(replies) {
                reply.map_err(|error| Failure::User {
                    user_id: user_id.clone(),
                    error,
                })?;
            }
            Ok(())
        };
        self.bounded("delete_documents", subject, work).await
    }

    /// Waits up to the command timeout for the pub/sub connection. The trait
    /// docs say when the receiver closes.
    async fn subscribe_invalidations(&self) -> Result<broadcast::Receiver<String>, StoreError> {
        self.invalidations.subscribe().await
    }
}

fn parse_state(user_id: &str, reply: RedisResult<Value>) -> Result<Option<StoredState>, Failure> {
    let reply = reply.map_err(|error| Failure::User {
        user_id: user_id.to_owned(),
        error,
    })?;
    let fields = redis::from_redis_value::<(Option<u64>, Option<Bytes>)>(reply)
        .map_err(|error| Failure::Reply(format!("state hash of user {user_id}: {error}")))?;
    match fields {
        (Some(revision), Some(state)) => Ok(Some(StoredState { revision, state })),
        (None, None) => Ok(None),
        (revision, _) => Err(Failure::Reply(format!(
            "state hash {} has {} but not {}",
            state_key(user_id),
            if revision.is_some() { "rev" } else { "data" },
            if revision.is_some() { "data" } else { "rev" },
        ))),
    }
}

fn parse_write_outcome(user_id: &str, reply: RedisResult<Value>) -> Result<WriteOutcome, Failure> {
    let reply = reply.map_err(|error| Failure::User {
        user_id: user_id.to_owned(),
        error,
    })?;
    match redis::from_redis_value::<(i64, u64)>(reply) {
        Ok((1, revision)) => Ok(WriteOutcome::Written { revision }),
        Ok((0, current_revision)) => Ok(WriteOutcome::Conflict { current_revision }),
        Ok((flag, _)) => Err(Failure::Reply(format!(
            "write script for user {user_id} returned flag {flag}, expected 0 or 1"
        ))),
        Err(error) => Err(Failure::Reply(format!(
            "write script for user {user_id}: {error}"
        ))),
    }
}

fn is_no_script(reply: &RedisResult<Value>) -> bool {
    matches!(reply, Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
}

/// Maps a client error to a store error. Replies this build cannot use are
/// `Protocol`. Everything else (I/O, timeouts, cluster reconfiguring,
/// loading) is `Unavailable`, worth retrying.
fn classify(operation: &str, subject: &str, error: &RedisError) -> StoreError {
    let protocol = matches!(
        error.kind(),
        ErrorKind::Parse
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::Extension
            | ErrorKind::Server(
                ServerErrorKind::ResponseError
                    | ServerErrorKind::NoScript
                    | ServerErrorKind::CrossSlot
                    | ServerErrorKind::ExecAbort
                    | ServerErrorKind::NoPerm
            )
    );
    let message = format!("{operation} for {subject} failed: {error}");
    if protocol {
        StoreError::Protocol(message)
    } else {
        StoreError::Unavailable(message)
    }
}

/// Names the users of a batch in an error: the id, or the count and the first id.
fn describe_users<'a>(mut user_ids: impl ExactSizeIterator<Item = &'a str>) -> String {
    match (user_ids.len(), user_ids.next()) {
        (_, None) => "no users".to_owned(),
        (1, Some(user_id)) => format!("user {user_id}"),
        (count, Some(first)) => format!("{count} users (first {first})"),
    }
}

/// `host:port` of every reachable primary, from `CLUSTER NODES`.
async fn cluster_primaries(connection: &mut Connection) -> Result<Vec<(String, u16)>, Failure> {
    let Connection::Cluster(cluster) = connection else {
        return Ok(Vec::new());
    };
    let reply = cluster
        .route_command(
            redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let text = redis::from_redis_value::<String>(reply)
        .map_err(|error| Failure::Reply(format!("CLUSTER NODES reply: {error}")))?;
    Ok(parse_cluster_primaries(&text))
}

/// Parses `CLUSTER NODES` lines: `<id> <ip:port@bus-port[,hostname]> <flags> …`.
fn parse_cluster_primaries(text: &str) -> Vec<(String, u16)> {
    let mut primaries = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master") || flags.contains(&"fail") || flags.contains(&"noaddr") {
            continue;
        }
        let client_address = address.split(['@', ',']).next().unwrap_or_default();
        let Some((host, port)) = client_address.rsplit_once(':') else {
            continue;
        };
        if let (false, Ok(port)) = (host.is_empty(), port.parse::<u16>()) {
            primaries.push((host.to_owned(), port));
        }
    }
    primaries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        assert_eq!(document_key("u-1"), "sf:v1:{u-1}:doc");
        assert_eq!(state_key("u-1"), "sf:v1:{u-1}:state");
    }

    #[test]
    fn braces_and_percent_are_escaped() {
        assert_eq!(document_key("a{b}c%"), "sf:v1:{a%7Bb%7Dc%25}:doc");
        assert_eq!(document_key(""), "sf:v1:{%}:doc");
    }

    #[test]
    fn user_id_round_trips_through_keys() {
        for user_id in ["u-1", "", "%", "{", "}", "a{b}c", "%7B", "x:doc", "ünï"] {
            assert_eq!(
                user_id_from_key(&document_key(user_id)).as_deref(),
                Some(user_id),
                "document key of {user_id:?}"
            );
            assert_eq!(
                user_id_from_key(&state_key(user_id)).as_deref(),
                Some(user_id),
                "state key of {user_id:?}"
            );
        }
    }

    #[test]
    fn foreign_keys_have_no_user_id() {
        for key in [
            "other",
            "sf:v1:{u}:other",
            "sf:v2:{u}:doc",
            "sf:v1:{bad%zz}:doc",
            "sf:v1:u:doc",
        ] {
            assert_eq!(user_id_from_key(key), None, "{key}");
        }
    }

    #[test]
    fn cluster_nodes_output_yields_live_primaries() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,node-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
f6 :0@0 master,noaddr - 0 0 5 disconnected
";
        assert_eq!(
            parse_cluster_primaries(text),
            vec![("127.0.0.1".to_owned(), 7000), ("127.0.0.1".to_owned(), 7001),]
        );
    }

    #[test]
    fn batch_errors_name_the_users() {
        assert_eq!(describe_users(["a"].into_iter()), "user a");
        assert_eq!(describe_users(["a", "b", "c"].into_iter()), "3 users (first a)");
    }
}
