//! [`MongoChangeSource`]: a database-level change stream as an
//! [`EventSource`] for the projector pipeline.
//!
//! The checkpoint of a batch is the resume token after its last change.
//! The pipeline commits it once the batch is in the projection store, and
//! the commit writes it to Redis. After a restart or a failure the stream
//! reopens from the last committed token, so delivery is at-least-once and
//! the fold drops the duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use mongodb::Database;
use mongodb::bson::{Bson, Document};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::ResumeToken;
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};
use sessionfold_common::event::{DecodeError, DecodeProblem, Decoded};
use sessionfold_common::mongo::{error_code, queries};
use tracing::{debug, error, info, warn};

use super::change::{ChangeOutcome, events_from_change};
use super::checkpoint::{CheckpointError, CheckpointStore};
use super::resume::{Decision, Failure, ResumeState};
use crate::source::{Batch, DeadLetterSink, EventSource, RawRecord, Record, SourceError};

/// How long one `getMore` waits on the server for new changes.
pub const MAX_AWAIT: Duration = Duration::from_secs(1);
/// An idle stream still commits its advancing resume token this often, so
/// the stored token stays inside the oplog window during quiet periods.
pub const IDLE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// Attempts to store a resume token before the commit fails.
const COMMIT_ATTEMPTS: u32 = 5;

/// A change stream over one database, filtered to the collections the
/// session is built from.
pub struct MongoChangeSource {
    database: Database,
    stream_name: String,
    checkpoints: Arc<dyn CheckpointStore>,
    resume: ResumeState<ResumeToken>,
    stream: Option<ChangeStream<Document>>,
    /// An `invalidate` ended the stream after the batch just returned.
    invalidated: bool,
    last_commit: Instant,
}

impl MongoChangeSource {
    /// Loads the stored resume token of `stream_name`. An unreadable token
    /// is discarded and a rebuild is marked, because the stream must then
    /// start at the current time and changes since the token are lost.
    pub async fn start(
        database: Database,
        stream_name: &str,
        checkpoints: Arc<dyn CheckpointStore>,
    ) -> Result<Self, SourceError> {
        let token = match checkpoints.load(stream_name).await {
            Ok(token) => token,
            Err(CheckpointError::Corrupt(problem)) => {
                let reason = format!(
                    "the stored resume token is unreadable ({problem}); starting at the current time"
                );
                mark_rebuild(checkpoints.as_ref(), stream_name, &reason).await;
                discard(checkpoints.as_ref(), stream_name).await;
                None
            }
            Err(unavailable) => return Err(SourceError::Unavailable(unavailable.to_string())),
        };
        match &token {
            Some(_) => info!(
                stream = stream_name,
                "resuming the change stream from the stored token"
            ),
            None => info!(
                stream = stream_name,
                "no stored resume token; the change stream starts at the current time"
            ),
        }
        Ok(Self {
            database,
            stream_name: stream_name.to_owned(),
            checkpoints,
            resume: ResumeState::new(token),
            stream: None,
            invalidated: false,
            last_commit: Instant::now(),
        })
    }

    async fn open(&mut self) -> Result<(), mongodb::error::Error> {
        let stream = self
            .database
            .watch()
            .pipeline(queries::change_stream_pipeline())
            .full_document(FullDocumentType::UpdateLookup)
            .full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
            .max_await_time(MAX_AWAIT)
            .resume_after(self.resume.token().cloned())
            .await?;
        self.stream = Some(stream.with_type::<Document>());
        info!(stream = %self.stream_name, database = %self.database.name(), "change stream open");
        Ok(())
    }

    /// Acts on a failure as the resume state decides, then waits.
    async fn recover(&mut self, failure: Failure, error: String) {
        self.stream = None;
        match self.resume.on_failure(failure.clone()) {
            Decision::Reopen { after, .. } => {
                warn!(
                    stream = %self.stream_name,
                    ?failure,
                    error = %error,
                    retry_in_ms = after.as_millis() as u64,
                    resume_from_token = self.resume.token().is_some(),
                    "change stream failed; reopening it"
                );
                tokio::time::sleep(after).await;
            }
            Decision::Rebuild { reason, after } => {
                error!(
                    stream = %self.stream_name,
                    ?failure,
                    error = %error,
                    reason,
                    "change stream resume point lost; discarding the token, the projection needs a rebuild"
                );
                discard(self.checkpoints.as_ref(), &self.stream_name).await;
                mark_rebuild(self.checkpoints.as_ref(), &self.stream_name, &reason).await;
                tokio::time::sleep(after).await;
            }
        }
    }

    /// Reads changes until `max_records` records, a pause in the stream,
    /// or an `invalidate`. `Ok(None)` when idle with nothing to commit.
    async fn collect(
        &mut self,
        max_records: usize,
    ) -> Result<Option<Batch<Option<ResumeToken>>>, mongodb::error::Error> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let mut records = Vec::new();
        let mut checkpoint = None;
        let mut rebuild_reasons = Vec::new();
        loop {
            let Some(change) = stream.next_if_any().await? else {
                if checkpoint.is_some() {
                    break;
                }
                let token = stream.resume_token();
                let moved = token.is_some() && token.as_ref() != self.resume.token();
                if moved && self.last_commit.elapsed() >= IDLE_CHECKPOINT_INTERVAL {
                    checkpoint = token;
                    break;
                }
                if !stream.is_alive() {
                    return Err(mongodb::error::Error::custom(
                        "the change stream cursor was closed",
                    ));
                }
                continue;
            };
            let origin = origin(&change);
            match events_from_change(&change) {
                Ok(ChangeOutcome::Events(events)) => {
                    records.extend(events.into_iter().map(|event| Record {
                        origin: origin.clone(),
                        decoded: Ok(Decoded::Event(event)),
                        raw: RawRecord::default(),
                    }));
                }
                Ok(ChangeOutcome::Skip(reason)) => debug!(origin, reason, "change skipped"),
                Ok(ChangeOutcome::RebuildRequired(reason)) => rebuild_reasons.push(reason),
                Ok(ChangeOutcome::Invalidated) => {
                    // The token after an invalidate cannot be resumed from;
                    // keep the checkpoint of the change before it.
                    self.invalidated = true;
                    break;
                }
                Err(problem) => records.push(rejected(&change, origin, &problem)),
            }
            checkpoint = stream.resume_token();
            if records.len() >= max_records {
                break;
            }
        }
        for reason in rebuild_reasons {
            error!(stream = %self.stream_name, reason, "a change cannot be projected; the projection needs a rebuild");
            mark_rebuild(self.checkpoints.as_ref(), &self.stream_name, &reason).await;
        }
        if records.is_empty() && checkpoint.is_none() {
            return Ok(None);
        }
        Ok(Some(Batch { records, checkpoint }))
    }
}

#[async_trait]
impl EventSource for MongoChangeSource {
    /// The resume token after the batch; `None` when there is nothing new
    /// to store.
    type Checkpoint = Option<ResumeToken>;

    async fn next_batch(
        &mut self,
        max_records: usize,
    ) -> Result<Option<Batch<Self::Checkpoint>>, SourceError> {
        loop {
            if self.invalidated {
                self.invalidated = false;
                self.recover(Failure::Invalidated, "invalidate event".to_owned())
                    .await;
                continue;
            }
            if self.stream.is_none()
                && let Err(error) = self.open().await
            {
                self.recover(classify(&error), error.to_string()).await;
                continue;
            }
            match self.collect(max_records).await {
                Ok(Some(batch)) => return Ok(Some(batch)),
                Ok(None) => continue,
                Err(error) => self.recover(classify(&error), error.to_string()).await,
            }
        }
    }

    async fn commit(&mut self, checkpoint: Self::Checkpoint) -> Result<(), SourceError> {
        let Some(token) = checkpoint else {
            return Ok(());
        };
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=COMMIT_ATTEMPTS {
            match self.checkpoints.save(&self.stream_name, &token).await {
                Ok(()) => {
                    self.resume.on_commit(token);
                    self.last_commit = Instant::now();
                    return Ok(());
                }
                Err(error) if attempt < COMMIT_ATTEMPTS => {
                    warn!(stream = %self.stream_name, attempt, error = %error, "storing the resume token failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => return Err(SourceError::Unavailable(error.to_string())),
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// Classifies a driver error for the resume state machine. An error the
/// server returned carries a code. Everything else (I/O, server selection,
/// a closed cursor) tells nothing about the token, so it counts as network.
pub fn classify(error: &mongodb::error::Error) -> Failure {
    match error_code(error) {
        Some(code) => Failure::from_code(Some(code)),
        None => Failure::Network,
    }
}

/// `mongo:<db>.<collection>@<clusterTime seconds>.<increment>`, for logs.
fn origin(change: &Document) -> String {
    let namespace = change.get_document("ns").ok();
    let database = namespace.and_then(|ns| ns.get_str("db").ok()).unwrap_or("?");
    let collection = namespace.and_then(|ns| ns.get_str("coll").ok()).unwrap_or("?");
    match change.get("clusterTime") {
        Some(Bson::Timestamp(time)) => {
            format!("mongo:{database}.{collection}@{}.{}", time.time, time.increment)
        }
        _ => format!("mongo:{database}.{collection}"),
    }
}

/// Builds the record of a change whose document cannot be mapped. The raw payload
/// names the document but carries none of its fields (they may hold
/// personal data and end up in logs).
fn rejected(change: &Document, origin: String, problem: &super::change::ChangeError) -> Record {
    let user_id = change
        .get_document("fullDocument")
        .ok()
        .and_then(|document| document.get_str("userId").ok())
        .map(str::to_owned);
    let key = change
        .get_document("documentKey")
        .map(|key| Bson::Document(key.clone()).into_relaxed_extjson().to_string())
        .unwrap_or_default();
    Record {
        origin,
        decoded: Err(DecodeError {
            event_id: None,
            user_id,
            problem: DecodeProblem::Rule {
                field: problem.field(),
                message: problem.to_string(),
            },
        }),
        raw: RawRecord {
            key: None,
            payload: key.into_bytes(),
            headers: Vec::new(),
        },
    }
}

async fn mark_rebuild(checkpoints: &dyn CheckpointStore, stream: &str, reason: &str) {
    if let Err(error) = checkpoints
        .mark_rebuild_required(stream, reason, Utc::now())
        .await
    {
        error!(stream, reason, error = %error, "cannot store the rebuild marker; the rebuild is still required");
    }
}

async fn discard(checkpoints: &dyn CheckpointStore, stream: &str) {
    if let Err(error) = checkpoints.discard(stream).await {
        // A restart would then try the lost token once more and discard it again.
        error!(stream, error = %error, "cannot delete the lost resume token");
    }
}

/// The dead-letter sink of the MongoDB source. A document that cannot be
/// mapped stays in MongoDB, so the sink only logs the reason (never the
/// document) at error level. Fixing the document produces a new change.
#[derive(Default)]
pub struct LogDeadLetters {
    count: AtomicU64,
}

impl LogDeadLetters {
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl DeadLetterSink for LogDeadLetters {
    async fn send(&self, record: &Record, error: &DecodeError) -> Result<(), SourceError> {
        let total = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        error!(
            origin = %record.origin,
            user_id = error.user_id.as_deref().unwrap_or("-"),
            document_key = %String::from_utf8_lossy(&record.raw.payload),
            reason = %error.problem,
            total,
            "change cannot be projected; fix the document in MongoDB"
        );
        Ok(())
    }
}
