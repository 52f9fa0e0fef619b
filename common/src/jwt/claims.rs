//! The claims this service reads from a verified token, and their type checks.

use serde::Deserialize;
use serde_json::Value;

use super::error::{MalformedReason, NUMERIC_DATE, TokenError};

/// Identity and metadata taken from a token whose signature and claims were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`, never empty.
    pub subject: String,
    /// `exp`, in Unix seconds.
    pub expires_at: i64,
    /// `iat`, in Unix seconds, when present.
    pub issued_at: Option<i64>,
    /// `tv` (token version), 0 when absent. Sessions compare it to revoke older tokens.
    pub token_version: u64,
    /// `jti`, when present.
    pub token_id: Option<String>,
}

/// Claims as they appear in the payload. Each is a raw JSON value so that a
/// claim of the wrong type yields an error naming it instead of a generic
/// parse failure.
#[derive(Debug, Deserialize)]
pub(crate) struct RawClaims {
    sub: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    tv: Option<Value>,
    jti: Option<Value>,
}

impl RawClaims {
    /// Checks the claims jsonwebtoken does not check and converts them.
    ///
    /// jsonwebtoken has already validated `exp` and `nbf` against the clock
    /// and `iss` and `aud` against the configuration.
    pub(crate) fn into_verified(self) -> Result<VerifiedToken, TokenError> {
        // `exp` presence is checked here rather than through jsonwebtoken's
        // required claims, which would report a mistyped `exp` as missing.
        let exp = self.exp.ok_or(TokenError::MissingExpiry)?;
        let expires_at = numeric_date("exp", &exp)?;

        let subject = match self.sub {
            None => return Err(TokenError::MissingSubject),
            Some(Value::String(subject)) if subject.is_empty() => {
                return Err(TokenError::MissingSubject);
            }
            Some(Value::String(subject)) => subject,
            Some(_) => return Err(invalid_claim("sub", "a string")),
        };

        let issued_at = match &self.iat {
            None => None,
            Some(iat) => Some(numeric_date("iat", iat)?),
        };

        let token_version = match &self.tv {
            None => 0,
            Some(tv) => tv
                .as_u64()
                .ok_or_else(|| invalid_claim("tv", "a non-negative integer"))?,
        };

        let token_id = match self.jti {
            None => None,
            Some(Value::String(jti)) => Some(jti),
            Some(_) => return Err(invalid_claim("jti", "a string")),
        };

        Ok(VerifiedToken {
            subject,
            expires_at,
            issued_at,
            token_version,
            token_id,
        })
    }
}

fn invalid_claim(claim: &'static str, expected: &'static str) -> TokenError {
    TokenError::Malformed(MalformedReason::InvalidClaim { claim, expected })
}

/// Converts a NumericDate to whole seconds. Fractions are rounded to the
/// nearest second, as jsonwebtoken 10 does when it checks `exp`.
fn numeric_date(claim: &'static str, value: &Value) -> Result<i64, TokenError> {
    let invalid = || invalid_claim(claim, NUMERIC_DATE);

    if let Some(seconds) = value.as_u64() {
        return i64::try_from(seconds).map_err(|_| invalid());
    }
    match value.as_f64() {
        // i64::MAX as f64 rounds up to 2^63, so the bound is exclusive.
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 && seconds < i64::MAX as f64 => {
            Ok(seconds.round() as i64)
        }
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verify_claims(payload: Value) -> Result<VerifiedToken, TokenError> {
        let claims: RawClaims = serde_json::from_value(payload).expect("claims object");
        claims.into_verified()
    }

    #[test]
    fn all_claims_are_converted() {
        let token = verify_claims(json!({
            "sub": "user-1", "exp": 4_102_444_800u64, "iat": 1_700_000_000, "tv": 7, "jti": "id-1"
        }))
        .expect("valid claims");

        assert_eq!(token.subject, "user-1");
        assert_eq!(token.expires_at, 4_102_444_800);
        assert_eq!(token.issued_at, Some(1_700_000_000));
        assert_eq!(token.token_version, 7);
        assert_eq!(token.token_id.as_deref(), Some("id-1"));
    }

    #[test]
    fn optional_claims_default_when_absent() {
        let token = verify_claims(json!({"sub": "user-1", "exp": 10})).expect("valid claims");

        assert_eq!(token.issued_at, None);
        assert_eq!(token.token_version, 0);
        assert_eq!(token.token_id, None);
    }

    #[test]
    fn fractional_times_round_to_seconds() {
        let token = verify_claims(json!({"sub": "u", "exp": 100.6, "iat": 50.2})).expect("valid claims");

        assert_eq!(token.expires_at, 101);
        assert_eq!(token.issued_at, Some(50));
    }

    #[test]
    fn exp_beyond_i64_is_malformed() {
        let error = verify_claims(json!({"sub": "u", "exp": u64::MAX})).unwrap_err();

        assert_eq!(error.code(), "token_malformed");
        assert!(error.to_string().contains("`exp`"), "{error}");
    }

    #[test]
    fn missing_exp_is_missing_expiry() {
        let error = verify_claims(json!({"sub": "u"})).unwrap_err();

        assert_eq!(error, TokenError::MissingExpiry);
    }

    #[test]
    fn tv_must_be_non_negative_integer() {
        for tv in [
            json!(-1),
            json!("3"),
            json!(3.5),
            json!(1.0),
            json!(true),
            json!([3]),
        ] {
            let error = verify_claims(json!({"sub": "u", "exp": 10, "tv": tv})).unwrap_err();

            assert_eq!(error, invalid_claim("tv", "a non-negative integer"), "tv = {tv}");
        }
    }

    #[test]
    fn tv_null_counts_as_absent() {
        let token = verify_claims(json!({"sub": "u", "exp": 10, "tv": null})).expect("valid claims");

        assert_eq!(token.token_version, 0);
    }

    #[test]
    fn subject_must_be_non_empty_string() {
        assert_eq!(
            verify_claims(json!({"exp": 10, "sub": ""})).unwrap_err(),
            TokenError::MissingSubject
        );
        assert_eq!(
            verify_claims(json!({"exp": 10, "sub": null})).unwrap_err(),
            TokenError::MissingSubject
        );
        assert_eq!(
            verify_claims(json!({"exp": 10, "sub": 5})).unwrap_err(),
            invalid_claim("sub", "a string")
        );
    }

    #[test]
    fn iat_and_jti_types_are_checked() {
        assert_eq!(
            verify_claims(json!({"sub": "u", "exp": 10, "iat": "now"})).unwrap_err(),
            invalid_claim("iat", NUMERIC_DATE)
        );
        assert_eq!(
            verify_claims(json!({"sub": "u", "exp": 10, "iat": -5})).unwrap_err(),
            invalid_claim("iat", NUMERIC_DATE)
        );
        assert_eq!(
            verify_claims(json!({"sub": "u", "exp": 10, "jti": 9})).unwrap_err(),
            invalid_claim("jti", "a string")
        );
    }
}
