//! Kafka settings from environment variables.

use std::time::Duration;

use sessionfold_common::config::Env;
use sessionfold_common::event::decode::DEFAULT_MAX_EVENT_BYTES;

use crate::pipeline::DEFAULT_BATCH_SIZE;

/// Topics consumed when `KAFKA_TOPICS` is unset: one per upstream service.
pub const DEFAULT_TOPICS: &str = "sessionfold.users,sessionfold.bookings,sessionfold.subscriptions";
pub const DEFAULT_GROUP_ID: &str = "sessionfold-projector";
pub const DEFAULT_DEAD_LETTER_TOPIC: &str = "sessionfold.dead-letter";
/// How long a batch waits for more records after its first one.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 50;
/// The librdkafka default (45 s in librdkafka 2.12, the version rdkafka 0.38 bundles).
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;

/// Kafka's own limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// Consumer, dead-letter and batching settings of `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    pub dead_letter_topic: String,
    /// Records with a larger value are rejected to the dead-letter topic.
    pub max_event_bytes: usize,
    /// Maximum records per batch.
    pub batch_size: usize,
    /// How long a batch keeps collecting after its first record.
    pub batch_wait: Duration,
    /// `session.timeout.ms`: how long the group coordinator waits for a
    /// silent consumer before it moves that consumer's partitions.
    pub session_timeout: Duration,
}

impl KafkaConfig {
    /// Settings for `brokers` with every other value at its default; for
    /// tests and tools.
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topics: split_list(DEFAULT_TOPICS),
            group_id: DEFAULT_GROUP_ID.to_owned(),
            dead_letter_topic: DEFAULT_DEAD_LETTER_TOPIC.to_owned(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait: Duration::from_millis(DEFAULT_BATCH_WAIT_MS),
            session_timeout: Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS),
        }
    }

    /// Reads the settings of `run`:
    ///
    /// - `KAFKA_BROKERS` (required): comma-separated `host:port` list.
    /// - `KAFKA_TOPICS`: comma-separated topics to consume (default
    ///   `sessionfold.users,sessionfold.bookings,sessionfold.subscriptions`).
    /// - `KAFKA_GROUP_ID` (default `sessionfold-projector`).
    /// - `KAFKA_DLQ_TOPIC` (default `sessionfold.dead-letter`); must not be
    ///   one of the consumed topics.
    /// - `MAX_EVENT_BYTES` (default 1 MiB, 1 KiB to 100 MiB).
    /// - `PROJECTOR_BATCH_SIZE` (default 500, 1 to 10000 records).
    /// - `PROJECTOR_BATCH_WAIT_MS` (default 50, 0 to 10000).
    /// - `KAFKA_SESSION_TIMEOUT_MS` (default 45000, 1000 to 1800000).
    pub fn from_env(env: &mut Env) -> Self {
        let brokers = brokers_from_env(env);

        let topics_raw = env
            .string("KAFKA_TOPICS")
            .unwrap_or_else(|| DEFAULT_TOPICS.to_owned());
        let topics = split_list(&topics_raw);
        if topics.is_empty() || !topics.iter().all(|topic| is_valid_topic(topic)) {
            env.fail(
                "KAFKA_TOPICS",
                &topics_raw,
                "a comma-separated list of topic names (letters, digits, '.', '_', '-'; at most 249 characters each)",
            );
        }

        let group_id = env
            .string("KAFKA_GROUP_ID")
            .unwrap_or_else(|| DEFAULT_GROUP_ID.to_owned());
        if group_id.trim() != group_id {
            env.fail(
                "KAFKA_GROUP_ID",
                &group_id,
                "a group id without leading or trailing spaces",
            );
        }

        let dead_letter_topic = env
            .string("KAFKA_DLQ_TOPIC")
            .unwrap_or_else(|| DEFAULT_DEAD_LETTER_TOPIC.to_owned());
        if !is_valid_topic(&dead_letter_topic) {
            env.fail(
                "KAFKA_DLQ_TOPIC",
                &dead_letter_topic,
                "a topic name (letters, digits, '.', '_', '-'; at most 249 characters)",
            );
        } else if topics.contains(&dead_letter_topic) {
            // Consuming the dead-letter topic would reject each dead letter
            // again and write it back, forever.
            env.fail(
                "KAFKA_DLQ_TOPIC",
                &dead_letter_topic,
                "a topic that is not in KAFKA_TOPICS",
            );
        }

        let max_event_bytes = env.integer(
            "MAX_EVENT_BYTES",
            DEFAULT_MAX_EVENT_BYTES as u64,
            1024,
            100 * 1024 * 1024,
            "bytes",
        ) as usize;
        let batch_size = env.integer(
            "PROJECTOR_BATCH_SIZE",
            DEFAULT_BATCH_SIZE as u64,
            1,
            10_000,
            "records",
        ) as usize;
        let batch_wait = env.millis("PROJECTOR_BATCH_WAIT_MS", DEFAULT_BATCH_WAIT_MS, 0, 10_000);
        let session_timeout = env.millis(
            "KAFKA_SESSION_TIMEOUT_MS",
            DEFAULT_SESSION_TIMEOUT_MS,
            1_000,
            1_800_000,
        );

        Self {
            brokers,
            topics,
            group_id,
            dead_letter_topic,
            max_event_bytes,
            batch_size,
            batch_wait,
            session_timeout,
        }
    }
}

/// Reads the required `KAFKA_BROKERS`; records an error when it is unset.
pub fn brokers_from_env(env: &mut Env) -> String {
    match env.string("KAFKA_BROKERS") {
        Some(brokers) if !split_list(&brokers).is_empty() => brokers,
        other => {
            env.fail(
                "KAFKA_BROKERS",
                &other.unwrap_or_default(),
                "a comma-separated list of Kafka brokers as host:port (required)",
            );
            String::new()
        }
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Returns whether `name` has only the characters and length Kafka accepts
/// in a topic name.
fn is_valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_only_brokers_are_set() {
        let mut env = Env::from_pairs(&[("KAFKA_BROKERS", "127.0.0.1:9092")]);
        let config = KafkaConfig::from_env(&mut env);
        env.finish().unwrap();
        assert_eq!(config, KafkaConfig::new("127.0.0.1:9092"));
        assert_eq!(
            config.topics,
            [
                "sessionfold.users",
                "sessionfold.bookings",
                "sessionfold.subscriptions"
            ]
        );
        assert_eq!(config.max_event_bytes, 1024 * 1024);
        assert_eq!(config.batch_size, 500);
        assert_eq!(config.batch_wait, Duration::from_millis(50));
    }

    #[test]
    fn missing_brokers_are_reported() {
        let mut env = Env::from_pairs(&[]);
        KafkaConfig::from_env(&mut env);
        let errors = env.finish().unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].variable, "KAFKA_BROKERS");
        assert!(
            errors.0[0].expected.contains("required"),
            "{}",
            errors.0[0].expected
        );
    }

    #[test]
    fn topic_list_is_trimmed() {
        let mut env = Env::from_pairs(&[("KAFKA_BROKERS", "b:9092"), ("KAFKA_TOPICS", " a , b.c ,,")]);
        let config = KafkaConfig::from_env(&mut env);
        env.finish().unwrap();
        assert_eq!(config.topics, ["a", "b.c"]);
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let mut env = Env::from_pairs(&[
            ("KAFKA_BROKERS", "b:9092"),
            ("KAFKA_TOPICS", "users,bad topic"),
            ("KAFKA_DLQ_TOPIC", "dead/letters"),
            ("MAX_EVENT_BYTES", "12"),
            ("PROJECTOR_BATCH_SIZE", "0"),
            ("PROJECTOR_BATCH_WAIT_MS", "soon"),
        ]);
        KafkaConfig::from_env(&mut env);
        let errors = env.finish().unwrap_err();
        let variables: Vec<&str> = errors.0.iter().map(|error| error.variable.as_str()).collect();
        assert_eq!(
            variables,
            [
                "KAFKA_TOPICS",
                "KAFKA_DLQ_TOPIC",
                "MAX_EVENT_BYTES",
                "PROJECTOR_BATCH_SIZE",
                "PROJECTOR_BATCH_WAIT_MS"
            ]
        );
    }

    #[test]
    fn dead_letter_topic_must_not_be_consumed() {
        let mut env = Env::from_pairs(&[
            ("KAFKA_BROKERS", "b:9092"),
            ("KAFKA_TOPICS", "users,dead"),
            ("KAFKA_DLQ_TOPIC", "dead"),
        ]);
        KafkaConfig::from_env(&mut env);
        let errors = env.finish().unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].variable, "KAFKA_DLQ_TOPIC");
        assert!(errors.0[0].expected.contains("not in KAFKA_TOPICS"));
    }
}
