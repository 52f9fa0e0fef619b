//! `RedisStore` against real `redis-server` processes: compare-and-set,
//! backfill, invalidations, batching, outages and Redis Cluster.
//!
//! Tests that stop, restart or inspect server-wide counters start their own
//! server. The others use `SESSIONFOLD_TEST_REDIS_URL` when it is set, and
//! keep to random user ids there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use redis::Commands;
use serde_json::json;
use sessionfold_common::config::Env;
use sessionfold_common::document::StoredDocument;
use sessionfold_common::event::{Decoded, Decoder, Event};
use sessionfold_common::fold::{FoldState, RenderOptions};
use sessionfold_common::store::redis::{INVALIDATION_CHANNEL, document_key, state_key};
use sessionfold_common::store::{
    DocumentWrite, ProjectionStore, ProjectionWrite, RedisConfig, RedisStore, StoreError, WriteOutcome,
};
use sessionfold_projector::{Projector, ProjectorError};
use sessionfold_tests::redis_server::{RedisCluster, RedisServer};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// A store call that resolves to its error, if any.
type PendingError<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<StoreError>> + 'a>>;

/// Bound on waiting for something that should happen at once (a message, a
/// reconnect). Generous, so a loaded CI machine does not fail the test.
const WAIT: Duration = Duration::from_secs(15);

fn user_id() -> String {
    format!("test-{}", uuid::Uuid::new_v4())
}

fn store(url: &str) -> Arc<RedisStore> {
    store_with(url, |_| {})
}

fn store_with(url: &str, adjust: impl FnOnce(&mut RedisConfig)) -> Arc<RedisStore> {
    let mut config = RedisConfig::for_url(url).expect("valid Redis URL");
    adjust(&mut config);
    Arc::new(RedisStore::new(config).expect("Redis client"))
}

fn write(user_id: &str, expected_revision: u64, document: DocumentWrite) -> ProjectionWrite {
    ProjectionWrite {
        user_id: user_id.to_owned(),
        expected_revision,
        state: Bytes::from(format!("{{\"rev\":{expected_revision}}}")),
        document,
    }
}

fn put(text: &str) -> DocumentWrite {
    DocumentWrite::Put(Bytes::from(text.to_owned()))
}

async fn next_invalidation(receiver: &mut broadcast::Receiver<String>) -> String {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("no invalidation message in time")
        .expect("invalidation channel open")
}

fn decode(value: serde_json::Value) -> Event {
    match Decoder::default().decode_value(value).expect("valid test event") {
        Decoded::Event(event) => event,
        other => panic!("test event has an unknown type: {other:?}"),
    }
}

fn user_created(user_id: &str, at: DateTime<Utc>) -> Event {
    decode(json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": "/services/users",
        "type": "user.created",
        "subject": user_id,
        "time": at.to_rfc3339(),
        "datacontenttype": "application/json",
        "data": {
            "version": 1, "email": "asha@example.com", "name": "Asha Iyer",
            "role": "student", "isActive": true, "isVerified": true,
        },
    }))
}

fn booking_created(user_id: &str, booking_id: &str, at: DateTime<Utc>) -> Event {
    let starts_at = at + chrono::Duration::days(2);
    decode(json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": "/services/bookings",
        "type": "booking.created",
        "subject": user_id,
        "time": at.to_rfc3339(),
        "datacontenttype": "application/json",
        "data": {
            "version": 1, "bookingId": booking_id, "classId": "cl-88", "className": "Morning Hatha",
            "shaalaId": "sh-3", "shaalaName": "Lotus Shaala", "teacherName": "A. Iyer",
            "startsAt": starts_at.to_rfc3339(),
            "endsAt": (starts_at + chrono::Duration::hours(1)).to_rfc3339(),
        },
    }))
}

/// Retries `check` until it returns `Some`, for at most [`WAIT`]. For
/// conditions that become true after a reconnect or an expiry.
async fn eventually<T, F, Fut>(condition: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{condition}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn write_with_stale_revision_conflicts() {
    let server = RedisServer::start();
    let store = store(&server.url());
    let user = user_id();

    let first = store.write_batch(&[write(&user, 0, put("v1"))]).await.unwrap();
    assert_eq!(first, vec![WriteOutcome::Written { revision: 1 }]);

    let stale = store.write_batch(&[write(&user, 0, put("lost"))]).await.unwrap();
    assert_eq!(stale, vec![WriteOutcome::Conflict { current_revision: 1 }]);
    let ahead = store.write_batch(&[write(&user, 7, put("lost"))]).await.unwrap();
    assert_eq!(ahead, vec![WriteOutcome::Conflict { current_revision: 1 }]);

    let second = store.write_batch(&[write(&user, 1, put("v2"))]).await.unwrap();
    assert_eq!(second, vec![WriteOutcome::Written { revision: 2 }]);

    let states = store.load_states(std::slice::from_ref(&user)).await.unwrap();
    let state = states[0].as_ref().expect("state stored");
    assert_eq!(state.revision, 2);
    assert_eq!(state.state, Bytes::from_static(b"{\"rev\":1}"));
    assert_eq!(store.get_document(&user).await.unwrap().unwrap(), "v2");
}

#[tokio::test]
async fn document_follows_put_keep_and_delete() {
    let server = RedisServer::start();
    let store = store(&server.url());
    let user = user_id();

    store
        .write_batch(&[write(&user, 0, DocumentWrite::Keep)])
        .await
        .unwrap();
    assert_eq!(
        store.get_document(&user).await.unwrap(),
        None,
        "Keep creates no document"
    );

    store.write_batch(&[write(&user, 1, put("doc"))]).await.unwrap();
    store
        .write_batch(&[write(&user, 2, DocumentWrite::Keep)])
        .await
        .unwrap();
    assert_eq!(
        store.get_document(&user).await.unwrap().unwrap(),
        "doc",
        "Keep leaves the document"
    );

    store
        .write_batch(&[write(&user, 3, DocumentWrite::Delete)])
        .await
        .unwrap();
    assert_eq!(
        store.get_document(&user).await.unwrap(),
        None,
        "Delete removes the document"
    );
    let states = store.load_states(std::slice::from_ref(&user)).await.unwrap();
    assert_eq!(
        states[0].as_ref().map(|state| state.revision),
        Some(4),
        "Delete keeps the state"
    );

    let unknown = store.load_states(&[user_id()]).await.unwrap();
    assert_eq!(unknown, vec![None]);
}

#[tokio::test]
async fn concurrent_projectors_lose_no_update() {
    const WRITERS: usize = 8;
    const BOOKINGS_PER_WRITER: usize = 5;

    let server = RedisServer::start();
    let user = user_id();
    let now = Utc::now();
    let setup = Projector::new(store(&server.url()), RenderOptions::default());
    setup.project(&[user_created(&user, now)]).await.unwrap();

    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        // One store per writer: separate connections, like separate processes.
        let projector = Projector::new(store(&server.url()), RenderOptions::default());
        let user = user.clone();
        tasks.push(tokio::spawn(async move {
            let mut contention_retries = 0;
            for number in 0..BOOKINGS_PER_WRITER {
                let booking = booking_created(&user, &format!("bk-{writer}-{number}"), now);
                // The engine gives up after a bounded number of conflicting
                // rounds and its events stay uncommitted, to be projected
                // again. The test projects them again at once.
                loop {
                    match projector.project(std::slice::from_ref(&booking)).await {
                        Ok(_) => break,
                        Err(ProjectorError::Contention { .. }) => contention_retries += 1,
                        Err(error) => panic!("writer {writer}: {error}"),
                    }
                }
            }
            contention_retries
        }));
    }
    let mut contention_retries = 0;
    for task in tasks {
        contention_retries += task.await.expect("writer task");
    }
    eprintln!("batches retried after contention: {contention_retries}");

    let store = store(&server.url());
    let stored = store.load_states(std::slice::from_ref(&user)).await.unwrap()[0]
        .clone()
        .expect("state stored");
    let state: FoldState = serde_json::from_slice(&stored.state).expect("fold state JSON");
    assert_eq!(
        state.bookings.len(),
        WRITERS * BOOKINGS_PER_WRITER,
        "every booking folded"
    );
    assert_eq!(
        stored.revision,
        1 + (WRITERS * BOOKINGS_PER_WRITER) as u64,
        "one revision per applied event"
    );
    let document = StoredDocument::decode(store.get_document(&user).await.unwrap().expect("document"))
        .expect("document decodes");
    assert_eq!(
        document.header.revision, stored.revision,
        "document rendered from the last state"
    );
}

#[tokio::test]
async fn backfill_never_overwrites_projection() {
    let server = RedisServer::start();
    let store = store(&server.url());
    let projected = user_id();
    let missing = user_id();

    store
        .write_batch(&[write(&projected, 0, put("projected"))])
        .await
        .unwrap();
    let stored = store
        .backfill_document(&projected, Bytes::from_static(b"assembled"))
        .await
        .unwrap();
    assert!(!stored, "backfill over a projected document");
    assert_eq!(
        store.get_document(&projected).await.unwrap().unwrap(),
        "projected"
    );

    assert!(
        store
            .backfill_document(&missing, Bytes::from_static(b"first"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .backfill_document(&missing, Bytes::from_static(b"second"))
            .await
            .unwrap()
    );
    assert_eq!(store.get_document(&missing).await.unwrap().unwrap(), "first");

    // A projection write replaces a backfilled document.
    store
        .write_batch(&[write(&missing, 0, put("projected"))])
        .await
        .unwrap();
    assert_eq!(store.get_document(&missing).await.unwrap().unwrap(), "projected");
}

#[tokio::test]
async fn backfilled_document_expires() {
    let server = RedisServer::start();
    let store = store_with(&server.url(), |config| {
        config.backfill_ttl = Duration::from_secs(1)
    });
    let user = user_id();

    assert!(
        store
            .backfill_document(&user, Bytes::from_static(b"assembled"))
            .await
            .unwrap()
    );
    let ttl_ms: i64 = server.client().pttl(document_key(&user)).unwrap();
    assert!(
        (1..=1000).contains(&ttl_ms),
        "PTTL {ttl_ms} ms, expected at most 1000"
    );

    let store_ref = &store;
    let user_ref = &user;
    eventually("backfilled document expires", || async move {
        store_ref
            .get_document(user_ref)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn backfill_is_off_with_zero_ttl() {
    let server = RedisServer::start();
    let store = store_with(&server.url(), |config| config.backfill_ttl = Duration::ZERO);
    let user = user_id();

    let stored = store
        .backfill_document(&user, Bytes::from_static(b"assembled"))
        .await
        .unwrap();
    assert!(!stored);
    assert_eq!(store.get_document(&user).await.unwrap(), None);
}

#[tokio::test]
async fn projection_ttl_sets_document_expiry() {
    let server = RedisServer::start();
    let keeping = store(&server.url());
    let expiring = store_with(&server.url(), |config| {
        config.projection_ttl = Some(Duration::from_secs(60));
    });
    let user_without_ttl = user_id();
    let user_with_ttl = user_id();

    keeping
        .write_batch(&[write(&user_without_ttl, 0, put("doc"))])
        .await
        .unwrap();
    expiring
        .write_batch(&[write(&user_with_ttl, 0, put("doc"))])
        .await
        .unwrap();

    let mut client = server.client();
    let untimed_ttl: i64 = client.pttl(document_key(&user_without_ttl)).unwrap();
    assert_eq!(untimed_ttl, -1, "no expiry without PROJECTION_TTL");
    let document_ttl: i64 = client.pttl(document_key(&user_with_ttl)).unwrap();
    assert!(
        (1..=60_000).contains(&document_ttl),
        "document PTTL {document_ttl} ms"
    );
    let state_ttl: i64 = client.pttl(state_key(&user_with_ttl)).unwrap();
    assert_eq!(state_ttl, -1, "fold state never expires");
}

#[tokio::test]
async fn invalidations_arrive_for_every_change() {
    let server = RedisServer::start();
    let store = store(&server.url());
    let mut receiver = store.subscribe_invalidations().await.unwrap();
    let user = user_id();
    let marker = user_id();

    store.write_batch(&[write(&user, 0, put("doc"))]).await.unwrap();
    assert_eq!(next_invalidation(&mut receiver).await, user, "after Put");

    store
        .write_batch(&[write(&user, 1, DocumentWrite::Keep)])
        .await
        .unwrap();
    store.write_batch(&[write(&marker, 0, put("doc"))]).await.unwrap();
    assert_eq!(
        next_invalidation(&mut receiver).await,
        marker,
        "Keep publishes nothing"
    );

    store.write_batch(&[write(&user, 0, put("stale"))]).await.unwrap();
    store.write_batch(&[write(&marker, 1, put("doc"))]).await.unwrap();
    assert_eq!(
        next_invalidation(&mut receiver).await,
        marker,
        "a conflict publishes nothing"
    );

    store
        .write_batch(&[write(&user, 2, DocumentWrite::Delete)])
        .await
        .unwrap();
    assert_eq!(next_invalidation(&mut receiver).await, user, "after Delete");

    assert!(
        store
            .backfill_document(&user, Bytes::from_static(b"assembled"))
            .await
            .unwrap()
    );
    assert_eq!(next_invalidation(&mut receiver).await, user, "after backfill");

    store
        .delete_documents(&[user.clone(), marker.clone()])
        .await
        .unwrap();
    assert_eq!(
        next_invalidation(&mut receiver).await,
        user,
        "after delete_documents"
    );
    assert_eq!(
        next_invalidation(&mut receiver).await,
        marker,
        "after delete_documents"
    );
    assert_eq!(store.get_document(&user).await.unwrap(), None);
    assert_eq!(store.get_document(&marker).await.unwrap(), None);
}

#[tokio::test]
async fn idle_subscription_survives_keepalive_ping() {
    // Own server: the test reads server-wide command counters.
    let server = RedisServer::start_local();
    let store = store(&server.url());
    let mut receiver = store.subscribe_invalidations().await.unwrap();
    let pings_before = command_calls(&server, "ping");

    // Longer than the store's 5 s keepalive interval, so at least one PING
    // runs on the subscribed connection.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        command_calls(&server, "ping") > pings_before,
        "no keepalive PING sent"
    );

    let user = user_id();
    store.write_batch(&[write(&user, 0, put("doc"))]).await.unwrap();
    assert_eq!(next_invalidation(&mut receiver).await, user);
}

#[tokio::test]
async fn invalidations_reach_other_stores() {
    let server = RedisServer::start();
    let writer = store(&server.url());
    let reader = store(&server.url());
    let mut receiver = reader.subscribe_invalidations().await.unwrap();
    let user = user_id();

    writer.write_batch(&[write(&user, 0, put("doc"))]).await.unwrap();
    assert_eq!(next_invalidation(&mut receiver).await, user);
}

#[tokio::test]
async fn batch_of_500_users_is_one_pipeline() {
    // Own server: the test reads server-wide command counters.
    let server = RedisServer::start_local();
    let store = store(&server.url());
    let users: Vec<String> = (0..500).map(|_| user_id()).collect();
    let writes: Vec<ProjectionWrite> = users
        .iter()
        .map(|user| write(user, 0, put(&format!("doc of {user}"))))
        .collect();
    // Loads the script, so the counted batch below needs no NOSCRIPT retry.
    store
        .write_batch(&[write(&user_id(), 0, put("warm-up"))])
        .await
        .unwrap();
    let before = command_calls(&server, "evalsha");

    let started = Instant::now();
    let outcomes = store.write_batch(&writes).await.unwrap();
    let elapsed = started.elapsed();

    assert_eq!(outcomes.len(), 500);
    assert!(
        outcomes
            .iter()
            .all(|outcome| *outcome == WriteOutcome::Written { revision: 1 }),
        "every write applied"
    );
    assert_eq!(
        command_calls(&server, "evalsha") - before,
        500,
        "one EVALSHA per write"
    );
    let states = store.load_states(&users).await.unwrap();
    assert!(
        states
            .iter()
            .all(|state| state.as_ref().is_some_and(|state| state.revision == 1))
    );
    let document = store.get_document(&users[499]).await.unwrap().unwrap();
    assert_eq!(document, format!("doc of {}", users[499]));
    eprintln!("write_batch of 500 users took {elapsed:?}");
}

#[tokio::test]
async fn lost_script_cache_is_reloaded() {
    // Own server: SCRIPT FLUSH affects every client of the server.
    let server = RedisServer::start_local();
    let store = store(&server.url());
    let first = user_id();
    let second = user_id();
    store.write_batch(&[write(&first, 0, put("doc"))]).await.unwrap();

    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.client())
        .unwrap();

    let outcomes = store
        .write_batch(&[write(&first, 1, put("doc")), write(&second, 0, put("doc"))])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Written { revision: 2 },
            WriteOutcome::Written { revision: 1 }
        ]
    );

    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.client())
        .unwrap();
    assert!(
        store
            .backfill_document(&user_id(), Bytes::from_static(b"assembled"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn outage_returns_unavailable_then_recovers() {
    let mut server = RedisServer::start_local();
    let timeout = Duration::from_millis(300);
    let store = store_with(&server.url(), |config| config.command_timeout = timeout);
    let user = user_id();
    store.write_batch(&[write(&user, 0, put("doc"))]).await.unwrap();

    server.stop();

    let users = vec![user.clone()];
    let document = Bytes::from_static(b"assembled");
    let operations: Vec<(&str, PendingError<'_>)> = vec![
        (
            "get_document",
            Box::pin(async { store.get_document(&user).await.err() }),
        ),
        (
            "load_states",
            Box::pin(async { store.load_states(&users).await.err() }),
        ),
        (
            "write_batch",
            Box::pin(async { store.write_batch(&[write(&user, 1, put("doc"))]).await.err() }),
        ),
        (
            "backfill_document",
            Box::pin(async { store.backfill_document(&user, document.clone()).await.err() }),
        ),
        (
            "delete_documents",
            Box::pin(async { store.delete_documents(&users).await.err() }),
        ),
    ];
    for (operation, call) in operations {
        let started = Instant::now();
        // The outer bound only catches a hang. The store's own timeout is 300 ms.
        let error = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap_or_else(|_| panic!("{operation} hung with Redis down"))
            .unwrap_or_else(|| panic!("{operation} succeeded with Redis down"));
        let elapsed = started.elapsed();
        match error {
            StoreError::Unavailable(message) => {
                assert!(message.contains(operation), "{operation}: {message}");
                assert!(message.contains(&user), "{operation}: {message}");
            }
            other => panic!("{operation}: expected Unavailable, got {other:?}"),
        }
        assert!(
            elapsed < Duration::from_secs(2),
            "{operation} took {elapsed:?} with a 300 ms timeout"
        );
    }

    server.restart();

    let store_ref = &store;
    let user_ref = &user;
    let document = eventually("reads work again after restart", || async move {
        store_ref.get_document(user_ref).await.ok()
    })
    .await;
    assert_eq!(document, None, "the restarted server starts empty");
    let outcome = store.write_batch(&[write(&user, 0, put("doc"))]).await.unwrap();
    assert_eq!(outcome, vec![WriteOutcome::Written { revision: 1 }]);
}

#[tokio::test]
async fn store_starts_while_redis_is_down() {
    let mut server = RedisServer::start_local();
    server.stop();
    let store = store_with(&server.url(), |config| {
        config.command_timeout = Duration::from_millis(300);
    });
    let user = user_id();

    let error = store.get_document(&user).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let error = store.subscribe_invalidations().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");

    server.restart();

    let store_ref = &store;
    let user_ref = &user;
    eventually("writes work once Redis is up", || async move {
        store_ref
            .write_batch(&[write(user_ref, 0, put("doc"))])
            .await
            .ok()
    })
    .await;
    let mut receiver = eventually("subscription once Redis is up", || async move {
        store_ref.subscribe_invalidations().await.ok()
    })
    .await;
    store.write_batch(&[write(&user, 1, put("doc"))]).await.unwrap();
    assert_eq!(next_invalidation(&mut receiver).await, user);
}

#[tokio::test]
async fn subscription_recovers_after_restart() {
    let mut server = RedisServer::start_local();
    let store = store_with(&server.url(), |config| {
        config.command_timeout = Duration::from_millis(500);
    });
    let mut receiver = store.subscribe_invalidations().await.unwrap();

    server.stop();

    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match receiver.recv().await {
                Err(RecvError::Closed) => return,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "receiver not closed after the connection dropped");
    let error = store.subscribe_invalidations().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");

    server.restart();

    let store_ref = &store;
    let mut receiver = eventually("subscription after restart", || async move {
        store_ref.subscribe_invalidations().await.ok()
    })
    .await;
    let user = user_id();
    let outcome = eventually("write after restart", || async {
        store.write_batch(&[write(&user, 0, put("doc"))]).await.ok()
    })
    .await;
    assert_eq!(outcome, vec![WriteOutcome::Written { revision: 1 }]);
    assert_eq!(next_invalidation(&mut receiver).await, user);
}

#[tokio::test]
async fn errors_never_show_the_password() {
    let password = "s3cret-Pa55";
    let mut server = RedisServer::start_local_with_password(password);
    let store = store_with(&server.url(), |config| {
        config.command_timeout = Duration::from_millis(300);
    });
    let user = user_id();
    store.write_batch(&[write(&user, 0, put("doc"))]).await.unwrap();
    assert!(!format!("{:?}", store.config()).contains(password));

    server.stop();

    let error = store.get_document(&user).await.unwrap_err().to_string();
    assert!(!error.contains(password), "{error}");
    let error = store.subscribe_invalidations().await.unwrap_err().to_string();
    assert!(!error.contains(password), "{error}");
}

#[tokio::test]
async fn store_recovers_after_password_rotation() {
    let server = RedisServer::start_local_with_password("old-password");
    let store = store(&server.url().replace(":old-password@", ":new-password@"));
    let user = user_id();

    let error = store.get_document(&user).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains("new-password"), "{error}");

    // The server moves to the password the store already has. The store must
    // connect again on its own, as after any failed reconnect.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("new-password")
        .query(&mut server.client())
        .unwrap();
    let store_ref = &store;
    let user_ref = &user;
    let document = eventually("reads after the password change", || async move {
        store_ref.get_document(user_ref).await.ok()
    })
    .await;
    assert_eq!(document, None);
}

#[tokio::test]
async fn foreign_value_is_a_protocol_error() {
    let server = RedisServer::start();
    let store = store(&server.url());
    let user = user_id();
    let _: () = server.client().set(state_key(&user), "not a hash").unwrap();

    let error = store.load_states(std::slice::from_ref(&user)).await.unwrap_err();
    assert!(matches!(error, StoreError::Protocol(_)), "{error:?}");
    let error = store
        .write_batch(&[write(&user, 0, DocumentWrite::Keep)])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Protocol(_)), "{error:?}");
    assert!(error.to_string().contains(&user), "{error}");
}

#[tokio::test]
async fn scan_finds_document_and_state_keys() {
    // Own server: the scan covers the whole keyspace.
    let server = RedisServer::start_local();
    let store = store(&server.url());
    let projected = user_id();
    let backfilled = user_id();
    let braces = "a{b}c%".to_owned();

    store
        .write_batch(&[
            write(&projected, 0, put("doc")),
            write(&braces, 0, DocumentWrite::Keep),
        ])
        .await
        .unwrap();
    store
        .backfill_document(&backfilled, Bytes::from_static(b"assembled"))
        .await
        .unwrap();
    let _: () = server.client().set("unrelated", "value").unwrap();

    let mut expected = vec![projected, backfilled, braces];
    expected.sort();
    assert_eq!(store.scan_user_ids().await.unwrap(), expected);
}

#[tokio::test]
async fn user_ids_with_braces_round_trip() {
    let server = RedisServer::start();
    let store = store(&server.url());
    let mut receiver = store.subscribe_invalidations().await.unwrap();
    let user = format!("{{{}}}", user_id());

    store
        .write_batch(&[write(&user, 0, put("braced"))])
        .await
        .unwrap();
    assert_eq!(store.get_document(&user).await.unwrap().unwrap(), "braced");
    assert_eq!(next_invalidation(&mut receiver).await, user);
    let exists: bool = server.client().exists(document_key(&user)).unwrap();
    assert!(exists, "document under the escaped key");
}

#[tokio::test]
async fn raw_publish_reaches_subscribers() {
    let server = RedisServer::start();
    let store = store(&server.url());
    let mut receiver = store.subscribe_invalidations().await.unwrap();
    let user = user_id();

    let _: i64 = server.client().publish(INVALIDATION_CHANNEL, &user).unwrap();
    assert_eq!(next_invalidation(&mut receiver).await, user);
}

#[tokio::test]
async fn cluster_store_round_trip() {
    let cluster = RedisCluster::start();
    let mut env = Env::from_pairs(&[("REDIS_URL", &cluster.url_list())]);
    let config = RedisConfig::from_env(&mut env);
    env.finish().unwrap();
    assert!(config.cluster, "several URLs select cluster mode");
    let store = Arc::new(RedisStore::new(config).expect("cluster client"));
    let mut receiver = store.subscribe_invalidations().await.unwrap();

    let users: Vec<String> = (0..200).map(|_| user_id()).collect();
    let writes: Vec<ProjectionWrite> = users.iter().map(|user| write(user, 0, put(user))).collect();
    let outcomes = store.write_batch(&writes).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|outcome| *outcome == WriteOutcome::Written { revision: 1 })
    );
    for node in cluster.nodes() {
        let keys: i64 = redis::cmd("DBSIZE").query(&mut node.client()).unwrap();
        assert!(keys > 0, "{} holds no keys: slots not spread", node.url());
    }

    let states = store.load_states(&users).await.unwrap();
    assert!(
        states
            .iter()
            .all(|state| state.as_ref().is_some_and(|state| state.revision == 1))
    );
    assert_eq!(
        store.get_document(&users[7]).await.unwrap().unwrap(),
        users[7].as_str()
    );
    let conflict = store
        .write_batch(&[write(&users[7], 0, put("lost"))])
        .await
        .unwrap();
    assert_eq!(conflict, vec![WriteOutcome::Conflict { current_revision: 1 }]);

    let mut seen = std::collections::HashSet::new();
    while seen.len() < users.len() {
        seen.insert(next_invalidation(&mut receiver).await);
    }

    let backfilled = user_id();
    assert!(
        store
            .backfill_document(&backfilled, Bytes::from_static(b"assembled"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .backfill_document(&users[0], Bytes::from_static(b"assembled"))
            .await
            .unwrap()
    );
    assert_eq!(next_invalidation(&mut receiver).await, backfilled);

    store.delete_documents(&users[..2]).await.unwrap();
    assert_eq!(store.get_document(&users[0]).await.unwrap(), None);
    // The two deletes run concurrently on different nodes, in any order.
    let mut deleted = vec![
        next_invalidation(&mut receiver).await,
        next_invalidation(&mut receiver).await,
    ];
    deleted.sort();
    let mut expected_deleted = users[..2].to_vec();
    expected_deleted.sort();
    assert_eq!(deleted, expected_deleted);

    let mut expected: Vec<String> = users.clone();
    expected.push(backfilled);
    expected.sort();
    assert_eq!(store.scan_user_ids().await.unwrap(), expected);
}

#[tokio::test]
async fn cluster_node_restart_recovers() {
    let mut cluster = RedisCluster::start();
    let mut config = RedisConfig::for_url(&cluster.urls()[0]).unwrap();
    config.nodes = cluster
        .urls()
        .iter()
        .map(|url| url.parse().expect("node URL"))
        .collect();
    config.cluster = true;
    config.command_timeout = Duration::from_millis(500);
    let store = Arc::new(RedisStore::new(config).expect("cluster client"));
    let mut receiver = store.subscribe_invalidations().await.unwrap();

    // Enough users that some hash to every node.
    let users: Vec<String> = (0..60).map(|_| user_id()).collect();
    let writes: Vec<ProjectionWrite> = users.iter().map(|user| write(user, 0, put("doc"))).collect();
    store.write_batch(&writes).await.unwrap();

    cluster.node_mut(0).stop();

    let error = tokio::time::timeout(Duration::from_secs(10), store.load_states(&users))
        .await
        .expect("load_states hung with a node down")
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(RecvError::Closed) = receiver.recv().await {
                return;
            }
        }
    })
    .await;
    // The store subscribes through the first node it was given, node 0.
    assert!(closed.is_ok(), "subscription on the stopped node not closed");

    cluster.node_mut(0).restart();

    let store_ref = &store;
    let users_ref = &users;
    let states = eventually("cluster reads after the node restart", || async move {
        store_ref.load_states(users_ref).await.ok()
    })
    .await;
    assert!(
        states.iter().any(Option::is_none),
        "users of the restarted node lost their state"
    );
    assert!(
        states.iter().any(Option::is_some),
        "users of other nodes kept their state"
    );

    let mut receiver = eventually("subscription after the node restart", || async move {
        store_ref.subscribe_invalidations().await.ok()
    })
    .await;
    let fresh = user_id();
    store.write_batch(&[write(&fresh, 0, put("doc"))]).await.unwrap();
    assert_eq!(next_invalidation(&mut receiver).await, fresh);
}

fn command_calls(server: &RedisServer, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.client())
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("calls count"))
}

/// Two projectors and an API backfill write the same users at once. Every
/// user ends with the document the pure fold of all its events renders:
/// compare-and-set keeps every projector update, and a backfill only fills
/// a missing document, so it never replaces a projected one.
#[tokio::test]
async fn projectors_and_backfill_lose_no_update() {
    const USERS: usize = 20;
    const BOOKINGS: usize = 6;

    let server = RedisServer::start();
    let now = Utc::now();
    let users: Vec<String> = (0..USERS).map(|_| user_id()).collect();
    let mut halves = [Vec::new(), Vec::new()];
    let mut all_events = std::collections::HashMap::new();
    for (index, user) in users.iter().enumerate() {
        let mut events = vec![user_created(user, now)];
        events.extend((0..BOOKINGS).map(|number| booking_created(user, &format!("bk-{number}"), now)));
        for (position, event) in events.iter().enumerate() {
            halves[(index + position) % 2].push(event.clone());
        }
        all_events.insert(user.clone(), events);
    }

    let mut tasks = Vec::new();
    for half in halves {
        let projector = Projector::new(store(&server.url()), RenderOptions::default());
        tasks.push(tokio::spawn(async move {
            // Small batches so the two projectors interleave on every user.
            for chunk in half.chunks(3) {
                loop {
                    match projector.project(chunk).await {
                        Ok(_) => break,
                        Err(ProjectorError::Contention { .. }) => continue,
                        Err(error) => panic!("projector: {error}"),
                    }
                }
            }
        }));
    }
    let backfill_store = store(&server.url());
    let backfill_users = users.clone();
    tasks.push(tokio::spawn(async move {
        for _ in 0..5 {
            for user in &backfill_users {
                backfill_store
                    .backfill_document(user, Bytes::from_static(b"assembled"))
                    .await
                    .unwrap();
            }
        }
    }));
    for task in tasks {
        task.await.expect("writer task");
    }

    let store = store(&server.url());
    for user in &users {
        let expected = sessionfold_common::fold::render(
            user,
            &sessionfold_common::fold::fold_all(FoldState::default(), &all_events[user]),
            Utc::now(),
            &RenderOptions::default(),
        )
        .expect("user renders");
        let stored = store.get_document(user).await.unwrap().expect("document stored");
        let stored = StoredDocument::decode(stored).expect("a projected document, not a backfill");
        assert_eq!(
            stored.body,
            serde_json::to_vec(&expected.body).unwrap(),
            "user {user}"
        );
    }
}
