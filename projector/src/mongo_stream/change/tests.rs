use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Timestamp, doc};
use sessionfold_common::fold::{self, FoldState, RenderOptions};
use sessionfold_common::mongo::mapping;

use super::*;

fn date(text: &str) -> bson::DateTime {
    let at: DateTime<Utc> = text.parse().unwrap();
    bson::DateTime::from_millis(at.timestamp_millis())
}

fn user_document() -> Document {
    doc! {
        "_id": ObjectId::parse_str("65a1f0c2e4b0a1b2c3d4e5f6").unwrap(),
        "userId": "user-0001",
        "version": 9_i32,
        "email": "asha@example.com",
        "name": Bson::Null,
        "role": "shaala_owner",
        "ownerApproved": true,
        "isVerified": true,
        "preferences": { "language": "ta" },
        "tokenVersion": 3_i32,
        "tokensValidAfter": date("2026-01-10T08:00:00Z"),
        "passwordHash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    }
}

fn booking_document(status: &str) -> Document {
    doc! {
        "_id": ObjectId::parse_str("65a1f0c2e4b0a1b2c3d4e5f7").unwrap(),
        "bookingId": "bk-501",
        "userId": "user-0001",
        "version": 4_i32,
        "classId": "cl-88",
        "className": "Morning Hatha",
        "shaalaId": "sh-3",
        "shaalaName": "Lotus Shaala",
        "teacherName": "A. Iyer",
        "startsAt": date("2026-03-05T06:30:00Z"),
        "endsAt": date("2026-03-05T07:30:00Z"),
        "status": status,
        "updatedAt": date("2026-03-01T09:00:00Z"),
    }
}

fn subscription_document(status: &str) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "subscriptionId": "sub-7",
        "userId": "user-0001",
        "version": 3_i64,
        "planId": "plan-10",
        "planName": "10-Class Pack",
        "startsAt": date("2026-02-01T00:00:00Z"),
        "endsAt": date("2026-04-01T00:00:00Z"),
        "classesRemaining": 4_i32,
        "status": status,
    }
}

/// Builds a change event with the fields MongoDB documents for change
/// events opened with `fullDocument: updateLookup`.
fn change(operation: &str, collection: &str, full_document: Option<Document>) -> Document {
    let mut change = doc! {
        "_id": { "_data": "8265A1F0C2000000012B022C0100296E5A10046A3E4F" },
        "operationType": operation,
        "clusterTime": Timestamp { time: 1_772_366_400, increment: 3 },
        "wallTime": date("2026-03-01T12:00:00Z"),
        "ns": { "db": "sessionfold", "coll": collection },
        "documentKey": { "_id": ObjectId::parse_str("65a1f0c2e4b0a1b2c3d4e5f6").unwrap() },
    };
    if operation == "update" {
        change.insert(
            "updateDescription",
            doc! { "updatedFields": { "version": 9_i32 }, "removedFields": [], "truncatedArrays": [] },
        );
    }
    if let Some(document) = full_document {
        change.insert("fullDocument", document);
    }
    change
}

fn events(change: &Document) -> Vec<Event> {
    match events_from_change(change).unwrap() {
        ChangeOutcome::Events(events) => events,
        other => panic!("expected events, got {other:?}"),
    }
}

#[test]
fn user_change_folds_to_the_live_assembly_state() {
    for operation in ["insert", "update", "replace"] {
        let events = events(&change(operation, "users", Some(user_document())));
        let folded = fold::fold_all(FoldState::default(), &events);
        let assembled = mapping::assemble(&user_document(), &[], &[]).unwrap().unwrap();
        assert_eq!(folded, assembled, "{operation}");
    }
}

#[test]
fn user_change_events_are_ordered_and_stamped() {
    let events = events(&change("update", "users", Some(user_document())));
    let types: Vec<&str> = events.iter().map(Event::event_type).collect();
    assert_eq!(
        types,
        [
            "user.profile_updated",
            "user.created",
            "user.deactivated",
            "user.sessions_revoked"
        ]
    );
    for event in &events {
        assert_eq!(event.id, "mongo:users:user-0001");
        assert_eq!(event.user_id, "user-0001");
        assert_eq!(event.version, 9);
        assert_eq!(event.source, "/mongodb/sessionfold/users");
    }
    let deactivated = &events[2];
    assert_eq!(
        deactivated.time,
        "2026-01-10T08:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        events[0].time,
        "2026-03-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn null_name_stays_null_after_the_fold() {
    let events = events(&change("insert", "users", Some(user_document())));
    let state = fold::fold_all(FoldState::default(), &events);
    let now = "2026-03-01T12:00:00Z".parse().unwrap();
    let rendered = fold::render("user-0001", &state, now, &RenderOptions::default()).unwrap();
    assert_eq!(rendered.body.user.name, None);
    assert_eq!(rendered.body.user.email.as_deref(), Some("asha@example.com"));
    assert!(
        rendered.body.user.is_active,
        "the deactivation event must not flip isActive"
    );
    assert_eq!(rendered.token_version, 3);
}

#[test]
fn soft_deleted_user_becomes_user_deleted() {
    let mut document = user_document();
    document.insert("deletedAt", date("2026-02-01T00:00:00Z"));
    let events = events(&change("update", "users", Some(document)));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::UserDeleted);
}

#[test]
fn booking_changes_fold_to_the_live_assembly_state() {
    let user = user_document();
    for status in ["confirmed", "completed", "cancelled"] {
        let booking = booking_document(status);
        let mut all = self::events(&change("update", "users", Some(user.clone())));
        all.extend(self::events(&change("update", "bookings", Some(booking.clone()))));
        let folded = fold::fold_all(FoldState::default(), &all);
        let assembled = mapping::assemble(&user, &[booking], &[]).unwrap().unwrap();
        assert_eq!(folded, assembled, "{status}");
    }
}

#[test]
fn completed_booking_emits_status_before_details() {
    let events = events(&change(
        "replace",
        "bookings",
        Some(booking_document("completed")),
    ));
    let types: Vec<&str> = events.iter().map(Event::event_type).collect();
    assert_eq!(types, ["booking.completed", "booking.created"]);
    assert!(
        events
            .iter()
            .all(|event| event.id == "mongo:bookings:bk-501" && event.version == 4)
    );
}

#[test]
fn subscription_changes_fold_to_the_live_assembly_state() {
    let user = user_document();
    for status in ["active", "cancelled", "expired"] {
        let subscription = subscription_document(status);
        let mut all = self::events(&change("update", "users", Some(user.clone())));
        all.extend(self::events(&change(
            "insert",
            "subscriptions",
            Some(subscription.clone()),
        )));
        let folded = fold::fold_all(FoldState::default(), &all);
        let assembled = mapping::assemble(&user, &[], &[subscription]).unwrap().unwrap();
        assert_eq!(folded, assembled, "{status}");
    }
}

#[test]
fn later_change_wins_and_replay_is_harmless() {
    let mut older = booking_document("confirmed");
    older.insert("version", 2_i32);
    older.insert("className", "Old Name");
    let newer = booking_document("confirmed");
    let newer_events = events(&change("update", "bookings", Some(newer)));
    let older_events = events(&change("update", "bookings", Some(older)));

    let mut state = FoldState::default();
    for event in newer_events.iter().chain(&older_events).chain(&newer_events) {
        fold::apply(&mut state, event);
    }
    let details = state.bookings["bk-501"].details.as_ref().unwrap();
    assert_eq!(details.value.class_name, "Morning Hatha");
}

#[test]
fn lookup_of_a_deleted_document_is_skipped() {
    let outcome = events_from_change(&change("update", "users", None)).unwrap();
    assert!(matches!(outcome, ChangeOutcome::Skip(_)));
    let mut explicit_null = change("update", "users", None);
    explicit_null.insert("fullDocument", Bson::Null);
    assert!(matches!(
        events_from_change(&explicit_null).unwrap(),
        ChangeOutcome::Skip(_)
    ));
}

#[test]
fn hard_delete_with_pre_image_cancels_the_booking() {
    let mut delete = change("delete", "bookings", None);
    delete.insert("fullDocumentBeforeChange", booking_document("confirmed"));
    let events = events(&delete);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id, "user-0001");
    assert_eq!(events[0].version, 5, "one past the pre-image version");
    assert_eq!(
        events[0].kind,
        EventKind::BookingCancelled {
            booking_id: "bk-501".to_owned(),
            reason: None
        }
    );

    let mut state = FoldState::default();
    let created = self::events(&change("insert", "bookings", Some(booking_document("confirmed"))));
    for event in created.iter().chain(&events) {
        fold::apply(&mut state, event);
    }
    assert!(state.bookings["bk-501"].is_cancelled());
}

#[test]
fn hard_delete_of_user_and_subscription() {
    let mut delete = change("delete", "users", None);
    delete.insert("fullDocumentBeforeChange", user_document());
    assert_eq!(events(&delete)[0].kind, EventKind::UserDeleted);

    let mut delete = change("delete", "subscriptions", None);
    delete.insert("fullDocumentBeforeChange", subscription_document("active"));
    assert_eq!(
        events(&delete)[0].kind,
        EventKind::SubscriptionCancelled {
            subscription_id: "sub-7".to_owned()
        }
    );
}

#[test]
fn hard_delete_without_pre_image_requires_rebuild() {
    let outcome = events_from_change(&change("delete", "bookings", None)).unwrap();
    let ChangeOutcome::RebuildRequired(reason) = outcome else {
        panic!("expected RebuildRequired, got {outcome:?}");
    };
    assert!(
        reason.contains("ObjectId(\"65a1f0c2e4b0a1b2c3d4e5f6\")"),
        "{reason}"
    );
    assert!(reason.contains("migration 0003"), "{reason}");
}

#[test]
fn drops_renames_and_invalidate() {
    let drop = doc! {
        "_id": { "_data": "82" },
        "operationType": "drop",
        "clusterTime": Timestamp { time: 1_772_366_400, increment: 1 },
        "ns": { "db": "sessionfold", "coll": "bookings" },
    };
    assert_eq!(
        events_from_change(&drop).unwrap(),
        ChangeOutcome::RebuildRequired("collection sessionfold.bookings was dropped".to_owned())
    );
    let mut rename = drop.clone();
    rename.insert("operationType", "rename");
    assert!(matches!(
        events_from_change(&rename).unwrap(),
        ChangeOutcome::RebuildRequired(_)
    ));
    let drop_database = doc! {
        "_id": { "_data": "82" },
        "operationType": "dropDatabase",
        "clusterTime": Timestamp { time: 1_772_366_400, increment: 1 },
        "ns": { "db": "sessionfold" },
    };
    assert_eq!(
        events_from_change(&drop_database).unwrap(),
        ChangeOutcome::RebuildRequired("database sessionfold was dropped".to_owned())
    );
    let invalidate = doc! {
        "_id": { "_data": "82" },
        "operationType": "invalidate",
        "clusterTime": Timestamp { time: 1_772_366_400, increment: 2 },
    };
    assert_eq!(
        events_from_change(&invalidate).unwrap(),
        ChangeOutcome::Invalidated
    );
}

#[test]
fn cluster_time_is_used_without_wall_time() {
    let mut change = change("insert", "bookings", Some(booking_document("confirmed")));
    change.remove("wallTime");
    let events = events(&change);
    assert_eq!(events[0].time.timestamp(), 1_772_366_400);
}

#[test]
fn invalid_document_names_collection_id_and_field() {
    let mut booking = booking_document("confirmed");
    booking.insert("startsAt", "2026-03-05T06:30:00Z");
    let error = events_from_change(&change("insert", "bookings", Some(booking))).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid bookings document bk-501: field startsAt: expected a date, found string"
    );
    assert_eq!(error.field(), "fullDocument");
}

#[test]
fn malformed_change_is_rejected() {
    let error = events_from_change(&doc! { "operationType": 5_i32 }).unwrap_err();
    assert!(matches!(error, ChangeError::Malformed(_)));
    let error =
        events_from_change(&doc! { "operationType": "insert", "ns": { "coll": "users" } }).unwrap_err();
    assert_eq!(
        error,
        ChangeError::Malformed("neither wallTime nor clusterTime is present".to_owned())
    );
}

#[test]
fn other_collections_and_operations_are_skipped() {
    let outcome = events_from_change(&change("insert", "notifications", Some(doc! {}))).unwrap();
    assert!(matches!(outcome, ChangeOutcome::Skip(_)));
    let mut create_indexes = change("createIndexes", "users", None);
    create_indexes.remove("documentKey");
    assert!(matches!(
        events_from_change(&create_indexes).unwrap(),
        ChangeOutcome::Skip(_)
    ));
}
