//! The source of truth: where live assembly reads a user's data when the
//! projection is missing or the projection store is down.
//!
//! A source returns fold state, not a document, so live assembly and the
//! projector share one render: for the same data they produce the same bytes.

use async_trait::async_trait;

use crate::fold::FoldState;

#[derive(Debug, thiserror::Error)]
pub enum SourceOfTruthError {
    #[error("source of truth unavailable: {0}")]
    Unavailable(String),
    #[error("source of truth timed out after {0} ms")]
    TimedOut(u64),
    #[error("source of truth returned invalid data for user {user_id}: {message}")]
    InvalidData { user_id: String, message: String },
}

#[async_trait]
pub trait SourceOfTruth: Send + Sync + 'static {
    /// Assembles the fold state of one user from the system of record;
    /// `None` when the user does not exist there.
    async fn load_state(&self, user_id: &str) -> Result<Option<FoldState>, SourceOfTruthError>;
}
