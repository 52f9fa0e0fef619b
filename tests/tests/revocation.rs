//! Revocation is prompt: after `user.sessions_revoked` or `user.deactivated`
//! is projected, every API instance rejects older tokens within one second,
//! L1 cache included. Two `serve` processes share one Redis; a separate
//! projector process writes the revocation.
//!
//! The API processes run with a one-minute L1 lifetime, so only the
//! invalidation messages can make them notice in time.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sessionfold_tests::processes::{ProcessGuard, replay};
use sessionfold_tests::redis_server::RedisServer;

const SECRET: &str = "revocation-test-secret-0123456789abcdef";
const USER: &str = "user-0100";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn walkthrough() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/walkthrough.ndjson")
}

fn start_api(redis: &RedisServer) -> (ProcessGuard, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_api-under-test"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("REDIS_URL", redis.url())
        .env("JWT_SECRET", SECRET)
        .env("L1_CACHE_TTL_MS", "60000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (ProcessGuard(child), format!("http://127.0.0.1:{port}"))
}

fn token(token_version: u64, issued_at: i64) -> String {
    let claims = json!({"sub": USER, "exp": issued_at + 3600, "iat": issued_at, "tv": token_version});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn status(client: &reqwest::Client, base: &str, token: &str) -> Option<u16> {
    let response = client
        .get(format!("{base}/auth/session"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

async fn wait_until_serving(client: &reqwest::Client, base: &str, token: &str) {
    for _ in 0..200 {
        if status(client, base, token).await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not serve the session within 10 s");
}

/// Polls every API until each rejects `token` or `deadline` passes; returns
/// the instances that still accepted it at the deadline.
async fn wait_for_rejection(
    client: &reqwest::Client,
    bases: &[String],
    token: &str,
    deadline: Duration,
) -> Vec<String> {
    let started = Instant::now();
    let mut pending: Vec<String> = bases.to_vec();
    while !pending.is_empty() && started.elapsed() < deadline {
        let mut still = Vec::new();
        for base in pending {
            if status(client, &base, token).await != Some(401) {
                still.push(base);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pending
}

fn event_file(event: serde_json::Value) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{event}").unwrap();
    file
}

#[tokio::test]
async fn revocation_reaches_every_api_instance_within_one_second() {
    let redis = RedisServer::start();
    replay(
        env!("CARGO_BIN_EXE_projector-under-test"),
        &redis.url(),
        &walkthrough(),
    );
    let (_first, first) = start_api(&redis);
    let (_second, second) = start_api(&redis);
    let bases = vec![first, second];

    let client = reqwest::Client::new();
    let issued_at = chrono::Utc::now().timestamp() - 60;
    let old = token(0, issued_at);
    for base in &bases {
        wait_until_serving(&client, base, &old).await;
        // A second read comes from L1.
        assert_eq!(status(&client, base, &old).await, Some(200));
    }

    let revoke = event_file(json!({
        "specversion": "1.0", "id": "rev-1", "source": "/services/users", "type": "user.sessions_revoked",
        "subject": USER, "time": "2026-10-05T12:00:00Z", "data": {"version": 3, "tokenVersion": 1}
    }));
    replay(
        env!("CARGO_BIN_EXE_projector-under-test"),
        &redis.url(),
        revoke.path(),
    );
    let late = wait_for_rejection(&client, &bases, &old, Duration::from_secs(1)).await;
    assert!(
        late.is_empty(),
        "still accepting a revoked token after 1 s: {late:?}"
    );

    // A token carrying the new version is accepted again everywhere.
    let renewed = token(1, issued_at);
    for base in &bases {
        assert_eq!(status(&client, base, &renewed).await, Some(200));
    }

    let deactivate = event_file(json!({
        "specversion": "1.0", "id": "deact-1", "source": "/services/users", "type": "user.deactivated",
        "subject": USER, "time": chrono::Utc::now().to_rfc3339(), "data": {"version": 4}
    }));
    replay(
        env!("CARGO_BIN_EXE_projector-under-test"),
        &redis.url(),
        deactivate.path(),
    );
    let late = wait_for_rejection(&client, &bases, &renewed, Duration::from_secs(1)).await;
    assert!(
        late.is_empty(),
        "still accepting a token issued before deactivation after 1 s: {late:?}"
    );
}
