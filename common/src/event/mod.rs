//! The event contract: CloudEvents envelopes, payload schemas and typed events.

pub mod decode;
pub mod payload;
pub mod schema;

pub use decode::{DecodeError, DecodeProblem, Decoded, Decoder};
pub use payload::{Event, EventKind, Role};
