//! `publish`: produce NDJSON CloudEvents to a topic, keyed by `subject`.
//!
//! Structured mode sends each line unchanged as the record value with
//! `content-type: application/cloudevents+json`. Binary mode moves every
//! attribute except `data` into a `ce_<attribute>` header (`datacontenttype`
//! becomes `content-type`, as the CloudEvents Kafka binding has it) and sends
//! `data` alone as the value.

use std::collections::VecDeque;
use std::io::BufRead;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::{Map, Value};

use super::ProducerLogContext;

/// Records awaiting their delivery report at once; bounds memory on large
/// files while keeping the producer's batches full.
const MAX_IN_FLIGHT: usize = 10_000;
/// Pause before retrying a record when librdkafka's local queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(10);

/// The CloudEvents mode `publish` encodes each event in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublishMode {
    /// The whole event as the record value.
    #[default]
    Structured,
    /// Attributes as `ce_*` headers, `data` as the value.
    Binary,
}

/// A line that was not sent, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    pub reason: String,
}

/// The outcome of one `publish` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Records the broker acknowledged.
    pub sent: usize,
    /// Lines skipped before sending: not JSON, or no `subject`.
    pub skipped: Vec<LineProblem>,
    /// Lines the broker did not acknowledge.
    pub failed: Vec<LineProblem>,
}

impl PublishReport {
    /// Returns whether every non-blank line was sent and acknowledged.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty() && self.failed.is_empty()
    }
}

/// Creates a producer for `publish` that waits for all in-sync replicas.
pub fn producer(brokers: &str) -> Result<FutureProducer<ProducerLogContext>, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "sessionfold-publish")
        .set("acks", "all")
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(ProducerLogContext)
}

/// One event ready to produce.
struct Outgoing {
    key: String,
    value: Vec<u8>,
    headers: OwnedHeaders,
}

/// Produces each non-blank line of `input` to `topic` and waits for every
/// delivery report. Lines that are not JSON objects with a string `subject`
/// are skipped and reported; the rest are still sent. Fails only when
/// reading `input` fails.
pub async fn publish<C>(
    producer: &FutureProducer<C>,
    topic: &str,
    mode: PublishMode,
    input: impl BufRead,
) -> std::io::Result<PublishReport>
where
    C: rdkafka::ClientContext + 'static,
{
    let mut report = PublishReport::default();
    let mut in_flight: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();

    for (index, line) in input.split(b'\n').enumerate() {
        let line_number = index + 1;
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let outgoing = match encode_line(line, mode) {
            Ok(outgoing) => outgoing,
            Err(reason) => {
                report.skipped.push(LineProblem {
                    line: line_number,
                    reason,
                });
                continue;
            }
        };

        let delivery = enqueue(producer, topic, &outgoing, &mut in_flight, &mut report).await;
        match delivery {
            Ok(delivery) => in_flight.push_back((line_number, delivery)),
            Err(error) => report.failed.push(LineProblem {
                line: line_number,
                reason: error.to_string(),
            }),
        }
        if in_flight.len() >= MAX_IN_FLIGHT {
            await_oldest(&mut in_flight, &mut report).await;
        }
    }

    while !in_flight.is_empty() {
        await_oldest(&mut in_flight, &mut report).await;
    }
    Ok(report)
}

/// Hands one record to librdkafka, waiting for deliveries to free the local
/// queue while it is full.
async fn enqueue<C>(
    producer: &FutureProducer<C>,
    topic: &str,
    outgoing: &Outgoing,
    in_flight: &mut VecDeque<(usize, DeliveryFuture)>,
    report: &mut PublishReport,
) -> Result<DeliveryFuture, KafkaError>
where
    C: rdkafka::ClientContext + 'static,
{
    loop {
        let record = FutureRecord::to(topic)
            .key(outgoing.key.as_str())
            .payload(outgoing.value.as_slice())
            .headers(outgoing.headers.clone());
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                if in_flight.is_empty() {
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                } else {
                    await_oldest(in_flight, report).await;
                }
            }
            Err((error, _)) => return Err(error),
        }
    }
}

async fn await_oldest(in_flight: &mut VecDeque<(usize, DeliveryFuture)>, report: &mut PublishReport) {
    let Some((line, delivery)) = in_flight.pop_front() else {
        return;
    };
    match delivery.await {
        Ok(Ok(_)) => report.sent += 1,
        Ok(Err((error, _message))) => report.failed.push(LineProblem {
            line,
            reason: error.to_string(),
        }),
        Err(_canceled) => report.failed.push(LineProblem {
            line,
            reason: "the producer was dropped before the delivery report".to_owned(),
        }),
    }
}

/// Builds the record for one line, or the reason it is skipped.
fn encode_line(line: &[u8], mode: PublishMode) -> Result<Outgoing, String> {
    let value: Value = serde_json::from_slice(line).map_err(|err| format!("not valid JSON: {err}"))?;
    let Value::Object(event) = value else {
        return Err("not a JSON object".to_owned());
    };
    let key = match event.get("subject") {
        Some(Value::String(subject)) if !subject.is_empty() => subject.clone(),
        _ => return Err("no \"subject\" string (it is the Kafka key)".to_owned()),
    };

    match mode {
        PublishMode::Structured => Ok(Outgoing {
            key,
            value: line.to_vec(),
            headers: OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some("application/cloudevents+json"),
            }),
        }),
        PublishMode::Binary => Ok(encode_binary(key, event)),
    }
}

fn encode_binary(key: String, mut event: Map<String, Value>) -> Outgoing {
    // An event without `data` gets an empty value; the consumer rejects it
    // like any event that breaks the contract.
    let value = match event.remove("data") {
        Some(data) => serde_json::to_vec(&data).expect("a JSON value serializes"),
        None => Vec::new(),
    };
    let mut headers = OwnedHeaders::new_with_capacity(event.len());
    for (attribute, value) in &event {
        // Header values are strings; other JSON values keep their JSON text.
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let name = if attribute == "datacontenttype" {
            "content-type".to_owned()
        } else {
            format!("ce_{attribute}")
        };
        headers = headers.insert(Header {
            key: &name,
            value: Some(&text),
        });
    }
    Outgoing { key, value, headers }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    fn header_pairs(headers: &OwnedHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|header| {
                let value = String::from_utf8(header.value.unwrap_or_default().to_vec()).unwrap();
                (header.key.to_owned(), value)
            })
            .collect()
    }

    const EVENT: &str = r#"{"specversion":"1.0","id":"e1","source":"/s","type":"user.verified","subject":"u1","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{"version":2}}"#;

    #[test]
    fn structured_line_is_sent_unchanged() {
        let outgoing = encode_line(EVENT.as_bytes(), PublishMode::Structured).unwrap();
        assert_eq!(outgoing.key, "u1");
        assert_eq!(outgoing.value, EVENT.as_bytes());
        assert_eq!(
            header_pairs(&outgoing.headers),
            [(
                "content-type".to_owned(),
                "application/cloudevents+json".to_owned()
            )]
        );
    }

    #[test]
    fn binary_line_moves_attributes_to_headers() {
        let outgoing = encode_line(EVENT.as_bytes(), PublishMode::Binary).unwrap();
        assert_eq!(outgoing.key, "u1");
        assert_eq!(outgoing.value, br#"{"version":2}"#);
        let headers = header_pairs(&outgoing.headers);
        assert!(headers.contains(&("ce_specversion".to_owned(), "1.0".to_owned())));
        assert!(headers.contains(&("ce_id".to_owned(), "e1".to_owned())));
        assert!(headers.contains(&("ce_subject".to_owned(), "u1".to_owned())));
        assert!(headers.contains(&("content-type".to_owned(), "application/json".to_owned())));
        assert!(!headers.iter().any(|(name, _)| name == "ce_data"));
    }

    #[test]
    fn line_without_subject_is_skipped() {
        let reason = encode_line(br#"{"id":"e1"}"#, PublishMode::Structured)
            .err()
            .unwrap();
        assert!(reason.contains("subject"), "{reason}");
    }

    #[test]
    fn line_that_is_not_json_is_skipped() {
        let reason = encode_line(b"{oops", PublishMode::Structured).err().unwrap();
        assert!(reason.starts_with("not valid JSON"), "{reason}");
        let reason = encode_line(b"[1,2]", PublishMode::Binary).err().unwrap();
        assert_eq!(reason, "not a JSON object");
    }
}
