//! Shared core of sessionfold: everything the projector and the API agree on.
//!
//! Layout:
//! - [`event`]: the CloudEvents contract, JSON Schema validation and typed decoding.
//! - [`fold`]: the pure fold from events to per-user fold state, and the
//!   render of that state into the served session body.
//! - [`document`]: the stored session document format (header line + body).
//! - [`permissions`]: the role permission policy.
//! - [`jwt`]: access token verification.
//! - [`store`]: the `ProjectionStore` trait and its adapters.
//! - [`source`]: the `SourceOfTruth` trait used by live assembly.
//! - [`background`]: the `BackgroundSource` trait behind the background
//!   endpoints (detailed profile, booking history, notifications).
//! - [`mongo`]: MongoDB, the system of record: queries, document mapping,
//!   live assembly, background reads and migrations.
//! - [`config`]: typed configuration from environment variables.

pub mod background;
pub mod config;
pub mod document;
pub mod event;
pub mod fold;
pub mod jwt;
pub mod mongo;
pub mod permissions;
pub mod source;
pub mod store;
