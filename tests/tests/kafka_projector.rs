//! The Kafka source, the dead-letter topic and `publish` against a real
//! Kafka-compatible broker, and the `run` binary end to end with Redis.
//!
//! Each test starts its own Tansu broker (see `sessionfold_tests::kafka_broker`)
//! or uses `KAFKA_BROKERS`, and creates its own topics and consumer group
//! with unique names. Consumers use a 6 s session timeout because Tansu
//! 0.6.0 takes about half the session timeout to complete a group join
//! (measured here: about 3 s with 6 s, about 23 s with the 45 s default).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use sessionfold_common::document::StoredDocument;
use sessionfold_common::event::{Decoded, Decoder, Event};
use sessionfold_common::fold::{self, FoldState, RenderOptions};
use sessionfold_common::store::{
    MemoryStore, ProjectionStore, ProjectionWrite, RedisConfig, RedisStore, StoreError, StoredState,
    WriteOutcome,
};
use sessionfold_projector::kafka::dead_letter::{
    HEADER_CODE, HEADER_EVENT_ID, HEADER_ORIGIN, HEADER_REASON, HEADER_VALUE_OMITTED,
};
use sessionfold_projector::kafka::{
    AssignmentView, KafkaConfig, KafkaDeadLetters, KafkaSource, PublishMode, publish,
};
use sessionfold_projector::pipeline::{self, PipelineReport};
use sessionfold_projector::source::EventSource;
use sessionfold_projector::{Projector, demo};
use sessionfold_tests::kafka_broker::{KafkaBroker, unique_name};
use sessionfold_tests::redis_server::RedisServer;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// Bound on waiting for anything asynchronous (a group join, a projection).
const WAIT: Duration = Duration::from_secs(60);
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
const EVENT_TIME: &str = "2025-01-05T10:00:00Z";
const STRUCTURED: &str = "application/cloudevents+json";

// ---------------------------------------------------------------------------
// Events

fn event(user_id: &str, id: &str, event_type: &str, version: u64, mut data: Value) -> Value {
    data["version"] = json!(version);
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/tests",
        "type": event_type,
        "subject": user_id,
        "time": EVENT_TIME,
        "datacontenttype": "application/json",
        "data": data,
    })
}

fn user_created(user_id: &str, name: &str) -> Value {
    event(
        user_id,
        &format!("{user_id}-created"),
        "user.created",
        1,
        json!({"email": format!("{user_id}@example.com"), "name": name}),
    )
}

fn profile_updated(user_id: &str, version: u64, name: &str) -> Value {
    event(
        user_id,
        &format!("{user_id}-profile-{version}"),
        "user.profile_updated",
        version,
        json!({"name": name}),
    )
}

fn subject(event: &Value) -> &str {
    event["subject"].as_str().expect("test events have a subject")
}

// ---------------------------------------------------------------------------
// Kafka helpers

/// Creates a config for fresh topics (each `partitions` wide) and a fresh group.
async fn fresh_config(broker: &KafkaBroker, topic_names: &[&str], partitions: i32) -> KafkaConfig {
    let mut config = KafkaConfig::new(broker.bootstrap());
    config.topics = topic_names.iter().map(|name| unique_name(name)).collect();
    config.dead_letter_topic = unique_name("dead-letters");
    config.group_id = unique_name("projector");
    config.session_timeout = SESSION_TIMEOUT;
    for topic in &config.topics {
        broker.create_topic(topic, partitions).await;
    }
    broker.create_topic(&config.dead_letter_topic, 1).await;
    config
}

/// Produces one record and returns its (partition, offset).
async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: &[(&str, &[u8])],
) -> (i32, i64) {
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(*value),
        });
    }
    let record = FutureRecord::to(topic).key(key).payload(payload).headers(owned);
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap_or_else(|(err, _)| panic!("produce to {topic}: {err}"));
    (delivery.partition, delivery.offset)
}

async fn send_structured(producer: &FutureProducer, topic: &str, event: &Value) -> (i32, i64) {
    let payload = serde_json::to_vec(event).unwrap();
    send(
        producer,
        topic,
        subject(event),
        &payload,
        &[("content-type", STRUCTURED.as_bytes())],
    )
    .await
}

/// Produces `event` in binary mode: attributes as `ce_*` headers, `data`
/// as the value. Written here independently of `publish --binary`.
async fn send_binary(producer: &FutureProducer, topic: &str, event: &Value) -> (i32, i64) {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, value) in event.as_object().unwrap() {
        match name.as_str() {
            "data" => {}
            "datacontenttype" => headers.push(("content-type".to_owned(), value.as_str().unwrap().into())),
            _ => headers.push((format!("ce_{name}"), value.as_str().unwrap().into())),
        }
    }
    let borrowed: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect();
    let payload = serde_json::to_vec(&event["data"]).unwrap();
    send(producer, topic, subject(event), &payload, &borrowed).await
}

/// Reads `count` records from partition 0 of `topic`, from the start,
/// without a consumer group.
async fn read_records(broker: &KafkaBroker, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = broker
        .client_config()
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create a reader");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();

    let mut records = Vec::new();
    while records.len() < count {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "read {} of {count} records from {topic} within {WAIT:?}",
                    records.len()
                )
            })
            .unwrap_or_else(|err| panic!("read from {topic}: {err}"));
        records.push(message.detach());
    }
    records
}

fn header_value(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == name)
        .map(|header| String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned())
}

/// Waits until `group` has committed `total` records over all partitions
/// of `topics`: committed offsets never pass a partition's end, so the sum
/// equals the number of records produced only when every partition is
/// caught up. (Counting, because Tansu's end offsets are not exact; see
/// `KafkaBroker::end_offsets`.)
async fn wait_for_committed(
    broker: &KafkaBroker,
    group: &str,
    topics: &[String],
    partitions: i32,
    total: i64,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let committed = committed_total(broker, group, topics, partitions).await;
        if committed == total {
            return;
        }
        assert!(
            committed < total,
            "group {group} committed {committed} records of {total}: more than were produced"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "group {group} committed {committed} of {total} records within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sums the committed offsets of `group` over `topics`; a partition
/// without a commit counts as 0.
async fn committed_total(broker: &KafkaBroker, group: &str, topics: &[String], partitions: i32) -> i64 {
    let mut total = 0;
    for topic in topics {
        let committed = broker.committed_offsets(group, topic, partitions).await;
        total += committed.into_iter().flatten().sum::<i64>();
    }
    total
}

// ---------------------------------------------------------------------------
// Pipeline helpers

/// A pipeline running in a task, as `run` wires it.
struct RunningPipeline {
    stop: watch::Sender<bool>,
    task: JoinHandle<PipelineReport>,
    assignment: AssignmentView,
}

fn start_pipeline(config: &KafkaConfig, store: Arc<dyn ProjectionStore>) -> RunningPipeline {
    let config = config.clone();
    let (stop, stopped) = watch::channel(false);
    let mut source = KafkaSource::new(&config).expect("create the Kafka source");
    let assignment = source.assignment();
    let task = tokio::spawn(async move {
        let dead_letters = KafkaDeadLetters::new(&config).expect("create the dead-letter producer");
        let projector = Projector::new(store, RenderOptions::default());
        let report = pipeline::run(&mut source, &projector, &dead_letters, config.batch_size, stopped)
            .await
            .expect("pipeline failed");
        source.close().await;
        report
    });
    RunningPipeline {
        stop,
        task,
        assignment,
    }
}

impl RunningPipeline {
    async fn stop(self) -> PipelineReport {
        self.stop.send(true).expect("pipeline still running");
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("pipeline stops within the wait")
            .expect("pipeline task panicked")
    }
}

/// Polls `check` every 100 ms until it returns true or `limit` passes;
/// returns whether it succeeded.
async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the served session body of `user_id`, if there is a document.
async fn session_body(store: &dyn ProjectionStore, user_id: &str) -> Option<Value> {
    let bytes = store.get_document(user_id).await.expect("read a document")?;
    let document = StoredDocument::decode(bytes).expect("stored document decodes");
    Some(serde_json::from_slice(&document.body).expect("document body is JSON"))
}

async fn user_name(store: &dyn ProjectionStore, user_id: &str) -> Option<String> {
    let body = session_body(store, user_id).await?;
    body["user"]["name"].as_str().map(str::to_owned)
}

/// A store whose writes fail with `Unavailable` while `failing` is set.
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
    failed_writes: AtomicUsize,
}

#[async_trait]
impl ProjectionStore for FlakyStore {
    async fn load_states(&self, user_ids: &[String]) -> Result<Vec<Option<StoredState>>, StoreError> {
        self.inner.load_states(user_ids).await
    }

    async fn write_batch(&self, writes: &[ProjectionWrite]) -> Result<Vec<WriteOutcome>, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            self.failed_writes.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("test outage".to_owned()));
        }
        self.inner.write_batch(writes).await
    }

    async fn get_document(&self, user_id: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get_document(user_id).await
    }

    async fn backfill_document(&self, user_id: &str, document: Bytes) -> Result<bool, StoreError> {
        self.inner.backfill_document(user_id, document).await
    }

    async fn delete_documents(&self, user_ids: &[String]) -> Result<(), StoreError> {
        self.inner.delete_documents(user_ids).await
    }

    async fn subscribe_invalidations(&self) -> Result<broadcast::Receiver<String>, StoreError> {
        self.inner.subscribe_invalidations().await
    }
}

// ---------------------------------------------------------------------------
// Source, dead letters, commits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_decodes_modes_and_dead_letters_rejects() {
    let broker = KafkaBroker::start();
    let mut config = fresh_config(&broker, &["users"], 1).await;
    config.max_event_bytes = 4096;
    let topic = config.topics[0].clone();
    let producer = broker.producer();

    // All records share one partition, so their offsets are 0..=5 in order.
    let structured = user_created("u1", "Asha");
    send_structured(&producer, &topic, &structured).await;

    let not_json = b"{this is not json".to_vec();
    let (_, not_json_offset) = send(&producer, &topic, "u1", &not_json, &[("trace-id", b"t-1")]).await;

    let mut invalid = user_created("u3", "No Email");
    invalid["id"] = json!("invalid-1");
    invalid["data"].as_object_mut().unwrap().remove("email");
    let invalid_bytes = serde_json::to_vec(&invalid).unwrap();
    let (_, invalid_offset) = send(
        &producer,
        &topic,
        "u3",
        &invalid_bytes,
        &[("content-type", STRUCTURED.as_bytes())],
    )
    .await;

    let mut oversize = user_created("u4", "Large");
    oversize["data"]["padding"] = json!("x".repeat(8192));
    let oversize_bytes = serde_json::to_vec(&oversize).unwrap();
    let (_, oversize_offset) = send(&producer, &topic, "u4", &oversize_bytes, &[]).await;

    send_binary(&producer, &topic, &profile_updated("u1", 2, "Asha Rao")).await;
    let (_, last_offset) = send_binary(&producer, &topic, &user_created("u2", "Binary Bina")).await;
    assert_eq!(last_offset, 5);

    let store = Arc::new(MemoryStore::new());
    let running = start_pipeline(&config, store.clone());
    let projected = wait_until(WAIT, || async {
        user_name(store.as_ref(), "u2").await.is_some()
            && user_name(store.as_ref(), "u1").await.as_deref() == Some("Asha Rao")
    })
    .await;
    assert!(projected, "u1 and u2 were not projected within {WAIT:?}");
    wait_for_committed(&broker, &config.group_id, &config.topics, 1, 6).await;
    let report = running.stop().await;

    assert_eq!(
        user_name(store.as_ref(), "u2").await.as_deref(),
        Some("Binary Bina")
    );
    assert_eq!(
        session_body(store.as_ref(), "u3").await,
        None,
        "invalid event projected"
    );
    assert_eq!(
        session_body(store.as_ref(), "u4").await,
        None,
        "oversize event projected"
    );
    assert_eq!(report.dead_letters, 3);

    let letters = read_records(&broker, &config.dead_letter_topic, 3).await;
    let expected = [
        (&not_json, not_json_offset, "not_json", "u1"),
        (&invalid_bytes, invalid_offset, "invalid_data", "u3"),
        (&oversize_bytes, oversize_offset, "too_large", "u4"),
    ];
    for (letter, (payload, offset, code, key)) in letters.iter().zip(expected) {
        assert_eq!(
            letter.payload(),
            Some(payload.as_slice()),
            "dead letter {code} keeps the value"
        );
        assert_eq!(
            letter.key(),
            Some(key.as_bytes()),
            "dead letter {code} keeps the key"
        );
        assert_eq!(header_value(letter, HEADER_CODE).as_deref(), Some(code));
        assert_eq!(
            header_value(letter, HEADER_ORIGIN),
            Some(format!("{topic}/0@{offset}")),
            "dead letter {code} names its origin"
        );
        let reason = header_value(letter, HEADER_REASON).expect("reason header");
        assert!(!reason.is_empty(), "dead letter {code} has an empty reason");
    }

    let not_json_letter = &letters[0];
    assert_eq!(header_value(not_json_letter, "trace-id").as_deref(), Some("t-1"));
    assert_eq!(header_value(not_json_letter, HEADER_EVENT_ID), None);
    assert!(
        header_value(not_json_letter, HEADER_REASON)
            .unwrap()
            .contains("not valid JSON")
    );

    let invalid_letter = &letters[1];
    assert_eq!(
        header_value(invalid_letter, HEADER_EVENT_ID).as_deref(),
        Some("invalid-1")
    );
    assert_eq!(
        header_value(invalid_letter, "content-type").as_deref(),
        Some(STRUCTURED)
    );

    let oversize_letter = &letters[2];
    assert!(
        header_value(oversize_letter, HEADER_REASON)
            .unwrap()
            .contains("limit is 4096 bytes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_too_large_omits_value() {
    let broker = KafkaBroker::start();
    let config = fresh_config(&broker, &["users"], 1).await;
    let topic = config.topics[0].clone();

    // Larger than both the 1 MiB event limit and the dead-letter producer's
    // default `message.max.bytes` (1,000,000 bytes).
    let producer: FutureProducer = broker
        .client_config()
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap();
    let mut huge = user_created("huge", "Huge");
    huge["data"]["padding"] = json!("x".repeat(1_200_000));
    let huge_bytes = serde_json::to_vec(&huge).unwrap();
    send(&producer, &topic, "huge", &huge_bytes, &[]).await;
    send_structured(&producer, &topic, &user_created("after-huge", "After")).await;

    let store = Arc::new(MemoryStore::new());
    let running = start_pipeline(&config, store.clone());
    wait_for_committed(&broker, &config.group_id, &config.topics, 1, 2).await;
    let report = running.stop().await;
    assert_eq!(report.dead_letters, 1);
    assert_eq!(
        user_name(store.as_ref(), "after-huge").await.as_deref(),
        Some("After")
    );

    let letters = read_records(&broker, &config.dead_letter_topic, 1).await;
    let letter = &letters[0];
    assert_eq!(letter.payload(), None, "the value should be omitted");
    assert_eq!(letter.key(), Some(b"huge".as_slice()));
    assert_eq!(header_value(letter, HEADER_CODE).as_deref(), Some("too_large"));
    assert_eq!(
        header_value(letter, HEADER_VALUE_OMITTED),
        Some(huge_bytes.len().to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_commit_only_after_store_writes() {
    let broker = KafkaBroker::start();
    let config = fresh_config(&broker, &["users"], 2).await;
    let topic = config.topics[0].clone();
    let producer = broker.producer();
    let users: Vec<String> = (1..=6).map(|index| format!("user-{index}")).collect();
    for user in &users {
        send_structured(&producer, &topic, &user_created(user, "Before Outage")).await;
    }

    let store = Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        failing: AtomicBool::new(true),
        failed_writes: AtomicUsize::new(0),
    });
    let running = start_pipeline(&config, store.clone());

    // Three failed writes: the pipeline has read a batch and retried it
    // twice with backoff (100 ms, then 200 ms).
    let retried = wait_until(WAIT, || async { store.failed_writes.load(Ordering::SeqCst) >= 3 }).await;
    assert!(retried, "the pipeline did not try to write within {WAIT:?}");
    let committed = broker.committed_offsets(&config.group_id, &topic, 2).await;
    assert_eq!(
        committed,
        [None, None],
        "offsets committed while the store was failing"
    );
    for user in &users {
        assert_eq!(session_body(store.as_ref(), user).await, None);
    }

    store.failing.store(false, Ordering::SeqCst);
    wait_for_committed(&broker, &config.group_id, &config.topics, 2, users.len() as i64).await;
    for user in &users {
        assert_eq!(
            user_name(store.as_ref(), user).await.as_deref(),
            Some("Before Outage"),
            "{user} was skipped"
        );
    }

    // Events after the outage go through as usual.
    send_structured(&producer, &topic, &profile_updated("user-1", 2, "After Outage")).await;
    let projected = wait_until(WAIT, || async {
        user_name(store.as_ref(), "user-1").await.as_deref() == Some("After Outage")
    })
    .await;
    assert!(projected, "an event after the outage was not projected");
    let report = running.stop().await;
    assert_eq!(report.dead_letters, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_finishes_batch_in_hand() {
    let broker = KafkaBroker::start();
    let config = fresh_config(&broker, &["users"], 1).await;
    let topic = config.topics[0].clone();
    let producer = broker.producer();
    for index in 0..3 {
        send_structured(&producer, &topic, &user_created(&format!("stop-{index}"), "Stop")).await;
    }

    let store = Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        failing: AtomicBool::new(true),
        failed_writes: AtomicUsize::new(0),
    });
    let running = start_pipeline(&config, store.clone());
    let holding_batch = wait_until(WAIT, || async { store.failed_writes.load(Ordering::SeqCst) >= 1 }).await;
    assert!(holding_batch, "the pipeline did not try to write within {WAIT:?}");

    // The stop request arrives while the batch cannot be written: the
    // pipeline keeps the batch, and stops only after writing and committing it.
    running.stop.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !running.task.is_finished(),
        "the pipeline stopped with a batch in hand"
    );
    store.failing.store(false, Ordering::SeqCst);
    let report = tokio::time::timeout(WAIT, running.task)
        .await
        .expect("the pipeline stops once the store is back")
        .expect("pipeline task panicked");

    assert_eq!(report.projection.users_written, 3);
    let committed = broker.committed_offsets(&config.group_id, &topic, 1).await;
    assert_eq!(
        committed,
        [Some(3)],
        "the batch in hand was not committed before the stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_consumer_resumes_at_committed_offset() {
    let broker = KafkaBroker::start();
    let config = fresh_config(&broker, &["users"], 1).await;
    let topic = config.topics[0].clone();
    let producer = broker.producer();
    for index in 0..3 {
        send_structured(
            &producer,
            &topic,
            &user_created(&format!("first-{index}"), "First"),
        )
        .await;
    }

    // The first consumer reads and commits the three records, then leaves.
    let mut first = KafkaSource::new(&config).unwrap();
    let offsets = read_offsets(&mut first, 3, true).await;
    assert_eq!(offsets, [0, 1, 2]);
    first.close().await;
    assert_eq!(
        broker.committed_offsets(&config.group_id, &topic, 1).await,
        [Some(3)]
    );

    for index in 0..2 {
        send_structured(
            &producer,
            &topic,
            &user_created(&format!("second-{index}"), "Second"),
        )
        .await;
    }

    // The second consumer starts after the committed records. It does not
    // commit, so a third consumer gets the same records again.
    let mut second = KafkaSource::new(&config).unwrap();
    let offsets = read_offsets(&mut second, 2, false).await;
    assert_eq!(offsets, [3, 4]);
    second.close().await;
    assert_eq!(
        broker.committed_offsets(&config.group_id, &topic, 1).await,
        [Some(3)]
    );

    let mut third = KafkaSource::new(&config).unwrap();
    let offsets = read_offsets(&mut third, 2, true).await;
    assert_eq!(offsets, [3, 4]);
    third.close().await;
    assert_eq!(
        broker.committed_offsets(&config.group_id, &topic, 1).await,
        [Some(5)]
    );
}

/// Reads batches until `count` records arrived; commits each batch when
/// `commit` is set. Returns the offsets in the order read.
async fn read_offsets(source: &mut KafkaSource, count: usize, commit: bool) -> Vec<i64> {
    let mut offsets = Vec::new();
    while offsets.len() < count {
        let batch = tokio::time::timeout(WAIT, source.next_batch(100))
            .await
            .expect("a batch within the wait")
            .expect("the source reads")
            .expect("a Kafka source never ends");
        for record in &batch.records {
            assert!(
                matches!(record.decoded, Ok(Decoded::Event(_))),
                "{} did not decode",
                record.origin
            );
            let offset = record.origin.rsplit('@').next().unwrap().parse().unwrap();
            offsets.push(offset);
        }
        if commit {
            source.commit(batch.checkpoint).await.expect("commit");
        }
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_consumer_joins_without_loss() {
    let broker = KafkaBroker::start();
    let config = fresh_config(&broker, &["users", "bookings"], 3).await;
    let producer = broker.producer();
    let store = Arc::new(MemoryStore::new());

    let first = start_pipeline(&config, store.clone());
    for index in 0..20 {
        send_structured(
            &producer,
            &config.topics[0],
            &user_created(&format!("early-{index}"), "Early"),
        )
        .await;
    }
    let early_done = wait_until(WAIT, || async { store.document_user_ids().len() == 20 }).await;
    assert!(early_done, "the first consumer did not project the early users");

    // The second member makes the group rebalance. Events keep coming once
    // both members own partitions (3 partitions of 2 topics: 6 in all).
    let second = start_pipeline(&config, store.clone());
    let rebalanced = wait_until(WAIT, || async {
        let first_owned = first.assignment.partitions();
        let second_owned = second.assignment.partitions();
        !first_owned.is_empty() && !second_owned.is_empty() && first_owned.len() + second_owned.len() == 6
    })
    .await;
    assert!(
        rebalanced,
        "the group did not split its partitions: first {:?}, second {:?}",
        first.assignment.partitions(),
        second.assignment.partitions()
    );
    for index in 0..20 {
        let user = format!("early-{index}");
        send_structured(
            &producer,
            &config.topics[1],
            &profile_updated(&user, 2, "Renamed"),
        )
        .await;
        send_structured(
            &producer,
            &config.topics[0],
            &user_created(&format!("late-{index}"), "Late"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    wait_for_committed(&broker, &config.group_id, &config.topics, 3, 60).await;
    for index in 0..20 {
        let early = format!("early-{index}");
        let late = format!("late-{index}");
        assert_eq!(
            user_name(store.as_ref(), &early).await.as_deref(),
            Some("Renamed"),
            "{early}"
        );
        assert_eq!(
            user_name(store.as_ref(), &late).await.as_deref(),
            Some("Late"),
            "{late}"
        );
    }
    let first_report = first.stop().await;
    let second_report = second.stop().await;
    assert!(
        first_report.batches > 0 && second_report.batches > 0,
        "both members should have projected batches: {first_report:?} {second_report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarts_on_same_port() {
    let mut broker = KafkaBroker::start();
    if broker.is_external() {
        // An external broker (KAFKA_BROKERS) cannot be stopped by tests.
        return;
    }
    let bootstrap = broker.bootstrap().to_owned();
    broker.stop();
    broker.restart();
    assert_eq!(broker.bootstrap(), bootstrap);

    // Memory storage starts empty, and the broker takes new topics.
    let topic = unique_name("after-restart");
    broker.create_topic(&topic, 1).await;
    let (partition, offset) =
        send_structured(&broker.producer(), &topic, &user_created("r-1", "Restarted")).await;
    assert_eq!((partition, offset), (0, 0));
}

// ---------------------------------------------------------------------------
// publish

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_round_trip_projects_documents() {
    let broker = KafkaBroker::start();
    let config = fresh_config(&broker, &["users"], 2).await;
    let topic = config.topics[0].clone();

    let mut structured = tempfile::NamedTempFile::new().unwrap();
    writeln!(structured, "{}", user_created("pub-1", "Pub One")).unwrap();
    writeln!(structured, "this line is not JSON").unwrap();
    writeln!(structured).unwrap();
    writeln!(structured, "{}", json!({"id": "no-subject"})).unwrap();
    writeln!(structured, "{}", user_created("pub-2", "Pub Two")).unwrap();
    let mut binary = tempfile::NamedTempFile::new().unwrap();
    writeln!(binary, "{}", profile_updated("pub-1", 2, "Pub One Renamed")).unwrap();
    writeln!(binary, "{}", user_created("pub-3", "Pub Three")).unwrap();

    let producer = publish::producer(broker.bootstrap()).unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(structured.path()).unwrap());
    let report = publish::publish(&producer, &topic, PublishMode::Structured, file)
        .await
        .unwrap();
    assert_eq!(report.sent, 2);
    let skipped_lines: Vec<usize> = report.skipped.iter().map(|problem| problem.line).collect();
    assert_eq!(skipped_lines, [2, 4]);
    assert!(
        report.skipped[0].reason.contains("not valid JSON"),
        "{:?}",
        report.skipped
    );
    assert!(
        report.skipped[1].reason.contains("subject"),
        "{:?}",
        report.skipped
    );
    assert!(report.failed.is_empty());

    let file = std::io::BufReader::new(std::fs::File::open(binary.path()).unwrap());
    let report = publish::publish(&producer, &topic, PublishMode::Binary, file)
        .await
        .unwrap();
    assert_eq!(report.sent, 2);
    assert!(report.is_complete(), "{report:?}");

    let store = Arc::new(MemoryStore::new());
    let running = start_pipeline(&config, store.clone());
    wait_for_committed(&broker, &config.group_id, &config.topics, 2, 4).await;
    let report = running.stop().await;

    assert_eq!(report.dead_letters, 0);
    assert_eq!(store.document_user_ids(), ["pub-1", "pub-2", "pub-3"]);
    assert_eq!(
        user_name(store.as_ref(), "pub-1").await.as_deref(),
        Some("Pub One Renamed")
    );
    assert_eq!(
        user_name(store.as_ref(), "pub-2").await.as_deref(),
        Some("Pub Two")
    );
    assert_eq!(
        user_name(store.as_ref(), "pub-3").await.as_deref(),
        Some("Pub Three")
    );
}

// ---------------------------------------------------------------------------
// The `run` binary with Redis

/// A projector process; killed (SIGKILL) on drop if still running.
struct ProjectorProcess {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl ProjectorProcess {
    fn start(config: &KafkaConfig, redis_url: &str, batch_size: usize) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_projector-under-test"))
            .arg("run")
            .env_clear()
            .env("KAFKA_BROKERS", &config.brokers)
            .env("KAFKA_TOPICS", config.topics.join(","))
            .env("KAFKA_GROUP_ID", &config.group_id)
            .env("KAFKA_DLQ_TOPIC", &config.dead_letter_topic)
            .env(
                "KAFKA_SESSION_TIMEOUT_MS",
                SESSION_TIMEOUT.as_millis().to_string(),
            )
            .env("PROJECTOR_BATCH_SIZE", batch_size.to_string())
            .env("REDIS_URL", redis_url)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.reopen().unwrap()))
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .expect("start the projector binary");
        Self { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM (by PID) and waits for the exit status.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "projector did not exit within {WAIT:?} of SIGTERM; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProjectorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `projector-under-test publish --topic <topic> <file>`.
fn publish_command(config: &KafkaConfig, topic: &str, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_projector-under-test"))
        .args(["publish", "--topic", topic])
        .arg(file)
        .env_clear()
        .env("KAFKA_BROKERS", &config.brokers)
        .output()
        .expect("run the publish command")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_command_fails_on_skipped_lines() {
    let broker = KafkaBroker::start();
    let config = fresh_config(&broker, &["users"], 1).await;
    let topic = &config.topics[0];
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{}", user_created("cli-1", "Cli One")).unwrap();
    writeln!(file, "{{\"subject\": 42}}").unwrap();
    writeln!(file, "{}", user_created("cli-2", "Cli Two")).unwrap();

    let output = publish_command(&config, topic, file.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "publish succeeded despite a skipped line"
    );
    assert!(stdout.contains("published 2 events"), "stdout: {stdout}");
    assert!(
        stderr.contains(":2: skipped: no \"subject\" string"),
        "stderr: {stderr}"
    );

    // The valid lines were still sent.
    let records = read_records(&broker, topic, 2).await;
    let keys: Vec<&[u8]> = records.iter().map(|record| record.key().unwrap()).collect();
    assert_eq!(keys, [b"cli-1".as_slice(), b"cli-2".as_slice()]);
}

#[test]
fn run_command_reports_invalid_settings() {
    let output = Command::new(env!("CARGO_BIN_EXE_projector-under-test"))
        .arg("run")
        .env_clear()
        .env("PROJECTOR_BATCH_SIZE", "0")
        .output()
        .expect("run the projector binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("KAFKA_BROKERS"), "stderr: {stderr}");
    assert!(stderr.contains("PROJECTOR_BATCH_SIZE=\"0\""), "stderr: {stderr}");
}

/// Returns a fixed instant in the past, so every time-based fact of the demo data
/// (upcoming classes, live subscriptions) is settled and the projector's
/// render matches the test's render whenever each happens.
fn demo_time() -> DateTime<Utc> {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

/// `copies` renamed copies of the demo dataset: copy `k` prefixes user ids
/// and event ids with `c<k>-`, so each copy is a separate set of users.
fn demo_dataset(copies: usize) -> Vec<Value> {
    let base = demo::demo_events(demo_time());
    let mut events = Vec::with_capacity(base.len() * copies);
    for copy in 0..copies {
        for event in &base {
            let mut event = event.clone();
            event["subject"] = json!(format!("c{copy}-{}", subject(&event)));
            event["id"] = json!(format!("c{copy}-{}", event["id"].as_str().unwrap()));
            events.push(event);
        }
    }
    events
}

/// Returns the topic index of an event: users, bookings or subscriptions.
fn topic_index(event: &Value) -> usize {
    let event_type = event["type"].as_str().unwrap();
    match event_type.split('.').next().unwrap() {
        "user" => 0,
        "booking" => 1,
        "subscription" => 2,
        other => panic!("unexpected event family {other}"),
    }
}

/// Renders the documents of the pure fold over `events`, per user; `None`
/// where the fold renders nothing.
fn expected_bodies(events: &[Value]) -> BTreeMap<String, Option<Value>> {
    let decoder = Decoder::default();
    let mut by_user: HashMap<String, Vec<Event>> = HashMap::new();
    for raw in events {
        match decoder.decode_value(raw.clone()) {
            Ok(Decoded::Event(event)) => by_user.entry(event.user_id.clone()).or_default().push(event),
            other => panic!("demo event {} did not decode: {other:?}", raw["id"]),
        }
    }
    let options = RenderOptions::default();
    by_user
        .into_iter()
        .map(|(user_id, events)| {
            let state = fold::fold_all(FoldState::default(), &events);
            let body = fold::render(&user_id, &state, Utc::now(), &options)
                .map(|rendered| serde_json::to_value(&rendered.body).unwrap());
            (user_id, body)
        })
        .collect()
}

/// Lists the users whose stored document differs from `expected`.
async fn mismatched_users(store: &RedisStore, expected: &BTreeMap<String, Option<Value>>) -> Vec<String> {
    let mut mismatched = Vec::new();
    for (user_id, body) in expected {
        if session_body(store, user_id).await != *body {
            mismatched.push(user_id.clone());
        }
    }
    mismatched
}

/// Publishes `events` to their topics: one topic at a time, in `order`.
async fn publish_by_topic(
    producer: &FutureProducer,
    config: &KafkaConfig,
    events: &[Value],
    order: &[usize],
) {
    for &topic in order {
        for event in events.iter().filter(|event| topic_index(event) == topic) {
            send_structured(producer, &config.topics[topic], event).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_binary_projects_into_redis() {
    let broker = KafkaBroker::start();
    let redis = RedisServer::start();
    let config = fresh_config(&broker, &["users", "bookings", "subscriptions"], 2).await;
    let producer = broker.producer();
    let events = demo_dataset(1);

    // Subscriptions and bookings arrive before the users they belong to
    // (users go through the `publish` command), then everything arrives a
    // second time in another order.
    publish_by_topic(&producer, &config, &events, &[2, 1]).await;
    let mut users_file = tempfile::NamedTempFile::new().unwrap();
    for event in events.iter().filter(|event| topic_index(event) == 0) {
        writeln!(users_file, "{event}").unwrap();
    }
    let output = publish_command(&config, &config.topics[0], users_file.path());
    assert!(output.status.success(), "publish failed: {output:?}");
    publish_by_topic(&producer, &config, &events, &[0, 2, 1]).await;

    let projector = ProjectorProcess::start(&config, &redis.url(), 50);
    let store = RedisStore::new(RedisConfig::for_url(&redis.url()).unwrap()).unwrap();
    let expected = expected_bodies(&events);
    assert!(expected.len() >= 30, "the demo dataset has 30 users");

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mismatched = mismatched_users(&store, &expected).await;
        if mismatched.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "documents differ from the pure fold for {mismatched:?} after {WAIT:?}; projector log:\n{}",
            projector.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = 2 * events.len() as i64;
    wait_for_committed(&broker, &config.group_id, &config.topics, 2, total).await;

    let log = projector.log_text();
    let status = projector.terminate().await;
    assert!(
        status.success(),
        "projector exited with {status} after SIGTERM; log:\n{log}"
    );
    let dead_letters = broker.end_offsets(&config.dead_letter_topic, 1).await;
    assert_eq!(dead_letters, [0], "valid events were dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_projector_loses_nothing() {
    let broker = KafkaBroker::start();
    let redis = RedisServer::start();
    let config = fresh_config(&broker, &["users", "bookings", "subscriptions"], 2).await;
    let producer = broker.producer();
    let events = demo_dataset(8);
    publish_by_topic(&producer, &config, &events, &[1, 2, 0]).await;
    let expected = expected_bodies(&events);
    let store = RedisStore::new(RedisConfig::for_url(&redis.url()).unwrap()).unwrap();

    // Small batches make many commits, so the kill lands between some.
    let mut projector = ProjectorProcess::start(&config, &redis.url(), 10);
    let started = wait_until(WAIT, || async {
        !store.scan_user_ids().await.unwrap_or_default().is_empty()
    })
    .await;
    assert!(
        started,
        "the projector wrote nothing; log:\n{}",
        projector.log_text()
    );
    projector.kill();

    let committed_at_kill = committed_total(&broker, &config.group_id, &config.topics, 2).await;
    let total = events.len() as i64;
    assert!(
        committed_at_kill < total,
        "the projector committed all {total} records before the kill, so the kill tested nothing"
    );
    let mismatched_at_kill = mismatched_users(&store, &expected).await;
    assert!(
        !mismatched_at_kill.is_empty(),
        "every document was final before the kill"
    );

    // A new process in the same group replays from the committed offsets.
    let replacement = ProjectorProcess::start(&config, &redis.url(), 10);
    wait_for_committed(&broker, &config.group_id, &config.topics, 2, total).await;
    let mismatched = mismatched_users(&store, &expected).await;
    assert!(
        mismatched.is_empty(),
        "documents differ from the pure fold after the replay for {} users, e.g. {:?}; log:\n{}",
        mismatched.len(),
        &mismatched[..mismatched.len().min(5)],
        replacement.log_text()
    );
    let status = replacement.terminate().await;
    assert!(status.success(), "replacement exited with {status} after SIGTERM");
}
