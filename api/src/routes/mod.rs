//! HTTP routes, one file per resource.

pub mod background;
pub mod dev;
pub mod health;
pub mod session;
