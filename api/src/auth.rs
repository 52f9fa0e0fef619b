//! Credentials: the bearer token from the `Authorization` header or the
//! session cookie, verified into the claims the session read needs.

use axum::http::{HeaderMap, header};
use sessionfold_common::jwt::{TokenError, TokenVerifier, VerifiedToken};

use crate::error::ApiError;

/// Returns the raw token, if the request carries one. The header wins over
/// the cookie when both are present.
pub fn extract_token<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        // Two credentials are ambiguous: which one the client meant cannot
        // be known, so neither is used.
        if authorization.next().is_some() {
            return Err(malformed("the request has more than one Authorization header"));
        }
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

    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, token)) = pair.trim().split_once('=')
                && name == cookie_name
                && !token.is_empty()
            {
                if found.is_some() {
                    return Err(malformed("the request has more than one session cookie"));
                }
                found = Some(token);
            }
        }
    }
    Ok(found)
}

fn malformed(reason: &'static str) -> ApiError {
    ApiError::MalformedCredentials(reason)
}

/// Verifies the token; revocation against the session document is checked
/// later, once the document is loaded.
pub fn verify(authenticator: &Authenticator, token: &str) -> Result<VerifiedToken, ApiError> {
    authenticator.verify(token).map_err(ApiError::InvalidToken)
}

/// Token verification with a cache of tokens that already passed it.
///
/// A frontend sends the same token on every call until it refreshes, and a
/// signature check costs more than the rest of an L1 hit. The cache key is
/// the whole token, signature included, so a hit is exactly the bytes that
/// were verified; keys and claim rules do not change while the process runs.
/// Only `exp` can turn a verified token invalid, so a hit re-checks it.
/// Failures are never cached. Revocation is checked per request against the
/// session document either way.
pub struct Authenticator {
    verifier: TokenVerifier,
    verified: Option<moka::sync::Cache<String, VerifiedToken>>,
    leeway_secs: i64,
}

impl Authenticator {
    /// `cache_entries` bounds the number of cached tokens; 0 disables the cache.
    pub fn new(verifier: TokenVerifier, leeway_secs: u64, cache_entries: u64) -> Self {
        let verified = (cache_entries > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(cache_entries)
                .time_to_live(VERIFIED_TOKEN_TTL)
                .build()
        });
        Self {
            verifier,
            verified,
            leeway_secs: i64::try_from(leeway_secs).unwrap_or(i64::MAX),
        }
    }

    /// Returns the verifier without the cache.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let Some(cache) = &self.verified else {
            return self.verifier.verify(token);
        };
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = cache.get(token) {
            if now <= claims.expires_at.saturating_add(self.leeway_secs) {
                return Ok(claims);
            }
            cache.invalidate(token);
        }
        let claims = self.verifier.verify(token)?;
        cache.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }
}

/// How long a verified token stays cached; a re-verification after this
/// bounds the life of an entry whose token is no longer sent.
const VERIFIED_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;
    use sessionfold_common::jwt::{KeySource, VerifierConfig};

    const SECRET: &[u8] = b"authenticator-test-secret-0123456789";

    fn authenticator(cache_entries: u64) -> Authenticator {
        let verifier = TokenVerifier::new(VerifierConfig {
            keys: vec![KeySource::Hs256Secret(SECRET.to_vec())],
            ..VerifierConfig::default()
        })
        .unwrap();
        Authenticator::new(verifier, 0, cache_entries)
    }

    fn token(expires_at: i64) -> String {
        let claims = serde_json::json!({"sub": "user-1", "exp": expires_at});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    #[test]
    fn cached_token_is_rejected_once_expired() {
        let authenticator = authenticator(16);
        let expires_at = chrono::Utc::now().timestamp() + 1;
        let token = token(expires_at);
        assert!(authenticator.verify(&token).is_ok());

        while chrono::Utc::now().timestamp() <= expires_at {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(authenticator.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn failed_verification_is_not_cached() {
        let authenticator = authenticator(16);
        let mut token = token(chrono::Utc::now().timestamp() + 3600);
        token.push('x');
        assert!(authenticator.verify(&token).is_err());
        assert!(authenticator.verify(&token).is_err());
        assert_eq!(authenticator.verified.as_ref().unwrap().entry_count(), 0);
    }

    #[test]
    fn cache_can_be_disabled() {
        let authenticator = authenticator(0);
        let token = token(chrono::Utc::now().timestamp() + 3600);
        assert!(authenticator.verify(&token).is_ok());
        assert!(authenticator.verified.is_none());
    }
}
