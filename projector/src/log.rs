//! The in-process event log of `dev` mode: an append-only list of decoded
//! events that the projector consumes like a Kafka partition, and that the
//! embedded source of truth reads to assemble a session from scratch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sessionfold_common::event::{Decoded, Event};
use tokio::sync::watch;

use crate::source::{Batch, EventSource, RawRecord, Record, SourceError};

#[derive(Default)]
struct Entries {
    events: Vec<Event>,
    /// Positions of each user's events in `events`, for live assembly.
    by_user: HashMap<String, Vec<usize>>,
}

/// Append-only in-memory event log. Positions count from 0; "projected up
/// to N" means events `0..N` are in the projection store.
pub struct EventLog {
    entries: Mutex<Entries>,
    appended: watch::Sender<usize>,
    projected: watch::Sender<usize>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            appended: watch::Sender::new(0),
            projected: watch::Sender::new(0),
        }
    }
}

impl EventLog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Appends events; returns the log length after the append.
    pub fn append(&self, events: impl IntoIterator<Item = Event>) -> usize {
        let mut entries = self.entries.lock().expect("event log lock");
        for event in events {
            let position = entries.events.len();
            entries
                .by_user
                .entry(event.user_id.clone())
                .or_default()
                .push(position);
            entries.events.push(event);
        }
        let length = entries.events.len();
        drop(entries);
        self.appended.send_replace(length);
        length
    }

    pub fn len(&self) -> usize {
        *self.appended.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns every event of one user, in append order.
    pub fn events_for_user(&self, user_id: &str) -> Vec<Event> {
        let entries = self.entries.lock().expect("event log lock");
        entries
            .by_user
            .get(user_id)
            .map(|positions| positions.iter().map(|&i| entries.events[i].clone()).collect())
            .unwrap_or_default()
    }

    /// Ids of every user that has events, sorted.
    pub fn user_ids(&self) -> Vec<String> {
        let entries = self.entries.lock().expect("event log lock");
        let mut ids: Vec<String> = entries.by_user.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn read(&self, from: usize, max: usize) -> Vec<Event> {
        let entries = self.entries.lock().expect("event log lock");
        let end = entries.events.len().min(from + max);
        entries.events[from.min(end)..end].to_vec()
    }

    fn mark_projected(&self, position: usize) {
        self.projected.send_replace(position);
    }

    /// Waits until events up to `position` are projected, or `timeout` passes;
    /// returns whether they were.
    pub async fn wait_projected(&self, position: usize, timeout: Duration) -> bool {
        let mut projected = self.projected.subscribe();
        tokio::time::timeout(timeout, projected.wait_for(|&done| done >= position))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Returns a source that reads this log from the start.
    pub fn source(self: &Arc<Self>) -> LogSource {
        LogSource {
            log: Arc::clone(self),
            cursor: 0,
            appended: self.appended.subscribe(),
        }
    }
}

/// Reads an [`EventLog`] like one Kafka partition; commits mark it projected.
pub struct LogSource {
    log: Arc<EventLog>,
    cursor: usize,
    appended: watch::Receiver<usize>,
}

#[async_trait]
impl EventSource for LogSource {
    /// The log position after the batch.
    type Checkpoint = usize;

    async fn next_batch(&mut self, max_records: usize) -> Result<Option<Batch<usize>>, SourceError> {
        let cursor = self.cursor;
        self.appended
            .wait_for(|&length| length > cursor)
            .await
            .map_err(|_| SourceError::Failed("event log dropped".to_owned()))?;
        let events = self.log.read(cursor, max_records);
        self.cursor += events.len();
        let records = events
            .into_iter()
            .enumerate()
            .map(|(offset, event)| Record {
                origin: format!("event-log@{}", cursor + offset),
                decoded: Ok(Decoded::Event(event)),
                raw: RawRecord::default(),
            })
            .collect();
        Ok(Some(Batch {
            records,
            checkpoint: self.cursor,
        }))
    }

    async fn commit(&mut self, checkpoint: usize) -> Result<(), SourceError> {
        self.log.mark_projected(checkpoint);
        Ok(())
    }
}

/// The embedded source of truth of `dev` mode: a user's session assembled by
/// folding every event the log holds for them.
#[async_trait]
impl sessionfold_common::source::SourceOfTruth for EventLog {
    async fn load_state(
        &self,
        user_id: &str,
    ) -> Result<Option<sessionfold_common::fold::FoldState>, sessionfold_common::source::SourceOfTruthError>
    {
        let events = self.events_for_user(user_id);
        if events.is_empty() {
            return Ok(None);
        }
        let state = sessionfold_common::fold::fold_all(Default::default(), &events);
        Ok(state.has_user().then_some(state))
    }
}
