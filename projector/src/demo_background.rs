//! The embedded background source of `dev` mode: booking history folded
//! from the dev event log, plus generated notifications and detailed
//! profiles.
//!
//! Nothing here has a system of record behind it, so notifications and
//! profiles are generated from a hash of the user id. The same user always
//! gets the same data within one run. Times are relative to the instant the
//! source was created, so the data looks current. The demo user
//! ([`DEMO_USER_ID`]) gets a fixed shape that exercises paging: 24
//! notifications, 6 of them unread, two created at the same instant.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sessionfold_common::background::cursor::truncate_to_millis;
use sessionfold_common::background::{
    Address, BackgroundSource, BookingHistoryItem, BookingHistoryQuery, BookingPage, EmergencyContact,
    Notification, NotificationPage, NotificationQuery, ProfileDetails, page_bookings, page_notifications,
};
use sessionfold_common::event::{Event, EventKind};
use sessionfold_common::fold::register::{Register, Stamp, merge};
use sessionfold_common::fold::state::{BookingDetails, BookingStatus, Interval};
use sessionfold_common::source::SourceOfTruthError;

use crate::demo::DEMO_USER_ID;
use crate::log::EventLog;

/// Notifications of the demo user, and how many of them are unread.
pub const DEMO_NOTIFICATIONS: usize = 24;
pub const DEMO_UNREAD: usize = 6;

/// FNV-1a (64-bit): a seed that is the same on every platform and build.
fn seed(user_id: &str) -> u64 {
    user_id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const CLASSES: &[(&str, &str)] = &[
    ("Morning Hatha", "Lotus Shaala"),
    ("Carnatic Vocals I", "Saraswati Music School"),
    ("Bharatanatyam Basics", "Nataraja Dance Studio"),
    ("Vinyasa Flow", "Lotus Shaala"),
];
const PLANS: &[&str] = &["Monthly Unlimited", "10-Class Pack", "Music Term"];
const CITIES: &[(&str, &str, &str)] = &[
    ("Pune", "Maharashtra", "411001"),
    ("Chennai", "Tamil Nadu", "600004"),
    ("Bengaluru", "Karnataka", "560001"),
    ("Kochi", "Kerala", "682011"),
];
const INTERESTS: &[&str] = &[
    "hatha",
    "vinyasa",
    "pranayama",
    "carnatic",
    "veena",
    "bharatanatyam",
    "kathak",
];
const BIOS: &[&str] = &[
    "Practising yoga before work, five days a week.",
    "Learning Carnatic vocals after twenty years away from music.",
    "Dancer and occasional teacher; loves early classes.",
    "New to the shaala and trying a bit of everything.",
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn notification_text(rng: &mut StdRng) -> (&'static str, String, String) {
    let (class, shaala) = *pick(rng, CLASSES);
    let plan = *pick(rng, PLANS);
    match rng.random_range(0..5) {
        0 => (
            "booking_reminder",
            "Class tomorrow".to_owned(),
            format!("{class} at {shaala} starts at 06:30."),
        ),
        1 => (
            "booking_cancelled",
            "Booking cancelled".to_owned(),
            format!("Your booking for {class} was cancelled; the class credit is back on your plan."),
        ),
        2 => (
            "subscription_expiring",
            "Subscription ending soon".to_owned(),
            format!("{plan} ends in 3 days. Renew to keep your bookings."),
        ),
        3 => (
            "payment_receipt",
            "Payment received".to_owned(),
            format!("We received INR {} for {plan}.", 500 * rng.random_range(2..20)),
        ),
        _ => (
            "announcement",
            "New class".to_owned(),
            format!("{shaala} added {class} on weekday mornings."),
        ),
    }
}

/// Generates the notifications of one user, in no particular order.
pub fn demo_notifications(user_id: &str, anchor: DateTime<Utc>) -> Vec<Notification> {
    let mut rng = StdRng::seed_from_u64(seed(user_id));
    let (count, unread) = if user_id == DEMO_USER_ID {
        (DEMO_NOTIFICATIONS, DEMO_UNREAD)
    } else {
        let count = rng.random_range(2..12);
        (count, rng.random_range(0..=count / 2))
    };
    let start = anchor.duration_trunc(Duration::minutes(1)).unwrap_or(anchor);
    let mut created_at = start;
    (0..count)
        .map(|index| {
            // Index 3 shares its time with index 2, so equal times (ordered
            // by id) are always present.
            if index != 3 {
                created_at -= Duration::minutes(rng.random_range(30..600));
            }
            let (kind, title, body) = notification_text(&mut rng);
            // Unread ones are spread over the newest notifications, as a
            // user who opens the app now and then leaves them.
            let is_unread = index < unread * 2 && index % 2 == 0;
            let read_delay = Duration::minutes(rng.random_range(1..120));
            let read_at = (!is_unread).then(|| (created_at + read_delay).min(start));
            Notification {
                id: format!("ntf-{}-{index:02}", user_id.trim_start_matches("user-")),
                kind: kind.to_owned(),
                title,
                body,
                created_at,
                read_at,
            }
        })
        .collect()
}

/// Generates the detailed profile of one user.
pub fn demo_profile(user_id: &str, anchor: DateTime<Utc>) -> ProfileDetails {
    let mut rng = StdRng::seed_from_u64(seed(user_id) ^ 0x9e37_79b9_7f4a_7c15);
    let (city, region, postal_code) = *pick(&mut rng, CITIES);
    let mut interests: Vec<String> = Vec::new();
    for _ in 0..rng.random_range(1..4) {
        let interest = (*pick(&mut rng, INTERESTS)).to_owned();
        if !interests.contains(&interest) {
            interests.push(interest);
        }
    }
    let number = rng.random_range(0..100_000_000u32);
    ProfileDetails {
        user_id: user_id.to_owned(),
        bio: Some((*pick(&mut rng, BIOS)).to_owned()),
        phone: Some(format!("+91 98{number:08}")),
        address: Some(Address {
            line1: format!("{} MG Road", rng.random_range(1..200)),
            line2: rng
                .random_bool(0.5)
                .then(|| format!("Flat {}", rng.random_range(1..40))),
            city: city.to_owned(),
            region: Some(region.to_owned()),
            postal_code: Some(postal_code.to_owned()),
            country: "IN".to_owned(),
        }),
        emergency_contact: rng.random_bool(0.7).then(|| EmergencyContact {
            name: "Ravi Kumar".to_owned(),
            phone: format!("+91 97{:08}", rng.random_range(0..100_000_000u32)),
            relationship: Some("sibling".to_owned()),
        }),
        interests,
        updated_at: Some(truncate_to_millis(
            anchor - Duration::days(rng.random_range(1..90)),
        )),
    }
}

/// One booking's history while folding: like the fold's booking entry, but
/// a cancellation keeps the details (the history lists cancelled bookings).
#[derive(Default)]
struct HistoryEntry {
    details: Option<Register<BookingDetails>>,
    times: Option<Register<Interval>>,
    /// The status and, for a cancellation, when it happened.
    status: Option<Register<(BookingStatus, Option<DateTime<Utc>>)>>,
    /// Time of the event with the highest stamp.
    updated_at: Option<Register<DateTime<Utc>>>,
}

/// Lists every booking in `events` with details and times known, cancelled ones
/// included. Events are merged by entity version like the fold, so the
/// order of `events` does not matter.
pub fn booking_history(events: &[Event]) -> Vec<BookingHistoryItem> {
    let mut entries: BTreeMap<String, HistoryEntry> = BTreeMap::new();
    for event in events {
        let stamp = Stamp::new(event.version, &event.id);
        let entry = match &event.kind {
            EventKind::BookingCreated(created) => {
                let entry = entries.entry(created.booking_id.clone()).or_default();
                let details = BookingDetails::from(created);
                let times = Interval {
                    starts_at: created.starts_at,
                    ends_at: created.ends_at,
                };
                merge(&mut entry.details, stamp, details);
                merge(&mut entry.times, stamp, times);
                merge(&mut entry.status, stamp, (BookingStatus::Confirmed, None));
                entry
            }
            EventKind::BookingRescheduled(rescheduled) => {
                let entry = entries.entry(rescheduled.booking_id.clone()).or_default();
                let times = Interval {
                    starts_at: rescheduled.starts_at,
                    ends_at: rescheduled.ends_at,
                };
                merge(&mut entry.times, stamp, times);
                entry
            }
            EventKind::BookingCancelled { booking_id, .. } => {
                let entry = entries.entry(booking_id.clone()).or_default();
                merge(
                    &mut entry.status,
                    stamp,
                    (BookingStatus::Cancelled, Some(event.time)),
                );
                entry
            }
            EventKind::BookingCompleted { booking_id } => {
                let entry = entries.entry(booking_id.clone()).or_default();
                merge(&mut entry.status, stamp, (BookingStatus::Completed, None));
                entry
            }
            _ => continue,
        };
        merge(&mut entry.updated_at, stamp, event.time);
    }

    entries
        .into_iter()
        .filter_map(|(id, entry)| {
            let details = entry.details?.value;
            let times = entry.times?.value;
            let (status, cancelled_at) = entry
                .status
                .map_or((BookingStatus::Confirmed, None), |register| register.value);
            // BSON dates keep milliseconds; so does the embedded history.
            Some(BookingHistoryItem {
                id,
                class_id: details.class_id,
                class_name: details.class_name,
                shaala_id: details.shaala_id,
                shaala_name: details.shaala_name,
                teacher_name: details.teacher_name,
                starts_at: truncate_to_millis(times.starts_at),
                ends_at: truncate_to_millis(times.ends_at),
                status,
                cancelled_at: cancelled_at.map(truncate_to_millis),
                updated_at: entry
                    .updated_at
                    .map(|register| truncate_to_millis(register.value)),
            })
        })
        .collect()
}

/// The [`BackgroundSource`] of `dev` mode.
pub struct EmbeddedBackgroundSource {
    log: Arc<EventLog>,
    anchor: DateTime<Utc>,
}

impl EmbeddedBackgroundSource {
    /// Generated times are relative to `anchor`, normally the start of `dev`.
    pub fn new(log: Arc<EventLog>, anchor: DateTime<Utc>) -> Self {
        Self { log, anchor }
    }

    /// Returns whether the log contains any event of the user; generated
    /// data exists only for users that do.
    fn knows(&self, user_id: &str) -> bool {
        self.log.user_ids().binary_search(&user_id.to_owned()).is_ok()
    }
}

#[async_trait]
impl BackgroundSource for EmbeddedBackgroundSource {
    async fn profile_details(&self, user_id: &str) -> Result<Option<ProfileDetails>, SourceOfTruthError> {
        Ok(self.knows(user_id).then(|| demo_profile(user_id, self.anchor)))
    }

    async fn booking_history(
        &self,
        user_id: &str,
        query: &BookingHistoryQuery,
    ) -> Result<BookingPage, SourceOfTruthError> {
        let events = self.log.events_for_user(user_id);
        Ok(page_bookings(booking_history(&events), query))
    }

    async fn notifications(
        &self,
        user_id: &str,
        query: &NotificationQuery,
    ) -> Result<NotificationPage, SourceOfTruthError> {
        let items = if self.knows(user_id) {
            demo_notifications(user_id, self.anchor)
        } else {
            Vec::new()
        };
        Ok(page_notifications(items, query))
    }
}

#[cfg(test)]
mod tests {
    use sessionfold_common::event::payload::{BookingCreated, BookingRescheduled};

    use super::*;

    fn anchor() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn demo_user_has_fixed_notification_shape() {
        let notifications = demo_notifications(DEMO_USER_ID, anchor());
        assert_eq!(notifications.len(), DEMO_NOTIFICATIONS);
        assert_eq!(
            notifications.iter().filter(|n| n.is_unread()).count(),
            DEMO_UNREAD
        );
        assert_eq!(notifications[2].created_at, notifications[3].created_at);
    }

    #[test]
    fn generated_data_is_deterministic() {
        assert_eq!(
            demo_notifications("user-0007", anchor()),
            demo_notifications("user-0007", anchor())
        );
        assert_eq!(
            demo_profile("user-0007", anchor()),
            demo_profile("user-0007", anchor())
        );
        assert_ne!(
            demo_profile("user-0007", anchor()),
            demo_profile("user-0008", anchor())
        );
    }

    #[test]
    fn notification_ids_are_unique() {
        let notifications = demo_notifications(DEMO_USER_ID, anchor());
        let mut ids: Vec<_> = notifications.iter().map(|n| n.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), notifications.len());
    }

    fn event(id: &str, version: u64, minutes: i64, kind: EventKind) -> Event {
        Event {
            id: id.to_owned(),
            source: "/test".to_owned(),
            user_id: "user-1".to_owned(),
            time: anchor() + Duration::minutes(minutes),
            version,
            kind,
        }
    }

    fn created(booking_id: &str, hours: i64) -> EventKind {
        let starts_at = anchor() + Duration::hours(hours);
        EventKind::BookingCreated(BookingCreated {
            booking_id: booking_id.to_owned(),
            class_id: "cl-1".to_owned(),
            class_name: "Morning Hatha".to_owned(),
            shaala_id: "sh-1".to_owned(),
            shaala_name: "Lotus Shaala".to_owned(),
            teacher_name: None,
            starts_at,
            ends_at: starts_at + Duration::hours(1),
        })
    }

    #[test]
    fn history_keeps_cancelled_bookings_with_details() {
        let events = vec![
            event("e1", 1, 0, created("bk-1", 24)),
            event(
                "e2",
                2,
                5,
                EventKind::BookingCancelled {
                    booking_id: "bk-1".to_owned(),
                    reason: None,
                },
            ),
        ];
        let history = booking_history(&events);
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].status, BookingStatus::Cancelled);
        assert_eq!(history[0].class_name, "Morning Hatha");
        assert_eq!(history[0].cancelled_at, Some(anchor() + Duration::minutes(5)));
        assert_eq!(history[0].updated_at, Some(anchor() + Duration::minutes(5)));
    }

    #[test]
    fn history_does_not_depend_on_event_order() {
        let reschedule = EventKind::BookingRescheduled(BookingRescheduled {
            booking_id: "bk-1".to_owned(),
            starts_at: anchor() + Duration::hours(48),
            ends_at: anchor() + Duration::hours(49),
        });
        let events = vec![
            event("e1", 1, 0, created("bk-1", 24)),
            event("e2", 2, 5, reschedule),
            event(
                "e3",
                3,
                9,
                EventKind::BookingCompleted {
                    booking_id: "bk-1".to_owned(),
                },
            ),
        ];
        let forward = booking_history(&events);
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(forward, booking_history(&reversed));
        assert_eq!(forward[0].starts_at, anchor() + Duration::hours(48));
        assert_eq!(forward[0].status, BookingStatus::Completed);
        assert_eq!(forward[0].updated_at, Some(anchor() + Duration::minutes(9)));
    }

    #[test]
    fn booking_without_created_event_is_left_out() {
        let events = vec![event(
            "e1",
            2,
            0,
            EventKind::BookingCompleted {
                booking_id: "bk-9".to_owned(),
            },
        )];
        assert!(booking_history(&events).is_empty());
    }
}
