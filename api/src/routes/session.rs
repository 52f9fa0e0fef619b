//! `GET /auth/session`: the one call a frontend makes at start.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use sessionfold_common::document::StoredDocument;
use sessionfold_common::jwt::VerifiedToken;
use tracing::warn;

use crate::auth;
use crate::error::ApiError;
use crate::routes::json_response;
use crate::state::AppState;

const UNAUTHENTICATED: &[u8] = br#"{"authenticated":false}"#;

pub async fn get_session(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(token) = auth::extract_token(&headers, &state.settings.cookie_name)? else {
        return Ok(json_response(Bytes::from_static(UNAUTHENTICATED)));
    };
    let claims = auth::verify(&state.verifier, token)?;

    let document = match state.sessions.load(&claims.subject).await {
        Ok(Some(document)) => document,
        Ok(None) => return Err(ApiError::UnknownUser),
        Err(err) => {
            warn!(user_id = %claims.subject, error = %err, "session unavailable");
            return Err(ApiError::Unavailable);
        }
    };
    check_revocation(&claims, &document)?;

    let body = compose(&state, &claims, &document, Utc::now());
    Ok(json_response(body))
}

/// Rejects tokens revoked after they were issued: a `tv` claim below the
/// user's token version, or an `iat` at or before the latest deactivation.
pub(crate) fn check_revocation(claims: &VerifiedToken, document: &StoredDocument) -> Result<(), ApiError> {
    let header = &document.header;
    if claims.token_version < header.token_version {
        return Err(ApiError::TokenRevoked);
    }
    if let Some(valid_after) = header.tokens_valid_after {
        // A token without `iat` cannot prove it is newer than the deactivation.
        let issued_at = claims.issued_at.unwrap_or(i64::MIN);
        if issued_at <= valid_after {
            return Err(ApiError::TokenRevoked);
        }
    }
    Ok(())
}

/// Appends `permissions` and `sessionMetadata` to the stored body. The body
/// is a JSON object, so dropping its closing brace and adding fields keeps
/// it valid without parsing it.
fn compose(state: &AppState, claims: &VerifiedToken, document: &StoredDocument, now: DateTime<Utc>) -> Bytes {
    let settings = &state.settings;
    let permissions = state.permissions.load();
    let fragment = permissions.fragment(document.access());

    let token_expires_at = DateTime::from_timestamp(claims.expires_at, 0).unwrap_or(now);
    let refresh_at = (token_expires_at - settings.refresh_margin).max(now);
    let mut cache_expires_at = (now + settings.client_cache_ttl).min(token_expires_at);
    if let Some(stale_at) = document
        .header
        .stale_at_ms
        .and_then(DateTime::from_timestamp_millis)
    {
        cache_expires_at = cache_expires_at.min(stale_at);
    }

    let body = &document.body[..document.body.len() - 1];
    let mut out = BytesMut::with_capacity(body.len() + fragment.len() + 160);
    out.put_slice(body);
    out.put_slice(b",\"permissions\":");
    out.put_slice(fragment);
    out.put_slice(b",\"sessionMetadata\":{\"tokenExpiresAt\":\"");
    out.put_slice(timestamp(token_expires_at).as_bytes());
    out.put_slice(b"\",\"refreshAt\":\"");
    out.put_slice(timestamp(refresh_at).as_bytes());
    out.put_slice(b"\",\"cacheExpiresAt\":\"");
    out.put_slice(timestamp(cache_expires_at).as_bytes());
    out.put_slice(b"\"}}");
    out.freeze()
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
