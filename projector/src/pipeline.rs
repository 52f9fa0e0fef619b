//! The consume-fold-write loop shared by every event source.

use std::time::Duration;

use sessionfold_common::event::Decoded;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::engine::{BatchReport, Projector, ProjectorError};
use crate::source::{DeadLetterSink, EventSource, SourceError};

/// Records per batch: large enough to amortise one store round trip over
/// many users, small enough to keep commit latency low.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// Backoff between retries of a failed store write: doubles from
/// [`RETRY_INITIAL`] up to [`RETRY_MAX`]. The batch is retried, never skipped.
pub const RETRY_INITIAL: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Totals over the life of a pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineReport {
    pub batches: usize,
    pub projection: BatchReport,
    /// Records of types this build does not know, skipped.
    pub unknown_types: usize,
    /// Records sent to the dead-letter sink.
    pub dead_letters: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("dead-letter sink failed: {0}")]
    DeadLetter(SourceError),
    #[error(transparent)]
    Projector(ProjectorError),
}

/// Runs `source` through `projector` until the source ends or `shutdown`
/// turns true. On shutdown the batch in hand is finished and committed first.
pub async fn run<S: EventSource>(
    source: &mut S,
    projector: &Projector,
    dead_letters: &dyn DeadLetterSink,
    batch_size: usize,
    mut shutdown: watch::Receiver<bool>,
) -> Result<PipelineReport, PipelineError> {
    let mut totals = PipelineReport::default();
    loop {
        if *shutdown.borrow() {
            info!("shutdown requested; pipeline stopping");
            return Ok(totals);
        }
        let batch = tokio::select! {
            batch = source.next_batch(batch_size) => batch?,
            _ = shutdown.changed() => continue,
        };
        let Some(batch) = batch else {
            info!(?totals, "event source ended");
            return Ok(totals);
        };

        let mut events = Vec::with_capacity(batch.records.len());
        for record in &batch.records {
            match &record.decoded {
                Ok(Decoded::Event(event)) => events.push(event.clone()),
                Ok(Decoded::UnknownType {
                    event_id,
                    event_type,
                    user_id,
                }) => {
                    totals.unknown_types += 1;
                    info!(origin = %record.origin, event_id, event_type, user_id, "skipping event of unknown type");
                }
                Err(decode_error) => {
                    warn!(
                        origin = %record.origin,
                        event_id = decode_error.event_id.as_deref().unwrap_or("-"),
                        reason = %decode_error,
                        "event rejected; sending to dead letters"
                    );
                    dead_letters
                        .send(record, decode_error)
                        .await
                        .map_err(PipelineError::DeadLetter)?;
                    totals.dead_letters += 1;
                }
            }
        }

        let report = project_with_retry(projector, &events).await?;
        totals.projection.add(&report);
        totals.batches += 1;
        source.commit(batch.checkpoint).await?;
    }
}

/// Projects a batch, retrying store outages with backoff until they pass:
/// skipping would lose events, and the fold makes the retry harmless.
pub async fn project_with_retry(
    projector: &Projector,
    events: &[sessionfold_common::event::Event],
) -> Result<BatchReport, PipelineError> {
    let mut delay = RETRY_INITIAL;
    let mut attempt = 1u32;
    loop {
        match projector.project(events).await {
            Ok(report) => {
                if attempt > 1 {
                    info!(attempt, "projection store reachable again; batch written");
                }
                return Ok(report);
            }
            Err(ProjectorError::Store(store_error)) => {
                error!(attempt, error = %store_error, retry_in_ms = delay.as_millis() as u64, "projection write failed; retrying the batch");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
                attempt += 1;
            }
            Err(other) => return Err(PipelineError::Projector(other)),
        }
    }
}
