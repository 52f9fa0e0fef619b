//! Redis stopped while the API runs: users in the L1 cache are still served
//! up to its lifetime, other users get a clear 503 (no source of truth is
//! configured here), nothing panics, and a restarted Redis is picked up
//! without restarting the API.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sessionfold_tests::processes::{ProcessGuard, replay};
use sessionfold_tests::redis_server::RedisServer;

const SECRET: &str = "outage-test-secret-0123456789abcdef0123";

fn events_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for user in ["user-cached", "user-cold"] {
        let event = json!({
            "specversion": "1.0", "id": format!("{user}-created"), "source": "/services/users",
            "type": "user.created", "subject": user, "time": "2026-10-01T09:00:00Z",
            "data": {"version": 1, "email": "x@example.com", "name": user, "role": "student"}
        });
        writeln!(file, "{event}").unwrap();
    }
    file
}

fn token(user: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user, "exp": now + 3600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn get(client: &reqwest::Client, base: &str, user: &str) -> (u16, Option<String>, Value) {
    let response = client
        .get(format!("{base}/auth/session"))
        .bearer_auth(token(user))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

async fn wait_for_status(client: &reqwest::Client, base: &str, user: &str, expected: u16) -> u16 {
    let mut last = 0;
    for _ in 0..200 {
        if let Ok(response) = client
            .get(format!("{base}/auth/session"))
            .bearer_auth(token(user))
            .send()
            .await
        {
            last = response.status().as_u16();
            if last == expected {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

#[tokio::test]
async fn api_survives_redis_outage_and_recovers() {
    let mut redis = RedisServer::start_local();
    let events = events_file();
    replay(
        env!("CARGO_BIN_EXE_projector-under-test"),
        &redis.url(),
        events.path(),
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut api = ProcessGuard(
        Command::new(env!("CARGO_BIN_EXE_api-under-test"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("REDIS_URL", redis.url())
            .env("JWT_SECRET", SECRET)
            .env("L1_CACHE_TTL_MS", "30000")
            .env("REDIS_COMMAND_TIMEOUT_MS", "300")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    assert_eq!(wait_for_status(&client, &base, "user-cached", 200).await, 200);

    redis.stop();

    let (status, _, body) = get(&client, &base, "user-cached").await;
    assert_eq!(status, 200, "cached user not served from L1: {body}");
    assert_eq!(body["user"]["id"], "user-cached");

    let (status, retry_after, body) = get(&client, &base, "user-cold").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "service_unavailable");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        api.0.try_wait().unwrap().is_none(),
        "the API process exited during the outage"
    );

    // The restarted server is empty: project again, then the cold user is
    // served by the same API process.
    redis.restart();
    replay(
        env!("CARGO_BIN_EXE_projector-under-test"),
        &redis.url(),
        events.path(),
    );
    assert_eq!(wait_for_status(&client, &base, "user-cold", 200).await, 200);
    assert!(api.0.try_wait().unwrap().is_none());
}
