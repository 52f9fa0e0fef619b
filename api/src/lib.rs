//! sessionfold read API.
//!
//! Layout:
//! - [`app`]: the router `main` and the tests share.
//! - [`cli`]: the `dev` and `serve` commands.
//! - [`routes`]: handlers, one file per resource.
//! - [`session`]: loading documents (L1 cache, store, live assembly).
//! - [`background`]: loading background data (profile, booking history,
//!   notifications) with its own cache and timeout.
//! - [`auth`]: credentials from header or cookie.
//! - [`error`]: `ApiError` and its single mapping to HTTP.
//! - [`config`]: settings from the environment.
//! - [`dev`]: the embedded `dev` mode.
//! - [`run`]: process wiring for the `dev` and `serve` commands.
//! - [`policy`]: loading and reloading the permission policy.

pub mod auth;
pub mod background;
pub mod cli;
pub mod config;
pub mod dev;
pub mod error;
pub mod policy;
pub mod routes;
pub mod run;
pub mod session;
pub mod state;
pub mod telemetry;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Builds the router. `/dev/*` routes exist only when `state.dev` is set.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/auth/session", get(routes::session::get_session))
        .route(
            "/auth/profile/detailed",
            get(routes::background::get_profile_detailed),
        )
        .route(
            "/auth/bookings/history",
            get(routes::background::get_booking_history),
        )
        .route("/auth/notifications", get(routes::background::get_notifications))
        .route("/healthz", get(routes::health::get_health));
    if state.dev.is_some() {
        router = router
            .route(
                "/dev/events",
                post(routes::dev::post_events).layer(DefaultBodyLimit::max(routes::dev::MAX_EVENTS_BODY)),
            )
            .route("/dev/dead-letters", get(routes::dev::get_dead_letters))
            .route("/dev/token", get(routes::dev::get_token));
    }
    router = router
        .fallback(routes::fallback::not_found)
        .method_not_allowed_fallback(routes::fallback::method_not_allowed);
    // The default request span records method and path only; headers (and
    // with them tokens and cookies) are never logged.
    router.layer(TraceLayer::new_for_http()).with_state(state)
}
