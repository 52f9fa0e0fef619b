//! Dev-mode routes: feed events into the in-process log and read the dead
//! letters. Mounted only by `sessionfold-api dev`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
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
    body: Bytes,
) -> Result<Json<IngestReport>, ApiError> {
    let dev = state.dev.as_ref().ok_or(ApiError::Internal)?;
    if let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        let accepted = [
            "application/json",
            "application/x-ndjson",
            "application/cloudevents-batch+json",
            "text/plain",
        ];
        if !accepted.contains(&media_type) {
            return Err(ApiError::BadRequest {
                code: "unsupported_content_type",
                message: format!(
                    "content type {media_type:?} is not accepted; send application/x-ndjson or application/json"
                ),
            });
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            code: "empty_body",
            message: "the body holds no events; send NDJSON CloudEvents or a JSON array of them".to_owned(),
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

#[derive(serde::Deserialize)]
pub struct TokenQuery {
    user: Option<String>,
    #[serde(default)]
    tv: u64,
}

/// `GET /dev/token?user=ID[&tv=N]`: a dev token for any user id.
pub async fn get_token(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<TokenQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let minter = state.dev_tokens.as_ref().ok_or(ApiError::Internal)?;
    let user = query
        .user
        .filter(|user| !user.is_empty())
        .ok_or_else(|| ApiError::BadRequest {
            code: "missing_parameter",
            message: "query parameter `user` is required, e.g. /dev/token?user=user-0002".to_owned(),
        })?;
    let token = minter.mint(&user, query.tv);
    Ok(Json(serde_json::json!({ "user": user, "token": token })))
}
