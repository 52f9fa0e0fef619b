//! Access token verification against tokens minted by PyJWT
//! (`scripts/mint-jwt-fixtures.py`), plus tokens minted here with jsonwebtoken
//! for cases that depend on the current time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Deserialize;
use serde_json::{Value, json};
use sessionfold_common::jwt::{
    KeyConfigError, KeySource, MAX_LEEWAY_SECS, MAX_TOKEN_BYTES, MalformedReason, TokenError, TokenVerifier,
    VerifiedToken, VerifierConfig,
};

// ---------------------------------------------------------------------------
// Fixture loading

#[derive(Debug, Deserialize)]
struct Fixtures {
    verifier: FixtureVerifierSettings,
    kids: FixtureKids,
    cases: BTreeMap<String, Case>,
}

#[derive(Debug, Deserialize)]
struct FixtureVerifierSettings {
    issuer: String,
    audience: Vec<String>,
    leeway_secs: u64,
}

#[derive(Debug, Deserialize)]
struct FixtureKids {
    rsa: String,
    ec: String,
    ed: String,
}

#[derive(Debug, Deserialize)]
struct Case {
    token: String,
    key_set: String,
    /// "accept" or the expected `TokenError::code`.
    expect: String,
    subject: Option<String>,
    expires_at: Option<i64>,
    issued_at: Option<i64>,
    token_version: Option<u64>,
    token_id: Option<String>,
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()))
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        serde_json::from_str(&read_fixture("tokens.json")).expect("tokens.json matches the Case layout")
    })
}

fn hs256_secret() -> Vec<u8> {
    read_fixture("hs256.secret").into_bytes()
}

fn pem_source(file: &str, algorithm: Algorithm) -> KeySource {
    KeySource::PublicKeyPem {
        pem: read_fixture(file),
        algorithm,
        kid: None,
    }
}

/// Key sources named by the `key_set` field of a fixture case.
fn key_sources(key_set: &str) -> Vec<KeySource> {
    match key_set {
        "hs256" => vec![KeySource::Hs256Secret(hs256_secret())],
        "rs256_pem" => vec![pem_source("rsa_public.pem", Algorithm::RS256)],
        "es256_pem" => vec![pem_source("ec_public.pem", Algorithm::ES256)],
        "eddsa_pem" => vec![pem_source("ed25519_public.pem", Algorithm::EdDSA)],
        "jwks" => vec![KeySource::Jwks(read_fixture("jwks.json"))],
        other => panic!("tokens.json names unknown key_set {other:?}"),
    }
}

fn fixture_config(keys: Vec<KeySource>) -> VerifierConfig {
    let settings = &fixtures().verifier;
    VerifierConfig {
        keys,
        issuer: Some(settings.issuer.clone()),
        audience: settings.audience.clone(),
        leeway_secs: settings.leeway_secs,
    }
}

fn fixture_verifier(key_set: &str) -> TokenVerifier {
    TokenVerifier::new(fixture_config(key_sources(key_set)))
        .unwrap_or_else(|error| panic!("key set {key_set} must load: {error}"))
}

fn case(name: &str) -> &'static Case {
    fixtures()
        .cases
        .get(name)
        .unwrap_or_else(|| panic!("tokens.json has no case {name:?}; rerun scripts/mint-jwt-fixtures.py"))
}

fn verify_case(name: &str) -> Result<VerifiedToken, TokenError> {
    let case = case(name);
    fixture_verifier(&case.key_set).verify(&case.token)
}

/// Compares the verifier's result for a fixture case with its expectation.
fn check_case(name: &str) -> Result<(), String> {
    let case = case(name);
    let result = fixture_verifier(&case.key_set).verify(&case.token);

    match (case.expect.as_str(), result) {
        ("accept", Ok(token)) => {
            let expected = VerifiedToken {
                subject: case.subject.clone().expect("accept cases list subject"),
                expires_at: case.expires_at.expect("accept cases list expires_at"),
                issued_at: case.issued_at,
                token_version: case.token_version.expect("accept cases list token_version"),
                token_id: case.token_id.clone(),
            };
            if token == expected {
                Ok(())
            } else {
                Err(format!("{name}: verified {token:?}, expected {expected:?}"))
            }
        }
        ("accept", Err(error)) => Err(format!(
            "{name}: rejected with {} ({error}), expected accept",
            error.code()
        )),
        (code, Ok(token)) => Err(format!("{name}: accepted {token:?}, expected {code}")),
        (code, Err(error)) if error.code() == code => Ok(()),
        (code, Err(error)) => Err(format!(
            "{name}: rejected with {} ({error}), expected {code}",
            error.code()
        )),
    }
}

fn assert_case(name: &str) {
    if let Err(message) = check_case(name) {
        panic!("{message}");
    }
}

/// Asserts the case is rejected as malformed because of the named claim.
fn assert_malformed_claim(name: &str, claim: &str) {
    assert_case(name);
    let error = verify_case(name).unwrap_err();
    match error {
        TokenError::Malformed(MalformedReason::InvalidClaim { claim: named, .. }) => {
            assert_eq!(named, claim, "{name}: {error}");
        }
        other => panic!("{name}: expected InvalidClaim for {claim}, got {other:?}"),
    }
    assert!(
        error.to_string().contains(&format!("`{claim}`")),
        "{name}: message should name the claim: {error}"
    );
}

// ---------------------------------------------------------------------------
// Every fixture case

#[test]
fn every_fixture_case_matches_its_expectation() {
    let failures: Vec<String> = fixtures()
        .cases
        .keys()
        .filter_map(|name| check_case(name).err())
        .collect();

    assert!(failures.is_empty(), "failing cases:\n{}", failures.join("\n"));
}

#[test]
fn fixtures_cover_every_key_set() {
    let key_sets: std::collections::BTreeSet<&str> = fixtures()
        .cases
        .values()
        .map(|case| case.key_set.as_str())
        .collect();

    assert_eq!(
        key_sets.into_iter().collect::<Vec<_>>(),
        ["eddsa_pem", "es256_pem", "hs256", "jwks", "rs256_pem"]
    );
}

// ---------------------------------------------------------------------------
// Accepted tokens, per algorithm and key source

#[test]
fn hs256_token_is_accepted() {
    assert_case("hs256_valid");
}

#[test]
fn rs256_token_is_accepted_via_pem() {
    assert_case("rs256_valid_pem");
}

#[test]
fn rs256_token_is_accepted_via_jwks() {
    assert_case("rs256_valid_jwks");
}

#[test]
fn es256_token_is_accepted_via_pem() {
    assert_case("es256_valid_pem");
}

#[test]
fn es256_token_is_accepted_via_jwks() {
    assert_case("es256_valid_jwks");
}

#[test]
fn eddsa_token_is_accepted_via_pem() {
    assert_case("eddsa_valid_pem");
}

#[test]
fn eddsa_token_is_accepted_via_jwks() {
    assert_case("eddsa_valid_jwks");
}

#[test]
fn kidless_token_matches_jwks_by_alg() {
    assert_case("es256_jwks_without_kid");
}

#[test]
fn verified_token_carries_subject_and_times() {
    let token = verify_case("hs256_valid").expect("accepted");

    assert_eq!(token.subject, "user-42");
    assert_eq!(token.expires_at, 4_102_444_800);
    assert_eq!(token.issued_at, Some(1_700_000_000));
    assert_eq!(token.token_version, 0);
    assert_eq!(token.token_id, None);
}

#[test]
fn token_without_iat_is_accepted() {
    assert_case("issued_at_absent");
    assert_eq!(verify_case("issued_at_absent").expect("accepted").issued_at, None);
}

// ---------------------------------------------------------------------------
// Algorithm pinning

#[test]
fn alg_none_is_rejected() {
    assert_case("alg_none");
}

#[test]
fn alg_none_naming_a_jwks_kid_is_rejected() {
    assert_case("alg_none_against_jwks");
}

#[test]
fn hs256_token_signed_with_rsa_public_key_is_rejected() {
    assert_case("hs256_signed_with_rsa_public_pem");
}

#[test]
fn hs_rs_confusion_is_rejected_via_jwks() {
    assert_case("hs256_signed_with_rsa_public_pem_via_jwks");
}

#[test]
fn token_alg_differing_from_key_alg_is_rejected() {
    assert_case("rs384_against_rs256_key");
}

#[test]
fn es256_token_naming_rsa_kid_is_rejected() {
    assert_case("es256_token_naming_rsa_kid");
}

// ---------------------------------------------------------------------------
// Signatures and key selection

#[test]
fn wrong_hs256_secret_is_rejected() {
    assert_case("hs256_wrong_secret");
}

#[test]
fn tampered_payload_is_rejected() {
    assert_case("rs256_tampered_payload");
}

#[test]
fn eddsa_signature_from_other_key_is_rejected() {
    assert_case("eddsa_signed_by_other_key");
}

#[test]
fn unknown_kid_is_rejected() {
    assert_case("unknown_kid");
}

#[test]
fn several_keys_without_kid_accept_each_algorithm() {
    let verifier = TokenVerifier::new(fixture_config(vec![
        KeySource::Hs256Secret(hs256_secret()),
        pem_source("rsa_public.pem", Algorithm::RS256),
        pem_source("ec_public.pem", Algorithm::ES256),
        pem_source("ed25519_public.pem", Algorithm::EdDSA),
    ]))
    .expect("keys load");

    for name in [
        "hs256_valid",
        "rs256_valid_pem",
        "es256_valid_pem",
        "eddsa_valid_pem",
    ] {
        let result = verifier.verify(&case(name).token);
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[test]
fn jsonwebtoken_minted_tokens_verify_with_fixture_keys() {
    let kids = &fixtures().kids;
    let signers = [
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(read_fixture("rsa_private.pem").as_bytes()),
            "rs256_pem",
            &kids.rsa,
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(read_fixture("ec_private.pem").as_bytes()),
            "es256_pem",
            &kids.ec,
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(read_fixture("ed25519_private.pem").as_bytes()),
            "eddsa_pem",
            &kids.ed,
        ),
    ];

    for (algorithm, encoding_key, pem_key_set, kid) in signers {
        let encoding_key = encoding_key.expect("private key PEM loads");
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.clone());
        let token = encode(&header, &fixture_claims(json!({})), &encoding_key).expect("encode");

        for key_set in [pem_key_set, "jwks"] {
            let result = fixture_verifier(key_set).verify(&token);
            assert!(result.is_ok(), "{algorithm:?} via {key_set}: {result:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Time claims and leeway

#[test]
fn expired_token_is_rejected() {
    assert_case("expired");
}

#[test]
fn token_before_nbf_is_rejected() {
    assert_case("not_yet_valid");
}

#[test]
fn token_without_exp_is_rejected() {
    assert_case("missing_exp");
}

#[test]
fn exp_of_wrong_type_is_malformed() {
    assert_malformed_claim("exp_is_string", "exp");
}

#[test]
fn iat_of_wrong_type_is_malformed() {
    assert_malformed_claim("iat_is_string", "iat");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Valid claims for the fixture verifier settings, with `overrides` merged in.
fn fixture_claims(overrides: Value) -> Value {
    let settings = &fixtures().verifier;
    let mut claims = json!({
        "sub": "user-7",
        "iss": settings.issuer,
        "aud": settings.audience[0],
        "iat": unix_now(),
        "exp": unix_now() + 600,
    });
    for (name, value) in overrides.as_object().expect("overrides object") {
        claims[name] = value.clone();
    }
    claims
}

fn mint_hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&hs256_secret()),
    )
    .expect("encode")
}

fn hs256_verifier_with_leeway(leeway_secs: u64) -> TokenVerifier {
    let mut config = fixture_config(vec![KeySource::Hs256Secret(hs256_secret())]);
    config.leeway_secs = leeway_secs;
    TokenVerifier::new(config).expect("valid configuration")
}

#[test]
fn expired_token_within_leeway_is_accepted() {
    let verifier = hs256_verifier_with_leeway(30);
    let exp = unix_now() - 10;

    let token = verifier
        .verify(&mint_hs256(&fixture_claims(json!({ "exp": exp }))))
        .expect("accepted within leeway");

    assert_eq!(token.expires_at, i64::try_from(exp).unwrap());
}

#[test]
fn expired_token_beyond_leeway_is_rejected() {
    let verifier = hs256_verifier_with_leeway(30);

    let result = verifier.verify(&mint_hs256(&fixture_claims(json!({ "exp": unix_now() - 45 }))));

    assert_eq!(result, Err(TokenError::Expired));
}

#[test]
fn zero_leeway_rejects_just_expired_token() {
    let verifier = hs256_verifier_with_leeway(0);

    let result = verifier.verify(&mint_hs256(&fixture_claims(json!({ "exp": unix_now() - 5 }))));

    assert_eq!(result, Err(TokenError::Expired));
}

#[test]
fn nbf_within_leeway_is_accepted() {
    let verifier = hs256_verifier_with_leeway(30);

    let result = verifier.verify(&mint_hs256(&fixture_claims(json!({ "nbf": unix_now() + 10 }))));

    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn nbf_beyond_leeway_is_rejected() {
    let verifier = hs256_verifier_with_leeway(30);

    let result = verifier.verify(&mint_hs256(&fixture_claims(json!({ "nbf": unix_now() + 60 }))));

    assert_eq!(result, Err(TokenError::NotYetValid));
}

// ---------------------------------------------------------------------------
// Issuer, audience and subject

#[test]
fn wrong_issuer_is_rejected() {
    assert_case("wrong_issuer");
}

#[test]
fn missing_issuer_is_rejected_when_configured() {
    assert_case("missing_issuer");
}

#[test]
fn issuer_is_not_checked_when_not_configured() {
    let mut config = fixture_config(vec![KeySource::Hs256Secret(hs256_secret())]);
    config.issuer = None;
    let verifier = TokenVerifier::new(config).expect("valid configuration");

    for name in ["wrong_issuer", "missing_issuer"] {
        let result = verifier.verify(&case(name).token);
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[test]
fn wrong_audience_is_rejected() {
    assert_case("wrong_audience");
}

#[test]
fn audience_array_containing_configured_value_is_accepted() {
    assert_case("audience_array_contains_configured");
}

#[test]
fn audience_array_without_configured_value_is_rejected() {
    assert_case("audience_array_without_configured");
}

#[test]
fn missing_audience_is_rejected_when_configured() {
    assert_case("missing_audience");
}

#[test]
fn audience_is_not_checked_when_not_configured() {
    let mut config = fixture_config(vec![KeySource::Hs256Secret(hs256_secret())]);
    config.audience = Vec::new();
    let verifier = TokenVerifier::new(config).expect("valid configuration");

    for name in ["wrong_audience", "missing_audience", "hs256_valid"] {
        let result = verifier.verify(&case(name).token);
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[test]
fn missing_subject_is_rejected() {
    assert_case("missing_subject");
}

#[test]
fn empty_subject_is_rejected() {
    assert_case("empty_subject");
}

#[test]
fn numeric_subject_is_malformed() {
    assert_malformed_claim("subject_is_number", "sub");
}

// ---------------------------------------------------------------------------
// Token version and token id

#[test]
fn token_version_claim_is_returned() {
    assert_case("token_version_present");
    assert_eq!(
        verify_case("token_version_present")
            .expect("accepted")
            .token_version,
        3
    );
}

#[test]
fn negative_token_version_is_malformed() {
    assert_malformed_claim("token_version_negative", "tv");
}

#[test]
fn string_token_version_is_malformed() {
    assert_malformed_claim("token_version_string", "tv");
}

#[test]
fn fractional_token_version_is_malformed() {
    assert_malformed_claim("token_version_fraction", "tv");
}

#[test]
fn token_id_claim_is_returned() {
    assert_case("token_id_present");
    assert_eq!(
        verify_case("token_id_present")
            .expect("accepted")
            .token_id
            .as_deref(),
        Some("jti-7f3a")
    );
}

#[test]
fn numeric_token_id_is_malformed() {
    assert_malformed_claim("token_id_is_number", "jti");
}

// ---------------------------------------------------------------------------
// Structure and size

#[test]
fn oversized_token_is_rejected_before_parsing() {
    assert_case("oversized_token");
    assert_eq!(
        verify_case("oversized_token"),
        Err(TokenError::Malformed(MalformedReason::TooLarge {
            max_bytes: MAX_TOKEN_BYTES
        }))
    );

    // Not even a JWT: the size check comes first.
    let garbage = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        fixture_verifier("hs256").verify(&garbage),
        Err(TokenError::Malformed(MalformedReason::TooLarge {
            max_bytes: MAX_TOKEN_BYTES
        }))
    );
}

#[test]
fn token_of_exactly_max_size_is_accepted() {
    let verifier = fixture_verifier("hs256");
    let secret = hs256_secret();

    // Unpadded base64url cannot produce every length, so the kid length is
    // varied too until the token is exactly MAX_TOKEN_BYTES long.
    let token = (1..4)
        .flat_map(|kid_len| (5_000..6_200).map(move |padding_len| (kid_len, padding_len)))
        .map(|(kid_len, padding_len)| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("k".repeat(kid_len));
            let claims = fixture_claims(json!({ "padding": "p".repeat(padding_len) }));
            encode(&header, &claims, &EncodingKey::from_secret(&secret)).expect("encode")
        })
        .find(|token| token.len() == MAX_TOKEN_BYTES)
        .expect("some padding gives an exact-size token");

    let result = verifier.verify(&token);
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn critical_header_extension_is_rejected() {
    assert_case("critical_header_extension");
    assert_eq!(
        verify_case("critical_header_extension"),
        Err(TokenError::Malformed(MalformedReason::CriticalHeader))
    );
}

#[test]
fn non_jwt_strings_are_malformed() {
    let verifier = fixture_verifier("hs256");
    let inputs = ["", "abc", "a.b", "a.b.c.d", "...", "!!.e30.sig"];

    for input in inputs {
        let result = verifier.verify(input);
        assert_eq!(
            result,
            Err(TokenError::Malformed(MalformedReason::Structure)),
            "input {input:?}"
        );
    }
}

#[test]
fn non_object_payload_is_malformed() {
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!(["sub", "user-1"]),
        &EncodingKey::from_secret(&hs256_secret()),
    )
    .expect("encode");

    assert_eq!(
        fixture_verifier("hs256").verify(&token),
        Err(TokenError::Malformed(MalformedReason::Structure))
    );
}

// ---------------------------------------------------------------------------
// Error codes and messages

#[test]
fn error_messages_never_contain_the_token() {
    for (name, case) in &fixtures().cases {
        if case.expect == "accept" {
            continue;
        }
        let error = fixture_verifier(&case.key_set).verify(&case.token).unwrap_err();
        let message = error.to_string();

        for segment in case.token.split('.').filter(|segment| segment.len() > 3) {
            assert!(
                !message.contains(segment),
                "{name}: message echoes the token: {message}"
            );
        }
        for claim_value in ["user-42", "evil", "other-service", "admin", "x-unknown"] {
            assert!(
                !message.contains(claim_value),
                "{name}: message echoes a claim value: {message}"
            );
        }
    }
}

#[test]
fn error_codes_are_distinct_snake_case() {
    let errors = [
        TokenError::Malformed(MalformedReason::Structure),
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::MissingExpiry,
        TokenError::InvalidIssuer,
        TokenError::MissingIssuer,
        TokenError::InvalidAudience,
        TokenError::MissingAudience,
        TokenError::MissingSubject,
        TokenError::InvalidSignature,
        TokenError::UnknownKey,
        TokenError::AlgorithmNotAllowed,
    ];
    let codes: std::collections::BTreeSet<&str> = errors.iter().map(TokenError::code).collect();

    assert_eq!(codes.len(), errors.len(), "codes repeat: {codes:?}");
    for code in codes {
        assert!(
            code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "code {code:?} is not snake_case"
        );
    }
}

#[test]
fn verifier_is_cheap_to_share_across_threads() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<TokenVerifier>();

    let verifier = fixture_verifier("jwks");
    let token = case("rs256_valid_jwks").token.clone();
    let handle = std::thread::spawn({
        let verifier = verifier.clone();
        move || verifier.verify(&token).map(|verified| verified.subject)
    });

    assert_eq!(handle.join().expect("thread"), Ok("user-42".to_owned()));
}

// ---------------------------------------------------------------------------
// Key configuration errors

fn config_error(keys: Vec<KeySource>) -> KeyConfigError {
    TokenVerifier::new(fixture_config(keys)).expect_err("configuration must be rejected")
}

fn assert_invalid_key(error: &KeyConfigError, key_fragment: &str, reason_fragment: &str) {
    match error {
        KeyConfigError::InvalidKey { key, reason } => {
            assert!(
                key.contains(key_fragment),
                "key {key:?} should contain {key_fragment:?}"
            );
            assert!(
                reason.contains(reason_fragment),
                "reason {reason:?} should contain {reason_fragment:?}"
            );
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
}

/// A P-384 public key, which ES256 (P-256 only) cannot use.
const P384_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEAhxxu+6a8uKcrRP9x5b2VbfMSzDtBb0W
uTkW4nDyeh/LumbIdT3h2pXIgSwjJQiaLitoA7/CC0lD39qZqROnIXbNVdSCy2v0
iw98/2HLhKcZbXRqy3JoTh1gbwsgpCb4
-----END PUBLIC KEY-----
";

#[test]
fn empty_key_list_is_rejected() {
    assert_eq!(config_error(Vec::new()), KeyConfigError::NoKeys);
}

#[test]
fn short_hs256_secret_is_rejected() {
    let error = config_error(vec![KeySource::Hs256Secret(b"secret".to_vec())]);

    assert_invalid_key(&error, "key 0 (HS256 secret)", "at least 32");
}

#[test]
fn garbage_pem_is_rejected_naming_the_key() {
    let error = config_error(vec![
        KeySource::Hs256Secret(hs256_secret()),
        KeySource::PublicKeyPem {
            pem: "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n".to_owned(),
            algorithm: Algorithm::RS256,
            kid: Some("rotated".to_owned()),
        },
    ]);

    assert_invalid_key(
        &error,
        "key 1 (PEM, RS256, kid \"rotated\")",
        "not a valid RS256 public key",
    );
}

#[test]
fn text_without_pem_block_is_rejected() {
    let error = config_error(vec![KeySource::PublicKeyPem {
        pem: "not a pem".to_owned(),
        algorithm: Algorithm::ES256,
        kid: None,
    }]);

    assert_invalid_key(&error, "key 0", "BEGIN");
}

#[test]
fn private_key_pem_is_rejected() {
    let error = config_error(vec![pem_source("rsa_private.pem", Algorithm::RS256)]);

    assert_invalid_key(&error, "key 0", "\"PRIVATE KEY\"");
}

#[test]
fn pem_pinned_to_hs256_is_rejected() {
    let error = config_error(vec![pem_source("rsa_public.pem", Algorithm::HS256)]);

    assert_invalid_key(&error, "key 0", "cannot be used with a PEM public key");
}

#[test]
fn rsa_pem_pinned_to_es256_is_rejected() {
    let error = config_error(vec![pem_source("rsa_public.pem", Algorithm::ES256)]);

    assert_invalid_key(&error, "key 0 (PEM, ES256)", "not a valid ES256 public key");
}

#[test]
fn p384_pem_pinned_to_es256_is_rejected() {
    let error = config_error(vec![KeySource::PublicKeyPem {
        pem: P384_PUBLIC_PEM.to_owned(),
        algorithm: Algorithm::ES256,
        kid: None,
    }]);

    assert_invalid_key(&error, "key 0", "cannot verify ES256");
}

#[test]
fn jwks_that_is_not_json_is_rejected() {
    let error = config_error(vec![KeySource::Jwks("{\"keys\": [".to_owned())]);

    assert_invalid_key(&error, "key 0 (JWKS)", "line 1");
}

fn fixture_jwks_keys() -> Vec<Value> {
    let document: Value = serde_json::from_str(&read_fixture("jwks.json")).expect("jwks.json");
    document["keys"].as_array().expect("keys array").clone()
}

fn jwks(keys: Vec<Value>) -> KeySource {
    KeySource::Jwks(json!({ "keys": keys }).to_string())
}

#[test]
fn jwks_key_with_invalid_parameters_names_its_kid() {
    let mut rsa = fixture_jwks_keys()[0].clone();
    rsa["n"] = json!("***");

    let error = config_error(vec![jwks(vec![rsa])]);

    assert_invalid_key(&error, "entry 0 (kid \"rsa-1\")", "base64url");
}

#[test]
fn jwks_alg_contradicting_kty_is_rejected() {
    let mut ec = fixture_jwks_keys()[1].clone();
    ec["alg"] = json!("RS256");

    let error = config_error(vec![jwks(vec![ec])]);

    assert_invalid_key(&error, "kid \"ec-1\"", "does not match the key type");
}

#[test]
fn jwks_key_alg_derived_from_kty() {
    let keys = fixture_jwks_keys()
        .into_iter()
        .map(|mut key| {
            key.as_object_mut().expect("key object").remove("alg");
            key
        })
        .collect();
    let verifier = TokenVerifier::new(fixture_config(vec![jwks(keys)])).expect("keys load");

    for name in ["rs256_valid_jwks", "es256_valid_jwks", "eddsa_valid_jwks"] {
        let result = verifier.verify(&case(name).token);
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    assert_eq!(
        verifier.verify(&case("es256_token_naming_rsa_kid").token),
        Err(TokenError::AlgorithmNotAllowed)
    );
}

#[test]
fn short_ed25519_jwk_is_rejected_without_panicking() {
    let short = json!({"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAAAAAAAAAAAAAAAAAAAA"});

    let error = config_error(vec![jwks(vec![short])]);

    assert_invalid_key(&error, "kid \"short\"", "32 bytes");
}

#[test]
fn small_rsa_jwk_is_rejected() {
    let small = json!({"kty": "RSA", "kid": "small", "alg": "RS256", "e": "AQAB", "n": "_".repeat(172)});

    let error = config_error(vec![jwks(vec![small])]);

    assert_invalid_key(&error, "kid \"small\"", "at least 2048");
}

#[test]
fn jwks_skips_encryption_and_unsupported_keys() {
    let rsa = fixture_jwks_keys()[0].clone();
    let mut encryption = rsa.clone();
    encryption["kid"] = json!("rsa-enc");
    encryption["use"] = json!("enc");
    encryption["alg"] = json!("RSA-OAEP");
    let mut rs512 = rsa.clone();
    rs512["kid"] = json!("rsa-512");
    rs512["alg"] = json!("RS512");
    let p384 = json!({
        "kty": "EC", "crv": "P-384", "kid": "ec-384",
        "x": "Ahxxu-6a8uKcrRP9x5b2VbfMSzDtBb0WuTkW4nDyeh_LumbIdT3h2pXIgSwjJQia",
        "y": "LitoA7_CC0lD39qZqROnIXbNVdSCy2v0iw98_2HLhKcZbXRqy3JoTh1gbwsgpCb4"
    });

    let verifier = TokenVerifier::new(fixture_config(vec![jwks(vec![encryption, rs512, p384, rsa])]))
        .expect("the RS256 key is usable");

    assert!(verifier.verify(&case("rs256_valid_jwks").token).is_ok());
}

#[test]
fn jwks_without_usable_keys_is_rejected() {
    let mut encryption = fixture_jwks_keys()[0].clone();
    encryption["use"] = json!("enc");

    let error = config_error(vec![jwks(vec![encryption])]);

    assert_eq!(
        error,
        KeyConfigError::NoUsableJwksKey {
            key: "key 0 (JWKS)".to_owned()
        }
    );
}

#[test]
fn duplicate_kid_is_rejected() {
    let kids = &fixtures().kids;
    let error = config_error(vec![
        KeySource::Jwks(read_fixture("jwks.json")),
        KeySource::PublicKeyPem {
            pem: read_fixture("rsa_public.pem"),
            algorithm: Algorithm::RS256,
            kid: Some(kids.rsa.clone()),
        },
    ]);

    match error {
        KeyConfigError::DuplicateKid { kid, first, second } => {
            assert_eq!(kid, kids.rsa);
            assert!(first.starts_with("key 0 (JWKS)"), "{first}");
            assert!(second.starts_with("key 1 (PEM"), "{second}");
        }
        other => panic!("expected DuplicateKid, got {other:?}"),
    }
}

#[test]
fn leeway_above_maximum_is_rejected() {
    let mut config = fixture_config(vec![KeySource::Hs256Secret(hs256_secret())]);
    config.leeway_secs = MAX_LEEWAY_SECS + 1;

    assert_eq!(
        TokenVerifier::new(config).unwrap_err(),
        KeyConfigError::LeewayTooLarge {
            leeway_secs: MAX_LEEWAY_SECS + 1,
            max_secs: MAX_LEEWAY_SECS
        }
    );
}
