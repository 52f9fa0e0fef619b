//! Loading verification keys from secrets, PEM files and JWKS documents.
//!
//! Every loaded key is pinned to one algorithm when it is loaded, so the
//! token header only selects among keys and never chooses how a key is used.

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde::Deserialize;
use serde_json::Value;

use super::error::KeyConfigError;

/// Algorithms the verifier accepts. A key pinned to any other algorithm is rejected
/// (PEM) or skipped (JWKS).
pub const SUPPORTED_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Minimum HS256 secret length, because RFC 7518 section 3.2 requires a key
/// at least as long as the 256-bit hash output.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Minimum RSA modulus size, because RFC 7518 section 3.3 requires 2048 bits or more for RS256.
pub const MIN_RSA_MODULUS_BITS: usize = 2048;

const ED25519_PUBLIC_KEY_BYTES: usize = 32;

/// Source of verification keys. A verifier uses one or more sources.
#[derive(Clone)]
pub enum KeySource {
    /// HS256 with a shared secret (bytes) of at least [`MIN_HS256_SECRET_BYTES`].
    Hs256Secret(Vec<u8>),
    /// A PEM public key (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RS256) and the
    /// algorithm it is pinned to: RS256, ES256 or EdDSA. `kid` selects the key
    /// when tokens carry one.
    PublicKeyPem {
        pem: String,
        algorithm: Algorithm,
        kid: Option<String>,
    },
    /// A JWKS document (JSON text). Each key is pinned to its `alg`, or when
    /// `alg` is absent to the algorithm its type implies (RSA: RS256, EC P-256:
    /// ES256, OKP Ed25519: EdDSA, oct: HS256). Tokens select keys by `kid`.
    /// Encryption keys (`"use": "enc"`) and keys for other algorithms are
    /// skipped with a warning.
    Jwks(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Hs256Secret(secret) => f
                .debug_struct("Hs256Secret")
                .field("len", &secret.len())
                .finish_non_exhaustive(),
            KeySource::PublicKeyPem { algorithm, kid, .. } => f
                .debug_struct("PublicKeyPem")
                .field("algorithm", algorithm)
                .field("kid", kid)
                .finish_non_exhaustive(),
            KeySource::Jwks(text) => f
                .debug_struct("Jwks")
                .field("len", &text.len())
                .finish_non_exhaustive(),
        }
    }
}

/// One usable key, pinned to the algorithm it verifies.
#[derive(Clone)]
pub(crate) struct LoadedKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub decoding_key: DecodingKey,
    /// Human-readable position of the key in the configuration, for errors and logs.
    pub label: String,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("label", &self.label)
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Loads every key of every source, checking that each one can verify its algorithm.
pub(crate) fn load_keys(sources: &[KeySource]) -> Result<Vec<LoadedKey>, KeyConfigError> {
    if sources.is_empty() {
        return Err(KeyConfigError::NoKeys);
    }

    let mut keys = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        match source {
            KeySource::Hs256Secret(secret) => keys.push(load_hs256_secret(index, secret)?),
            KeySource::PublicKeyPem { pem, algorithm, kid } => {
                keys.push(load_pem(index, pem, *algorithm, kid.clone())?)
            }
            KeySource::Jwks(text) => keys.extend(load_jwks(index, text)?),
        }
    }

    reject_duplicate_kids(&keys)?;
    Ok(keys)
}

fn invalid(label: &str, reason: impl Into<String>) -> KeyConfigError {
    KeyConfigError::InvalidKey {
        key: label.to_owned(),
        reason: reason.into(),
    }
}

fn load_hs256_secret(index: usize, secret: &[u8]) -> Result<LoadedKey, KeyConfigError> {
    let label = format!("key {index} (HS256 secret)");
    check_hs256_secret_length(&label, secret.len())?;

    let decoding_key = DecodingKey::from_secret(secret);
    check_key_usable(&label, &decoding_key, Algorithm::HS256)?;
    Ok(LoadedKey {
        kid: None,
        algorithm: Algorithm::HS256,
        decoding_key,
        label,
    })
}

fn check_hs256_secret_length(label: &str, len: usize) -> Result<(), KeyConfigError> {
    if len < MIN_HS256_SECRET_BYTES {
        return Err(invalid(
            label,
            format!("the HS256 secret is {len} bytes; use at least {MIN_HS256_SECRET_BYTES} random bytes"),
        ));
    }
    Ok(())
}

fn load_pem(
    index: usize,
    pem: &str,
    algorithm: Algorithm,
    kid: Option<String>,
) -> Result<LoadedKey, KeyConfigError> {
    let label = match &kid {
        Some(kid) => format!("key {index} (PEM, {algorithm:?}, kid {kid:?})"),
        None => format!("key {index} (PEM, {algorithm:?})"),
    };

    // jsonwebtoken also accepts private keys and certificates here, and would
    // then fail every signature at verification time instead of now.
    let pem_label = pem_label(pem).ok_or_else(|| {
        invalid(
            &label,
            "no \"-----BEGIN ...-----\" line found; expected a PEM public key",
        )
    })?;
    let label_allowed =
        pem_label == "PUBLIC KEY" || (pem_label == "RSA PUBLIC KEY" && algorithm == Algorithm::RS256);
    if !label_allowed {
        return Err(invalid(
            &label,
            format!("the PEM block is a {pem_label:?}; expected a \"PUBLIC KEY\" block"),
        ));
    }

    let parsed = match algorithm {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
        other => {
            return Err(invalid(
                &label,
                format!(
                    "algorithm {other:?} cannot be used with a PEM public key; use RS256, ES256 or EdDSA"
                ),
            ));
        }
    };
    let decoding_key = parsed.map_err(|error| {
        invalid(
            &label,
            format!("the PEM text is not a valid {algorithm:?} public key ({error})"),
        )
    })?;

    check_key_usable(&label, &decoding_key, algorithm)?;
    Ok(LoadedKey {
        kid,
        algorithm,
        decoding_key,
        label,
    })
}

/// Returns the type label of the first PEM block, such as `PUBLIC KEY`.
fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &pem[start..];
    let end = rest.find("-----")?;
    Some(rest[..end].trim())
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

fn load_jwks(index: usize, text: &str) -> Result<Vec<LoadedKey>, KeyConfigError> {
    let source_label = format!("key {index} (JWKS)");
    // The serde message could quote key material, so only its position is reported.
    let document: JwksDocument = serde_json::from_str(text).map_err(|error| {
        invalid(
            &source_label,
            format!(
                "not a JSON object with a \"keys\" array (parse error at line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;

    let mut keys = Vec::new();
    for (position, raw) in document.keys.iter().enumerate() {
        let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
        let label = match &kid {
            Some(kid) => format!("{source_label} entry {position} (kid {kid:?})"),
            None => format!("{source_label} entry {position}"),
        };
        match load_jwk(&label, raw, kid)? {
            JwkOutcome::Loaded(key) => keys.push(key),
            JwkOutcome::Skipped(reason) => {
                tracing::warn!(key = %label, reason, "skipping JWKS key that cannot verify signatures");
            }
        }
    }

    if keys.is_empty() {
        return Err(KeyConfigError::NoUsableJwksKey { key: source_label });
    }
    Ok(keys)
}

enum JwkOutcome {
    Loaded(LoadedKey),
    Skipped(String),
}

fn load_jwk(label: &str, raw: &Value, kid: Option<String>) -> Result<JwkOutcome, KeyConfigError> {
    if raw.get("use").and_then(Value::as_str) == Some("enc") {
        return Ok(JwkOutcome::Skipped(
            "it is an encryption key (\"use\": \"enc\")".to_owned(),
        ));
    }

    let declared_algorithm = match raw.get("alg") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => match supported_algorithm(name) {
            Some(algorithm) => Some(algorithm),
            None => {
                return Ok(JwkOutcome::Skipped(format!("its alg {name:?} is not supported")));
            }
        },
        Some(_) => return Err(invalid(label, "\"alg\" must be a string")),
    };

    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|_| {
        invalid(
            label,
            "not a valid JWK: expected kty RSA (n, e), EC (crv, x, y), OKP (crv, x) or oct (k)",
        )
    })?;

    let implied_algorithm = implied_algorithm(&jwk.algorithm);
    let algorithm = match (declared_algorithm, implied_algorithm) {
        (Some(declared), Some(implied)) if declared == implied => declared,
        (Some(declared), _) => {
            return Err(invalid(
                label,
                format!(
                    "alg {declared:?} does not match the key type ({})",
                    describe_key_type(&jwk.algorithm)
                ),
            ));
        }
        (None, Some(implied)) => implied,
        (None, None) => {
            return Ok(JwkOutcome::Skipped(format!(
                "it has no alg and its key type ({}) implies no supported algorithm",
                describe_key_type(&jwk.algorithm)
            )));
        }
    };

    let decoding_key = DecodingKey::from_jwk(&jwk).map_err(|error| {
        invalid(
            label,
            format!("the key parameters are not valid base64url ({error})"),
        )
    })?;
    match decoding_key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, .. } => check_rsa_modulus(label, n)?,
        DecodingKeyKind::SecretOrDer(bytes) if algorithm == Algorithm::HS256 => {
            check_hs256_secret_length(label, bytes.len())?;
        }
        DecodingKeyKind::SecretOrDer(_) => {}
    }
    check_key_usable(label, &decoding_key, algorithm)?;

    Ok(JwkOutcome::Loaded(LoadedKey {
        kid,
        algorithm,
        decoding_key,
        label: label.to_owned(),
    }))
}

fn supported_algorithm(name: &str) -> Option<Algorithm> {
    let algorithm: Algorithm = name.parse().ok()?;
    SUPPORTED_ALGORITHMS.contains(&algorithm).then_some(algorithm)
}

/// Returns the supported algorithm a key type implies, or `None` for other curves.
fn implied_algorithm(parameters: &AlgorithmParameters) -> Option<Algorithm> {
    match parameters {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        AlgorithmParameters::OctetKey(_) => Some(Algorithm::HS256),
        AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::OctetKeyPair(_) => None,
    }
}

fn describe_key_type(parameters: &AlgorithmParameters) -> String {
    match parameters {
        AlgorithmParameters::RSA(_) => "kty RSA".to_owned(),
        AlgorithmParameters::EllipticCurve(ec) => format!("kty EC, crv {:?}", ec.curve),
        AlgorithmParameters::OctetKeyPair(okp) => format!("kty OKP, crv {:?}", okp.curve),
        AlgorithmParameters::OctetKey(_) => "kty oct".to_owned(),
    }
}

fn check_rsa_modulus(label: &str, modulus: &[u8]) -> Result<(), KeyConfigError> {
    let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
    let bits = significant * 8;
    if bits < MIN_RSA_MODULUS_BITS {
        return Err(invalid(
            label,
            format!("the RSA modulus is about {bits} bits; at least {MIN_RSA_MODULUS_BITS} are required"),
        ));
    }
    Ok(())
}

/// Builds the jsonwebtoken verifier for the key once, so a key its backend
/// cannot parse fails configuration instead of every token.
///
/// NOTE: jsonwebtoken 10 parses RSA keys only while checking a signature, so
/// a PEM block that has the RSA object identifier but a broken key body still
/// passes here, and then every token for it fails with `invalid_signature`.
fn check_key_usable(
    label: &str,
    decoding_key: &DecodingKey,
    algorithm: Algorithm,
) -> Result<(), KeyConfigError> {
    // jsonwebtoken's Ed25519 verifier slices the first 32 bytes and panics on
    // shorter input, so the length is checked before handing the key over.
    if algorithm == Algorithm::EdDSA {
        let len = decoding_key.as_bytes().len();
        if len != ED25519_PUBLIC_KEY_BYTES {
            return Err(invalid(
                label,
                format!("an Ed25519 public key is {ED25519_PUBLIC_KEY_BYTES} bytes, this one is {len}"),
            ));
        }
    }

    // An empty signature never verifies, so only key errors can surface here.
    jsonwebtoken::crypto::verify("", b"", decoding_key, algorithm)
        .map(|_| ())
        .map_err(|error| {
            invalid(
                label,
                format!("the key cannot verify {algorithm:?} signatures ({error})"),
            )
        })
}

fn reject_duplicate_kids(keys: &[LoadedKey]) -> Result<(), KeyConfigError> {
    for (position, key) in keys.iter().enumerate() {
        let Some(kid) = &key.kid else { continue };
        if let Some(first) = keys[..position]
            .iter()
            .find(|other| other.kid.as_ref() == Some(kid))
        {
            return Err(KeyConfigError::DuplicateKid {
                kid: kid.clone(),
                first: first.label.clone(),
                second: key.label.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_label_reads_first_block_type() {
        let pem = "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n";

        assert_eq!(pem_label(pem), Some("RSA PUBLIC KEY"));
        assert_eq!(pem_label("no pem here"), None);
    }

    #[test]
    fn rsa_modulus_size_ignores_leading_zero_bytes() {
        let mut modulus = vec![0u8; 1];
        modulus.extend(std::iter::repeat_n(0xff, 256));

        assert!(check_rsa_modulus("k", &modulus).is_ok());
        assert!(check_rsa_modulus("k", &modulus[..200]).is_err());
    }

    #[test]
    fn supported_algorithm_accepts_only_the_four() {
        assert_eq!(supported_algorithm("ES256"), Some(Algorithm::ES256));
        assert_eq!(supported_algorithm("RS512"), None);
        assert_eq!(supported_algorithm("none"), None);
    }

    #[test]
    fn debug_output_hides_secret_bytes() {
        let source = KeySource::Hs256Secret(b"super-secret-value-that-must-not-leak".to_vec());

        let rendered = format!("{source:?}");

        assert!(!rendered.contains("super-secret"), "{rendered}");
        assert!(rendered.contains("len"), "{rendered}");
    }
}
