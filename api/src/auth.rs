//! Credentials: the bearer token from the `Authorization` header or the
//! session cookie, verified into the claims the session read needs.

use axum::http::{HeaderMap, header};
use sessionfold_common::jwt::{TokenVerifier, VerifiedToken};

use crate::error::ApiError;

/// Returns the raw token, if the request carries one. The header wins over
/// the cookie when both are present.
pub fn extract_token<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Result<Option<&'a str>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| malformed("the Authorization header is not visible ASCII"))?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(malformed("the Authorization header must use the Bearer scheme"));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(malformed("the Authorization header has no token after Bearer"));
        }
        return Ok(Some(token));
    }

    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, token)) = pair.trim().split_once('=')
                && name == cookie_name
                && !token.is_empty()
            {
                return Ok(Some(token));
            }
        }
    }
    Ok(None)
}

fn malformed(reason: &'static str) -> ApiError {
    ApiError::MalformedCredentials(reason)
}

/// Verifies the token; revocation against the session document is checked
/// later, once the document is loaded.
pub fn verify(verifier: &TokenVerifier, token: &str) -> Result<VerifiedToken, ApiError> {
    verifier.verify(token).map_err(ApiError::InvalidToken)
}
