//! The Kafka event source. The [module docs](crate::kafka) describe how
//! commits, ordering and rebalances work.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use sessionfold_common::event::{DecodeError, Decoded, Decoder};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::KafkaConfig;
use crate::source::{Batch, EventSource, RawRecord, Record, SourceError};

/// Attempts of a failed offset commit before the source gives up on it
/// until the next batch. The offsets stay stored, and the next commit
/// includes them.
const COMMIT_ATTEMPTS: u32 = 5;
const COMMIT_RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Pause after a consumer error, so a broker outage does not spin the loop.
const CONSUMER_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A topic and partition.
type PartitionKey = (String, i32);

/// The partitions this consumer owns, each with the epoch it was assigned
/// in. An epoch identifies one assignment of a partition, so a partition
/// that is revoked and assigned again gets a new epoch.
#[derive(Debug, Default)]
struct Assignment {
    epochs: HashMap<PartitionKey, u64>,
    last_epoch: u64,
}

impl Assignment {
    fn assign(&mut self, partitions: &[PartitionKey]) {
        self.last_epoch += 1;
        for partition in partitions {
            self.epochs.insert(partition.clone(), self.last_epoch);
        }
    }

    fn revoke(&mut self, partitions: &[PartitionKey]) {
        for partition in partitions {
            self.epochs.remove(partition);
        }
    }

    fn epoch(&self, partition: &PartitionKey) -> Option<u64> {
        self.epochs.get(partition).copied()
    }

    /// Returns whether `partition` is still assigned under `epoch`.
    fn holds(&self, partition: &PartitionKey, epoch: u64) -> bool {
        self.epoch(partition) == Some(epoch)
    }
}

type SharedAssignment = Arc<Mutex<Assignment>>;

/// A read-only view of the partitions a [`KafkaSource`] owns, for health
/// checks and tests. It changes only while the source polls, inside
/// `next_batch` and `close`.
#[derive(Clone)]
pub struct AssignmentView(SharedAssignment);

impl AssignmentView {
    /// Returns the assigned (topic, partition) pairs, sorted.
    pub fn partitions(&self) -> Vec<(String, i32)> {
        let mut partitions: Vec<PartitionKey> = lock(&self.0).epochs.keys().cloned().collect();
        partitions.sort();
        partitions
    }
}

fn lock(assignment: &SharedAssignment) -> MutexGuard<'_, Assignment> {
    // The lock guards plain map updates that cannot panic halfway, so a
    // poisoned lock still holds a consistent assignment.
    assignment.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Consumer callbacks: rebalance bookkeeping and log forwarding.
pub struct SourceContext {
    assignment: SharedAssignment,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        super::forward_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(target: "librdkafka", error = %error, "Kafka consumer error: {reason}");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let partitions = partition_keys(list);
                if partitions.is_empty() {
                    return;
                }
                if consumer.assignment_lost() {
                    warn!(
                        partitions = %describe(&partitions),
                        "partitions lost (this consumer was removed from the group); not committing their offsets"
                    );
                } else {
                    commit_stored_before_revoke(consumer);
                }
                lock(&self.assignment).revoke(&partitions);
                info!(partitions = %describe(&partitions), "partitions revoked");
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                error!(error = %error, "consumer group rebalance failed; librdkafka rejoins the group");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partition_keys(list);
            lock(&self.assignment).assign(&partitions);
            info!(partitions = %describe(&partitions), "partitions assigned");
        }
    }
}

/// Commits offsets that were stored but not committed yet (an earlier
/// commit failed), so the next owner of the partitions resumes after them.
fn commit_stored_before_revoke(consumer: &BaseConsumer<SourceContext>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => info!("committed stored offsets before giving up partitions"),
        Err(error) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
        Err(error) => warn!(
            error = %error,
            "could not commit stored offsets before giving up partitions; their next owner replays those records"
        ),
    }
}

/// The next offset of each partition in a batch, with the assignment epoch
/// the batch read it under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaCheckpoint {
    positions: BTreeMap<PartitionKey, Position>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    next_offset: i64,
    epoch: u64,
}

impl KafkaCheckpoint {
    /// Returns the next offset per (topic, partition): what a commit would
    /// store.
    pub fn offsets(&self) -> BTreeMap<PartitionKey, i64> {
        self.positions
            .iter()
            .map(|(partition, position)| (partition.clone(), position.next_offset))
            .collect()
    }
}

/// A record read from Kafka, waiting for its batch to close.
struct Pending {
    record: Record,
    partition: PartitionKey,
    offset: i64,
    epoch: u64,
}

/// Consumes CloudEvents from Kafka topics as one member of a consumer group.
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<SourceContext>>,
    assignment: SharedAssignment,
    decoder: Decoder,
    batch_wait: Duration,
}

impl KafkaSource {
    /// Creates the consumer and subscribes to `config.topics`. Connecting
    /// and joining the group happen in the background, so this succeeds
    /// even while the brokers are unreachable.
    pub fn new(config: &KafkaConfig) -> Result<Self, SourceError> {
        let assignment = SharedAssignment::default();
        let context = SourceContext {
            assignment: Arc::clone(&assignment),
        };
        let consumer: StreamConsumer<SourceContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("client.id", "sessionfold-projector")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(context)
            .map_err(|err| SourceError::Failed(format!("create Kafka consumer: {err}")))?;

        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|err| SourceError::Failed(format!("subscribe to {}: {err}", topics.join(","))))?;

        Ok(Self {
            consumer: Arc::new(consumer),
            assignment,
            decoder: Decoder::new(config.max_event_bytes),
            batch_wait: config.batch_wait,
        })
    }

    pub fn assignment(&self) -> AssignmentView {
        AssignmentView(Arc::clone(&self.assignment))
    }

    /// Leaves the group cleanly: revokes the partitions (committing stored
    /// offsets first) and closes the consumer. Blocks a worker thread until
    /// librdkafka reports the consumer closed.
    pub async fn close(self) {
        let consumer = self.consumer;
        let closing = tokio::task::spawn_blocking(move || drop(consumer));
        if let Err(err) = closing.await {
            error!(error = %err, "closing the Kafka consumer panicked");
        } else {
            info!("Kafka consumer closed");
        }
    }

    /// Converts a message into a pending record; `None` when its partition
    /// is no longer assigned (a message fetched before a revoke).
    fn accept(&self, message: &BorrowedMessage<'_>) -> Option<Pending> {
        let partition = (message.topic().to_owned(), message.partition());
        let Some(epoch) = lock(&self.assignment).epoch(&partition) else {
            debug!(
                topic = %partition.0,
                partition = partition.1,
                offset = message.offset(),
                "skipping a record of a partition this consumer no longer owns"
            );
            return None;
        };

        // NOTE: `RawRecord` cannot tell a null header value or a null value
        // (tombstone) from an empty one, so dead letters carry them as empty.
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| (header.key.to_owned(), header.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        let raw = RawRecord {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        };
        let record = Record {
            origin: format!("{}/{}@{}", partition.0, partition.1, message.offset()),
            decoded: decode_record(&self.decoder, &raw),
            raw,
        };
        Some(Pending {
            record,
            partition,
            offset: message.offset(),
            epoch,
        })
    }

    /// Logs a consumer error and pauses briefly; fails only on errors that
    /// librdkafka reports as fatal.
    async fn handle_consumer_error(&self, error: KafkaError) -> Result<(), SourceError> {
        if let KafkaError::MessageConsumptionFatal(code) = error {
            return Err(SourceError::Failed(format!(
                "Kafka consumer failed fatally: {code}"
            )));
        }
        warn!(error = %error, "Kafka consumer error; librdkafka retries by itself");
        tokio::time::sleep(CONSUMER_ERROR_PAUSE).await;
        Ok(())
    }

    /// Closes a batch: drops records whose partition was revoked while the
    /// batch was collected, and computes the checkpoint of the rest.
    fn close_batch(&self, pending: Vec<Pending>) -> Batch<KafkaCheckpoint> {
        let assignment = lock(&self.assignment);
        let mut records = Vec::with_capacity(pending.len());
        let mut checkpoint = KafkaCheckpoint::default();
        let mut dropped = 0usize;
        for item in pending {
            if !assignment.holds(&item.partition, item.epoch) {
                dropped += 1;
                continue;
            }
            let position = checkpoint.positions.entry(item.partition).or_insert(Position {
                next_offset: item.offset + 1,
                epoch: item.epoch,
            });
            position.next_offset = position.next_offset.max(item.offset + 1);
            records.push(item.record);
        }
        if dropped > 0 {
            info!(
                dropped,
                "dropped records of partitions revoked while the batch was collected; their next owner reads them again"
            );
        }
        Batch { records, checkpoint }
    }
}

#[async_trait]
impl EventSource for KafkaSource {
    type Checkpoint = KafkaCheckpoint;

    /// Waits for a first record, then collects until `max_records` or until
    /// the batch wait has passed since the first record. Never returns
    /// `None`: a Kafka topic has no end.
    async fn next_batch(
        &mut self,
        max_records: usize,
    ) -> Result<Option<Batch<KafkaCheckpoint>>, SourceError> {
        let max_records = max_records.max(1);
        loop {
            let mut pending = Vec::new();
            while pending.is_empty() {
                match self.consumer.recv().await {
                    Ok(message) => pending.extend(self.accept(&message)),
                    Err(error) => self.handle_consumer_error(error).await?,
                }
            }

            let deadline = Instant::now() + self.batch_wait;
            while pending.len() < max_records {
                match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                    Err(_elapsed) => break,
                    Ok(Ok(message)) => pending.extend(self.accept(&message)),
                    Ok(Err(error)) => {
                        self.handle_consumer_error(error).await?;
                        break;
                    }
                }
            }

            let batch = self.close_batch(pending);
            if !batch.records.is_empty() {
                return Ok(Some(batch));
            }
        }
    }

    /// Stores and commits the checkpoint's offsets (`CommitMode::Sync`),
    /// leaving out partitions revoked since the batch was read.
    async fn commit(&mut self, checkpoint: KafkaCheckpoint) -> Result<(), SourceError> {
        let mut list = TopicPartitionList::new();
        {
            let assignment = lock(&self.assignment);
            for (partition, position) in &checkpoint.positions {
                if !assignment.holds(partition, position.epoch) {
                    info!(
                        topic = %partition.0,
                        partition = partition.1,
                        next_offset = position.next_offset,
                        "not committing a partition revoked since its batch was read; its next owner replays the records"
                    );
                    continue;
                }
                list.add_partition_offset(&partition.0, partition.1, Offset::Offset(position.next_offset))
                    .map_err(|err| SourceError::Failed(format!("build the offset list: {err}")))?;
            }
        }
        if list.count() == 0 {
            return Ok(());
        }

        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || store_and_commit(&consumer, &list))
            .await
            .map_err(|err| SourceError::Failed(format!("offset commit task failed: {err}")))?
    }
}

/// The handling of a failed commit, chosen by its error code.
enum CommitFailure {
    /// The stored offsets equal the committed ones.
    NothingToCommit,
    /// The group moved on; the partitions' next owner replays the records.
    Rebalancing,
    /// The group or topic denies this consumer: retrying cannot help.
    Denied,
    /// Broker or network trouble: retry.
    Transient,
}

fn classify_commit_error(error: &KafkaError) -> CommitFailure {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::NoOffset) => CommitFailure::NothingToCommit,
        Some(
            RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::StaleMemberEpoch
            | RDKafkaErrorCode::AssignmentLost
            | RDKafkaErrorCode::State,
        ) => CommitFailure::Rebalancing,
        Some(RDKafkaErrorCode::GroupAuthorizationFailed | RDKafkaErrorCode::TopicAuthorizationFailed) => {
            CommitFailure::Denied
        }
        _ => CommitFailure::Transient,
    }
}

/// Stores `list` as the consumer's offsets and commits them synchronously,
/// retrying broker trouble a few times. Runs on a blocking thread.
///
/// A commit that keeps failing is logged and not returned as an error: the
/// offsets stay stored, and the next batch's commit (or the revoke before
/// shutdown) commits them. Until then a crash replays the batch, which the
/// fold absorbs.
fn store_and_commit(
    consumer: &StreamConsumer<SourceContext>,
    list: &TopicPartitionList,
) -> Result<(), SourceError> {
    if let Err(error) = consumer.store_offsets(list) {
        // librdkafka rejects offsets of partitions that are not assigned, and
        // `commit` filtered those out. Should it fail anyway, the next owner
        // of the partitions replays the records.
        warn!(error = %error, "could not store offsets; their partitions' next owner replays the records");
        return Ok(());
    }

    let mut delay = COMMIT_RETRY_INITIAL;
    for attempt in 1..=COMMIT_ATTEMPTS {
        let error = match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        match classify_commit_error(&error) {
            CommitFailure::NothingToCommit => return Ok(()),
            CommitFailure::Rebalancing => {
                warn!(
                    error = %error,
                    "offset commit rejected because the group is rebalancing; the partitions' next owner replays these records"
                );
                return Ok(());
            }
            CommitFailure::Denied => {
                return Err(SourceError::Failed(format!("offset commit denied: {error}")));
            }
            CommitFailure::Transient if attempt == COMMIT_ATTEMPTS => {
                error!(
                    attempts = attempt,
                    error = %error,
                    "offset commit failed; the offsets stay stored and are committed with the next batch"
                );
                return Ok(());
            }
            CommitFailure::Transient => {
                warn!(
                    attempt,
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "offset commit failed; retrying"
                );
                std::thread::sleep(delay);
                delay *= 2;
            }
        }
    }
    Ok(())
}

/// Decodes a record in the CloudEvents mode its headers announce.
///
/// Binary mode when a `ce_specversion` header is present, unless the
/// `content-type` header is `application/cloudevents…` (structured mode by
/// the Kafka protocol binding). Everything else is decoded as structured
/// mode, so a record with neither header must be a whole CloudEvent.
pub fn decode_record(decoder: &Decoder, raw: &RawRecord) -> Result<Decoded, DecodeError> {
    if is_binary_mode(&raw.headers) {
        let headers = raw
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()));
        decoder.decode_binary(headers, &raw.payload)
    } else {
        decoder.decode_structured(&raw.payload)
    }
}

fn is_binary_mode(headers: &[(String, Vec<u8>)]) -> bool {
    const STRUCTURED_CONTENT_TYPE: &[u8] = b"application/cloudevents";
    let structured = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type")
            && value.len() >= STRUCTURED_CONTENT_TYPE.len()
            && value[..STRUCTURED_CONTENT_TYPE.len()].eq_ignore_ascii_case(STRUCTURED_CONTENT_TYPE)
    });
    !structured && headers.iter().any(|(name, _)| name == "ce_specversion")
}

fn partition_keys(list: &TopicPartitionList) -> Vec<PartitionKey> {
    list.elements()
        .iter()
        .map(|element| (element.topic().to_owned(), element.partition()))
        .collect()
}

/// `topic/partition` pairs for logs, such as `users/0,users/1`.
fn describe(partitions: &[PartitionKey]) -> String {
    partitions
        .iter()
        .map(|(topic, partition)| format!("{topic}/{partition}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, partition: i32) -> PartitionKey {
        (topic.to_owned(), partition)
    }

    fn header(name: &str, value: &str) -> (String, Vec<u8>) {
        (name.to_owned(), value.as_bytes().to_vec())
    }

    #[test]
    fn reassigned_partition_gets_new_epoch() {
        let mut assignment = Assignment::default();
        assignment.assign(&[key("users", 0), key("users", 1)]);
        let first = assignment.epoch(&key("users", 0)).unwrap();

        assignment.revoke(&[key("users", 0), key("users", 1)]);
        assert_eq!(assignment.epoch(&key("users", 0)), None);

        assignment.assign(&[key("users", 0)]);
        let second = assignment.epoch(&key("users", 0)).unwrap();
        assert_ne!(first, second);
        assert!(!assignment.holds(&key("users", 0), first));
        assert!(assignment.holds(&key("users", 0), second));
        assert!(!assignment.holds(&key("users", 1), first));
    }

    #[test]
    fn incremental_revoke_keeps_other_partitions() {
        let mut assignment = Assignment::default();
        assignment.assign(&[key("users", 0), key("bookings", 0)]);
        let epoch = assignment.epoch(&key("bookings", 0)).unwrap();
        assignment.revoke(&[key("users", 0)]);
        assert!(assignment.holds(&key("bookings", 0), epoch));
        assert_eq!(assignment.epoch(&key("users", 0)), None);
    }

    #[test]
    fn binary_mode_needs_specversion_header() {
        assert!(is_binary_mode(&[header("ce_specversion", "1.0")]));
        assert!(!is_binary_mode(&[header("ce_id", "1")]));
        assert!(!is_binary_mode(&[]));
    }

    #[test]
    fn cloudevents_content_type_means_structured() {
        let headers = [
            header("content-type", "Application/CloudEvents+json; charset=utf-8"),
            header("ce_specversion", "1.0"),
        ];
        assert!(!is_binary_mode(&headers));

        let headers = [
            header("content-type", "application/json"),
            header("ce_specversion", "1.0"),
        ];
        assert!(is_binary_mode(&headers));
    }

    #[test]
    fn commit_errors_are_classified() {
        let rebalancing = KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress);
        assert!(matches!(
            classify_commit_error(&rebalancing),
            CommitFailure::Rebalancing
        ));
        let nothing = KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset);
        assert!(matches!(
            classify_commit_error(&nothing),
            CommitFailure::NothingToCommit
        ));
        let denied = KafkaError::ConsumerCommit(RDKafkaErrorCode::GroupAuthorizationFailed);
        assert!(matches!(classify_commit_error(&denied), CommitFailure::Denied));
        let transport = KafkaError::ConsumerCommit(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(matches!(
            classify_commit_error(&transport),
            CommitFailure::Transient
        ));
    }
}
