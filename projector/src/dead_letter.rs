//! An in-memory dead-letter sink: keeps the most recent rejected records for
//! `dev` mode and tests. Production uses the Kafka dead-letter topic.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;
use sessionfold_common::event::DecodeError;

use crate::source::{DeadLetterSink, Record, SourceError};

/// A rejected record as reported to operators.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub origin: String,
    pub event_id: Option<String>,
    pub code: &'static str,
    pub reason: String,
}

impl DeadLetter {
    pub fn new(origin: &str, error: &DecodeError) -> Self {
        Self {
            origin: origin.to_owned(),
            event_id: error.event_id.clone(),
            code: error.code(),
            reason: error.problem.to_string(),
        }
    }
}

/// Keeps the last `capacity` dead letters; older ones are dropped (and were
/// logged when they arrived).
pub struct MemoryDeadLetters {
    capacity: usize,
    letters: Mutex<VecDeque<DeadLetter>>,
}

impl MemoryDeadLetters {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            letters: Mutex::new(VecDeque::new()),
        }
    }

    pub fn push(&self, letter: DeadLetter) {
        let mut letters = self.letters.lock().expect("dead letters lock");
        if letters.len() == self.capacity {
            letters.pop_front();
        }
        letters.push_back(letter);
    }

    pub fn list(&self) -> Vec<DeadLetter> {
        self.letters
            .lock()
            .expect("dead letters lock")
            .iter()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl DeadLetterSink for MemoryDeadLetters {
    async fn send(&self, record: &Record, error: &DecodeError) -> Result<(), SourceError> {
        self.push(DeadLetter::new(&record.origin, error));
        Ok(())
    }
}
