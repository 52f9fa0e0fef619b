//! Behaviour of the fold and render on hand-picked histories.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sessionfold_common::event::payload::*;
use sessionfold_common::event::{Event, EventKind, Role};
use sessionfold_common::fold::render::ShownStatus;
use sessionfold_common::fold::{FoldState, RenderOptions, apply, fold_all, render};

const USER: &str = "user-0001";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap()
}

fn event(id: &str, version: u64, kind: EventKind) -> Event {
    Event {
        id: id.to_owned(),
        source: "/test".to_owned(),
        user_id: USER.to_owned(),
        time: t0(),
        version,
        kind,
    }
}

fn created() -> Event {
    event(
        "u1",
        1,
        EventKind::UserCreated(UserCreated {
            email: "asha@example.com".to_owned(),
            name: "Asha".to_owned(),
            avatar_url: None,
            role: None,
            is_active: None,
            is_verified: None,
            owner_approved: None,
            preferences: PreferencesUpdate::default(),
        }),
    )
}

fn booking(number: u32, starts_in_hours: i64) -> Event {
    let starts_at = t0() + Duration::hours(starts_in_hours);
    event(
        &format!("bk-{number}-created"),
        1,
        EventKind::BookingCreated(BookingCreated {
            booking_id: format!("bk-{number}"),
            class_id: "cl-88".to_owned(),
            class_name: "Morning Hatha".to_owned(),
            shaala_id: "sh-3".to_owned(),
            shaala_name: "Lotus Shaala".to_owned(),
            teacher_name: Some("A. Teacher".to_owned()),
            starts_at,
            ends_at: starts_at + Duration::hours(1),
        }),
    )
}

fn cancel(number: u32) -> Event {
    event(
        &format!("bk-{number}-cancelled"),
        2,
        EventKind::BookingCancelled {
            booking_id: format!("bk-{number}"),
            reason: None,
        },
    )
}

fn subscription(id: &str, starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Event {
    event(
        &format!("{id}-activated"),
        1,
        EventKind::SubscriptionActivated(SubscriptionActivated {
            subscription_id: id.to_owned(),
            plan_id: "plan-10".to_owned(),
            plan_name: "10-Class Pack".to_owned(),
            shaala_id: Some("sh-3".to_owned()),
            starts_at,
            ends_at,
            classes_remaining: Some(4),
        }),
    )
}

fn booking_ids(state: &FoldState, now: DateTime<Utc>) -> Vec<String> {
    let rendered = render(USER, state, now, &RenderOptions::default()).unwrap();
    rendered.body.recent_bookings.into_iter().map(|b| b.id).collect()
}

#[test]
fn cancelled_booking_leaves_recent_window_full() {
    let mut events = vec![created()];
    events.extend((1..=7).map(|n| booking(n, i64::from(n) * 24)));
    events.push(cancel(6));
    let state = fold_all(FoldState::default(), &events);

    // Latest first; bk-6 is gone and bk-2 moved up to fill the window of 5.
    assert_eq!(
        booking_ids(&state, t0()),
        ["bk-7", "bk-5", "bk-4", "bk-3", "bk-2"]
    );
}

#[test]
fn cancellation_before_creation_still_hides_booking() {
    let state = fold_all(FoldState::default(), &[created(), cancel(1), booking(1, 24)]);
    assert!(booking_ids(&state, t0()).is_empty());
}

#[test]
fn booking_past_its_end_is_completed_without_event() {
    let state = fold_all(FoldState::default(), &[created(), booking(1, 2)]);
    let before = render(USER, &state, t0(), &RenderOptions::default()).unwrap();
    assert_eq!(before.body.recent_bookings[0].status, ShownStatus::Confirmed);
    assert_eq!(before.stale_at, Some(t0() + Duration::hours(3)));

    let after = render(USER, &state, t0() + Duration::hours(3), &RenderOptions::default()).unwrap();
    assert_eq!(after.body.recent_bookings[0].status, ShownStatus::Completed);
}

#[test]
fn subscription_past_ends_at_is_not_active_without_event() {
    let ends_at = t0() + Duration::days(1);
    let events = [
        created(),
        subscription("sub-1", t0() - Duration::days(29), ends_at),
    ];
    let state = fold_all(FoldState::default(), &events);

    let now = render(USER, &state, t0(), &RenderOptions::default()).unwrap();
    assert_eq!(now.body.active_subscriptions.len(), 1);
    assert_eq!(now.stale_at, Some(ends_at));

    let later = render(USER, &state, ends_at, &RenderOptions::default()).unwrap();
    assert!(later.body.active_subscriptions.is_empty());
}

#[test]
fn future_subscription_becomes_active_at_its_start() {
    let starts_at = t0() + Duration::days(2);
    let state = fold_all(
        FoldState::default(),
        &[
            created(),
            subscription("sub-1", starts_at, starts_at + Duration::days(30)),
        ],
    );
    let now = render(USER, &state, t0(), &RenderOptions::default()).unwrap();
    assert!(now.body.active_subscriptions.is_empty());
    assert_eq!(now.stale_at, Some(starts_at));
}

#[test]
fn late_partial_update_keeps_newer_fields() {
    // v5 changes the email, then a late v4 changes only the name: both stay.
    let email = event(
        "u5",
        5,
        EventKind::UserProfileUpdated(ProfileUpdate {
            email: Some(Some("new@example.com".to_owned())),
            ..ProfileUpdate::default()
        }),
    );
    let name = event(
        "u4",
        4,
        EventKind::UserProfileUpdated(ProfileUpdate {
            name: Some(Some("Asha R.".to_owned())),
            ..ProfileUpdate::default()
        }),
    );
    let state = fold_all(FoldState::default(), &[created(), email, name]);
    let user = render(USER, &state, t0(), &RenderOptions::default())
        .unwrap()
        .body
        .user;
    assert_eq!(user.email.as_deref(), Some("new@example.com"));
    assert_eq!(user.name.as_deref(), Some("Asha R."));
}

#[test]
fn null_in_profile_update_clears_field() {
    let set = event(
        "u2",
        2,
        EventKind::UserProfileUpdated(ProfileUpdate {
            avatar_url: Some(Some("https://cdn.example.com/a.png".to_owned())),
            ..ProfileUpdate::default()
        }),
    );
    let clear = event(
        "u3",
        3,
        EventKind::UserProfileUpdated(ProfileUpdate {
            avatar_url: Some(None),
            ..ProfileUpdate::default()
        }),
    );
    let state = fold_all(FoldState::default(), &[created(), set, clear]);
    let user = render(USER, &state, t0(), &RenderOptions::default())
        .unwrap()
        .body
        .user;
    assert_eq!(user.avatar, None);
}

#[test]
fn missing_fields_render_configured_defaults() {
    let state = fold_all(FoldState::default(), &[created()]);
    let options = RenderOptions {
        recent_bookings_limit: 5,
        default_role: Role::Teacher,
    };
    let rendered = render(USER, &state, t0(), &options).unwrap();
    assert_eq!(rendered.body.user.role, Role::Teacher);
    assert!(rendered.body.user.is_active);
    assert!(!rendered.body.user.is_verified);
    assert_eq!(rendered.body.user.preferences.theme, "light");
    assert_eq!(rendered.body.user.preferences.language, "en");
    assert!(rendered.body.user.preferences.notifications);
}

#[test]
fn user_without_created_event_has_no_document() {
    let state = fold_all(FoldState::default(), &[booking(1, 24)]);
    assert!(render(USER, &state, t0(), &RenderOptions::default()).is_none());
}

#[test]
fn deleted_user_stays_deleted_after_late_events() {
    let deleted = event("u9", 9, EventKind::UserDeleted);
    let state = fold_all(
        FoldState::default(),
        &[created(), booking(1, 24), deleted, booking(2, 48)],
    );
    assert!(render(USER, &state, t0(), &RenderOptions::default()).is_none());
    // Personal data is gone from the fold state too, not only from the document.
    assert!(state.user.email.is_none());
    assert!(state.bookings.is_empty());
}

#[test]
fn sessions_revoked_raises_token_version_only_upwards() {
    let mut state = fold_all(FoldState::default(), &[created()]);
    apply(
        &mut state,
        &event("r3", 3, EventKind::UserSessionsRevoked { token_version: 4 }),
    );
    apply(
        &mut state,
        &event("r2", 2, EventKind::UserSessionsRevoked { token_version: 2 }),
    );
    assert_eq!(state.token_version, 4);
}

#[test]
fn deactivation_revokes_older_tokens_and_removes_activity() {
    let state = fold_all(
        FoldState::default(),
        &[created(), event("d2", 2, EventKind::UserDeactivated)],
    );
    let rendered = render(USER, &state, t0(), &RenderOptions::default()).unwrap();
    assert!(!rendered.access.is_active);
    assert_eq!(rendered.tokens_valid_after, Some(t0().timestamp()));
}

#[test]
fn duplicate_event_reports_no_change() {
    let mut state = FoldState::default();
    assert!(apply(&mut state, &created()).changed);
    assert!(!apply(&mut state, &created()).changed);
}

#[test]
fn same_version_from_two_events_is_counted() {
    let mut state = fold_all(FoldState::default(), &[created()]);
    let first = event(
        "a",
        2,
        EventKind::UserRoleChanged {
            role: Role::Teacher,
            owner_approved: None,
        },
    );
    let second = event(
        "b",
        2,
        EventKind::UserRoleChanged {
            role: Role::ShaalaOwner,
            owner_approved: None,
        },
    );
    apply(&mut state, &first);
    assert_eq!(apply(&mut state, &second).conflicts, 1);
}
