//! HTTP routes, one file per resource.

pub mod background;
pub mod dev;
pub mod fallback;
pub mod health;
pub mod session;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Wraps a JSON body holding one user's data in a response that shared
/// caches never store and that varies with the credentials.
pub(crate) fn json_response(body: Bytes) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("authorization, cookie"));
    response
}
