//! Live assembly through the real router: an emptied projection is rebuilt
//! from the embedded source of truth with the same bytes and backfilled, and
//! concurrent misses for one user share a single assembly.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use sessionfold_api::config::ApiConfig;
use sessionfold_api::run::build_state;
use sessionfold_api::{AppState, app};
use sessionfold_common::config::Env;
use sessionfold_common::event::{Decoded, Decoder, Event};
use sessionfold_common::fold::FoldState;
use sessionfold_common::source::{SourceOfTruth, SourceOfTruthError};
use sessionfold_common::store::{MemoryStore, ProjectionStore};
use sessionfold_projector::Projector;
use sessionfold_projector::log::EventLog;
use tower::ServiceExt;

const SECRET: &str = "live-assembly-test-secret-0123456789abcdef";
const USER: &str = "user-0100";

fn walkthrough_events() -> Vec<Event> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/walkthrough.ndjson");
    let decoder = Decoder::default();
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match decoder.decode_structured(line.as_bytes()).unwrap() {
            Decoded::Event(event) => event,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn config() -> ApiConfig {
    let mut env = Env::from_pairs(&[("JWT_SECRET", SECRET)]);
    let config = ApiConfig::from_env(&mut env);
    env.finish().unwrap();
    config
}

fn request() -> Request<Body> {
    let now = chrono::Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": USER, "exp": now + 3600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    Request::get("/auth/session")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

async fn get(state: &AppState) -> (StatusCode, Bytes) {
    let response = app(state.clone()).oneshot(request()).await.unwrap();
    let status = response.status();
    (status, to_bytes(response.into_body(), 1 << 20).await.unwrap())
}

/// Cuts the response before `sessionMetadata`, which carries request times.
fn without_metadata(body: &[u8]) -> &[u8] {
    let text = std::str::from_utf8(body).unwrap();
    let end = text
        .find(",\"sessionMetadata\"")
        .expect("sessionMetadata present");
    &body[..end]
}

#[tokio::test]
async fn emptied_store_assembles_same_bytes_and_backfills() {
    let config = config();
    let store = Arc::new(MemoryStore::new());
    let dyn_store: Arc<dyn ProjectionStore> = store.clone();
    let log = EventLog::new();
    let events = walkthrough_events();
    log.append(events.clone());
    Projector::new(dyn_store.clone(), config.render)
        .project(&events)
        .await
        .unwrap();

    let source: Arc<dyn SourceOfTruth> = log.clone();
    let state = build_state(&config, dyn_store.clone(), Some(source), None).unwrap();
    let (status, projected) = get(&state).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state.sessions.counters().assemblies.load(Ordering::Relaxed), 0);

    store.delete_documents(&[USER.to_owned()]).await.unwrap();
    state.sessions.invalidate(USER).await;
    assert!(store.get_document(USER).await.unwrap().is_none());

    let (status, assembled) = get(&state).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state.sessions.counters().assemblies.load(Ordering::Relaxed), 1);
    assert_eq!(state.sessions.counters().backfills.load(Ordering::Relaxed), 1);
    assert_eq!(
        std::str::from_utf8(without_metadata(&assembled)).unwrap(),
        std::str::from_utf8(without_metadata(&projected)).unwrap()
    );
    assert!(
        store.get_document(USER).await.unwrap().is_some(),
        "no backfill in the store"
    );
}

/// A source of truth that takes a while, so concurrent misses overlap.
struct SlowSource {
    inner: Arc<EventLog>,
}

#[async_trait]
impl SourceOfTruth for SlowSource {
    async fn load_state(&self, user_id: &str) -> Result<Option<FoldState>, SourceOfTruthError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.inner.load_state(user_id).await
    }
}

#[tokio::test]
async fn concurrent_misses_share_one_assembly() {
    let config = config();
    // The source of truth has the user, and the projection store is empty.
    let log = EventLog::new();
    log.append(walkthrough_events());
    let source: Arc<dyn SourceOfTruth> = Arc::new(SlowSource { inner: log });
    let store: Arc<dyn ProjectionStore> = Arc::new(MemoryStore::new());
    let state = build_state(&config, store, Some(source), None).unwrap();

    let requests = (0..200).map(|_| get(&state));
    let responses = futures::future::join_all(requests).await;

    assert!(responses.iter().all(|(status, _)| *status == StatusCode::OK));
    assert_eq!(state.sessions.counters().assemblies.load(Ordering::Relaxed), 1);
}

/// Mid-class for bk-703 (17:00 to 18:00 on 2026-10-20): projected then, its
/// document shows `confirmed` and goes stale at 18:00.
fn during_class() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-10-20T17:30:00Z")
        .unwrap()
        .to_utc()
}

#[tokio::test]
async fn stale_document_is_rendered_again_on_read() {
    let config = config();
    let store = Arc::new(MemoryStore::new());
    let dyn_store: Arc<dyn ProjectionStore> = store.clone();
    Projector::new(dyn_store.clone(), config.render)
        .with_clock(during_class)
        .project(&walkthrough_events())
        .await
        .unwrap();

    let state = build_state(&config, dyn_store, None, None).unwrap();
    let (status, body) = get(&state).await;
    assert_eq!(status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let past = body["recentBookings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|booking| booking["id"] == "bk-703")
        .unwrap();
    assert_eq!(past["status"], "completed");
    assert_eq!(state.sessions.counters().rerenders.load(Ordering::Relaxed), 1);

    // The refreshed document was written back, so the next reader need not
    // render it again.
    let stored = store.get_document(USER).await.unwrap().unwrap();
    let stored = sessionfold_common::document::StoredDocument::decode(stored).unwrap();
    assert!(!stored.is_stale(chrono::Utc::now()));
}
