//! sessionfold projector: folds change events into session documents.
//!
//! Layout:
//! - [`cli`]: the operator CLI, one file per subcommand.
//! - [`engine`]: fold a batch into the projection store with compare-and-set.
//! - [`source`]: the `EventSource` and `DeadLetterSink` traits and records.
//! - [`pipeline`]: the consume-fold-write loop shared by every source.
//! - [`log`]: the in-process event log of `dev` mode.
//! - [`demo`]: the generated demo dataset of `dev` mode.
//! - [`dead_letter`]: the in-memory dead-letter sink.
//! - [`ndjson`]: reading events from NDJSON files and request bodies.

pub mod cli;
pub mod dead_letter;
pub mod demo;
pub mod engine;
pub mod log;
pub mod ndjson;
pub mod pipeline;
pub mod source;

pub use engine::{BatchReport, Projector, ProjectorError};
