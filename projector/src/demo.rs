//! A realistic demo dataset for `dev` mode: users of every role with
//! bookings and subscriptions, some cancelled, some already over.
//!
//! Events are generated as raw CloudEvents JSON, so they go through the same
//! decoder as events from a file or Kafka. Times are relative to `now`, so
//! the dataset always has upcoming classes and live subscriptions.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

/// The demo user whose token `dev` mode prints: a student with past and
/// upcoming bookings, one of them cancelled, an active subscription, and one
/// that ran out without an event saying so.
pub const DEMO_USER_ID: &str = "user-0001";

const CLASSES: &[(&str, &str, &str, &str, &str)] = &[
    ("cl-88", "Morning Hatha", "sh-3", "Lotus Shaala", "A. Iyer"),
    ("cl-12", "Vinyasa Flow", "sh-3", "Lotus Shaala", "R. Menon"),
    (
        "cl-40",
        "Carnatic Vocals I",
        "sh-7",
        "Saraswati Music School",
        "K. Rao",
    ),
    (
        "cl-41",
        "Veena for Beginners",
        "sh-7",
        "Saraswati Music School",
        "L. Subramanian",
    ),
    (
        "cl-63",
        "Bharatanatyam Basics",
        "sh-9",
        "Nataraja Dance Studio",
        "P. Nair",
    ),
    (
        "cl-64",
        "Kathak Intermediate",
        "sh-9",
        "Nataraja Dance Studio",
        "S. Das",
    ),
];

const PLANS: &[(&str, &str, Option<&str>)] = &[
    ("plan-monthly", "Monthly Unlimited", None),
    ("plan-10", "10-Class Pack", Some("sh-3")),
    ("plan-music", "Music Term", Some("sh-7")),
];

struct Builder {
    rng: StdRng,
    now: DateTime<Utc>,
    events: Vec<Value>,
}

impl Builder {
    fn event(&mut self, user_id: &str, event_type: &str, source: &str, at: DateTime<Utc>, data: Value) {
        let id = Uuid::from_u128(self.rng.random());
        self.events.push(json!({
            "specversion": "1.0",
            "id": id.to_string(),
            "source": source,
            "type": event_type,
            "subject": user_id,
            "time": at.to_rfc3339(),
            "datacontenttype": "application/json",
            "data": data,
        }));
    }

    fn user(&mut self, index: usize, role: &str, owner_approved: bool) -> String {
        let user_id = format!("user-{index:04}");
        let first = [
            "Asha", "Vikram", "Meera", "Arjun", "Divya", "Rohan", "Lakshmi", "Kiran",
        ][index % 8];
        let last = ["Sharma", "Iyer", "Patel", "Reddy", "Nair", "Gupta"][index % 6];
        let created_at = self.now - Duration::days(120);
        let mut data = json!({
            "version": 1,
            "email": format!("{}.{}{index}@example.com", first.to_lowercase(), last.to_lowercase()),
            "name": format!("{first} {last}"),
            "role": role,
            "isActive": true,
            "isVerified": !index.is_multiple_of(3),
        });
        if role == "shaala_owner" {
            data["ownerApproved"] = json!(owner_approved);
        }
        if index.is_multiple_of(4) {
            data["avatarUrl"] = json!(format!("https://cdn.example.com/avatars/{user_id}.png"));
        }
        self.event(&user_id, "user.created", "/services/users", created_at, data);
        user_id
    }

    fn booking(&mut self, user_id: &str, number: usize, starts_in_hours: i64) -> String {
        let booking_id = format!("bk-{}-{number:02}", &user_id[5..]);
        let (class_id, class_name, shaala_id, shaala_name, teacher) =
            CLASSES[self.rng.random_range(0..CLASSES.len())];
        let starts_at = self.now.duration_trunc(Duration::hours(1)).unwrap_or(self.now)
            + Duration::hours(starts_in_hours);
        let booked_at = (starts_at - Duration::days(3)).min(self.now);
        self.event(
            user_id,
            "booking.created",
            "/services/bookings",
            booked_at,
            json!({
                "version": 1, "bookingId": booking_id, "classId": class_id, "className": class_name,
                "shaalaId": shaala_id, "shaalaName": shaala_name, "teacherName": teacher,
                "startsAt": starts_at.to_rfc3339(), "endsAt": (starts_at + Duration::hours(1)).to_rfc3339(),
            }),
        );
        booking_id
    }

    fn cancel_booking(&mut self, user_id: &str, booking_id: &str) {
        let at = self.now - Duration::hours(2);
        self.event(
            user_id,
            "booking.cancelled",
            "/services/bookings",
            at,
            json!({"version": 2, "bookingId": booking_id, "reason": "schedule conflict"}),
        );
    }

    fn subscription(
        &mut self,
        user_id: &str,
        number: usize,
        started_days_ago: i64,
        length_days: i64,
    ) -> String {
        let subscription_id = format!("sub-{}-{number}", &user_id[5..]);
        let (plan_id, plan_name, shaala_id) = PLANS[number % PLANS.len()];
        let starts_at =
            self.now.duration_trunc(Duration::days(1)).unwrap_or(self.now) - Duration::days(started_days_ago);
        let mut data = json!({
            "version": 1, "subscriptionId": subscription_id, "planId": plan_id, "planName": plan_name,
            "startsAt": starts_at.to_rfc3339(), "endsAt": (starts_at + Duration::days(length_days)).to_rfc3339(),
        });
        if let Some(shaala_id) = shaala_id {
            data["shaalaId"] = json!(shaala_id);
            data["classesRemaining"] = json!(self.rng.random_range(1..10));
        }
        self.event(
            user_id,
            "subscription.activated",
            "/services/billing",
            starts_at.min(self.now),
            data,
        );
        subscription_id
    }
}

/// Generates the demo dataset: 30 users (20 students, 6 teachers, 4 shaala
/// owners of whom 2 are approved), as CloudEvents JSON in producer order.
pub fn demo_events(now: DateTime<Utc>) -> Vec<Value> {
    let mut builder = Builder {
        rng: StdRng::seed_from_u64(0x5e55_10f0),
        now,
        events: Vec::new(),
    };

    // The demo user: three past classes, five upcoming (one cancelled), an
    // active pack, one that expired yesterday with no event, one cancelled.
    let demo = builder.user(1, "student", false);
    for (number, hours) in [-170, -98, -26, 20, 44, 68, 116, 164].into_iter().enumerate() {
        builder.booking(&demo, number + 1, hours);
    }
    builder.cancel_booking(&demo, "bk-0001-05");
    builder.subscription(&demo, 1, 20, 30);
    builder.subscription(&demo, 2, 31, 30);
    let cancelled = builder.subscription(&demo, 3, 5, 60);
    let at = now - Duration::days(1);
    builder.event(
        &demo,
        "subscription.cancelled",
        "/services/billing",
        at,
        json!({"version": 2, "subscriptionId": cancelled}),
    );
    builder.event(
        &demo,
        "user.preferences_changed",
        "/services/users",
        now - Duration::days(7),
        json!({"version": 2, "preferences": {"theme": "dark", "language": "hi"}}),
    );

    for index in 2..=30 {
        let (role, approved) = match index {
            2..=20 => ("student", false),
            21..=26 => ("teacher", false),
            _ => ("shaala_owner", index <= 28),
        };
        let user_id = builder.user(index, role, approved);
        let bookings = builder.rng.random_range(0..9);
        for number in 1..=bookings {
            let hours = builder.rng.random_range(-400..400);
            let booking_id = builder.booking(&user_id, number, hours);
            if builder.rng.random_bool(0.15) {
                builder.cancel_booking(&user_id, &booking_id);
            }
        }
        if builder.rng.random_bool(0.6) {
            let started = builder.rng.random_range(1..40);
            builder.subscription(&user_id, 1, started, 30);
        }
    }

    // A deactivated user and one whose sessions were revoked.
    let at = now - Duration::days(2);
    builder.event(
        "user-0019",
        "user.deactivated",
        "/services/users",
        at,
        json!({"version": 2}),
    );
    builder.event(
        "user-0020",
        "user.sessions_revoked",
        "/services/users",
        at,
        json!({"version": 2, "tokenVersion": 2}),
    );
    builder.events
}
