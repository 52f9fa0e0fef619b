//! Kafka adapters: the event source, the dead-letter topic and `publish`.
//!
//! # Delivery
//!
//! [`KafkaSource`] consumes with `enable.auto.commit=false` and
//! `enable.auto.offset.store=false`, so librdkafka never moves the group's
//! offset by itself. The pipeline commits a batch's checkpoint (the next
//! offset of every partition in the batch) only after the projection store
//! contains every write of the batch and every rejected record is in the
//! dead-letter topic. A crash at any point replays from the last commit, so
//! delivery is at-least-once; the fold ignores duplicates by entity version.
//!
//! # Ordering
//!
//! Producers key records by `subject` (the user id), so one user's events on
//! one topic stay in one partition and arrive in order. Nothing orders a
//! user's events across topics (users, bookings, subscriptions), and nothing
//! needs to: the fold is order-independent.
//!
//! # Rebalances
//!
//! librdkafka runs the rebalance callback inside `poll`, which only
//! [`KafkaSource::next_batch`] calls, so the assignment cannot change
//! between handing out a batch and committing it. The consumer context still
//! guards every case where a batch and a rebalance overlap:
//!
//! - On revoke, it first commits offsets that were stored but whose commit
//!   failed earlier, so the next owner resumes after them. It skips this when
//!   the assignment is already lost (the group moved on without us).
//! - Each assigned partition gets an assignment epoch. Records remember the
//!   epoch they were read under. When a revoke happens while a batch is
//!   being collected, `next_batch` drops the records of the revoked
//!   partitions: the next owner reads them again from the committed offset.
//! - `commit` filters the checkpoint to partitions that are still assigned
//!   under the same epoch, so offsets of a revoked partition are never
//!   committed afterwards, even if the partition came back to this consumer.
//! - A commit the broker rejects because the group is rebalancing is logged
//!   and dropped; the partition's next owner replays those records.
//!
//! The default eager protocol revokes every partition on each rebalance;
//! the same code handles the incremental lists of `cooperative-sticky`.

pub mod config;
pub mod dead_letter;
pub mod publish;
pub mod source;

use rdkafka::config::RDKafkaLogLevel;
use tracing::{debug, error, info, warn};

pub use config::KafkaConfig;
pub use dead_letter::KafkaDeadLetters;
pub use publish::{PublishMode, PublishReport, publish};
pub use source::{AssignmentView, KafkaCheckpoint, KafkaSource};

/// Forwards a librdkafka log line to `tracing`, so client logs share the
/// projector's format and filter (target `librdkafka`).
fn forward_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            error!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Warning => warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => info!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Debug => debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// A producer context that logs through `tracing`.
pub struct ProducerLogContext;

impl rdkafka::ClientContext for ProducerLogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        warn!(target: "librdkafka", error = %error, "Kafka producer error: {reason}");
    }
}
