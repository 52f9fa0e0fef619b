//! HTTP routes, one file per resource.

pub mod dev;
pub mod health;
pub mod session;
