//! JWT access token verification.
//!
//! [`TokenVerifier`] checks a compact JWS access token against configured keys
//! and returns the identity it carries as a [`VerifiedToken`]. The jsonwebtoken
//! crate does the signature and time checks. This module decides which key
//! may verify a token and checks the claims jsonwebtoken does not know.
//!
//! Each key is pinned to one algorithm (HS256, RS256, ES256 or EdDSA) when the
//! verifier is built. The token's `alg` header only has to agree with it, so
//! `alg: none` and HS256 tokens signed with an RSA public key are rejected.

mod claims;
mod error;
mod keys;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;

use claims::RawClaims;
use keys::LoadedKey;

pub use claims::VerifiedToken;
pub use error::{KeyConfigError, MalformedReason, TokenError};
pub use keys::{KeySource, MIN_HS256_SECRET_BYTES, MIN_RSA_MODULUS_BITS, SUPPORTED_ALGORITHMS};

/// Longest accepted token. Longer input is rejected before any decoding, which
/// bounds the work an unauthenticated request can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Largest accepted clock-skew leeway (one day). A larger value is most likely
/// a unit mistake, such as milliseconds, and would keep expired tokens valid.
pub const MAX_LEEWAY_SECS: u64 = 86_400;

/// Verification settings: keys and the claims every token must satisfy.
#[derive(Debug, Clone, Default)]
pub struct VerifierConfig {
    pub keys: Vec<KeySource>,
    /// Required `iss` value. `None` accepts any issuer.
    pub issuer: Option<String>,
    /// Accepted `aud` values: a token must name at least one. Empty means `aud` is not checked.
    pub audience: Vec<String>,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds (at most [`MAX_LEEWAY_SECS`]).
    pub leeway_secs: u64,
}

/// Verifier for access tokens. Cloning is cheap because the keys are shared.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<[PinnedKey]>,
}

/// A key with the jsonwebtoken validation settings for its algorithm.
struct PinnedKey {
    key: LoadedKey,
    validation: Validation,
}

impl TokenVerifier {
    /// Loads and checks every configured key.
    ///
    /// Fails with an error naming the key and the reason when a secret is too
    /// short, a PEM or JWKS entry cannot be parsed, a key does not fit its
    /// algorithm, or two keys share a `kid`.
    pub fn new(config: VerifierConfig) -> Result<Self, KeyConfigError> {
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(KeyConfigError::LeewayTooLarge {
                leeway_secs: config.leeway_secs,
                max_secs: MAX_LEEWAY_SECS,
            });
        }

        let loaded = keys::load_keys(&config.keys)?;
        let pinned: Vec<PinnedKey> = loaded
            .into_iter()
            .map(|key| PinnedKey {
                validation: validation_for(key.algorithm, &config),
                key,
            })
            .collect();

        tracing::info!(
            keys = ?pinned.iter().map(|pinned| pinned.key.label.as_str()).collect::<Vec<_>>(),
            issuer = config.issuer.as_deref().unwrap_or("(not checked)"),
            audience = ?config.audience,
            leeway_secs = config.leeway_secs,
            "access token verifier configured"
        );
        Ok(TokenVerifier { keys: pinned.into() })
    }

    /// Verifies the signature and claims of a compact JWS token.
    ///
    /// Keys are chosen by the header's `kid` and `alg` (see [`Self::select_keys`]).
    /// When several keys qualify, each is tried in configuration order until one
    /// verifies the signature.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(MalformedReason::TooLarge {
                max_bytes: MAX_TOKEN_BYTES,
            }));
        }

        let header = read_header(token)?;
        // RFC 7515 section 4.1.11: a recipient must reject a token whose `crit`
        // lists extensions it does not understand, and this service supports none.
        if header.crit.is_some() {
            return Err(TokenError::Malformed(MalformedReason::CriticalHeader));
        }

        for pinned in self.select_keys(&header)? {
            match jsonwebtoken::decode::<RawClaims>(token, &pinned.key.decoding_key, &pinned.validation) {
                Ok(data) => return data.claims.into_verified(),
                // jsonwebtoken checks the signature before any claim, so other
                // errors hold for every candidate key and end the search.
                Err(error) if *error.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    continue;
                }
                Err(error) => return Err(TokenError::from_decode_error(&error)),
            }
        }
        Err(TokenError::InvalidSignature)
    }

    /// Returns the keys that may verify a token with this header, in configuration order.
    ///
    /// - With a `kid`, the keys with that kid, which must be pinned to the header's `alg`.
    ///   When no key has that kid, keys configured without a kid and pinned to `alg`
    ///   are used, so a plain HS256 secret keeps working when the issuer adds kids.
    /// - Without a `kid`, every key pinned to the header's `alg`.
    fn select_keys(&self, header: &Header) -> Result<Vec<&PinnedKey>, TokenError> {
        let pinned_to_alg = |pinned: &&PinnedKey| pinned.key.algorithm == header.alg;

        let Some(kid) = header.kid.as_deref() else {
            let candidates: Vec<_> = self.keys.iter().filter(pinned_to_alg).collect();
            if candidates.is_empty() {
                return Err(TokenError::AlgorithmNotAllowed);
            }
            return Ok(candidates);
        };

        let named: Vec<_> = self
            .keys
            .iter()
            .filter(|pinned| pinned.key.kid.as_deref() == Some(kid))
            .collect();
        if named.is_empty() {
            let unnamed: Vec<_> = self
                .keys
                .iter()
                .filter(|pinned| pinned.key.kid.is_none())
                .filter(pinned_to_alg)
                .collect();
            if unnamed.is_empty() {
                return Err(TokenError::UnknownKey);
            }
            return Ok(unnamed);
        }

        let candidates: Vec<_> = named.into_iter().filter(pinned_to_alg).collect();
        if candidates.is_empty() {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        Ok(candidates)
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "keys",
                &self.keys.iter().map(|pinned| &pinned.key).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Builds jsonwebtoken's checks for a key: only its own algorithm, `exp` and
/// `nbf` with leeway, and `iss` and `aud` when configured.
fn validation_for(algorithm: Algorithm, config: &VerifierConfig) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = config.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // `exp` presence is checked in RawClaims::into_verified, which can tell a
    // missing `exp` from a mistyped one.
    validation.required_spec_claims = HashSet::new();

    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        // jsonwebtoken skips the issuer check when `iss` is absent unless it is required.
        validation.required_spec_claims.insert("iss".to_owned());
    }

    if config.audience.is_empty() {
        // jsonwebtoken otherwise rejects every token that has an `aud`.
        validation.validate_aud = false;
    } else {
        validation.set_audience(&config.audience);
        validation.required_spec_claims.insert("aud".to_owned());
    }
    validation
}

/// Decodes the header, telling an unsupported `alg` (such as `none`) apart
/// from a header that is not valid at all.
fn read_header(token: &str) -> Result<Header, TokenError> {
    match jsonwebtoken::decode_header(token) {
        Ok(header) => Ok(header),
        Err(_) if unparsed_header_has_unknown_alg(token) => Err(TokenError::AlgorithmNotAllowed),
        Err(_) => Err(TokenError::Malformed(MalformedReason::Structure)),
    }
}

/// Returns whether the header's `alg` is a string that jsonwebtoken does not
/// know, which is why it failed to parse the header.
fn unparsed_header_has_unknown_alg(token: &str) -> bool {
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }

    let Some(encoded_header) = token.split('.').next() else {
        return false;
    };
    // jsonwebtoken 10 has no public base64url decoder, but an Ed25519 JWK `x`
    // parameter is decoded exactly like a JWS segment (unpadded base64url) and
    // its bytes are returned unchanged.
    let Ok(decoded) = DecodingKey::from_ed_components(encoded_header) else {
        return false;
    };
    match serde_json::from_slice::<AlgOnly>(decoded.as_bytes()) {
        Ok(header) => header.alg.parse::<Algorithm>().is_err(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, encode};
    use serde_json::json;

    use super::*;

    const SECRET_A: &[u8] = b"0123456789abcdef0123456789abcdef-a";
    const SECRET_B: &[u8] = b"0123456789abcdef0123456789abcdef-b";

    fn verifier(keys: Vec<KeySource>) -> TokenVerifier {
        TokenVerifier::new(VerifierConfig {
            keys,
            ..VerifierConfig::default()
        })
        .expect("valid configuration")
    }

    fn hs256_token(secret: &[u8], kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let claims = json!({"sub": "user-1", "exp": 4_102_444_800u64});
        encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("encode")
    }

    fn labels(keys: &[&PinnedKey]) -> Vec<String> {
        keys.iter().map(|pinned| pinned.key.label.clone()).collect()
    }

    #[test]
    fn header_with_alg_none_is_recognised() {
        // {"alg":"none"} and {"alg":"HS999","typ":"JWT"}
        assert!(unparsed_header_has_unknown_alg("eyJhbGciOiJub25lIn0.e30."));
        assert!(unparsed_header_has_unknown_alg(
            "eyJhbGciOiJIUzk5OSIsInR5cCI6IkpXVCJ9.e30.sig"
        ));
        // {"typ":"JWT"} has no alg, and "!!" is not base64url.
        assert!(!unparsed_header_has_unknown_alg("eyJ0eXAiOiJKV1QifQ.e30.sig"));
        assert!(!unparsed_header_has_unknown_alg("!!.e30.sig"));
    }

    #[test]
    fn kidless_token_tries_keys_of_its_alg() {
        let verifier = verifier(vec![
            KeySource::Hs256Secret(SECRET_A.to_vec()),
            KeySource::Hs256Secret(SECRET_B.to_vec()),
        ]);

        let token = hs256_token(SECRET_B, None);
        let header = jsonwebtoken::decode_header(&token).expect("header");

        assert_eq!(
            labels(&verifier.select_keys(&header).expect("candidates")),
            ["key 0 (HS256 secret)", "key 1 (HS256 secret)"]
        );
        assert_eq!(verifier.verify(&token).expect("accepted").subject, "user-1");
    }

    #[test]
    fn unknown_kid_falls_back_to_keys_without_kid() {
        let verifier = verifier(vec![KeySource::Hs256Secret(SECRET_A.to_vec())]);

        let token = hs256_token(SECRET_A, Some("issuer-key-7"));

        assert_eq!(verifier.verify(&token).expect("accepted").subject, "user-1");
    }

    #[test]
    fn both_secrets_failing_is_invalid_signature() {
        let verifier = verifier(vec![
            KeySource::Hs256Secret(SECRET_A.to_vec()),
            KeySource::Hs256Secret(SECRET_B.to_vec()),
        ]);

        let token = hs256_token(b"another-secret-of-thirty-two-bytes!", None);

        assert_eq!(verifier.verify(&token), Err(TokenError::InvalidSignature));
    }

    #[test]
    fn validation_requires_configured_claims_only() {
        let open = validation_for(Algorithm::ES256, &VerifierConfig::default());
        assert!(open.required_spec_claims.is_empty());
        assert!(!open.validate_aud);
        assert_eq!(open.algorithms, [Algorithm::ES256]);

        let strict = validation_for(
            Algorithm::ES256,
            &VerifierConfig {
                issuer: Some("https://issuer.test".to_owned()),
                audience: vec!["api".to_owned()],
                leeway_secs: 5,
                ..VerifierConfig::default()
            },
        );
        assert!(strict.required_spec_claims.contains("iss"));
        assert!(strict.required_spec_claims.contains("aud"));
        assert!(strict.validate_aud);
        assert!(strict.validate_nbf);
        assert_eq!(strict.leeway, 5);
    }
}
