use chrono::{DateTime, Utc};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Bson, Document, doc};

use super::*;
use crate::fold::register::{Register, value};
use crate::fold::{RenderOptions, render};

fn date(text: &str) -> bson::DateTime {
    let at: DateTime<Utc> = text.parse().unwrap();
    bson::DateTime::from_millis(at.timestamp_millis())
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).unwrap()
}

/// Builds a user document as the users service writes it, with fields this
/// service does not read (`passwordHash`, `createdAt`, `__v`).
fn user_document() -> Document {
    doc! {
        "_id": oid("65a1f0c2e4b0a1b2c3d4e5f6"),
        "userId": "user-0001",
        "version": 7_i32,
        "email": "asha.sharma1@example.com",
        "name": "Asha Sharma",
        "avatarUrl": "https://cdn.example.com/avatars/user-0001.png",
        "role": "teacher",
        "isActive": true,
        "isVerified": true,
        "ownerApproved": false,
        "preferences": { "theme": "dark", "language": "hi", "notifications": false },
        "tokenVersion": 2_i64,
        "tokensValidAfter": date("2026-01-10T08:00:00Z"),
        "passwordHash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "createdAt": date("2025-09-01T12:00:00Z"),
        "__v": 0_i32,
    }
}

fn booking_document(booking_id: &str, status: &str, starts_at: &str) -> Document {
    let starts = date(starts_at);
    let ends = bson::DateTime::from_millis(starts.timestamp_millis() + 3_600_000);
    doc! {
        "_id": ObjectId::new(),
        "bookingId": booking_id,
        "userId": "user-0001",
        "version": 3_i32,
        "classId": "cl-88",
        "className": "Morning Hatha",
        "shaalaId": "sh-3",
        "shaalaName": "Lotus Shaala",
        "teacherName": "A. Iyer",
        "startsAt": starts,
        "endsAt": ends,
        "status": status,
        "updatedAt": date("2026-01-02T09:00:00Z"),
        "paymentRef": "pay_9f8e7d",
    }
}

fn subscription_document(subscription_id: &str, status: &str) -> Document {
    doc! {
        "_id": ObjectId::new(),
        "subscriptionId": subscription_id,
        "userId": "user-0001",
        "version": 2_i32,
        "planId": "plan-10",
        "planName": "10-Class Pack",
        "shaalaId": "sh-3",
        "startsAt": date("2026-01-01T00:00:00Z"),
        "endsAt": date("2026-02-01T00:00:00Z"),
        "classesRemaining": 6_i32,
        "status": status,
        "priceCents": 450_000_i64,
    }
}

#[test]
fn user_document_maps_every_field() {
    let record = UserRecord::from_document(&user_document()).unwrap();
    assert_eq!(record.user_id, "user-0001");
    assert_eq!(record.version, 7);
    assert_eq!(record.email.as_deref(), Some("asha.sharma1@example.com"));
    assert_eq!(record.role, Some(Role::Teacher));
    assert!(record.is_active);
    assert_eq!(record.is_verified, Some(true));
    assert_eq!(record.owner_approved, Some(false));
    assert_eq!(record.preferences.theme.as_deref(), Some("dark"));
    assert_eq!(record.preferences.notifications, Some(false));
    assert_eq!(record.token_version, 2);
    assert_eq!(record.tokens_valid_after, Some(utc("2026-01-10T08:00:00Z")));
    assert_eq!(record.deleted_at, None);
}

#[test]
fn user_state_stamps_every_register_with_the_version() {
    let record = UserRecord::from_document(&user_document()).unwrap();
    let state = record.to_state().unwrap();
    let stamp = Stamp::new(7, "mongo:users:user-0001");
    assert_eq!(state.user.created, Some(stamp));
    assert_eq!(
        state.user.name,
        Some(Register {
            stamp,
            value: Some("Asha Sharma".to_owned())
        })
    );
    assert_eq!(state.user.theme.as_ref().unwrap().stamp, stamp);
    assert_eq!(state.token_version, 2);
    assert_eq!(
        state.tokens_valid_after,
        Some(utc("2026-01-10T08:00:00Z").timestamp())
    );
}

#[test]
fn minimal_user_renders_configured_defaults() {
    let document = doc! {
        "_id": ObjectId::new(),
        "userId": "user-0002",
        "version": 1_i32,
        "email": "vikram@example.com",
        "name": Bson::Null,
    };
    let state = UserRecord::from_document(&document).unwrap().to_state().unwrap();
    let options = RenderOptions {
        default_role: Role::Student,
        ..RenderOptions::default()
    };
    let rendered = render("user-0002", &state, utc("2026-01-01T00:00:00Z"), &options).unwrap();
    let user = &rendered.body.user;
    assert_eq!(user.name, None);
    assert_eq!(user.avatar, None);
    assert_eq!(user.role, Role::Student);
    assert!(user.is_active);
    assert!(!user.is_verified);
    assert_eq!(user.preferences.theme, "light");
    assert_eq!(user.preferences.language, "en");
    assert!(user.preferences.notifications);
    assert_eq!(rendered.token_version, 0);
    assert_eq!(rendered.tokens_valid_after, None);
}

#[test]
fn soft_deleted_user_has_no_state() {
    let mut document = user_document();
    document.insert("deletedAt", date("2026-02-01T00:00:00Z"));
    let record = UserRecord::from_document(&document).unwrap();
    assert!(record.to_state().is_none());
    assert_eq!(assemble(&document, &[], &[]).unwrap(), None);
}

#[test]
fn null_deleted_at_is_not_deleted() {
    let mut document = user_document();
    document.insert("deletedAt", Bson::Null);
    assert!(UserRecord::from_document(&document).unwrap().to_state().is_some());
}

#[test]
fn wrong_user_field_types_name_the_field() {
    let cases: Vec<(&str, Bson, &str)> = vec![
        (
            "version",
            Bson::String("7".into()),
            "expected an int or long, found string",
        ),
        (
            "version",
            Bson::Double(7.0),
            "expected an int or long, found double",
        ),
        ("email", Bson::Int32(1), "expected a string or null, found int"),
        (
            "isActive",
            Bson::String("true".into()),
            "expected a bool, found string",
        ),
        (
            "role",
            Bson::String("admin".into()),
            "expected one of student, teacher, shaala_owner, found \"admin\"",
        ),
        (
            "tokensValidAfter",
            Bson::String("2026-01-10T08:00:00Z".into()),
            "expected a date, found string",
        ),
        (
            "tokenVersion",
            Bson::Int32(-1),
            "expected an integer of at least 0, found -1",
        ),
        (
            "preferences",
            Bson::String("dark".into()),
            "expected an object, found string",
        ),
    ];
    for (field, bad, problem) in cases {
        let mut document = user_document();
        document.insert(field, bad);
        let error = UserRecord::from_document(&document).unwrap_err();
        assert_eq!(error.collection, "users", "{field}");
        assert_eq!(error.document_id, "user-0001", "{field}");
        assert_eq!(error.field, field);
        assert_eq!(error.problem, problem, "{field}");
    }
}

#[test]
fn empty_theme_is_rejected_with_its_path() {
    let mut document = user_document();
    document.insert("preferences", doc! { "theme": "" });
    let error = UserRecord::from_document(&document).unwrap_err();
    assert_eq!(error.field, "preferences.theme");
}

#[test]
fn missing_user_id_names_the_object_id() {
    let mut document = user_document();
    document.remove("userId");
    let error = UserRecord::from_document(&document).unwrap_err();
    assert_eq!(error.document_id, "_id 65a1f0c2e4b0a1b2c3d4e5f6");
    assert_eq!(error.field, "userId");
    assert_eq!(error.problem, "missing");
}

#[test]
fn booking_document_maps_to_entry_with_version_stamp() {
    let document = booking_document("bk-501", "confirmed", "2026-11-05T06:30:00Z");
    let record = BookingRecord::from_document(&document).unwrap();
    let mut state = FoldState::default();
    record.apply(&mut state);
    let entry = &state.bookings["bk-501"];
    let stamp = Stamp::new(3, "mongo:bookings:bk-501");
    assert_eq!(entry.status.as_ref().unwrap().stamp, stamp);
    assert_eq!(value(&entry.status), Some(&BookingStatus::Confirmed));
    assert_eq!(
        value(&entry.details).unwrap().teacher_name.as_deref(),
        Some("A. Iyer")
    );
    assert_eq!(
        value(&entry.times).unwrap().starts_at,
        utc("2026-11-05T06:30:00Z")
    );
}

#[test]
fn cancelled_booking_becomes_status_only_tombstone() {
    let mut document = booking_document("bk-7", "cancelled", "2026-11-05T06:30:00Z");
    document.insert("cancelledAt", date("2026-11-01T00:00:00Z"));
    let record = BookingRecord::from_document(&document).unwrap();
    assert_eq!(record.cancelled_at, Some(utc("2026-11-01T00:00:00Z")));
    let mut state = FoldState::default();
    record.apply(&mut state);
    let entry = &state.bookings["bk-7"];
    assert_eq!(value(&entry.status), Some(&BookingStatus::Cancelled));
    assert!(entry.details.is_none());
    assert!(entry.times.is_none());
}

#[test]
fn booking_without_teacher_maps_to_none() {
    let mut document = booking_document("bk-8", "completed", "2026-11-05T06:30:00Z");
    document.remove("teacherName");
    let record = BookingRecord::from_document(&document).unwrap();
    assert_eq!(record.details.teacher_name, None);
    assert_eq!(record.status, BookingStatus::Completed);
}

#[test]
fn wrong_booking_fields_are_reported() {
    let cases: Vec<(&str, Bson, &str)> = vec![
        (
            "startsAt",
            Bson::String("2026-11-05T06:30:00Z".into()),
            "expected a date, found string",
        ),
        (
            "status",
            Bson::String("pending".into()),
            "expected one of confirmed, cancelled, completed, found \"pending\"",
        ),
        (
            "classId",
            Bson::ObjectId(ObjectId::new()),
            "expected a string, found objectId",
        ),
        (
            "className",
            Bson::String(String::new()),
            "expected a non-empty string, found an empty string",
        ),
        ("teacherName", Bson::Int64(5), "expected a string, found long"),
    ];
    for (field, bad, problem) in cases {
        let mut document = booking_document("bk-9", "confirmed", "2026-11-05T06:30:00Z");
        document.insert(field, bad);
        let error = BookingRecord::from_document(&document).unwrap_err();
        assert_eq!(error.collection, "bookings");
        assert_eq!(error.document_id, "bk-9");
        assert_eq!(error.field, field);
        assert_eq!(error.problem, problem, "{field}");
    }
}

#[test]
fn booking_ending_before_start_is_rejected() {
    let mut document = booking_document("bk-9", "confirmed", "2026-11-05T06:30:00Z");
    document.insert("endsAt", date("2026-11-05T06:30:00Z"));
    let error = BookingRecord::from_document(&document).unwrap_err();
    assert_eq!(error.field, "endsAt");
    assert_eq!(error.problem, "must be later than startsAt");
}

#[test]
fn subscription_document_maps_every_register() {
    let record = SubscriptionRecord::from_document(&subscription_document("sub-1", "active")).unwrap();
    let mut state = FoldState::default();
    record.apply(&mut state);
    let entry = &state.subscriptions["sub-1"];
    let stamp = Stamp::new(2, "mongo:subscriptions:sub-1");
    assert_eq!(entry.details.as_ref().unwrap().stamp, stamp);
    assert_eq!(value(&entry.status), Some(&SubscriptionStatus::Active));
    assert_eq!(value(&entry.classes_remaining), Some(&Some(6)));
    assert_eq!(value(&entry.ends_at), Some(&utc("2026-02-01T00:00:00Z")));
    assert_eq!(value(&entry.details).unwrap().shaala_id.as_deref(), Some("sh-3"));
}

#[test]
fn unlimited_subscription_has_no_count() {
    let mut document = subscription_document("sub-2", "active");
    document.insert("classesRemaining", Bson::Null);
    document.remove("shaalaId");
    let record = SubscriptionRecord::from_document(&document).unwrap();
    assert_eq!(record.classes_remaining, None);
    assert_eq!(record.details.shaala_id, None);
}

#[test]
fn wrong_subscription_fields_are_reported() {
    let cases: Vec<(&str, Bson, &str)> = vec![
        (
            "classesRemaining",
            Bson::Double(2.5),
            "expected an int or long, found double",
        ),
        (
            "status",
            Bson::String("paused".into()),
            "expected one of active, cancelled, expired, found \"paused\"",
        ),
        (
            "endsAt",
            Bson::Int64(1_767_225_600_000),
            "expected a date, found long",
        ),
    ];
    for (field, bad, problem) in cases {
        let mut document = subscription_document("sub-3", "active");
        document.insert(field, bad);
        let error = SubscriptionRecord::from_document(&document).unwrap_err();
        assert_eq!(error.document_id, "sub-3");
        assert_eq!(error.field, field);
        assert_eq!(error.problem, problem, "{field}");
    }
}

#[test]
fn assemble_renders_bookings_and_subscriptions() {
    let bookings = [
        booking_document("bk-1", "confirmed", "2026-01-20T06:30:00Z"),
        booking_document("bk-2", "completed", "2026-01-05T06:30:00Z"),
    ];
    let subscriptions = [subscription_document("sub-1", "active")];
    let state = assemble(&user_document(), &bookings, &subscriptions)
        .unwrap()
        .unwrap();
    let rendered = render(
        "user-0001",
        &state,
        utc("2026-01-15T00:00:00Z"),
        &RenderOptions::default(),
    )
    .unwrap();
    let ids: Vec<_> = rendered
        .body
        .recent_bookings
        .iter()
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(ids, ["bk-1", "bk-2"]);
    assert_eq!(rendered.body.active_subscriptions.len(), 1);
    assert_eq!(rendered.stale_at, Some(utc("2026-01-20T07:30:00Z")));
}

#[test]
fn assemble_rejects_a_booking_of_another_user() {
    let mut booking = booking_document("bk-1", "confirmed", "2026-01-20T06:30:00Z");
    booking.insert("userId", "user-0002");
    let error = assemble(&user_document(), &[booking], &[]).unwrap_err();
    assert_eq!(error.collection, "bookings");
    assert_eq!(error.document_id, "bk-1");
    assert_eq!(error.field, "userId");
}

#[test]
fn later_event_version_wins_over_assembled_state() {
    use crate::event::payload::ProfileUpdate;
    use crate::event::{Event, EventKind};

    let mut state = assemble(&user_document(), &[], &[]).unwrap().unwrap();
    let newer = Event {
        id: "evt-1".to_owned(),
        source: "/services/users".to_owned(),
        user_id: "user-0001".to_owned(),
        time: utc("2026-02-01T00:00:00Z"),
        version: 8,
        kind: EventKind::UserProfileUpdated(ProfileUpdate {
            name: Some(Some("Asha S.".to_owned())),
            ..ProfileUpdate::default()
        }),
    };
    let older = Event {
        version: 6,
        id: "evt-0".to_owned(),
        kind: EventKind::UserProfileUpdated(ProfileUpdate {
            email: Some(Some("old@example.com".to_owned())),
            ..ProfileUpdate::default()
        }),
        ..newer.clone()
    };
    crate::fold::apply(&mut state, &newer);
    crate::fold::apply(&mut state, &older);
    assert_eq!(value(&state.user.name), Some(&Some("Asha S.".to_owned())));
    assert_eq!(
        value(&state.user.email),
        Some(&Some("asha.sharma1@example.com".to_owned()))
    );
}

#[test]
fn notification_document_maps_read_and_unread() {
    let unread = doc! {
        "_id": ObjectId::new(),
        "userId": "user-0001",
        "notificationId": "ntf-1",
        "kind": "booking_reminder",
        "title": "Class tomorrow",
        "body": "Morning Hatha starts at 06:30.",
        "createdAt": date("2026-01-01T10:00:00Z"),
        "channel": "push",
    };
    let notification = notification_from_document(&unread).unwrap();
    assert_eq!(notification.id, "ntf-1");
    assert!(notification.is_unread());

    let mut read = unread.clone();
    read.insert("readAt", date("2026-01-01T11:00:00Z"));
    assert_eq!(
        notification_from_document(&read).unwrap().read_at,
        Some(utc("2026-01-01T11:00:00Z"))
    );

    let mut bad = unread;
    bad.insert("readAt", true);
    let error = notification_from_document(&bad).unwrap_err();
    assert_eq!(error.collection, "notifications");
    assert_eq!(error.document_id, "ntf-1");
    assert_eq!(error.field, "readAt");
}

#[test]
fn profile_document_maps_nested_fields() {
    let document = doc! {
        "_id": ObjectId::new(),
        "userId": "user-0001",
        "bio": "Yoga teacher from Pune.",
        "phone": "+91 98200 00001",
        "address": {
            "line1": "12 MG Road",
            "city": "Pune",
            "postalCode": "411001",
            "country": "IN",
        },
        "emergencyContact": { "name": "Ravi Sharma", "phone": "+91 98200 00002" },
        "interests": ["hatha", "pranayama"],
        "updatedAt": date("2026-01-03T00:00:00Z"),
        "internalNotes": "not served",
    };
    let profile = profile_from_document(&document).unwrap();
    assert_eq!(profile.bio.as_deref(), Some("Yoga teacher from Pune."));
    let address = profile.address.unwrap();
    assert_eq!(address.city, "Pune");
    assert_eq!(address.line2, None);
    assert_eq!(address.region, None);
    assert_eq!(profile.emergency_contact.unwrap().relationship, None);
    assert_eq!(profile.interests, ["hatha", "pranayama"]);
}

#[test]
fn minimal_profile_document_maps_to_empty_fields() {
    let document = doc! { "_id": ObjectId::new(), "userId": "user-0003" };
    let profile = profile_from_document(&document).unwrap();
    assert_eq!(profile, ProfileDetails::empty("user-0003"));
}

#[test]
fn profile_address_without_city_is_rejected() {
    let document = doc! {
        "userId": "user-0001",
        "address": { "line1": "12 MG Road", "country": "IN" },
    };
    let error = profile_from_document(&document).unwrap_err();
    assert_eq!(error.collection, "profile_details");
    assert_eq!(error.field, "address.city");
    assert_eq!(error.problem, "missing");
}
