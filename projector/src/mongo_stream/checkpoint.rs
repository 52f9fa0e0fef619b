//! Storage of the change stream's resume token and of the rebuild marker.
//!
//! Keys (next to the projection, in the same Redis):
//! - `sf:v1:resume:<stream>`: the BSON bytes of `{ "t": <resume token> }`,
//!   written after every applied batch.
//! - `sf:v1:rebuild-required`: JSON `{"at", "reason", "stream"}`, written
//!   when changes were lost and the projection must be rebuilt. Nothing
//!   deletes it automatically; the operator does after the rebuild.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use mongodb::bson::{self, Document, doc};
use mongodb::change_stream::event::ResumeToken;
use redis::Cmd;
use redis::cluster::ClusterClientBuilder;
use sessionfold_common::store::RedisConfig;
use sessionfold_common::store::redis::Connection;
use sessionfold_common::store::redis::KEY_PREFIX;
use tokio::sync::Mutex;

/// Key of the rebuild marker.
pub const REBUILD_REQUIRED_KEY: &str = "sf:v1:rebuild-required";

/// Key of a stream's resume token.
pub fn resume_key(stream: &str) -> String {
    format!("{KEY_PREFIX}resume:{stream}")
}

/// Encodes a token for storage. BSON keeps the token's exact types (a
/// token can hold binary data, which JSON would reshape).
pub fn encode_token(token: &ResumeToken) -> Result<Vec<u8>, CheckpointError> {
    let value = bson::to_bson(token).map_err(|error| CheckpointError::Corrupt(error.to_string()))?;
    bson::to_vec(&doc! { "t": value }).map_err(|error| CheckpointError::Corrupt(error.to_string()))
}

pub fn decode_token(bytes: &[u8]) -> Result<ResumeToken, CheckpointError> {
    let document: Document = bson::from_slice(bytes)
        .map_err(|error| CheckpointError::Corrupt(format!("not a BSON document: {error}")))?;
    let value = document
        .get("t")
        .cloned()
        .ok_or_else(|| CheckpointError::Corrupt("the document has no field t".to_owned()))?;
    bson::from_bson(value).map_err(|error| CheckpointError::Corrupt(format!("not a resume token: {error}")))
}

/// Builds the JSON value of the rebuild marker.
pub fn rebuild_marker(stream: &str, reason: &str, at: DateTime<Utc>) -> String {
    serde_json::json!({
        "at": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "reason": reason,
        "stream": stream,
    })
    .to_string()
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckpointError {
    #[error("Redis checkpoint store unavailable: {0}")]
    Unavailable(String),
    #[error("stored resume token is unreadable: {0}")]
    Corrupt(String),
}

/// Storage of resume tokens and the rebuild marker.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn load(&self, stream: &str) -> Result<Option<ResumeToken>, CheckpointError>;
    async fn save(&self, stream: &str, token: &ResumeToken) -> Result<(), CheckpointError>;
    async fn discard(&self, stream: &str) -> Result<(), CheckpointError>;
    async fn mark_rebuild_required(
        &self,
        stream: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), CheckpointError>;
}

/// Checkpoints in the Redis of the projection store (one server or a
/// cluster, from the same `REDIS_*` settings). Connects on first use.
pub struct RedisCheckpoints {
    config: RedisConfig,
    connection: Mutex<Option<Connection>>,
}

impl RedisCheckpoints {
    pub fn new(config: RedisConfig) -> Self {
        Self {
            config,
            connection: Mutex::new(None),
        }
    }

    fn timeout(&self) -> Duration {
        self.config.command_timeout
    }

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        if self.config.cluster {
            let client = ClusterClientBuilder::new(self.config.nodes.clone())
                .connection_timeout(self.timeout())
                .response_timeout(self.timeout())
                .build()?;
            Ok(Connection::Cluster(client.get_async_connection().await?))
        } else {
            let client = redis::Client::open(self.config.nodes[0].clone())?;
            Ok(Connection::Single(client.get_connection_manager().await?))
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, command: Cmd) -> Result<T, CheckpointError> {
        let work = async {
            let mut slot = self.connection.lock().await;
            let mut connection = match slot.as_ref() {
                Some(connection) => connection.clone(),
                None => {
                    let connection = self.connect().await?;
                    *slot = Some(connection.clone());
                    connection
                }
            };
            drop(slot);
            command.query_async::<T>(&mut connection).await
        };
        let addresses = self.config.addresses().join(",");
        let result = match tokio::time::timeout(self.timeout(), work).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => CheckpointError::Unavailable(format!("{addresses}: {error}")),
            Err(_) => CheckpointError::Unavailable(format!(
                "no reply from {addresses} within {} ms",
                self.timeout().as_millis()
            )),
        };
        // Connect again next time: a connection manager that failed to
        // reconnect keeps returning its last error.
        *self.connection.lock().await = None;
        Err(result)
    }
}

#[async_trait]
impl CheckpointStore for RedisCheckpoints {
    async fn load(&self, stream: &str) -> Result<Option<ResumeToken>, CheckpointError> {
        let mut command = redis::cmd("GET");
        command.arg(resume_key(stream));
        let bytes: Option<Vec<u8>> = self.run(command).await?;
        bytes.map(|bytes| decode_token(&bytes)).transpose()
    }

    async fn save(&self, stream: &str, token: &ResumeToken) -> Result<(), CheckpointError> {
        let mut command = redis::cmd("SET");
        command.arg(resume_key(stream)).arg(encode_token(token)?);
        self.run::<()>(command).await
    }

    async fn discard(&self, stream: &str) -> Result<(), CheckpointError> {
        let mut command = redis::cmd("DEL");
        command.arg(resume_key(stream));
        self.run::<()>(command).await
    }

    async fn mark_rebuild_required(
        &self,
        stream: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), CheckpointError> {
        let mut command = redis::cmd("SET");
        command
            .arg(REBUILD_REQUIRED_KEY)
            .arg(rebuild_marker(stream, reason, at));
        self.run::<()>(command).await
    }
}

/// Checkpoints in process memory, for tests and single-process trials.
#[derive(Default)]
pub struct MemoryCheckpoints {
    tokens: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    rebuild: std::sync::Mutex<Option<String>>,
}

impl MemoryCheckpoints {
    /// Returns the rebuild marker, if one was set.
    pub fn rebuild_marker(&self) -> Option<String> {
        self.rebuild.lock().expect("checkpoint lock").clone()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn load(&self, stream: &str) -> Result<Option<ResumeToken>, CheckpointError> {
        let tokens = self.tokens.lock().expect("checkpoint lock");
        tokens.get(stream).map(|bytes| decode_token(bytes)).transpose()
    }

    async fn save(&self, stream: &str, token: &ResumeToken) -> Result<(), CheckpointError> {
        let bytes = encode_token(token)?;
        self.tokens
            .lock()
            .expect("checkpoint lock")
            .insert(stream.to_owned(), bytes);
        Ok(())
    }

    async fn discard(&self, stream: &str) -> Result<(), CheckpointError> {
        self.tokens.lock().expect("checkpoint lock").remove(stream);
        Ok(())
    }

    async fn mark_rebuild_required(
        &self,
        stream: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), CheckpointError> {
        *self.rebuild.lock().expect("checkpoint lock") = Some(rebuild_marker(stream, reason, at));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{Binary, Bson, spec::BinarySubtype};

    use super::*;

    fn token() -> ResumeToken {
        let value = Bson::Document(doc! {
            "_data": "8265A1F0C2000000012B022C0100296E5A10046A3E4F",
            "_typeBits": Binary { subtype: BinarySubtype::Generic, bytes: vec![0x81, 0x80] },
        });
        bson::from_bson(value).unwrap()
    }

    #[test]
    fn resume_key_is_namespaced() {
        assert_eq!(resume_key("mongo-sessionfold"), "sf:v1:resume:mongo-sessionfold");
    }

    #[test]
    fn token_round_trips_with_binary_fields() {
        let token = token();
        let bytes = encode_token(&token).unwrap();
        assert_eq!(decode_token(&bytes).unwrap(), token);
    }

    #[test]
    fn corrupt_token_bytes_are_reported() {
        assert!(matches!(
            decode_token(b"not bson"),
            Err(CheckpointError::Corrupt(_))
        ));
        let other = bson::to_vec(&doc! { "x": 1 }).unwrap();
        let error = decode_token(&other).unwrap_err();
        assert_eq!(
            error.to_string(),
            "stored resume token is unreadable: the document has no field t"
        );
    }

    #[test]
    fn rebuild_marker_names_time_reason_and_stream() {
        let at = "2026-03-01T12:00:00Z".parse().unwrap();
        let marker: serde_json::Value =
            serde_json::from_str(&rebuild_marker("mongo-sessionfold", "history lost", at)).unwrap();
        assert_eq!(
            marker,
            serde_json::json!({
                "at": "2026-03-01T12:00:00.000Z",
                "reason": "history lost",
                "stream": "mongo-sessionfold",
            })
        );
    }
}
