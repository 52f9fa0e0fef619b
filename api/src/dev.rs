//! `dev` mode: the read API plus an in-process projector on embedded
//! defaults (in-memory store, in-process event log, demo data).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sessionfold_common::event::{Decoded, Decoder, Event};
use sessionfold_projector::dead_letter::{DeadLetter, MemoryDeadLetters};
use sessionfold_projector::log::EventLog;
use sessionfold_projector::ndjson::{self, Partitioned};
use sessionfold_projector::pipeline::{self, DEFAULT_BATCH_SIZE};
use sessionfold_projector::source::EventSource;
use sessionfold_projector::source::Record;
use sessionfold_projector::{BatchReport, Projector};
use tracing::{error, info, warn};

/// How long `POST /dev/events` waits for its events to be projected.
pub const PROJECTION_WAIT: Duration = Duration::from_secs(10);

/// The dev-only parts the `/dev/*` routes use.
pub struct DevHandle {
    pub log: Arc<EventLog>,
    pub dead_letters: Arc<MemoryDeadLetters>,
    pub decoder: Decoder,
    /// The engine's counters over every batch projected so far.
    totals: Arc<Mutex<BatchReport>>,
    ingest_turn: tokio::sync::Mutex<()>,
}

/// The outcome of ingesting a set of records.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReport {
    /// Events that decoded and were appended to the log. Duplicates and
    /// events older than the projection's state count here too: the fold
    /// takes them and changes nothing.
    pub accepted: usize,
    /// Accepted events that changed the projection.
    pub applied: usize,
    /// Accepted events that changed nothing: duplicates, events older than
    /// what the projection holds, and events for a deleted user.
    pub stale: usize,
    /// Events of unknown types, skipped.
    pub skipped: Vec<Skipped>,
    /// Events that failed to decode, with the reason.
    pub rejected: Vec<DeadLetter>,
    /// False when projection did not finish within the wait.
    pub projected: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub origin: String,
    pub event_type: String,
}

impl DevHandle {
    /// Starts the in-process projector over a new event log: the log is
    /// read like a Kafka partition and every batch goes through the
    /// production engine (`Projector::project`, retried like the pipeline).
    pub fn start(projector: Projector) -> Arc<Self> {
        let log = EventLog::new();
        let dead_letters = Arc::new(MemoryDeadLetters::new(1000));
        let totals = Arc::new(Mutex::new(BatchReport::default()));

        let mut source = log.source();
        let batch_totals = Arc::clone(&totals);
        tokio::spawn(async move {
            loop {
                let batch = match source.next_batch(DEFAULT_BATCH_SIZE).await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(err) => {
                        error!(error = %err, "dev projector stopped: event log failed");
                        break;
                    }
                };
                let events: Vec<Event> = batch
                    .records
                    .into_iter()
                    .filter_map(|record| match record.decoded {
                        Ok(Decoded::Event(event)) => Some(event),
                        _ => None,
                    })
                    .collect();
                match pipeline::project_with_retry(&projector, &events).await {
                    // Totals first, then the commit that wakes the waiters.
                    Ok(report) => batch_totals.lock().expect("dev totals lock").add(&report),
                    Err(err) => {
                        error!(error = %err, "dev projector failed");
                        break;
                    }
                }
                if let Err(err) = source.commit(batch.checkpoint).await {
                    error!(error = %err, "dev projector cannot commit");
                    break;
                }
            }
            info!("dev projector stopped");
        });

        Arc::new(Self {
            log,
            dead_letters,
            decoder: Decoder::default(),
            totals,
            ingest_turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Appends the decodable records to the log, waits for their projection,
    /// and reports skips and rejections (which also go to the dead letters).
    pub async fn ingest(&self, records: Vec<Record>) -> IngestReport {
        let Partitioned {
            events,
            skipped,
            rejected,
        } = ndjson::partition(records);

        let mut report = IngestReport::default();
        for (origin, error) in rejected {
            warn!(origin, event_id = error.event_id.as_deref().unwrap_or("-"), reason = %error, "event rejected");
            let letter = DeadLetter::new(&origin, &error);
            self.dead_letters.push(letter.clone());
            report.rejected.push(letter);
        }
        for (origin, event_type) in skipped {
            info!(origin, event_type, "skipping event of unknown type");
            report.skipped.push(Skipped { origin, event_type });
        }

        // One ingest at a time, so the engine's counters between the append
        // and its projection belong to this request alone.
        let _turn = self.ingest_turn.lock().await;
        let before = *self.totals.lock().expect("dev totals lock");
        report.accepted = events.len();
        let position = self.log.append(events);
        report.projected = self.log.wait_projected(position, PROJECTION_WAIT).await;
        let after = *self.totals.lock().expect("dev totals lock");
        report.applied = after.applied - before.applied;
        report.stale =
            (after.stale - before.stale) + (after.dropped_for_deleted_user - before.dropped_for_deleted_user);
        report
    }

    /// Decodes a request body (NDJSON or a JSON array) and ingests it.
    pub async fn ingest_body(&self, body: &[u8]) -> IngestReport {
        let records = ndjson::read_body(body, &self.decoder);
        self.ingest(records).await
    }
}

/// Mints HS256 access tokens for dev mode with the dev secret, honouring
/// `JWT_ISSUER` and the first `JWT_AUDIENCE` value.
pub struct TokenMinter {
    key: jsonwebtoken::EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Lifetime of dev tokens.
pub const DEV_TOKEN_TTL: chrono::Duration = chrono::Duration::hours(12);

impl TokenMinter {
    pub fn new(secret: &str, jwt: &crate::config::JwtSettings) -> Self {
        Self {
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.first().cloned(),
        }
    }

    pub fn mint(&self, user_id: &str, token_version: u64) -> String {
        let now = chrono::Utc::now();
        let mut claims = serde_json::json!({
            "sub": user_id,
            "iat": now.timestamp(),
            "exp": (now + DEV_TOKEN_TTL).timestamp(),
            "tv": token_version,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(issuer) = &self.issuer {
            claims["iss"] = serde_json::json!(issuer);
        }
        if let Some(audience) = &self.audience {
            claims["aud"] = serde_json::json!(audience);
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.key,
        )
        .expect("HS256 signing with an in-memory key cannot fail")
    }
}
