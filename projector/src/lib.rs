//! sessionfold projector: folds change events into session documents.
//!
//! Layout:
//! - [`cli`]: the operator CLI, one file per subcommand.
//! - [`engine`]: fold a batch into the projection store with compare-and-set.
//! - [`source`]: the `EventSource` and `DeadLetterSink` traits and records.
//! - [`pipeline`]: the consume-fold-write loop shared by every source.
//! - [`file_source`]: an NDJSON file as an event source, for `replay`.
//! - [`log`]: the in-process event log of `dev` mode.
//! - [`demo`]: the generated demo dataset of `dev` mode.
//! - [`demo_background`]: the embedded background source of `dev` mode
//!   (booking history, generated notifications and profiles).
//! - [`dead_letter`]: the in-memory dead-letter sink.
//! - [`ndjson`]: reading events from NDJSON files and request bodies.
//! - [`kafka`]: the Kafka event source, dead-letter topic and `publish`.
//! - [`mongo_stream`]: MongoDB change streams as an event source.

pub mod cli;
pub mod dead_letter;
pub mod demo;
pub mod demo_background;
pub mod engine;
pub mod file_source;
pub mod kafka;
pub mod log;
pub mod mongo_stream;
pub mod ndjson;
pub mod pipeline;
pub mod source;

pub use engine::{BatchReport, Projector, ProjectorError};
