//! The MongoDB change stream source against a real replica set. Runs only
//! when `SESSIONFOLD_TEST_MONGODB_URI` is set (change streams need a
//! replica set; `docker compose up -d mongo` starts one).

use std::sync::Arc;
use std::time::Duration;

use mongodb::Database;
use mongodb::bson::{self, Document, doc};
use sessionfold_common::event::{Decoded, Event, EventKind};
use sessionfold_common::fold::{self, FoldState};
use sessionfold_common::mongo::{BOOKINGS, MongoConfig, USERS, mapping, migrations};
use sessionfold_projector::mongo_stream::{CheckpointStore, MemoryCheckpoints, MongoChangeSource};
use sessionfold_projector::source::EventSource;

async fn scratch_database() -> Option<Database> {
    let Ok(uri) = std::env::var("SESSIONFOLD_TEST_MONGODB_URI") else {
        eprintln!(
            "skipped: SESSIONFOLD_TEST_MONGODB_URI is not set; run `docker compose up -d mongo` and set \
             SESSIONFOLD_TEST_MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0&directConnection=true"
        );
        return None;
    };
    let config = MongoConfig {
        uri,
        database: format!("sessionfold_stream_{}", uuid::Uuid::new_v4().simple()),
    };
    let database = config.connect().await.expect("connect to MongoDB");
    for migration in migrations::embedded().unwrap() {
        migrations::apply(&database, &migration).await.expect("migration");
    }
    Some(database)
}

fn user() -> Document {
    doc! {
        "userId": "user-0001", "version": 1, "email": "asha@example.com", "name": "Asha",
        "role": "student", "isActive": true,
    }
}

fn booking() -> Document {
    let starts = bson::DateTime::from_millis(1_900_000_000_000);
    doc! {
        "bookingId": "bk-1", "userId": "user-0001", "version": 1, "classId": "cl-1",
        "className": "Morning Hatha", "shaalaId": "sh-1", "shaalaName": "Lotus Shaala",
        "startsAt": starts, "endsAt": bson::DateTime::from_millis(1_900_003_600_000),
        "status": "confirmed",
    }
}

/// Reads batches until `wanted` events arrived; commits each batch.
async fn read_events(source: &mut MongoChangeSource, wanted: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < wanted {
        let remaining = deadline - tokio::time::Instant::now();
        let batch = tokio::time::timeout(remaining, source.next_batch(100))
            .await
            .expect("changes arrive within 20 s")
            .unwrap()
            .unwrap();
        for record in batch.records {
            match record.decoded {
                Ok(Decoded::Event(event)) => events.push(event),
                other => panic!("unexpected record {other:?}"),
            }
        }
        source.commit(batch.checkpoint).await.unwrap();
    }
    events
}

#[tokio::test]
async fn change_stream_folds_like_live_assembly_and_resumes() {
    let Some(database) = scratch_database().await else {
        return;
    };
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let mut source = MongoChangeSource::start(database.clone(), "mongo-test", checkpoints.clone())
        .await
        .unwrap();
    // Open the stream before writing: a new stream starts at the current time.
    let _ = tokio::time::timeout(Duration::from_millis(1500), source.next_batch(10)).await;

    database
        .collection::<Document>(USERS)
        .insert_one(user())
        .await
        .unwrap();
    database
        .collection::<Document>(BOOKINGS)
        .insert_one(booking())
        .await
        .unwrap();
    // user: profile_updated + created; booking: created.
    let events = read_events(&mut source, 3).await;
    let folded = fold::fold_all(FoldState::default(), &events);
    let stored_user = database
        .collection::<Document>(USERS)
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let stored_booking = database
        .collection::<Document>(BOOKINGS)
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let assembled = mapping::assemble(&stored_user, &[stored_booking], &[])
        .unwrap()
        .unwrap();
    assert_eq!(folded, assembled);
    assert!(checkpoints.load("mongo-test").await.unwrap().is_some());

    // A hard delete maps through the pre-image (migration 0003).
    database
        .collection::<Document>(BOOKINGS)
        .delete_one(doc! { "bookingId": "bk-1" })
        .await
        .unwrap();
    let deleted = read_events(&mut source, 1).await;
    assert_eq!(
        deleted[0].kind,
        EventKind::BookingCancelled {
            booking_id: "bk-1".to_owned(),
            reason: None
        }
    );
    assert_eq!(deleted[0].version, 2);
    drop(source);

    // A new source resumes after the committed token: only the new change.
    database
        .collection::<Document>(USERS)
        .update_one(
            doc! { "userId": "user-0001" },
            doc! { "$set": { "name": "Asha S.", "version": 2 } },
        )
        .await
        .unwrap();
    let mut resumed = MongoChangeSource::start(database.clone(), "mongo-test", checkpoints.clone())
        .await
        .unwrap();
    let events = read_events(&mut resumed, 2).await;
    assert!(
        events
            .iter()
            .all(|event| event.user_id == "user-0001" && event.version == 2)
    );
    assert!(checkpoints.rebuild_marker().is_none());
    database.drop().await.unwrap();
}
