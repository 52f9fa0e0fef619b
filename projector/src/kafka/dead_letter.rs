//! The dead-letter topic: rejected records with their original bytes and
//! the reason.
//!
//! A dead letter keeps the original key, value and headers and adds:
//!
//! - `sf-dlq-reason`: the decode error as text,
//! - `sf-dlq-code`: its stable code (`not_json`, `invalid_envelope`, …),
//! - `sf-dlq-origin`: `topic/partition@offset` of the original record,
//! - `sf-dlq-event-id`: the CloudEvents id, when it could be read,
//! - `sf-dlq-value-omitted`: the original value size in bytes, only when the
//!   broker rejected the dead letter as too large and it was sent again
//!   without its value.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sessionfold_common::event::DecodeError;
use tracing::{info, warn};

use super::{KafkaConfig, ProducerLogContext};
use crate::source::{DeadLetterSink, Record, SourceError};

pub const HEADER_REASON: &str = "sf-dlq-reason";
pub const HEADER_CODE: &str = "sf-dlq-code";
pub const HEADER_ORIGIN: &str = "sf-dlq-origin";
pub const HEADER_EVENT_ID: &str = "sf-dlq-event-id";
pub const HEADER_VALUE_OMITTED: &str = "sf-dlq-value-omitted";

/// How long `send` waits for room in librdkafka's local queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `flush` waits for unsent dead letters at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes rejected records to the dead-letter topic.
pub struct KafkaDeadLetters {
    producer: FutureProducer<ProducerLogContext>,
    topic: String,
}

impl KafkaDeadLetters {
    /// Creates the producer. Connecting happens in the background, so this
    /// succeeds even while the brokers are unreachable.
    pub fn new(config: &KafkaConfig) -> Result<Self, SourceError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", "sessionfold-projector-dlq")
            .set("acks", "all")
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(ProducerLogContext)
            .map_err(|err| SourceError::Failed(format!("create the dead-letter producer: {err}")))?;
        Ok(Self {
            producer,
            topic: config.dead_letter_topic.clone(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits up to 10 seconds for dead letters still in librdkafka's queue.
    /// `send` already waits for each delivery, so this only matters after a
    /// cancelled send.
    pub async fn flush(&self) {
        let producer = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT)).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "dead-letter producer did not flush before shutdown"),
            Err(err) => warn!(error = %err, "dead-letter producer flush panicked"),
        }
    }

    async fn produce(
        &self,
        record: &Record,
        headers: OwnedHeaders,
        with_value: bool,
    ) -> Result<(), KafkaError> {
        let mut message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if with_value {
            message = message.payload(record.raw.payload.as_slice());
        }
        if let Some(key) = &record.raw.key {
            message = message.key(key.as_slice());
        }
        match self.producer.send(message, QUEUE_TIMEOUT).await {
            Ok(_delivery) => Ok(()),
            Err((error, _message)) => Err(error),
        }
    }
}

#[async_trait]
impl DeadLetterSink for KafkaDeadLetters {
    /// Produces the dead letter and returns once the broker has stored it,
    /// so the caller's later offset commit cannot overtake it.
    async fn send(&self, record: &Record, error: &DecodeError) -> Result<(), SourceError> {
        let headers = dead_letter_headers(record, error);
        let result = match self.produce(record, headers.clone(), true).await {
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                let size = record.raw.payload.len().to_string();
                warn!(
                    origin = %record.origin,
                    value_bytes = record.raw.payload.len(),
                    topic = %self.topic,
                    "dead letter too large for the broker; sending it without the original value"
                );
                let headers = headers.insert(Header {
                    key: HEADER_VALUE_OMITTED,
                    value: Some(&size),
                });
                self.produce(record, headers, false).await
            }
            other => other,
        };
        result.map_err(|err| {
            SourceError::Unavailable(format!(
                "write dead letter for {} to {}: {err}",
                record.origin, self.topic
            ))
        })?;
        info!(origin = %record.origin, code = error.code(), topic = %self.topic, "dead letter written");
        Ok(())
    }
}

/// Builds the dead letter's headers: the original ones, then `sf-dlq-*`.
pub fn dead_letter_headers(record: &Record, error: &DecodeError) -> OwnedHeaders {
    let reason = error.to_string();
    let mut headers = OwnedHeaders::new_with_capacity(record.raw.headers.len() + 4);
    for (name, value) in &record.raw.headers {
        headers = headers.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    headers = headers
        .insert(Header {
            key: HEADER_REASON,
            value: Some(&reason),
        })
        .insert(Header {
            key: HEADER_CODE,
            value: Some(error.code()),
        })
        .insert(Header {
            key: HEADER_ORIGIN,
            value: Some(&record.origin),
        });
    if let Some(event_id) = &error.event_id {
        headers = headers.insert(Header {
            key: HEADER_EVENT_ID,
            value: Some(event_id),
        });
    }
    headers
}
