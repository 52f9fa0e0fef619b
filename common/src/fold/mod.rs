//! The fold: events in, per-user fold state out, and the render of that state
//! into the served session body.
//!
//! - [`register`]: last-writer-wins registers keyed by entity version.
//! - [`state`]: the fold state of one user.
//! - [`apply`]: merging one event into the state (pure, no I/O).
//! - [`render`]: state + time -> session body and the instant it goes stale.

pub mod apply;
pub mod register;
pub mod render;
pub mod state;

pub use apply::{FoldEffect, apply, fold_all};
pub use render::{AccessFacts, RenderOptions, Rendered, SessionBody, render};
pub use state::FoldState;
