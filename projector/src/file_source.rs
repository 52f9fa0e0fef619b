//! An NDJSON file as an event source: the records of a file, in batches, for
//! `replay`. The file is read whole at start; commits are no-ops because a
//! replay is repeated from the start (the fold makes that harmless).

use async_trait::async_trait;

use crate::source::{Batch, EventSource, Record, SourceError};

pub struct FileSource {
    records: std::vec::IntoIter<Record>,
}

impl FileSource {
    pub fn new(records: Vec<Record>) -> Self {
        Self {
            records: records.into_iter(),
        }
    }
}

#[async_trait]
impl EventSource for FileSource {
    type Checkpoint = ();

    async fn next_batch(&mut self, max_records: usize) -> Result<Option<Batch<()>>, SourceError> {
        let records: Vec<Record> = self.records.by_ref().take(max_records).collect();
        if records.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            records,
            checkpoint: (),
        }))
    }

    async fn commit(&mut self, _checkpoint: ()) -> Result<(), SourceError> {
        Ok(())
    }
}
