//! In-process projection store for `dev` mode and tests. Same contract as
//! the Redis store: compare-and-set writes, create-only backfill, and an
//! invalidation channel.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

use super::*;

#[derive(Default)]
struct Entry {
    state: Option<StoredState>,
    document: Option<Bytes>,
}

pub struct MemoryStore {
    // A std mutex: every critical section is a few map operations and never
    // awaits, so an async mutex would only add overhead.
    entries: Mutex<HashMap<String, Entry>>,
    invalidations: broadcast::Sender<String>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let (invalidations, _) = broadcast::channel(INVALIDATION_CHANNEL_CAPACITY);
        Self {
            entries: Mutex::new(HashMap::new()),
            invalidations,
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// User ids that have a document, sorted; for dev tooling and tests.
    pub fn document_user_ids(&self) -> Vec<String> {
        let entries = self.entries.lock().expect("memory store lock");
        let mut ids: Vec<String> = entries
            .iter()
            .filter(|(_, entry)| entry.document.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    fn notify(&self, user_id: &str) {
        // No subscribers is normal (no API attached); nothing to do then.
        let _ = self.invalidations.send(user_id.to_owned());
    }
}

#[async_trait]
impl ProjectionStore for MemoryStore {
    async fn load_states(&self, user_ids: &[String]) -> Result<Vec<Option<StoredState>>, StoreError> {
        let entries = self.entries.lock().expect("memory store lock");
        Ok(user_ids
            .iter()
            .map(|id| entries.get(id).and_then(|entry| entry.state.clone()))
            .collect())
    }

    async fn write_batch(&self, writes: &[ProjectionWrite]) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut changed = Vec::new();
        {
            let mut entries = self.entries.lock().expect("memory store lock");
            for write in writes {
                let entry = entries.entry(write.user_id.clone()).or_default();
                let current = entry.state.as_ref().map_or(0, |state| state.revision);
                if current != write.expected_revision {
                    outcomes.push(WriteOutcome::Conflict {
                        current_revision: current,
                    });
                    continue;
                }
                let revision = current + 1;
                entry.state = Some(StoredState {
                    revision,
                    state: write.state.clone(),
                });
                match &write.document {
                    DocumentWrite::Put(document) => {
                        entry.document = Some(document.clone());
                        changed.push(write.user_id.clone());
                    }
                    DocumentWrite::Delete => {
                        entry.document = None;
                        changed.push(write.user_id.clone());
                    }
                    DocumentWrite::Keep => {}
                }
                outcomes.push(WriteOutcome::Written { revision });
            }
        }
        for user_id in changed {
            self.notify(&user_id);
        }
        Ok(outcomes)
    }

    async fn get_document(&self, user_id: &str) -> Result<Option<Bytes>, StoreError> {
        let entries = self.entries.lock().expect("memory store lock");
        Ok(entries.get(user_id).and_then(|entry| entry.document.clone()))
    }

    async fn backfill_document(&self, user_id: &str, document: Bytes) -> Result<bool, StoreError> {
        let mut entries = self.entries.lock().expect("memory store lock");
        let entry = entries.entry(user_id.to_owned()).or_default();
        if entry.document.is_some() {
            return Ok(false);
        }
        entry.document = Some(document);
        Ok(true)
    }

    async fn delete_documents(&self, user_ids: &[String]) -> Result<(), StoreError> {
        {
            let mut entries = self.entries.lock().expect("memory store lock");
            for user_id in user_ids {
                if let Some(entry) = entries.get_mut(user_id) {
                    entry.document = None;
                }
            }
        }
        for user_id in user_ids {
            self.notify(user_id);
        }
        Ok(())
    }

    async fn subscribe_invalidations(&self) -> Result<broadcast::Receiver<String>, StoreError> {
        Ok(self.invalidations.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(user_id: &str, expected_revision: u64, document: DocumentWrite) -> ProjectionWrite {
        ProjectionWrite {
            user_id: user_id.to_owned(),
            expected_revision,
            state: Bytes::from_static(b"{}"),
            document,
        }
    }

    #[tokio::test]
    async fn write_with_stale_revision_conflicts() {
        let store = MemoryStore::new();
        let first = store
            .write_batch(&[write("u", 0, DocumentWrite::Keep)])
            .await
            .unwrap();
        assert_eq!(first, vec![WriteOutcome::Written { revision: 1 }]);

        let stale = store
            .write_batch(&[write("u", 0, DocumentWrite::Keep)])
            .await
            .unwrap();
        assert_eq!(stale, vec![WriteOutcome::Conflict { current_revision: 1 }]);
    }

    #[tokio::test]
    async fn backfill_never_overwrites_a_document() {
        let store = MemoryStore::new();
        store
            .write_batch(&[write(
                "u",
                0,
                DocumentWrite::Put(Bytes::from_static(b"projected")),
            )])
            .await
            .unwrap();
        let stored = store
            .backfill_document("u", Bytes::from_static(b"assembled"))
            .await
            .unwrap();
        assert!(!stored);
        assert_eq!(store.get_document("u").await.unwrap().unwrap(), "projected");
    }

    #[tokio::test]
    async fn document_write_notifies_subscribers() {
        let store = MemoryStore::new();
        let mut invalidations = store.subscribe_invalidations().await.unwrap();
        store
            .write_batch(&[write("u", 0, DocumentWrite::Put(Bytes::from_static(b"doc")))])
            .await
            .unwrap();
        assert_eq!(invalidations.recv().await.unwrap(), "u");
    }
}
