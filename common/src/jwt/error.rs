//! Errors of token verification and of verifier configuration.

use std::fmt;

use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use thiserror::Error;

/// Reason a token was rejected.
///
/// The `Display` text is safe to send to the client: it is built only from
/// fixed words and claim names, never from the token or its claim values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("access token is malformed: {0}")]
    Malformed(MalformedReason),
    #[error("access token has expired")]
    Expired,
    #[error("access token is not valid yet (its `nbf` time is in the future)")]
    NotYetValid,
    #[error("access token has no `exp` (expiry) claim")]
    MissingExpiry,
    #[error("access token was issued by an issuer this service does not accept")]
    InvalidIssuer,
    #[error("access token has no `iss` (issuer) claim")]
    MissingIssuer,
    #[error("access token audience does not include this service")]
    InvalidAudience,
    #[error("access token has no `aud` (audience) claim")]
    MissingAudience,
    #[error("access token has no subject: the `sub` claim is missing or empty")]
    MissingSubject,
    #[error("access token signature is invalid")]
    InvalidSignature,
    #[error("access token names a signing key (`kid`) that is not configured")]
    UnknownKey,
    #[error("access token algorithm is not allowed for its signing key")]
    AlgorithmNotAllowed,
}

impl TokenError {
    /// Stable snake_case code for responses, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "token_malformed",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::MissingExpiry => "missing_expiry",
            TokenError::InvalidIssuer => "invalid_issuer",
            TokenError::MissingIssuer => "missing_issuer",
            TokenError::InvalidAudience => "invalid_audience",
            TokenError::MissingAudience => "missing_audience",
            TokenError::MissingSubject => "missing_subject",
            TokenError::InvalidSignature => "invalid_signature",
            TokenError::UnknownKey => "unknown_key",
            TokenError::AlgorithmNotAllowed => "algorithm_not_allowed",
        }
    }

    /// Maps an error of `jsonwebtoken::decode` to the reason reported to the client.
    pub(crate) fn from_decode_error(error: &JwtError) -> TokenError {
        match error.kind() {
            ErrorKind::InvalidSignature => TokenError::InvalidSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::InvalidIssuer,
            ErrorKind::InvalidAudience => TokenError::InvalidAudience,
            ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed,
            // jsonwebtoken reports a claim of the wrong type (for example a
            // numeric `aud`) as missing, because it could not parse it.
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "exp" => TokenError::MissingExpiry,
                "iss" => TokenError::MissingIssuer,
                "aud" => TokenError::MissingAudience,
                "sub" => TokenError::MissingSubject,
                _ => TokenError::Malformed(MalformedReason::Structure),
            },
            ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
                "exp" => TokenError::Malformed(MalformedReason::InvalidClaim {
                    claim: "exp",
                    expected: NUMERIC_DATE,
                }),
                "nbf" => TokenError::Malformed(MalformedReason::InvalidClaim {
                    claim: "nbf",
                    expected: NUMERIC_DATE,
                }),
                _ => TokenError::Malformed(MalformedReason::Structure),
            },
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                TokenError::Malformed(MalformedReason::Structure)
            }
            _ => {
                // Key problems are caught when the verifier is built, so any
                // other kind here is unexpected. The token could not be
                // verified, so it is rejected like a bad signature.
                tracing::warn!(error = %error, "unexpected jsonwebtoken error while verifying an access token");
                TokenError::InvalidSignature
            }
        }
    }
}

/// Expected form of a numeric time claim (NumericDate, RFC 7519 section 2).
pub(crate) const NUMERIC_DATE: &str = "a NumericDate (non-negative seconds since the Unix epoch)";

/// Detail of a `token_malformed` rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedReason {
    /// The token is longer than the accepted maximum, checked before any parsing.
    TooLarge { max_bytes: usize },
    /// The token is not three base64url segments with a JSON header and a JSON object payload.
    Structure,
    /// The header lists critical extensions (`crit`), and this service supports none.
    CriticalHeader,
    /// A claim is present but has the wrong type or range.
    InvalidClaim {
        claim: &'static str,
        expected: &'static str,
    },
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedReason::TooLarge { max_bytes } => {
                write!(f, "token is longer than {max_bytes} bytes")
            }
            MalformedReason::Structure => {
                f.write_str("expected three base64url segments with a JSON header and a JSON object payload")
            }
            MalformedReason::CriticalHeader => {
                f.write_str("the header lists critical extensions (`crit`), which are not supported")
            }
            MalformedReason::InvalidClaim { claim, expected } => {
                write!(f, "claim `{claim}` must be {expected}")
            }
        }
    }
}

/// Error building a [`TokenVerifier`](super::TokenVerifier) from its configuration.
///
/// `key` fields name the key by its position in `VerifierConfig::keys`
/// (counting from 0) and, inside a JWKS, by its position and `kid`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyConfigError {
    #[error("no token verification keys are configured; configure at least one key")]
    NoKeys,
    #[error("{key}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error(
        "{key}: the JWKS contains no key usable for signature verification \
         (supported algorithms: HS256, RS256, ES256, EdDSA)"
    )]
    NoUsableJwksKey { key: String },
    #[error("{first} and {second} both use kid {kid:?}; each kid must name one key")]
    DuplicateKid {
        kid: String,
        first: String,
        second: String,
    },
    #[error("leeway_secs is {leeway_secs}, above the maximum of {max_secs} seconds")]
    LeewayTooLarge { leeway_secs: u64, max_secs: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_claims_map_to_their_codes() {
        let cases = [
            ("exp", "missing_expiry"),
            ("iss", "missing_issuer"),
            ("aud", "missing_audience"),
            ("sub", "missing_subject"),
            ("nbf", "token_malformed"),
        ];
        for (claim, code) in cases {
            let error = JwtError::from(ErrorKind::MissingRequiredClaim(claim.to_owned()));
            assert_eq!(
                TokenError::from_decode_error(&error).code(),
                code,
                "claim {claim}"
            );
        }
    }

    #[test]
    fn invalid_claim_format_names_the_claim() {
        let error = JwtError::from(ErrorKind::InvalidClaimFormat("nbf".to_owned()));
        let mapped = TokenError::from_decode_error(&error);

        assert_eq!(mapped.code(), "token_malformed");
        assert!(mapped.to_string().contains("`nbf`"), "{mapped}");
    }

    #[test]
    fn unexpected_kind_is_reported_as_invalid_signature() {
        let error = JwtError::from(ErrorKind::Provider("backend failed".to_owned()));

        assert_eq!(
            TokenError::from_decode_error(&error),
            TokenError::InvalidSignature
        );
    }
}
