//! Tests against a real MongoDB server: migrations and the background
//! reads. They run only when `SESSIONFOLD_TEST_MONGODB_URI` is set and
//! print why they skipped otherwise. Each test works in its own scratch
//! database and drops it at the end.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mongodb::Database;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Document, doc};
use sessionfold_common::background::{
    BackgroundSource, BookingCursor, BookingHistoryQuery, NotificationCursor, NotificationQuery,
};
use sessionfold_common::fold::state::BookingStatus;
use sessionfold_common::mongo::migrations;
use sessionfold_common::mongo::{
    BOOKINGS, MIGRATIONS, MongoBackgroundSource, MongoConfig, NOTIFICATIONS, PROFILE_DETAILS, USERS,
};

async fn scratch_database(test: &str) -> Option<Database> {
    let Ok(uri) = std::env::var("SESSIONFOLD_TEST_MONGODB_URI") else {
        eprintln!(
            "skipped {test}: SESSIONFOLD_TEST_MONGODB_URI is not set; run `docker compose up -d mongo` and set \
             SESSIONFOLD_TEST_MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0&directConnection=true"
        );
        return None;
    };
    let config = MongoConfig {
        uri,
        database: format!("sessionfold_test_{}", uuid::Uuid::new_v4().simple()),
    };
    Some(config.connect().await.expect("connect to MongoDB"))
}

async fn migrate(database: &Database) -> Vec<String> {
    let available = migrations::embedded().unwrap();
    let applied = migrations::applied(database).await.unwrap();
    let plan = migrations::plan(&available, &applied).unwrap();
    for migration in &plan.pending {
        migrations::apply(database, migration).await.unwrap();
    }
    plan.pending.into_iter().map(|migration| migration.id).collect()
}

fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::hours(hours)
}

fn date(at: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(at.timestamp_millis())
}

#[tokio::test]
async fn migrations_apply_once_and_are_recorded() {
    let Some(database) = scratch_database("migrations_apply_once_and_are_recorded").await else {
        return;
    };
    let first = migrate(&database).await;
    assert_eq!(
        first,
        ["0001_indexes", "0002_validators", "0003_change_stream_pre_images"]
    );
    assert!(
        migrate(&database).await.is_empty(),
        "a second run applies nothing"
    );

    // Applying a migration again by hand must also succeed (idempotent steps).
    for migration in migrations::embedded().unwrap() {
        migrations::apply(&database, &migration).await.unwrap();
    }

    let records: Vec<Document> = {
        use futures::TryStreamExt;
        database
            .collection::<Document>(MIGRATIONS)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(records.len(), 3);
    for record in &records {
        assert!(record.get_datetime("appliedAt").is_ok());
        assert_eq!(record.get_str("checksum").unwrap().len(), 64);
    }

    let index_names: Vec<String> = database
        .collection::<Document>(BOOKINGS)
        .list_index_names()
        .await
        .unwrap();
    assert!(
        index_names.contains(&"userId_1_startsAt_-1_bookingId_1".to_owned()),
        "{index_names:?}"
    );

    // The validator rejects a string date in a new document.
    let invalid = doc! {
        "userId": "user-1", "version": 1, "email": "a@example.com", "name": "A",
        "tokensValidAfter": "2026-01-01T00:00:00Z",
    };
    let error = database
        .collection::<Document>(USERS)
        .insert_one(invalid)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("Document failed validation"),
        "{error}"
    );
    database.drop().await.unwrap();
}

#[tokio::test]
async fn background_source_pages_against_mongodb() {
    let Some(database) = scratch_database("background_source_pages_against_mongodb").await else {
        return;
    };
    migrate(&database).await;

    let bookings: Vec<Document> = (0..5)
        .map(|n| {
            let status = match n {
                1 => "cancelled",
                3 => "completed",
                _ => "confirmed",
            };
            doc! {
                "_id": ObjectId::new(), "bookingId": format!("bk-{n}"), "userId": "user-1",
                "version": 2, "classId": "cl-1", "className": "Morning Hatha", "shaalaId": "sh-1",
                "shaalaName": "Lotus Shaala", "startsAt": date(at(n / 2)), "endsAt": date(at(n / 2 + 1)),
                "status": status, "updatedAt": date(at(-10)),
            }
        })
        .collect();
    database
        .collection::<Document>(BOOKINGS)
        .insert_many(bookings)
        .await
        .unwrap();
    let notifications: Vec<Document> = (0..5)
        .map(|n| {
            let mut notification = doc! {
                "_id": ObjectId::new(), "notificationId": format!("ntf-{n}"), "userId": "user-1",
                "kind": "announcement", "title": "Hello", "body": "Body", "createdAt": date(at(n)),
            };
            if n % 2 == 0 {
                notification.insert("readAt", date(at(n + 1)));
            }
            notification
        })
        .collect();
    database
        .collection::<Document>(NOTIFICATIONS)
        .insert_many(notifications)
        .await
        .unwrap();
    database
        .collection::<Document>(PROFILE_DETAILS)
        .insert_one(doc! { "userId": "user-1", "bio": "Hi", "interests": ["yoga"] })
        .await
        .unwrap();

    let source = MongoBackgroundSource::new(database.clone(), Duration::from_secs(5));

    let profile = source.profile_details("user-1").await.unwrap().unwrap();
    assert_eq!(profile.bio.as_deref(), Some("Hi"));
    assert!(source.profile_details("user-2").await.unwrap().is_none());

    let mut query = BookingHistoryQuery {
        limit: 2,
        ..BookingHistoryQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = source.booking_history("user-1", &query).await.unwrap();
        seen.extend(page.bookings.iter().map(|b| b.id.clone()));
        match page.next_cursor {
            Some(text) => query.after = Some(BookingCursor::decode(&text).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, ["bk-4", "bk-2", "bk-3", "bk-0", "bk-1"]);

    let confirmed = BookingHistoryQuery {
        statuses: vec![BookingStatus::Confirmed],
        from: Some(at(1)),
        ..BookingHistoryQuery::default()
    };
    let page = source.booking_history("user-1", &confirmed).await.unwrap();
    let ids: Vec<_> = page.bookings.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["bk-4", "bk-2"]);

    let mut query = NotificationQuery {
        limit: 2,
        after: None,
    };
    let mut seen = Vec::new();
    loop {
        let page = source.notifications("user-1", &query).await.unwrap();
        assert_eq!(page.unread_count, 2);
        seen.extend(page.notifications.iter().map(|n| n.id.clone()));
        match page.next_cursor {
            Some(text) => query.after = Some(NotificationCursor::decode(&text).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, ["ntf-3", "ntf-1", "ntf-4", "ntf-2", "ntf-0"]);

    let empty = source
        .notifications("user-2", &NotificationQuery::default())
        .await
        .unwrap();
    assert_eq!(empty.unread_count, 0);
    assert!(empty.notifications.is_empty());
    database.drop().await.unwrap();
}
