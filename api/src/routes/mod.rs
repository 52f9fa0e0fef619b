//! HTTP routes, one file per resource.

pub mod background;
pub mod dev;
pub mod fallback;
pub mod health;
pub mod session;
