//! Acceptance tests of `sessionfold-api dev` as a user runs it: the real
//! binary, a hand-written events file, the printed token and plain HTTP.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A `dev` process on a free loopback port, killed by PID on drop.
struct DevServer {
    child: Child,
    base: String,
    token: String,
    stdout: Vec<String>,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevServer {
    fn start(events: Option<&std::path::Path>) -> DevServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessionfold-api"));
        command.args(["dev", "--listen", "127.0.0.1:0"]);
        if let Some(events) = events {
            command.arg("--events").arg(events);
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .env_remove("JWT_SECRET")
            .env_remove("JWT_ISSUER")
            .env_remove("JWT_AUDIENCE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sessionfold-api dev");

        let stdout = child.stdout.take().unwrap();
        let mut lines = Vec::new();
        let mut base = None;
        let mut token = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                base = Some(rest.split_whitespace().next().unwrap().to_owned());
            }
            if let Some(value) = line.strip_prefix("TOKEN=") {
                token = Some(value.to_owned());
            }
            let done = line.starts_with("Token for another user");
            lines.push(line);
            if done {
                break;
            }
        }
        DevServer {
            child,
            base: base.unwrap_or_else(|| panic!("no listen address printed: {lines:?}")),
            token: token.unwrap_or_else(|| panic!("no token printed: {lines:?}")),
            stdout: lines,
        }
    }

    async fn session(&self, token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/auth/session", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn post_events(&self, body: &str) -> Value {
        reqwest::Client::new()
            .post(format!("{}/dev/events", self.base))
            .header("content-type", "application/x-ndjson")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn token_for(&self, user: &str, token_version: u64) -> String {
        let body: Value = reqwest::get(format!("{}/dev/token?user={user}&tv={token_version}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["token"].as_str().unwrap().to_owned()
    }
}

fn walkthrough() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/walkthrough.ndjson")
}

#[tokio::test]
async fn demo_token_returns_documented_shape() {
    let server = DevServer::start(None);
    let (status, body) = server.session(&server.token).await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(body["authenticated"], true);
    assert_eq!(body["user"]["id"], "user-0001");
    for field in ["email", "name", "avatar", "role", "isActive", "isVerified"] {
        assert!(body["user"].get(field).is_some(), "user.{field} missing: {body}");
    }
    for field in ["theme", "language", "notifications"] {
        assert!(
            body["user"]["preferences"].get(field).is_some(),
            "preferences.{field} missing"
        );
    }
    assert!(body["recentBookings"].as_array().unwrap().len() <= 5);
    assert!(body["activeSubscriptions"].is_array());
    for field in [
        "canBookClasses",
        "canTeach",
        "canManageShaalas",
        "maxBookingsPerDay",
    ] {
        assert!(
            body["permissions"].get(field).is_some(),
            "permissions.{field} missing"
        );
    }
    for field in ["tokenExpiresAt", "refreshAt", "cacheExpiresAt"] {
        assert!(
            body["sessionMetadata"][field].is_string(),
            "sessionMetadata.{field} missing"
        );
    }
    assert!(
        server
            .stdout
            .iter()
            .any(|line| line.starts_with("curl -H \"Authorization: Bearer $TOKEN\""))
    );
}

#[tokio::test]
async fn handwritten_events_project_to_documented_session() {
    let server = DevServer::start(Some(&walkthrough()));
    assert_eq!(
        server.stdout[0],
        format!(
            "projected 8 events from {}; 0 skipped (unknown type), 0 rejected",
            walkthrough().display()
        )
    );

    let (status, body) = server.session(&server.token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], "user-0100");
    assert_eq!(body["user"]["name"], "Meera R. Nair");
    assert_eq!(body["user"]["role"], "teacher");
    assert_eq!(body["user"]["preferences"]["language"], "ml");
    assert_eq!(body["user"]["preferences"]["theme"], "light");
    assert_eq!(body["permissions"]["canTeach"], true);
    assert_eq!(body["permissions"]["maxBookingsPerDay"], 5);

    // bk-702 was cancelled; bk-703 ended in the past, so it shows as completed.
    let bookings: Vec<(&str, &str)> = body["recentBookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(bookings, [("bk-701", "confirmed"), ("bk-703", "completed")]);

    // sub-old passed its endsAt with no event saying so.
    let subscriptions: Vec<&str> = body["activeSubscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(subscriptions, ["sub-live"]);
}

#[tokio::test]
async fn sessions_revoked_makes_older_tokens_fail() {
    let server = DevServer::start(Some(&walkthrough()));
    assert_eq!(server.session(&server.token).await.0, 200);

    let revoke = r#"{"specversion":"1.0","id":"0b0f3c1e-0009-4000-8000-000000000009","source":"/services/users","type":"user.sessions_revoked","subject":"user-0100","time":"2026-10-05T12:00:00Z","data":{"version":3,"tokenVersion":1}}"#;
    let report = server.post_events(revoke).await;
    assert_eq!(report["accepted"], 1, "{report}");
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(report["projected"], true, "{report}");

    // The same event again is folded but changes nothing.
    let again = server.post_events(revoke).await;
    assert_eq!(again["accepted"], 1, "{again}");
    assert_eq!(again["applied"], 0, "{again}");
    assert_eq!(again["stale"], 1, "{again}");

    let (status, body) = server.session(&server.token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["authenticated"], false);
    assert_eq!(body["error"]["code"], "token_revoked");

    let fresh = server.token_for("user-0100", 1).await;
    assert_eq!(server.session(&fresh).await.0, 200);
}

#[tokio::test]
async fn malformed_line_is_reported_and_skipped() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let good = std::fs::read_to_string(walkthrough()).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(2, "{this is not json");
    writeln!(file, "{}", lines.join("\n")).unwrap();

    let server = DevServer::start(Some(file.path()));
    assert!(
        server.stdout[0].contains("projected 8 events"),
        "{:?}",
        server.stdout
    );
    assert!(server.stdout[0].contains("1 rejected"), "{:?}", server.stdout);
    let rejected_line = format!(
        "  rejected {}:3: not valid JSON",
        file.path().file_name().unwrap().to_string_lossy()
    );
    assert!(
        server.stdout[1].starts_with(&rejected_line),
        "{:?}",
        server.stdout
    );

    // The server keeps running with the other events.
    assert_eq!(server.session(&server.token).await.0, 200);
}

#[tokio::test]
async fn posted_events_report_rejections_with_reasons() {
    let server = DevServer::start(Some(&walkthrough()));
    let body = concat!(
        r#"{"specversion":"1.0","id":"e-bad","source":"/s","type":"booking.created","subject":"user-0100","time":"2026-10-02T10:00:00Z","data":{"version":1}}"#,
        "\n",
        r#"{"specversion":"1.0","id":"e-new","source":"/s","type":"booking.waitlisted","subject":"user-0100","time":"2026-10-02T10:00:00Z","data":{"version":1}}"#,
    );
    let report = server.post_events(body).await;
    assert_eq!(report["accepted"], 0, "{report}");
    assert_eq!(report["applied"], 0, "{report}");
    assert_eq!(report["skipped"][0]["eventType"], "booking.waitlisted");
    assert_eq!(report["rejected"][0]["eventId"], "e-bad");
    assert_eq!(report["rejected"][0]["origin"], "body:1");
    assert!(
        report["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("bookingId"),
        "{report}"
    );
}

#[tokio::test]
async fn wrong_content_type_and_parameter_get_json_errors() {
    let server = DevServer::start(Some(&walkthrough()));
    let client = reqwest::Client::new();

    let response = client
        .post(format!("{}/dev/events", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_content_type");

    let response = client
        .get(format!("{}/dev/token?user=user-0100&tv=abc", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["parameter"], "tv");
}
