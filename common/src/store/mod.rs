//! Projection stores: where fold state and session documents live.
//!
//! A user has two values in one store, kept side by side (in Redis, in one
//! hash slot): the fold state with its revision, and the session document the
//! API serves. Every projection write is a compare-and-set on the state
//! revision, so several writers (projector instances, `replay`) never
//! lose an update. A backfill from live assembly only creates a missing
//! document.
//!
//! - [`memory`]: in-process store for `dev` mode and tests.
//! - [`redis`]: Redis (one server or a cluster), shared by every process.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisConfig, RedisStore};

/// Fold state bytes as stored, with the revision a writer must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// Starts at 1 with the first write and grows by one per write.
    pub revision: u64,
    pub state: Bytes,
}

/// The effect of a projection write on the served document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentWrite {
    /// Store these document bytes.
    Put(Bytes),
    /// Remove the document (the user was deleted).
    Delete,
    /// Leave the document as it is: the fold state cannot render a document
    /// yet (no `user.created` seen), and a backfilled document may be serving.
    Keep,
}

/// One compare-and-set write of a user's projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionWrite {
    pub user_id: String,
    /// The revision the writer read; 0 when the user had no fold state.
    pub expected_revision: u64,
    pub state: Bytes,
    pub document: DocumentWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written {
        revision: u64,
    },
    /// Another writer got there first; reload, fold again and retry.
    Conflict {
        current_revision: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or timed out: retry later.
    #[error("projection store unavailable: {0}")]
    Unavailable(String),
    /// The store returned a reply this build cannot use.
    #[error("projection store returned an unexpected reply: {0}")]
    Protocol(String),
}

/// Capacity of invalidation channels: a reader that lags further behind
/// drops its whole cache instead (see the API's L1 cache).
pub const INVALIDATION_CHANNEL_CAPACITY: usize = 4096;

/// Storage for fold state and session documents; see the module docs.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Loads the fold state of each user, in the order of `user_ids`.
    async fn load_states(&self, user_ids: &[String]) -> Result<Vec<Option<StoredState>>, StoreError>;

    /// Applies each write if its expected revision still matches; one
    /// outcome per write, in order. Every write that changes a document
    /// notifies invalidation subscribers.
    async fn write_batch(&self, writes: &[ProjectionWrite]) -> Result<Vec<WriteOutcome>, StoreError>;

    /// Reads the stored session document of a user, if any.
    async fn get_document(&self, user_id: &str) -> Result<Option<Bytes>, StoreError>;

    /// Stores a document built by live assembly only if none exists; returns
    /// whether it was stored. Never overwrites a projected document.
    async fn backfill_document(&self, user_id: &str, document: Bytes) -> Result<bool, StoreError>;

    /// Removes the served documents of these users, keeping fold state (used
    /// by operators and tests to force live assembly).
    async fn delete_documents(&self, user_ids: &[String]) -> Result<(), StoreError>;

    /// A stream of user ids whose document changed, from any process that
    /// shares this store. The receiver gets every change made after this
    /// returns, until it reports `Lagged` or `Closed`. `Closed` means the
    /// store may have missed changes because its pub/sub connection dropped.
    /// The caller must then treat everything it cached as stale and
    /// subscribe again.
    /// Fails with `Unavailable` while the store cannot subscribe.
    async fn subscribe_invalidations(&self) -> Result<broadcast::Receiver<String>, StoreError>;
}
