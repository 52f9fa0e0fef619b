//! MongoDB change streams as an event source (`run --source mongo`).
//!
//! - [`change`]: change events -> the typed events the fold takes (pure).
//! - [`resume`]: where to reopen after a failure (pure state machine).
//! - [`checkpoint`]: resume tokens and the rebuild marker in Redis.
//! - [`source`]: the `EventSource` over a database-level change stream.
//!
//! Requires a replica set or sharded cluster (change streams do not exist
//! on a standalone server) and MongoDB 6.0 or later for pre-images of
//! deleted documents.

pub mod change;
pub mod checkpoint;
pub mod resume;
pub mod source;

pub use checkpoint::{CheckpointStore, MemoryCheckpoints, RedisCheckpoints};
pub use source::{LogDeadLetters, MongoChangeSource};
