//! Event sources and the records they yield.
//!
//! A source hands out batches of raw records, each already decoded (or
//! failed to decode), and takes a commit once the projector has stored every
//! write the batch caused. Commit order is what makes delivery
//! at-least-once: nothing is acknowledged before it is in the store.

use async_trait::async_trait;
use sessionfold_common::event::{DecodeError, Decoded};

/// The original bytes of a record, kept so a dead letter carries exactly
/// what the producer sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// One record from a source.
#[derive(Debug, Clone)]
pub struct Record {
    /// Origin of the record, for logs and dead letters, e.g.
    /// `events.ndjson:12` or `sessionfold.users/3@1042`.
    pub origin: String,
    pub decoded: Result<Decoded, DecodeError>,
    pub raw: RawRecord,
}

/// A batch of records and the opaque position to commit after it.
pub struct Batch<C> {
    pub records: Vec<Record>,
    pub checkpoint: C,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("event source unavailable: {0}")]
    Unavailable(String),
    #[error("event source failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait EventSource: Send {
    type Checkpoint: Send;

    /// Returns the next batch of at most `max_records`; `None` when the source has
    /// ended (a file read to its end). Long-running sources wait for records.
    async fn next_batch(
        &mut self,
        max_records: usize,
    ) -> Result<Option<Batch<Self::Checkpoint>>, SourceError>;

    /// Acknowledges everything up to `checkpoint`: its writes are stored.
    async fn commit(&mut self, checkpoint: Self::Checkpoint) -> Result<(), SourceError>;
}

/// Where records that cannot be decoded go, with the reason.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn send(&self, record: &Record, error: &DecodeError) -> Result<(), SourceError>;
}
