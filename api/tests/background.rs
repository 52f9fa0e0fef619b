//! The background endpoints through the router, against the embedded `dev`
//! source: authentication, parameter checks, paging, ordering, caching and
//! timeouts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sessionfold_api::background::{BackgroundService, BackgroundSettings};
use sessionfold_api::config::ApiConfig;
use sessionfold_api::dev::TokenMinter;
use sessionfold_api::run::build_state;
use sessionfold_api::{AppState, app};
use sessionfold_common::background::{
    BackgroundSource, BookingHistoryQuery, BookingPage, NotificationPage, NotificationQuery, ProfileDetails,
};
use sessionfold_common::config::Env;
use sessionfold_common::event::payload::{BookingCreated, UserCreated};
use sessionfold_common::event::{Event, EventKind};
use sessionfold_common::source::{SourceOfTruth, SourceOfTruthError};
use sessionfold_common::store::MemoryStore;
use sessionfold_projector::demo::DEMO_USER_ID;
use sessionfold_projector::demo_background::{DEMO_NOTIFICATIONS, DEMO_UNREAD, EmbeddedBackgroundSource};
use sessionfold_projector::log::EventLog;
use tower::ServiceExt;

const SECRET: &str = "background-test-secret-0123456789abcdef";
/// Bookings of the demo user in the test log.
const BOOKINGS: usize = 12;

/// Returns one "now" for the whole test binary, so times computed in different
/// places line up exactly. It is the real clock, because tokens minted now
/// must be valid and the deactivation below must come after them.
fn anchor() -> DateTime<Utc> {
    static ANCHOR: std::sync::LazyLock<DateTime<Utc>> = std::sync::LazyLock::new(Utc::now);
    *ANCHOR
}

fn event(user_id: &str, id: &str, version: u64, time: DateTime<Utc>, kind: EventKind) -> Event {
    Event {
        id: id.to_owned(),
        source: "/test".to_owned(),
        user_id: user_id.to_owned(),
        time,
        version,
        kind,
    }
}

fn user_created(user_id: &str) -> Event {
    event(
        user_id,
        &format!("{user_id}-created"),
        1,
        anchor() - chrono::Duration::days(30),
        EventKind::UserCreated(UserCreated {
            email: format!("{user_id}@example.com"),
            name: "Test User".to_owned(),
            avatar_url: None,
            role: None,
            is_active: None,
            is_verified: None,
            owner_approved: None,
            preferences: Default::default(),
        }),
    )
}

/// 12 bookings two hours apart, except `bk-05` and `bk-06`, which start at
/// the same time. Every third is cancelled, every fourth completed.
fn demo_events() -> Vec<Event> {
    let base = anchor() - chrono::Duration::hours(10);
    let mut events = vec![user_created(DEMO_USER_ID)];
    for number in 1..=BOOKINGS {
        let booking_id = format!("bk-{number:02}");
        let slot = if number == 6 { 5 } else { number as i64 };
        let starts_at = base + chrono::Duration::hours(slot * 2);
        events.push(event(
            DEMO_USER_ID,
            &format!("{booking_id}-created"),
            1,
            anchor() - chrono::Duration::days(5),
            EventKind::BookingCreated(BookingCreated {
                booking_id: booking_id.clone(),
                class_id: "cl-88".to_owned(),
                class_name: "Morning Hatha".to_owned(),
                shaala_id: "sh-3".to_owned(),
                shaala_name: "Lotus Shaala".to_owned(),
                teacher_name: Some("A. Iyer".to_owned()),
                starts_at,
                ends_at: starts_at + chrono::Duration::hours(1),
            }),
        ));
        let follow_up = if number % 3 == 0 {
            Some(EventKind::BookingCancelled {
                booking_id: booking_id.clone(),
                reason: None,
            })
        } else if number % 4 == 0 {
            Some(EventKind::BookingCompleted {
                booking_id: booking_id.clone(),
            })
        } else {
            None
        };
        if let Some(kind) = follow_up {
            events.push(event(
                DEMO_USER_ID,
                &format!("{booking_id}-2"),
                2,
                anchor() - chrono::Duration::days(1),
                kind,
            ));
        }
    }
    events.push(user_created("user-0002"));
    // Deactivated after any token the test mints: every token is revoked.
    events.push(user_created("user-0003"));
    events.push(event(
        "user-0003",
        "user-0003-deactivated",
        2,
        anchor() + chrono::Duration::hours(1),
        EventKind::UserDeactivated,
    ));
    events.push(user_created("user-0004"));
    events.push(event(
        "user-0004",
        "user-0004-revoked",
        2,
        anchor(),
        EventKind::UserSessionsRevoked { token_version: 2 },
    ));
    events
}

struct Harness {
    state: AppState,
    minter: TokenMinter,
    service: Arc<BackgroundService>,
}

fn config() -> ApiConfig {
    let mut env = Env::from_pairs(&[("JWT_SECRET", SECRET)]);
    let config = ApiConfig::from_env(&mut env);
    env.finish().unwrap();
    config
}

fn harness_with(source: Arc<dyn BackgroundSource>, settings: BackgroundSettings) -> Harness {
    let config = config();
    let log = EventLog::new();
    log.append(demo_events());
    let store = Arc::new(MemoryStore::new());
    let session_source: Arc<dyn SourceOfTruth> = log;
    let mut state = build_state(&config, store, Some(session_source), None).unwrap();
    let service = BackgroundService::new(source, settings);
    state.background = Some(Arc::clone(&service));
    Harness {
        state,
        minter: TokenMinter::new(SECRET, &config.jwt),
        service,
    }
}

fn harness() -> Harness {
    let log = EventLog::new();
    log.append(demo_events());
    let source = Arc::new(EmbeddedBackgroundSource::new(log, anchor()));
    harness_with(source, BackgroundSettings::default())
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Harness {
    fn token(&self, user_id: &str) -> String {
        self.minter.mint(user_id, 0)
    }

    async fn get_with(&self, path: &str, authorization: Option<String>) -> Reply {
        let mut request = Request::get(path);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = app(self.state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{path}: body is not JSON: {}", String::from_utf8_lossy(&bytes)));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        let token = self.token(DEMO_USER_ID);
        self.get_with(path, Some(format!("Bearer {token}"))).await
    }

    /// Follows `nextCursor` until the last page; returns the ids per page.
    async fn pages(&self, path: &str, list: &str) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(cursor) => format!("{path}&cursor={cursor}"),
                None => path.to_owned(),
            };
            let reply = self.get(&url).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.body);
            let ids = reply.body[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned())
                .collect();
            pages.push(ids);
            match reply.body.get("nextCursor") {
                Some(Value::String(next)) => cursor = Some(next.clone()),
                None => break,
                Some(other) => panic!("nextCursor must be a string or absent, got {other}"),
            }
            assert!(pages.len() <= 100, "paging does not end");
        }
        pages
    }
}

fn sizes(pages: &[Vec<String>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

/// Booking ids newest first, as the history must list them.
fn expected_history() -> Vec<String> {
    // Slots: bk-n starts at 2n hours, except bk-06, which shares bk-05's slot.
    let mut ids: Vec<(i64, String)> = (1..=BOOKINGS)
        .map(|n| (if n == 6 { 5 } else { n as i64 }, format!("bk-{n:02}")))
        .collect();
    ids.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ids.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn history_pages_newest_first_with_exact_multiple() {
    let harness = harness();
    let pages = harness.pages("/auth/bookings/history?limit=4", "bookings").await;
    assert_eq!(
        sizes(&pages),
        [4, 4, 4],
        "exact multiple: the last full page has no cursor"
    );
    assert_eq!(pages.concat(), expected_history());
    let ids = pages.concat();
    let five = ids.iter().position(|id| id == "bk-05").unwrap();
    assert_eq!(ids[five + 1], "bk-06", "equal starts are ordered by id");
}

#[tokio::test]
async fn history_last_partial_page_has_no_cursor() {
    let harness = harness();
    let pages = harness.pages("/auth/bookings/history?limit=5", "bookings").await;
    assert_eq!(sizes(&pages), [5, 5, 2]);
    assert_eq!(pages.concat(), expected_history());
}

#[tokio::test]
async fn history_limit_one_and_limit_hundred() {
    let harness = harness();
    let single = harness.pages("/auth/bookings/history?limit=1", "bookings").await;
    assert_eq!(sizes(&single), vec![1; BOOKINGS]);
    assert_eq!(single.concat(), expected_history());

    let all = harness
        .pages("/auth/bookings/history?limit=100", "bookings")
        .await;
    assert_eq!(sizes(&all), [BOOKINGS]);
}

#[tokio::test]
async fn history_default_limit_is_twenty() {
    let harness = harness();
    let reply = harness.get("/auth/bookings/history").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["bookings"].as_array().unwrap().len(), BOOKINGS);
    assert!(reply.body.get("nextCursor").is_none());
    assert_eq!(reply.headers[header::CACHE_CONTROL], "private, no-store");
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn history_lists_cancelled_bookings_with_details() {
    let harness = harness();
    let reply = harness.get("/auth/bookings/history?status=cancelled").await;
    let bookings = reply.body["bookings"].as_array().unwrap();
    let ids: Vec<&str> = bookings.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bk-12", "bk-09", "bk-06", "bk-03"]);
    for booking in bookings {
        assert_eq!(booking["status"], "cancelled");
        assert_eq!(booking["className"], "Morning Hatha");
        assert!(booking["cancelledAt"].is_string(), "{booking}");
    }
}

#[tokio::test]
async fn history_filters_combine() {
    let harness = harness();
    let base = anchor() - chrono::Duration::hours(10);
    let from = (base + chrono::Duration::hours(8)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let to = (base + chrono::Duration::hours(16)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let path = format!("/auth/bookings/history?status=confirmed,completed&from={from}&to={to}");
    let reply = harness.get(&path).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let ids: Vec<&str> = reply.body["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    // Slots 4..8 (from inclusive, to exclusive) without the cancelled bk-06.
    assert_eq!(ids, ["bk-07", "bk-05", "bk-04"]);
}

async fn assert_invalid(harness: &Harness, path: &str, parameter: &str, value: &str) -> Value {
    let reply = harness.get(path).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.body);
    let error = &reply.body["error"];
    assert_eq!(error["code"], "invalid_parameter", "{path}");
    assert_eq!(error["parameter"], parameter, "{path}");
    assert_eq!(error["value"], value, "{path}");
    assert!(error["expected"].is_string(), "{path}");
    assert!(error["message"].as_str().unwrap().contains(parameter), "{path}");
    error.clone()
}

#[tokio::test]
async fn invalid_limits_are_rejected_as_json() {
    let harness = harness();
    for (raw, path) in [
        ("0", "/auth/bookings/history?limit=0"),
        ("101", "/auth/bookings/history?limit=101"),
        ("abc", "/auth/bookings/history?limit=abc"),
        ("", "/auth/bookings/history?limit="),
        ("0", "/auth/notifications?limit=0"),
        ("101", "/auth/notifications?limit=101"),
        ("abc", "/auth/notifications?limit=abc"),
    ] {
        let error = assert_invalid(&harness, path, "limit", raw).await;
        assert_eq!(error["expected"], "an integer from 1 to 100");
    }
}

#[tokio::test]
async fn bad_cursors_are_rejected() {
    let harness = harness();
    assert_invalid(&harness, "/auth/bookings/history?cursor=%21%21", "cursor", "!!").await;
    assert_invalid(&harness, "/auth/notifications?cursor=e30", "cursor", "e30").await;
    // A notification cursor is not a booking cursor.
    let page = harness.get("/auth/notifications?limit=1").await;
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let error = assert_invalid(
        &harness,
        &format!("/auth/bookings/history?cursor={cursor}"),
        "cursor",
        &cursor,
    )
    .await;
    assert!(error["expected"].as_str().unwrap().contains("another list"));
}

#[tokio::test]
async fn bad_dates_and_ranges_are_rejected() {
    let harness = harness();
    assert_invalid(
        &harness,
        "/auth/bookings/history?from=yesterday",
        "from",
        "yesterday",
    )
    .await;
    assert_invalid(
        &harness,
        "/auth/bookings/history?to=2026-01-01T00:00:00",
        "to",
        "2026-01-01T00:00:00",
    )
    .await;
    let error = assert_invalid(
        &harness,
        "/auth/bookings/history?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from",
        "2026-02-01T00:00:00Z",
    )
    .await;
    assert!(error["expected"].as_str().unwrap().contains("not after to"));
}

#[tokio::test]
async fn undecodable_query_is_rejected_as_json() {
    let harness = harness();
    // Invalid percent-encoding and invalid UTF-8 still reach the JSON checks.
    assert_invalid(&harness, "/auth/bookings/history?limit=%FF", "limit", "\u{FFFD}").await;
    assert_invalid(&harness, "/auth/notifications?limit=%ZZ", "limit", "%ZZ").await;
}

#[tokio::test]
async fn bad_status_and_unknown_parameters_are_rejected() {
    let harness = harness();
    assert_invalid(
        &harness,
        "/auth/bookings/history?status=pending",
        "status",
        "pending",
    )
    .await;
    assert_invalid(&harness, "/auth/bookings/history?page=2", "page", "2").await;
    assert_invalid(&harness, "/auth/profile/detailed?full=1", "full", "1").await;
}

#[tokio::test]
async fn notifications_unread_first_and_counted() {
    let harness = harness();
    let mut cursor: Option<String> = None;
    let mut all = Vec::new();
    let mut page_sizes = Vec::new();
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/auth/notifications?limit=6&cursor={cursor}"),
            None => "/auth/notifications?limit=6".to_owned(),
        };
        let reply = harness.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["unreadCount"], DEMO_UNREAD as u64);
        let items = reply.body["notifications"].as_array().unwrap().clone();
        page_sizes.push(items.len());
        all.extend(items);
        match reply.body.get("nextCursor") {
            Some(Value::String(next)) => cursor = Some(next.clone()),
            _ => break,
        }
    }
    assert_eq!(page_sizes, [6, 6, 6, 6], "24 notifications, exact multiple of 6");
    assert_eq!(all.len(), DEMO_NOTIFICATIONS);

    let unread: Vec<bool> = all.iter().map(|n| n["readAt"].is_null()).collect();
    assert!(unread[..DEMO_UNREAD].iter().all(|&u| u), "unread first");
    assert!(unread[DEMO_UNREAD..].iter().all(|&u| !u));
    for group in [&all[..DEMO_UNREAD], &all[DEMO_UNREAD..]] {
        for pair in group.windows(2) {
            let a = pair[0]["createdAt"].as_str().unwrap();
            let b = pair[1]["createdAt"].as_str().unwrap();
            let (a, b): (DateTime<Utc>, DateTime<Utc>) = (a.parse().unwrap(), b.parse().unwrap());
            assert!(a > b || (a == b && pair[0]["id"].as_str() < pair[1]["id"].as_str()));
        }
    }
}

#[tokio::test]
async fn user_without_notifications_gets_empty_list() {
    let harness = harness();
    let token = harness.token("user-0002");
    let reply = harness
        .get_with("/auth/notifications", Some(format!("Bearer {token}")))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["unreadCount"].as_u64().is_some());
    let history = harness
        .get_with("/auth/bookings/history", Some(format!("Bearer {token}")))
        .await;
    assert_eq!(history.body["bookings"], serde_json::json!([]));
}

#[tokio::test]
async fn profile_returns_generated_details() {
    let harness = harness();
    let reply = harness.get("/auth/profile/detailed").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["userId"], DEMO_USER_ID);
    assert!(reply.body["bio"].is_string());
    assert_eq!(reply.body["address"]["country"], "IN");
    assert!(reply.body["interests"].is_array());
}

#[tokio::test]
async fn authentication_failures_are_401() {
    let harness = harness();
    for path in [
        "/auth/profile/detailed",
        "/auth/bookings/history",
        "/auth/notifications",
    ] {
        let missing = harness.get_with(path, None).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(missing.body["error"]["code"], "token_missing", "{path}");
        assert_eq!(missing.body["authenticated"], false);
        assert_eq!(
            missing.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"sessionfold\""
        );

        let malformed = harness.get_with(path, Some("Basic abc".to_owned())).await;
        assert_eq!(malformed.body["error"]["code"], "token_malformed", "{path}");

        let forged = harness
            .get_with(path, Some("Bearer not.a.token".to_owned()))
            .await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{path}");

        let unknown = harness.token("user-9999");
        let reply = harness.get_with(path, Some(format!("Bearer {unknown}"))).await;
        assert_eq!(reply.body["error"]["code"], "unknown_user", "{path}");

        let deactivated = harness.token("user-0003");
        let reply = harness
            .get_with(path, Some(format!("Bearer {deactivated}")))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(reply.body["error"]["code"], "token_revoked", "{path}");

        let old_version = harness.token("user-0004");
        let reply = harness
            .get_with(path, Some(format!("Bearer {old_version}")))
            .await;
        assert_eq!(reply.body["error"]["code"], "token_revoked", "{path}");
    }
}

#[tokio::test]
async fn authentication_is_checked_before_parameters() {
    let harness = harness();
    let reply = harness.get_with("/auth/bookings/history?limit=0", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn responses_are_cached_per_user_and_query() {
    let harness = harness();
    harness.get("/auth/bookings/history?limit=3").await;
    harness.get("/auth/bookings/history?limit=3").await;
    assert_eq!(harness.service.counters().source_reads.load(Ordering::Relaxed), 1);
    harness.get("/auth/bookings/history?limit=4").await;
    harness.get("/auth/notifications?limit=3").await;
    assert_eq!(harness.service.counters().source_reads.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn zero_ttl_disables_the_cache() {
    let log = EventLog::new();
    log.append(demo_events());
    let settings = BackgroundSettings {
        cache_ttl: Duration::ZERO,
        ..BackgroundSettings::default()
    };
    let harness = harness_with(Arc::new(EmbeddedBackgroundSource::new(log, anchor())), settings);
    harness.get("/auth/notifications").await;
    harness.get("/auth/notifications").await;
    assert_eq!(harness.service.counters().source_reads.load(Ordering::Relaxed), 2);
}

/// A source that fails: unavailable after a delay, or with invalid data.
struct FailingSource {
    delay: Duration,
    invalid: bool,
}

impl FailingSource {
    async fn fail<T>(&self) -> Result<T, SourceOfTruthError> {
        tokio::time::sleep(self.delay).await;
        if self.invalid {
            return Err(SourceOfTruthError::InvalidData {
                user_id: DEMO_USER_ID.to_owned(),
                message:
                    "invalid notifications document ntf-1: field createdAt: expected a date, found string"
                        .to_owned(),
            });
        }
        Err(SourceOfTruthError::Unavailable("connection refused".to_owned()))
    }
}

#[async_trait]
impl BackgroundSource for FailingSource {
    async fn profile_details(&self, _: &str) -> Result<Option<ProfileDetails>, SourceOfTruthError> {
        self.fail().await
    }

    async fn booking_history(
        &self,
        _: &str,
        _: &BookingHistoryQuery,
    ) -> Result<BookingPage, SourceOfTruthError> {
        self.fail().await
    }

    async fn notifications(
        &self,
        _: &str,
        _: &NotificationQuery,
    ) -> Result<NotificationPage, SourceOfTruthError> {
        self.fail().await
    }
}

#[tokio::test]
async fn slow_source_times_out_with_503() {
    let source = FailingSource {
        delay: Duration::from_secs(5),
        invalid: false,
    };
    let settings = BackgroundSettings {
        timeout: Duration::from_millis(50),
        ..BackgroundSettings::default()
    };
    let harness = harness_with(Arc::new(source), settings);
    for path in [
        "/auth/profile/detailed",
        "/auth/bookings/history",
        "/auth/notifications",
    ] {
        let started = std::time::Instant::now();
        let reply = harness.get(path).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(reply.body["error"]["code"], "service_unavailable");
        assert_eq!(reply.headers[header::RETRY_AFTER], "1");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} waited for the slow source"
        );
    }
}

#[tokio::test]
async fn failures_are_not_cached() {
    let source = FailingSource {
        delay: Duration::ZERO,
        invalid: false,
    };
    let harness = harness_with(Arc::new(source), BackgroundSettings::default());
    assert_eq!(
        harness.get("/auth/notifications").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    harness.get("/auth/notifications").await;
    assert_eq!(harness.service.counters().source_reads.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn invalid_source_data_is_500_without_details() {
    let source = FailingSource {
        delay: Duration::ZERO,
        invalid: true,
    };
    let harness = harness_with(Arc::new(source), BackgroundSettings::default());
    let reply = harness.get("/auth/notifications").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body["error"]["code"], "internal_error");
    assert!(!reply.body.to_string().contains("ntf-1"));
}

#[tokio::test]
async fn missing_background_source_is_503() {
    let mut harness = harness();
    harness.state.background = None;
    let reply = harness.get("/auth/notifications").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}
