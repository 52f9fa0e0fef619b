//! `GET /auth/session` through the real router (`app(state)`), in process:
//! every token rejection case, credentials from header and cookie, and
//! revocation against the projected document.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use sessionfold_api::config::ApiConfig;
use sessionfold_api::run::build_state;
use sessionfold_api::{AppState, app};
use sessionfold_common::config::Env;
use sessionfold_common::event::{Decoded, Decoder, Event};
use sessionfold_common::store::{MemoryStore, ProjectionStore};
use sessionfold_projector::Projector;
use tower::ServiceExt;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../common/tests/fixtures/jwt");
const ISSUER: &str = "https://auth.sessionfold.test";
const AUDIENCE: &str = "sessionfold-api";

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn cloud_event(id: &str, event_type: &str, subject: &str, data: Value) -> Event {
    let value = json!({
        "specversion": "1.0", "id": id, "source": "/test", "type": event_type,
        "subject": subject, "time": "2026-11-01T09:00:00Z", "data": data,
    });
    match Decoder::default().decode_value(value).unwrap() {
        Decoded::Event(event) => event,
        other => panic!("not an event: {other:?}"),
    }
}

fn user_created(user_id: &str) -> Event {
    cloud_event(
        &format!("{user_id}-created"),
        "user.created",
        user_id,
        json!({"version": 1, "email": "asha@example.com", "name": "Asha", "role": "student"}),
    )
}

/// A router whose verifier uses one fixture key set, with `user-42` projected.
async fn app_for_key_set(key_set: &str) -> (AppState, Arc<MemoryStore>) {
    let secret = std::fs::read_to_string(fixture("hs256.secret")).unwrap();
    let secret = secret.trim().to_owned();
    let mut pairs: Vec<(&str, String)> = vec![
        ("JWT_ISSUER", ISSUER.to_owned()),
        ("JWT_AUDIENCE", AUDIENCE.to_owned()),
        ("JWT_LEEWAY_SECONDS", "30".to_owned()),
    ];
    match key_set {
        "hs256" => pairs.push(("JWT_SECRET", secret)),
        "rs256_pem" => {
            pairs.push(("JWT_PUBLIC_KEY_FILE", fixture("rsa_public.pem")));
            pairs.push(("JWT_ALGORITHM", "RS256".to_owned()));
        }
        "es256_pem" => {
            pairs.push(("JWT_PUBLIC_KEY_FILE", fixture("ec_public.pem")));
            pairs.push(("JWT_ALGORITHM", "ES256".to_owned()));
        }
        "eddsa_pem" => {
            pairs.push(("JWT_PUBLIC_KEY_FILE", fixture("ed25519_public.pem")));
            pairs.push(("JWT_ALGORITHM", "EdDSA".to_owned()));
        }
        "jwks" => pairs.push(("JWT_JWKS_FILE", fixture("jwks.json"))),
        other => panic!("unknown key set {other}"),
    }
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut env = Env::from_pairs(&borrowed);
    let config = ApiConfig::from_env(&mut env);
    env.finish().unwrap();

    let store = Arc::new(MemoryStore::new());
    let dyn_store: Arc<dyn ProjectionStore> = store.clone();
    Projector::new(dyn_store.clone(), config.render)
        .project(&[user_created("user-42")])
        .await
        .unwrap();
    let state = build_state(&config, dyn_store, None, None).unwrap();
    (state, store)
}

async fn get(state: &AppState, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, challenge, serde_json::from_slice(&bytes).unwrap())
}

fn bearer(token: &str) -> Request<Body> {
    Request::get("/auth/session")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn every_fixture_token_gets_its_expected_answer() {
    let fixtures: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tokens.json")).unwrap()).unwrap();
    let cases = fixtures["cases"].as_object().unwrap();
    assert!(cases.len() >= 30, "expected the full fixture set");

    for (name, case) in cases {
        let (state, _) = app_for_key_set(case["key_set"].as_str().unwrap()).await;
        let (status, challenge, body) = get(&state, bearer(case["token"].as_str().unwrap())).await;
        let expect = case["expect"].as_str().unwrap();
        if expect == "accept" {
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            assert_eq!(body["user"]["id"], "user-42", "{name}");
            continue;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["authenticated"], false, "{name}");
        assert_eq!(body["error"]["code"], expect, "{name}");
        let challenge = challenge.unwrap_or_else(|| panic!("{name}: no WWW-Authenticate header"));
        assert!(
            challenge.starts_with("Bearer realm=\"sessionfold\", error=\"invalid_token\""),
            "{name}: {challenge}"
        );
    }
}

fn hs256_token(claims: Value) -> String {
    let secret = std::fs::read_to_string(fixture("hs256.secret")).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .unwrap()
}

fn claims_for(subject: &str, token_version: u64, issued_at: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 3600, "iat": issued_at, "tv": token_version})
}

#[tokio::test]
async fn request_without_credentials_is_anonymous() {
    let (state, _) = app_for_key_set("hs256").await;
    let request = Request::get("/auth/session").body(Body::empty()).unwrap();
    let (status, challenge, body) = get(&state, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"authenticated": false}));
    assert_eq!(challenge, None);
}

#[tokio::test]
async fn session_cookie_authenticates() {
    let (state, _) = app_for_key_set("hs256").await;
    let token = hs256_token(claims_for("user-42", 0, chrono::Utc::now().timestamp()));
    let request = Request::get("/auth/session")
        .header(header::COOKIE, format!("theme=dark; sf_session={token}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = get(&state, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], "user-42");
}

#[tokio::test]
async fn non_bearer_scheme_is_rejected() {
    let (state, _) = app_for_key_set("hs256").await;
    let request = Request::get("/auth/session")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap();
    let (status, challenge, body) = get(&state, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "token_malformed");
    assert!(challenge.is_some());
}

#[tokio::test]
async fn valid_token_for_unknown_user_is_rejected() {
    let (state, _) = app_for_key_set("hs256").await;
    let token = hs256_token(claims_for("user-nobody", 0, chrono::Utc::now().timestamp()));
    let (status, _, body) = get(&state, bearer(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unknown_user");
}

#[tokio::test]
async fn revoked_token_is_rejected_even_when_cached() {
    let (state, store) = app_for_key_set("hs256").await;
    let old = hs256_token(claims_for("user-42", 0, chrono::Utc::now().timestamp()));
    // Warm the L1 cache.
    assert_eq!(get(&state, bearer(&old)).await.0, StatusCode::OK);

    let revoke = cloud_event(
        "r1",
        "user.sessions_revoked",
        "user-42",
        json!({"version": 2, "tokenVersion": 1}),
    );
    let store: Arc<dyn ProjectionStore> = store;
    Projector::new(store, Default::default())
        .project(&[revoke])
        .await
        .unwrap();

    // The invalidation reaches the cache within the one-second bound.
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = get(&state, bearer(&old)).await.0;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, _, body) = get(&state, bearer(&old)).await;
    assert_eq!(body["error"]["code"], "token_revoked");

    let renewed = hs256_token(claims_for("user-42", 1, chrono::Utc::now().timestamp()));
    assert_eq!(get(&state, bearer(&renewed)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn token_issued_before_deactivation_is_revoked() {
    let (state, store) = app_for_key_set("hs256").await;
    let deactivate = cloud_event("d1", "user.deactivated", "user-42", json!({"version": 2}));
    let deactivated_at = deactivate.time.timestamp();
    let store: Arc<dyn ProjectionStore> = store;
    Projector::new(store, Default::default())
        .project(&[deactivate])
        .await
        .unwrap();

    let before = hs256_token(claims_for("user-42", 0, deactivated_at - 60));
    let (status, _, body) = get(&state, bearer(&before)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "token_revoked");

    // A token issued later authenticates an inactive user with no permissions.
    let after = hs256_token(claims_for("user-42", 0, deactivated_at + 60));
    let (status, _, body) = get(&state, bearer(&after)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["isActive"], false);
    assert_eq!(body["permissions"]["canBookClasses"], false);
    assert_eq!(body["permissions"]["maxBookingsPerDay"], 0);
}

#[tokio::test]
async fn session_metadata_follows_token_expiry() {
    let (state, _) = app_for_key_set("hs256").await;
    let now = chrono::Utc::now().timestamp();
    let token =
        hs256_token(json!({"sub": "user-42", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now}));
    let (status, _, body) = get(&state, bearer(&token)).await;
    assert_eq!(status, StatusCode::OK);

    let parse = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(body["sessionMetadata"][field].as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    assert_eq!(parse("tokenExpiresAt"), now + 600);
    // Default refresh margin is 300 s before expiry.
    assert_eq!(parse("refreshAt"), now + 300);
    // The client cache never outlives the token.
    assert!(parse("cacheExpiresAt") <= now + 600);
}

#[tokio::test]
async fn two_authorization_headers_are_rejected() {
    let (state, _) = app_for_key_set("hs256").await;
    let token = hs256_token(claims_for("user-42", 0, chrono::Utc::now().timestamp()));
    let request = Request::get("/auth/session")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::AUTHORIZATION, "Bearer other")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = get(&state, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "token_malformed");
}

#[tokio::test]
async fn two_session_cookies_are_rejected() {
    let (state, _) = app_for_key_set("hs256").await;
    let token = hs256_token(claims_for("user-42", 0, chrono::Utc::now().timestamp()));
    let request = Request::get("/auth/session")
        .header(header::COOKIE, format!("sf_session={token}; sf_session=garbage"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = get(&state, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "token_malformed");
}

#[tokio::test]
async fn error_responses_are_not_cacheable() {
    let (state, _) = app_for_key_set("hs256").await;
    let response = app(state).oneshot(bearer("garbage")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn oversize_dev_events_body_gets_json_413() {
    let mut env = Env::from_pairs(&[("JWT_SECRET", "dev-events-limit-secret-0123456789abcdef")]);
    let config = ApiConfig::from_env(&mut env);
    env.finish().unwrap();
    let store: Arc<dyn ProjectionStore> = Arc::new(MemoryStore::new());
    let dev = sessionfold_api::dev::DevHandle::start(Projector::new(store.clone(), config.render));
    let state = build_state(&config, store, None, Some(dev)).unwrap();

    let body = vec![b'x'; sessionfold_api::routes::dev::MAX_EVENTS_BODY + 1];
    let request = Request::post("/dev/events")
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(body))
        .unwrap();
    let (status, _, body) = get(&state, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
}
