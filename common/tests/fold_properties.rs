//! Invariant: order and duplicates do not matter. Folding any permutation of
//! a user's events, with any duplicates, gives the same fold state and the
//! same rendered document as folding them in version order.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use sessionfold_common::event::payload::*;
use sessionfold_common::event::{Event, EventKind, Role};
use sessionfold_common::fold::{FoldState, RenderOptions, fold_all, render};

const USER: &str = "user-prop";

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
}

fn event(id: String, version: u64, kind: EventKind) -> Event {
    Event {
        id,
        source: "/test".to_owned(),
        user_id: USER.to_owned(),
        time: base_time() + Duration::minutes(version as i64),
        version,
        kind,
    }
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Student), Just(Role::Teacher), Just(Role::ShaalaOwner)]
}

fn optional_text(field: &'static str) -> impl Strategy<Value = Option<Option<String>>> {
    prop_oneof![
        Just(None),
        Just(Some(None)),
        (0..5u8).prop_map(move |n| Some(Some(format!("{field}-{n}")))),
    ]
}

/// A user change at a given version (partial payloads on purpose).
fn user_change(version: u64) -> impl Strategy<Value = Event> {
    prop_oneof![
        (
            optional_text("email"),
            optional_text("name"),
            optional_text("avatar")
        )
            .prop_map(move |(email, name, avatar_url)| {
                event(
                    format!("user-{version}"),
                    version,
                    EventKind::UserProfileUpdated(ProfileUpdate {
                        email,
                        name,
                        avatar_url,
                    }),
                )
            }),
        (
            proptest::option::of("[a-z]{3}"),
            proptest::option::of(any::<bool>())
        )
            .prop_map(move |(theme, notifications)| {
                event(
                    format!("user-{version}"),
                    version,
                    EventKind::UserPreferencesChanged(PreferencesUpdate {
                        theme,
                        language: None,
                        notifications,
                    }),
                )
            }),
        (role(), proptest::option::of(any::<bool>())).prop_map(move |(role, owner_approved)| {
            event(
                format!("user-{version}"),
                version,
                EventKind::UserRoleChanged { role, owner_approved },
            )
        }),
        Just(event(format!("user-{version}"), version, EventKind::UserVerified)),
        Just(event(
            format!("user-{version}"),
            version,
            EventKind::UserDeactivated
        )),
        Just(event(
            format!("user-{version}"),
            version,
            EventKind::UserReactivated
        )),
        (1..5u64).prop_map(move |token_version| {
            event(
                format!("user-{version}"),
                version,
                EventKind::UserSessionsRevoked { token_version },
            )
        }),
    ]
}

fn user_events() -> impl Strategy<Value = Vec<Event>> {
    (0..6u64)
        .prop_flat_map(|changes| (2..2 + changes).map(user_change).collect::<Vec<_>>())
        .prop_map(|mut changes| {
            let created = event(
                "user-1".to_owned(),
                1,
                EventKind::UserCreated(UserCreated {
                    email: "first@example.com".to_owned(),
                    name: "First".to_owned(),
                    avatar_url: None,
                    role: Some(Role::Student),
                    is_active: Some(true),
                    is_verified: Some(false),
                    owner_approved: None,
                    preferences: PreferencesUpdate::default(),
                }),
            );
            changes.insert(0, created);
            changes
        })
}

/// One booking's history: created, then optionally rescheduled, then
/// optionally cancelled or completed, with increasing versions.
fn booking_events(number: usize) -> impl Strategy<Value = Vec<Event>> {
    (-48..48i64, any::<bool>(), 0..3u8).prop_map(move |(start_hours, rescheduled, ending)| {
        let booking_id = format!("bk-{number}");
        let starts_at = base_time() + Duration::hours(start_hours);
        let mut events = vec![event(
            format!("{booking_id}-1"),
            1,
            EventKind::BookingCreated(BookingCreated {
                booking_id: booking_id.clone(),
                class_id: "cl-1".to_owned(),
                class_name: "Morning Hatha".to_owned(),
                shaala_id: "sh-1".to_owned(),
                shaala_name: "Lotus Shaala".to_owned(),
                teacher_name: None,
                starts_at,
                ends_at: starts_at + Duration::hours(1),
            }),
        )];
        let mut version = 1;
        if rescheduled {
            version += 1;
            let starts_at = starts_at + Duration::hours(3);
            events.push(event(
                format!("{booking_id}-{version}"),
                version,
                EventKind::BookingRescheduled(BookingRescheduled {
                    booking_id: booking_id.clone(),
                    starts_at,
                    ends_at: starts_at + Duration::hours(1),
                }),
            ));
        }
        version += 1;
        match ending {
            1 => events.push(event(
                format!("{booking_id}-{version}"),
                version,
                EventKind::BookingCancelled {
                    booking_id,
                    reason: None,
                },
            )),
            2 => events.push(event(
                format!("{booking_id}-{version}"),
                version,
                EventKind::BookingCompleted { booking_id },
            )),
            _ => {}
        }
        events
    })
}

fn subscription_events(number: usize) -> impl Strategy<Value = Vec<Event>> {
    (-40..10i64, any::<bool>(), 0..3u8).prop_map(move |(start_days, renewed, ending)| {
        let subscription_id = format!("sub-{number}");
        let starts_at = base_time() + Duration::days(start_days);
        let mut events = vec![event(
            format!("{subscription_id}-1"),
            1,
            EventKind::SubscriptionActivated(SubscriptionActivated {
                subscription_id: subscription_id.clone(),
                plan_id: "plan-1".to_owned(),
                plan_name: "Monthly".to_owned(),
                shaala_id: None,
                starts_at,
                ends_at: starts_at + Duration::days(30),
                classes_remaining: Some(10),
            }),
        )];
        let mut version = 1;
        if renewed {
            version += 1;
            events.push(event(
                format!("{subscription_id}-{version}"),
                version,
                EventKind::SubscriptionRenewed(SubscriptionRenewed {
                    subscription_id: subscription_id.clone(),
                    ends_at: starts_at + Duration::days(60),
                    classes_remaining: Some(Some(8)),
                }),
            ));
        }
        version += 1;
        let id = format!("{subscription_id}-{version}");
        match ending {
            1 => events.push(event(
                id,
                version,
                EventKind::SubscriptionCancelled { subscription_id },
            )),
            2 => events.push(event(
                id,
                version,
                EventKind::SubscriptionExpired { subscription_id },
            )),
            _ => {}
        }
        events
    })
}

/// All of one user's events, in version order per entity.
fn history() -> impl Strategy<Value = Vec<Event>> {
    (user_events(), 0..8usize, 0..4usize, any::<bool>())
        .prop_flat_map(|(user, bookings, subscriptions, deleted)| {
            let bookings: Vec<_> = (0..bookings).map(booking_events).collect();
            let subscriptions: Vec<_> = (0..subscriptions).map(subscription_events).collect();
            (Just(user), bookings, subscriptions, Just(deleted))
        })
        .prop_map(|(mut events, bookings, subscriptions, deleted)| {
            events.extend(bookings.into_iter().flatten());
            events.extend(subscriptions.into_iter().flatten());
            if deleted {
                events.push(event("user-deleted".to_owned(), 100, EventKind::UserDeleted));
            }
            events
        })
}

/// A history plus a shuffled copy with some events delivered twice.
fn history_and_redelivery() -> impl Strategy<Value = (Vec<Event>, Vec<Event>)> {
    history().prop_flat_map(|events| {
        let count = events.len();
        let duplicates = proptest::collection::vec(0..count, 0..count.max(1));
        (Just(events), duplicates).prop_flat_map(|(events, duplicates)| {
            let mut delivered = events.clone();
            delivered.extend(duplicates.into_iter().map(|index| events[index].clone()));
            (Just(events), Just(delivered).prop_shuffle())
        })
    })
}

fn rendered_body(state: &FoldState, now: DateTime<Utc>) -> Option<String> {
    render(USER, state, now, &RenderOptions::default())
        .map(|rendered| serde_json::to_string(&rendered.body).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_order_with_duplicates_folds_like_version_order((events, delivered) in history_and_redelivery()) {
        let in_order = fold_all(FoldState::default(), &events);
        let shuffled = fold_all(FoldState::default(), &delivered);

        prop_assert_eq!(&shuffled, &in_order);
        for hours in [-72, 0, 72] {
            let now = base_time() + Duration::hours(hours);
            prop_assert_eq!(rendered_body(&shuffled, now), rendered_body(&in_order, now));
        }
    }

    #[test]
    fn refolding_the_same_events_changes_nothing(events in history()) {
        let once = fold_all(FoldState::default(), &events);
        let twice = fold_all(once.clone(), &events);
        prop_assert_eq!(twice, once);
    }

    #[test]
    fn same_version_conflicts_resolve_the_same_in_any_order(
        (events, delivered) in history_and_redelivery(),
        theme in "[a-z]{4}",
    ) {
        // A producer bug: a second, different event claims an existing version.
        let rival = event(
            "rival".to_owned(),
            2,
            EventKind::UserPreferencesChanged(PreferencesUpdate { theme: Some(theme), language: None, notifications: None }),
        );
        let mut with_rival = events.clone();
        with_rival.push(rival.clone());
        let mut delivered_with_rival = vec![rival];
        delivered_with_rival.extend(delivered);

        prop_assert_eq!(
            fold_all(FoldState::default(), &delivered_with_rival),
            fold_all(FoldState::default(), &with_rival)
        );
    }
}
