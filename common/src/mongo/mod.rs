//! MongoDB, the system of record: what the service reads from it and how.
//!
//! - [`queries`]: every filter, projection, sort and pipeline, as pure
//!   functions.
//! - [`fields`]: typed field reads with errors naming collection, id and field.
//! - [`mapping`]: documents -> typed records -> fold state.
//! - [`source`]: [`MongoSourceOfTruth`], live assembly of a session.
//! - [`background`]: [`MongoBackgroundSource`], the background endpoints' data.
//! - [`migrations`]: planning and applying the JSON migrations in `migrations/`.
//! - [`config`]: `MONGODB_URI` and `MONGODB_DATABASE`.
//!
//! The collections and their indexes are described in `docs/DATA_MODEL.md`.

pub mod background;
pub mod config;
pub mod fields;
pub mod mapping;
pub mod migrations;
pub mod queries;
pub mod source;

pub use background::MongoBackgroundSource;
pub use config::MongoConfig;
pub use fields::MappingError;
pub use source::MongoSourceOfTruth;

use std::time::Duration;

use crate::source::SourceOfTruthError;

pub const USERS: &str = "users";
pub const BOOKINGS: &str = "bookings";
pub const SUBSCRIPTIONS: &str = "subscriptions";
pub const NOTIFICATIONS: &str = "notifications";
pub const PROFILE_DETAILS: &str = "profile_details";
/// Applied migrations, keyed by migration id.
pub const MIGRATIONS: &str = "migrations";

/// Server error code `MaxTimeMSExpired`: the operation ran past `maxTimeMS`.
pub const MAX_TIME_MS_EXPIRED: i32 = 50;

/// Returns the server error code of a command error, if the error is one.
pub fn error_code(error: &mongodb::error::Error) -> Option<i32> {
    match error.kind.as_ref() {
        mongodb::error::ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

/// Maps a driver error of a read to the source error the read path
/// understands; a server-side `maxTimeMS` expiry becomes `TimedOut`.
pub fn read_error(error: &mongodb::error::Error, max_time: Duration) -> SourceOfTruthError {
    if error_code(error) == Some(MAX_TIME_MS_EXPIRED) {
        return SourceOfTruthError::TimedOut(u64::try_from(max_time.as_millis()).unwrap_or(u64::MAX));
    }
    SourceOfTruthError::Unavailable(format!("MongoDB read failed: {error}"))
}

/// Wraps a mapping error in the source error of `user_id`'s read.
pub fn invalid_data(user_id: &str, error: MappingError) -> SourceOfTruthError {
    SourceOfTruthError::InvalidData {
        user_id: user_id.to_owned(),
        message: error.to_string(),
    }
}
