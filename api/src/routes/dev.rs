//! Dev-mode routes: feed events into the in-process log and read the dead
//! letters. Mounted only by `sessionfold-api dev`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};

use crate::dev::IngestReport;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest accepted `POST /dev/events` body.
pub const MAX_EVENTS_BODY: usize = 16 * 1024 * 1024;

/// `POST /dev/events`: NDJSON or a JSON array of CloudEvents.
pub async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestReport>, ApiError> {
    let dev = state.dev.as_ref().ok_or(ApiError::Internal)?;
    // axum's own rejection is plain text; every error here is JSON.
    let body = body.map_err(|_| ApiError::PayloadTooLarge {
        limit: MAX_EVENTS_BODY,
    })?;
    if let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        let accepted = [
            "application/json",
            "application/x-ndjson",
            "application/cloudevents+json",
            "application/cloudevents-batch+json",
            "text/plain",
        ];
        if !accepted.contains(&media_type) {
            return Err(ApiError::UnsupportedMediaType {
                message: format!(
                    "content type {media_type:?} is not accepted; send application/x-ndjson or application/json"
                ),
                code: "unsupported_content_type",
            });
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            code: "empty_body",
            message: "the body contains no events; send NDJSON CloudEvents or a JSON array of them"
                .to_owned(),
        });
    }
    Ok(Json(dev.ingest_body(&body).await))
}

/// `GET /dev/dead-letters`: the most recent rejected events.
pub async fn get_dead_letters(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let dev = state.dev.as_ref().ok_or(ApiError::Internal)?;
    Ok(Json(
        serde_json::json!({ "deadLetters": dev.dead_letters.list() }),
    ))
}

/// `GET /dev/token?user=ID[&tv=N]`: a dev token for any user id.
pub async fn get_token(
    State(state): State<AppState>,
    axum::extract::Query(pairs): axum::extract::Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let minter = state.dev_tokens.as_ref().ok_or(ApiError::Internal)?;
    let mut user = None;
    let mut token_version = 0;
    for (name, value) in pairs {
        match name.as_str() {
            "user" if !value.is_empty() => user = Some(value),
            "tv" => {
                token_version = value.parse().map_err(|_| ApiError::InvalidParameter {
                    parameter: "tv".to_owned(),
                    value: value.clone(),
                    expected: "a non-negative integer (the token version)".to_owned(),
                })?;
            }
            _ => {}
        }
    }
    let user = user.ok_or_else(|| ApiError::BadRequest {
        code: "missing_parameter",
        message: "query parameter `user` is required, e.g. /dev/token?user=user-0002".to_owned(),
    })?;
    let token = minter.mint(&user, token_version);
    Ok(Json(serde_json::json!({ "user": user, "token": token })))
}
