//! The projector engine: fold a batch of events into the projection store.
//!
//! For each user in the batch: load the fold state, fold the user's events,
//! render the session document, and write both with one compare-and-set. A
//! conflict means another writer (a second projector, `replay`) got
//! there first; the engine reloads and folds again, which is safe because
//! the fold is order-independent and idempotent.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sessionfold_common::document::StoredDocument;
use sessionfold_common::event::Event;
use sessionfold_common::fold::{self, FoldState, RenderOptions};
use sessionfold_common::store::{DocumentWrite, ProjectionStore, ProjectionWrite, StoreError, WriteOutcome};
use tracing::{debug, error, warn};

/// Compare-and-set rounds before a batch gives up on a user. Each round
/// reloads only the users that conflicted, so this bounds contention on one
/// hot user, not the batch size.
pub const MAX_WRITE_ATTEMPTS: usize = 16;

/// Counters for one projected batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Events that changed at least one field.
    pub applied: usize,
    /// Duplicates and events older than what the state already holds.
    pub stale: usize,
    /// Fields where two different events claimed the same entity version.
    pub version_conflicts: usize,
    /// Events dropped because their user is deleted.
    pub dropped_for_deleted_user: usize,
    /// Users whose projection was written.
    pub users_written: usize,
    /// Compare-and-set conflicts that were retried.
    pub write_retries: usize,
}

impl BatchReport {
    pub fn add(&mut self, other: &BatchReport) {
        self.applied += other.applied;
        self.stale += other.stale;
        self.version_conflicts += other.version_conflicts;
        self.dropped_for_deleted_user += other.dropped_for_deleted_user;
        self.users_written += other.users_written;
        self.write_retries += other.write_retries;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("user {user_id}: compare-and-set still conflicting after {attempts} attempts")]
    Contention { user_id: String, attempts: usize },
}

/// Folds batches of events into a [`ProjectionStore`].
#[derive(Clone)]
pub struct Projector {
    store: Arc<dyn ProjectionStore>,
    options: RenderOptions,
    clock: fn() -> DateTime<Utc>,
}

impl Projector {
    pub fn new(store: Arc<dyn ProjectionStore>, options: RenderOptions) -> Self {
        Self {
            store,
            options,
            clock: Utc::now,
        }
    }

    /// Replaces the wall clock, for tests of time-based facts.
    pub fn with_clock(mut self, clock: fn() -> DateTime<Utc>) -> Self {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &Arc<dyn ProjectionStore> {
        &self.store
    }

    pub fn options(&self) -> &RenderOptions {
        &self.options
    }

    /// Projects `events` (any users, any order). Returns only once every
    /// write covering them is in the store, so a caller may then commit the
    /// source offsets (at-least-once delivery).
    pub async fn project(&self, events: &[Event]) -> Result<BatchReport, ProjectorError> {
        let mut by_user: HashMap<&str, Vec<&Event>> = HashMap::new();
        for event in events {
            by_user.entry(event.user_id.as_str()).or_default().push(event);
        }
        let mut pending: Vec<String> = by_user.keys().map(|id| (*id).to_owned()).collect();
        pending.sort();

        let mut report = BatchReport::default();
        for attempt in 1..=MAX_WRITE_ATTEMPTS {
            let states = self.store.load_states(&pending).await?;
            let now = (self.clock)();

            let mut writes = Vec::with_capacity(pending.len());
            let mut reports = Vec::with_capacity(pending.len());
            for (user_id, stored) in pending.iter().zip(states) {
                let user_events = &by_user[user_id.as_str()];
                if let Some((write, user_report)) = self.fold_user(user_id, stored, user_events, now) {
                    writes.push(write);
                    reports.push(user_report);
                } else {
                    // Nothing changed: count the events as stale, write nothing.
                    report.stale += user_events.len();
                }
            }
            if writes.is_empty() {
                return Ok(report);
            }

            let outcomes = self.store.write_batch(&writes).await?;
            let mut conflicted = Vec::new();
            for ((write, user_report), outcome) in writes.into_iter().zip(reports).zip(outcomes) {
                match outcome {
                    WriteOutcome::Written { revision } => {
                        debug!(user_id = %write.user_id, revision, "projection written");
                        report.add(&user_report);
                        report.users_written += 1;
                    }
                    WriteOutcome::Conflict { current_revision } => {
                        debug!(
                            user_id = %write.user_id,
                            expected = write.expected_revision,
                            current_revision,
                            attempt,
                            "projection write conflicted; folding again"
                        );
                        report.write_retries += 1;
                        conflicted.push(write.user_id);
                    }
                }
            }
            if conflicted.is_empty() {
                return Ok(report);
            }
            pending = conflicted;
        }
        Err(ProjectorError::Contention {
            user_id: pending.swap_remove(0),
            attempts: MAX_WRITE_ATTEMPTS,
        })
    }

    /// Folds one user's events onto the stored state; `None` when nothing
    /// changed and there is nothing to write.
    fn fold_user(
        &self,
        user_id: &str,
        stored: Option<sessionfold_common::store::StoredState>,
        events: &[&Event],
        now: DateTime<Utc>,
    ) -> Option<(ProjectionWrite, BatchReport)> {
        let (expected_revision, mut state) = match stored {
            None => (0, FoldState::default()),
            Some(stored) => (stored.revision, decode_state(user_id, &stored.state)),
        };

        let mut report = BatchReport::default();
        let mut changed = false;
        for event in events {
            let effect = fold::apply(&mut state, event);
            if effect.conflicts > 0 {
                warn!(
                    user_id,
                    event_id = %event.id,
                    version = event.version,
                    event_type = event.event_type(),
                    "two events claim the same entity version; resolved by event id"
                );
            }
            report.version_conflicts += effect.conflicts as usize;
            if effect.dropped_for_deleted_user {
                report.dropped_for_deleted_user += 1;
            } else if effect.changed {
                report.applied += 1;
            } else {
                report.stale += 1;
            }
            changed |= effect.changed;
        }
        if !changed && expected_revision != 0 {
            return None;
        }

        let revision = expected_revision + 1;
        let document = if state.deleted.is_some() {
            DocumentWrite::Delete
        } else {
            match fold::render(user_id, &state, now, &self.options) {
                Some(rendered) => {
                    DocumentWrite::Put(StoredDocument::from_rendered(&rendered, revision, now).encode())
                }
                None => DocumentWrite::Keep,
            }
        };
        let state = Bytes::from(serde_json::to_vec(&state).expect("fold state serializes"));
        let write = ProjectionWrite {
            user_id: user_id.to_owned(),
            expected_revision,
            state,
            document,
        };
        Some((write, report))
    }
}

/// Reads stored fold state. Unreadable state (written by an incompatible
/// build, or corrupted) restarts from empty rather than stalling the
/// projector on that user forever; replaying the user's events restores it.
// NOTE: no `rebuild` command restores a user from the source of truth yet.
pub fn decode_state(user_id: &str, bytes: &[u8]) -> FoldState {
    match serde_json::from_slice(bytes) {
        Ok(state) => state,
        Err(err) => {
            error!(user_id, error = %err, "stored fold state is unreadable; folding from empty state, replay this user's events to restore it");
            FoldState::default()
        }
    }
}
