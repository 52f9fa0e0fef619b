//! Live assembly from MongoDB and the projection must serve the same bytes.
//!
//! A seeded generator simulates users with bookings and subscriptions and
//! writes the same history twice: as the events the upstream services
//! publish, and as the MongoDB documents those services leave behind. The
//! events go through `fold_all`; the documents go through
//! `mongo::mapping::assemble` after the filters the live queries apply. Both
//! are rendered and serialized as stored documents, and the bytes must be
//! identical.
//!
//! With `SESSIONFOLD_TEST_MONGODB_URI` set, the documents are also inserted
//! into a scratch database on that server (after running the migrations)
//! and read back through `MongoSourceOfTruth`, which exercises the real
//! queries.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Bson, Document, doc};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sessionfold_common::document::StoredDocument;
use sessionfold_common::event::payload::{
    BookingCreated, BookingRescheduled, PreferencesUpdate, ProfileUpdate, SubscriptionActivated,
    SubscriptionRenewed, UserCreated,
};
use sessionfold_common::event::{Event, EventKind, Role};
use sessionfold_common::fold::{self, FoldState, RenderOptions};
use sessionfold_common::mongo::{self, mapping};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn date(at: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(at.timestamp_millis()))
}

fn optional_string(value: &Option<String>) -> Bson {
    value.clone().map_or(Bson::Null, Bson::String)
}

/// The logical state of one user, updated with every generated event.
struct UserModel {
    user_id: String,
    version: u64,
    email: Option<String>,
    name: Option<String>,
    avatar_url: Option<String>,
    role: Option<Role>,
    is_active: Option<bool>,
    is_verified: Option<bool>,
    owner_approved: Option<bool>,
    preferences: PreferencesUpdate,
    token_version: u64,
    tokens_valid_after: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
}

struct BookingModel {
    booking_id: String,
    version: u64,
    created: BookingCreated,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: &'static str,
    cancelled_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

struct SubscriptionModel {
    subscription_id: String,
    version: u64,
    activated: SubscriptionActivated,
    ends_at: DateTime<Utc>,
    classes_remaining: Option<u32>,
    status: &'static str,
}

/// One generated user: the event history and the documents it leaves.
struct Dataset {
    user_id: String,
    events: Vec<Event>,
    user: Document,
    bookings: Vec<Document>,
    subscriptions: Vec<Document>,
    options: RenderOptions,
}

struct Generator {
    rng: StdRng,
    clock: DateTime<Utc>,
    next_event: u64,
    events: Vec<Event>,
    user_id: String,
}

const CLASSES: &[(&str, &str, &str, &str)] = &[
    ("cl-88", "Morning Hatha", "sh-3", "Lotus Shaala"),
    ("cl-40", "Carnatic Vocals I", "sh-7", "Saraswati Music School"),
    ("cl-63", "Bharatanatyam Basics", "sh-9", "Nataraja Dance Studio"),
];
const TEACHERS: &[&str] = &["A. Iyer", "K. Rao", "P. Nair"];
const THEMES: &[&str] = &["light", "dark", "high-contrast"];
const LANGUAGES: &[&str] = &["en", "hi", "ta", "pt-BR"];

impl Generator {
    fn emit(&mut self, version: u64, kind: EventKind) {
        self.next_event += 1;
        self.clock += minutes(self.rng.random_range(1..90));
        self.events.push(Event {
            id: format!("evt-{:05}", self.next_event),
            source: "/test/generator".to_owned(),
            user_id: self.user_id.clone(),
            time: self.clock,
            version,
            kind,
        });
    }

    fn maybe<T>(&mut self, probability: f64, value: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.rng.random_bool(probability) {
            Some(value(self))
        } else {
            None
        }
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn preferences(&mut self, at_least_one: bool) -> PreferencesUpdate {
        loop {
            let preferences = PreferencesUpdate {
                theme: self.maybe(0.5, |g| g.pick(THEMES).to_owned()),
                language: self.maybe(0.5, |g| g.pick(LANGUAGES).to_owned()),
                notifications: self.maybe(0.5, |g| g.rng.random_bool(0.5)),
            };
            let empty = preferences == PreferencesUpdate::default();
            if !at_least_one || !empty {
                return preferences;
            }
        }
    }

    fn role(&mut self) -> Role {
        Role::ALL[self.rng.random_range(0..Role::ALL.len())]
    }

    fn user(&mut self) -> UserModel {
        let index = self.rng.random_range(1..10_000);
        let created = UserCreated {
            email: format!("user{index}@example.com"),
            name: format!("User {index}"),
            avatar_url: self.maybe(0.4, |_| format!("https://cdn.example.com/a/{index}.png")),
            role: self.maybe(0.7, Self::role),
            is_active: self.maybe(0.5, |g| g.rng.random_bool(0.9)),
            is_verified: self.maybe(0.5, |g| g.rng.random_bool(0.5)),
            owner_approved: self.maybe(0.3, |g| g.rng.random_bool(0.5)),
            preferences: self.preferences(false),
        };
        let mut user = UserModel {
            user_id: self.user_id.clone(),
            version: 1,
            email: Some(created.email.clone()),
            name: Some(created.name.clone()),
            avatar_url: created.avatar_url.clone(),
            role: created.role,
            is_active: created.is_active,
            is_verified: created.is_verified,
            owner_approved: created.owner_approved,
            preferences: created.preferences.clone(),
            token_version: 0,
            tokens_valid_after: None,
            deleted_at: None,
        };
        self.emit(1, EventKind::UserCreated(created));

        for _ in 0..self.rng.random_range(0..8) {
            user.version += 1;
            let version = user.version;
            match self.rng.random_range(0..100) {
                0..=19 => {
                    let mut update = ProfileUpdate::default();
                    while update == ProfileUpdate::default() {
                        update.email =
                            self.maybe(0.4, |g| g.maybe(0.85, |_| format!("new{version}@example.com")));
                        update.name = self.maybe(0.4, |g| g.maybe(0.85, |_| format!("Renamed {version}")));
                        update.avatar_url = self.maybe(0.4, |g| {
                            g.maybe(0.5, |_| format!("https://cdn.example.com/v{version}.png"))
                        });
                    }
                    if let Some(email) = &update.email {
                        user.email = email.clone();
                    }
                    if let Some(name) = &update.name {
                        user.name = name.clone();
                    }
                    if let Some(avatar_url) = &update.avatar_url {
                        user.avatar_url = avatar_url.clone();
                    }
                    self.emit(version, EventKind::UserProfileUpdated(update));
                }
                20..=39 => {
                    let preferences = self.preferences(true);
                    if preferences.theme.is_some() {
                        user.preferences.theme = preferences.theme.clone();
                    }
                    if preferences.language.is_some() {
                        user.preferences.language = preferences.language.clone();
                    }
                    if preferences.notifications.is_some() {
                        user.preferences.notifications = preferences.notifications;
                    }
                    self.emit(version, EventKind::UserPreferencesChanged(preferences));
                }
                40..=49 => {
                    let role = self.role();
                    let owner_approved = self.maybe(0.5, |g| g.rng.random_bool(0.5));
                    user.role = Some(role);
                    if owner_approved.is_some() {
                        user.owner_approved = owner_approved;
                    }
                    self.emit(version, EventKind::UserRoleChanged { role, owner_approved });
                }
                50..=59 => {
                    user.is_verified = Some(true);
                    self.emit(version, EventKind::UserVerified);
                }
                60..=71 => {
                    user.is_active = Some(false);
                    self.emit(version, EventKind::UserDeactivated);
                    let at = self.clock;
                    user.tokens_valid_after =
                        Some(user.tokens_valid_after.map_or(at, |current| current.max(at)));
                }
                72..=81 => {
                    user.is_active = Some(true);
                    self.emit(version, EventKind::UserReactivated);
                }
                82..=95 => {
                    user.token_version += 1;
                    let token_version = user.token_version;
                    self.emit(version, EventKind::UserSessionsRevoked { token_version });
                }
                _ => {
                    self.emit(version, EventKind::UserDeleted);
                    user.deleted_at = Some(self.clock);
                    break;
                }
            }
        }
        user
    }

    fn booking(&mut self, number: usize) -> BookingModel {
        // Few distinct slots, so equal start times (ties) are common.
        let slot = now() + chrono::Duration::hours(self.rng.random_range(-24..24) * 6);
        let (class_id, class_name, shaala_id, shaala_name) = CLASSES[self.rng.random_range(0..CLASSES.len())];
        let created = BookingCreated {
            // Globally unique (the index is), but not in creation order.
            booking_id: format!(
                "bk-{}-{:03}-{number}",
                &self.user_id[5..],
                self.rng.random_range(0..1000)
            ),
            class_id: class_id.to_owned(),
            class_name: class_name.to_owned(),
            shaala_id: shaala_id.to_owned(),
            shaala_name: shaala_name.to_owned(),
            teacher_name: self.maybe(0.8, |g| g.pick(TEACHERS).to_owned()),
            starts_at: slot,
            ends_at: slot + minutes(60),
        };
        let mut booking = BookingModel {
            booking_id: created.booking_id.clone(),
            version: 1,
            created: created.clone(),
            starts_at: created.starts_at,
            ends_at: created.ends_at,
            status: "confirmed",
            cancelled_at: None,
            updated_at: self.clock,
        };
        self.emit(1, EventKind::BookingCreated(created));

        for _ in 0..self.rng.random_range(0..3) {
            booking.version += 1;
            let version = booking.version;
            let booking_id = booking.booking_id.clone();
            match self.rng.random_range(0..3) {
                0 => {
                    let starts_at =
                        booking.starts_at + chrono::Duration::hours(self.rng.random_range(-48..48));
                    let ends_at = starts_at + minutes(self.rng.random_range(30..120));
                    booking.starts_at = starts_at;
                    booking.ends_at = ends_at;
                    self.emit(
                        version,
                        EventKind::BookingRescheduled(BookingRescheduled {
                            booking_id,
                            starts_at,
                            ends_at,
                        }),
                    );
                }
                1 => {
                    booking.status = "cancelled";
                    self.emit(
                        version,
                        EventKind::BookingCancelled {
                            booking_id,
                            reason: None,
                        },
                    );
                    booking.cancelled_at = Some(self.clock);
                    booking.updated_at = self.clock;
                    // Cancellation is final: the fold keeps only a status
                    // tombstone, so a later status change cannot bring the
                    // booking back (docs/DATA_MODEL.md states this rule).
                    break;
                }
                _ => {
                    booking.status = "completed";
                    self.emit(version, EventKind::BookingCompleted { booking_id });
                }
            }
            booking.updated_at = self.clock;
        }
        booking
    }

    fn subscription(&mut self, number: usize) -> SubscriptionModel {
        let starts_at = now() + chrono::Duration::days(self.rng.random_range(-60..10));
        let activated = SubscriptionActivated {
            subscription_id: format!("sub-{}-{number}", &self.user_id[5..]),
            plan_id: "plan-10".to_owned(),
            plan_name: "10-Class Pack".to_owned(),
            shaala_id: self.maybe(0.6, |g| g.pick(&["sh-3", "sh-7"]).to_owned()),
            starts_at,
            ends_at: starts_at + chrono::Duration::days(self.rng.random_range(1..60)),
            classes_remaining: self.maybe(0.6, |g| g.rng.random_range(0..12)),
        };
        let mut subscription = SubscriptionModel {
            subscription_id: activated.subscription_id.clone(),
            version: 1,
            activated: activated.clone(),
            ends_at: activated.ends_at,
            classes_remaining: activated.classes_remaining,
            status: "active",
        };
        self.emit(1, EventKind::SubscriptionActivated(activated));

        for _ in 0..self.rng.random_range(0..3) {
            subscription.version += 1;
            let version = subscription.version;
            let subscription_id = subscription.subscription_id.clone();
            match self.rng.random_range(0..3) {
                0 => {
                    let ends_at = subscription.ends_at + chrono::Duration::days(self.rng.random_range(1..40));
                    let classes_remaining = self.maybe(0.6, |g| g.maybe(0.7, |g| g.rng.random_range(0..12)));
                    subscription.ends_at = ends_at;
                    if let Some(count) = classes_remaining {
                        subscription.classes_remaining = count;
                    }
                    subscription.status = "active";
                    self.emit(
                        version,
                        EventKind::SubscriptionRenewed(SubscriptionRenewed {
                            subscription_id,
                            ends_at,
                            classes_remaining,
                        }),
                    );
                }
                1 => {
                    subscription.status = "cancelled";
                    self.emit(version, EventKind::SubscriptionCancelled { subscription_id });
                }
                _ => {
                    subscription.status = "expired";
                    self.emit(version, EventKind::SubscriptionExpired { subscription_id });
                }
            }
        }
        subscription
    }
}

fn user_document(rng: &mut StdRng, user: &UserModel) -> Document {
    let mut document = doc! {
        "_id": ObjectId::new(),
        "userId": &user.user_id,
        "version": i64::try_from(user.version).unwrap(),
        "email": optional_string(&user.email),
        "name": optional_string(&user.name),
        "tokenVersion": i64::try_from(user.token_version).unwrap(),
        // Fields this service never reads.
        "passwordHash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "createdAt": date(now() - chrono::Duration::days(200)),
    };

    // An absent optional field and an explicit null must read the same.
    match &user.avatar_url {
        Some(url) => {
            document.insert("avatarUrl", url.as_str());
        }
        None if rng.random_bool(0.5) => {
            document.insert("avatarUrl", Bson::Null);
        }
        None => {}
    }

    if let Some(role) = user.role {
        document.insert("role", role.as_str());
    }
    for (field, value) in [
        ("isActive", user.is_active),
        ("isVerified", user.is_verified),
        ("ownerApproved", user.owner_approved),
    ] {
        if let Some(value) = value {
            document.insert(field, value);
        }
    }

    let mut preferences = Document::new();
    if let Some(theme) = &user.preferences.theme {
        preferences.insert("theme", theme.as_str());
    }
    if let Some(language) = &user.preferences.language {
        preferences.insert("language", language.as_str());
    }
    if let Some(notifications) = user.preferences.notifications {
        preferences.insert("notifications", notifications);
    }
    if !preferences.is_empty() || rng.random_bool(0.5) {
        document.insert("preferences", preferences);
    }

    if let Some(at) = user.tokens_valid_after {
        document.insert("tokensValidAfter", date(at));
    }
    if let Some(at) = user.deleted_at {
        document.insert("deletedAt", date(at));
    }
    document
}

fn booking_document(user_id: &str, booking: &BookingModel) -> Document {
    let created = &booking.created;
    let mut document = doc! {
        "_id": ObjectId::new(),
        "bookingId": &booking.booking_id,
        "userId": user_id,
        "version": i32::try_from(booking.version).unwrap(),
        "classId": &created.class_id,
        "className": &created.class_name,
        "shaalaId": &created.shaala_id,
        "shaalaName": &created.shaala_name,
        "startsAt": date(booking.starts_at),
        "endsAt": date(booking.ends_at),
        "status": booking.status,
        "updatedAt": date(booking.updated_at),
        "paymentRef": "pay_0001",
    };
    if let Some(teacher) = &created.teacher_name {
        document.insert("teacherName", teacher.as_str());
    }
    if let Some(at) = booking.cancelled_at {
        document.insert("cancelledAt", date(at));
    }
    document
}

fn subscription_document(user_id: &str, subscription: &SubscriptionModel) -> Document {
    let activated = &subscription.activated;
    let mut document = doc! {
        "_id": ObjectId::new(),
        "subscriptionId": &subscription.subscription_id,
        "userId": user_id,
        "version": i32::try_from(subscription.version).unwrap(),
        "planId": &activated.plan_id,
        "planName": &activated.plan_name,
        "startsAt": date(activated.starts_at),
        "endsAt": date(subscription.ends_at),
        "classesRemaining": subscription.classes_remaining.map_or(Bson::Null, |n| Bson::Int32(n as i32)),
        "status": subscription.status,
    };
    if let Some(shaala_id) = &activated.shaala_id {
        document.insert("shaalaId", shaala_id.as_str());
    }
    document
}

fn generate(seed: u64) -> Dataset {
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(seed),
        clock: now() - chrono::Duration::days(120),
        next_event: 0,
        events: Vec::new(),
        user_id: format!("user-{:04}", seed % 10_000),
    };
    let user = generator.user();
    let bookings: Vec<BookingModel> = (0..generator.rng.random_range(0..12))
        .map(|number| generator.booking(number))
        .collect();
    let subscriptions: Vec<SubscriptionModel> = (0..generator.rng.random_range(0..4))
        .map(|number| generator.subscription(number))
        .collect();

    let mut events = std::mem::take(&mut generator.events);
    // The fold must not depend on arrival order; shuffle to prove it here.
    events.shuffle(&mut generator.rng);
    let options = RenderOptions {
        recent_bookings_limit: generator.rng.random_range(1..=8),
        default_role: Role::ALL[generator.rng.random_range(0..3)],
    };
    let rng = &mut generator.rng;
    Dataset {
        user_id: user.user_id.clone(),
        events,
        user: user_document(rng, &user),
        bookings: bookings
            .iter()
            .map(|booking| booking_document(&user.user_id, booking))
            .collect(),
        subscriptions: subscriptions
            .iter()
            .map(|subscription| subscription_document(&user.user_id, subscription))
            .collect(),
        options,
    }
}

/// What the live queries return, evaluated in memory: bookings not
/// cancelled, latest start first, ties by id, limited; subscriptions active
/// and not over. The real queries run in the MongoDB part of this test.
fn query_in_memory(dataset: &Dataset) -> (Vec<Document>, Vec<Document>) {
    let mut bookings: Vec<Document> = dataset
        .bookings
        .iter()
        .filter(|booking| booking.get_str("status") != Ok("cancelled"))
        .cloned()
        .collect();
    bookings.sort_by(|a, b| {
        let a_start = a.get_datetime("startsAt").unwrap();
        let b_start = b.get_datetime("startsAt").unwrap();
        b_start.cmp(a_start).then_with(|| {
            a.get_str("bookingId")
                .unwrap()
                .cmp(b.get_str("bookingId").unwrap())
        })
    });
    bookings.truncate(dataset.options.recent_bookings_limit + mongo::queries::RECENT_BOOKINGS_MARGIN);
    let subscriptions = dataset
        .subscriptions
        .iter()
        .filter(|subscription| {
            subscription.get_str("status") == Ok("active")
                && subscription.get_datetime("endsAt").unwrap().timestamp_millis() > now().timestamp_millis()
        })
        .cloned()
        .collect();
    (bookings, subscriptions)
}

/// Renders `state` into a stored document (header line and body).
fn stored(user_id: &str, state: Option<&FoldState>, options: &RenderOptions) -> Option<StoredDocument> {
    let rendered = fold::render(user_id, state?, now(), options)?;
    Some(StoredDocument::from_rendered(&rendered, 0, now()))
}

fn assert_same(
    dataset: &Dataset,
    projected: Option<StoredDocument>,
    assembled: Option<StoredDocument>,
    seed: u64,
) {
    match (projected, assembled) {
        (None, None) => {}
        (Some(projected), Some(assembled)) => {
            assert_eq!(
                String::from_utf8_lossy(&assembled.body),
                String::from_utf8_lossy(&projected.body),
                "seed {seed}: body differs for {}",
                dataset.user_id
            );
            assert_eq!(
                assembled.encode(),
                projected.encode(),
                "seed {seed}: header differs"
            );
        }
        (projected, assembled) => panic!(
            "seed {seed}: projection has a document: {}, live assembly has one: {}",
            projected.is_some(),
            assembled.is_some()
        ),
    }
}

fn check_seed(seed: u64) {
    let dataset = generate(seed);
    let folded = fold::fold_all(FoldState::default(), &dataset.events);
    let projected = stored(&dataset.user_id, Some(&folded), &dataset.options);

    let (bookings, subscriptions) = query_in_memory(&dataset);
    let assembled_state = mapping::assemble(&dataset.user, &bookings, &subscriptions).unwrap();
    let assembled = stored(&dataset.user_id, assembled_state.as_ref(), &dataset.options);
    assert_same(&dataset, projected, assembled, seed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn assembled_document_equals_projected_document(seed in any::<u64>()) {
        check_seed(seed);
    }
}

#[test]
fn generator_covers_the_interesting_cases() {
    // The equivalence is only as strong as the data; make sure the seeds
    // above reach deleted users, cancelled bookings and revoked sessions.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 0..300 {
        let dataset = generate(seed);
        let mut count = |name| *seen.entry(name).or_default() += 1;
        if dataset.user.get("deletedAt").is_some() {
            count("deleted user");
        }
        if dataset.user.get("tokensValidAfter").is_some() {
            count("deactivation");
        }
        if dataset.user.get_i64("tokenVersion").unwrap() > 0 {
            count("revoked sessions");
        }
        if matches!(dataset.user.get("name"), Some(Bson::Null)) {
            count("null name");
        }
        if dataset
            .bookings
            .iter()
            .any(|b| b.get_str("status") == Ok("cancelled"))
        {
            count("cancelled booking");
        }
        if dataset
            .bookings
            .iter()
            .any(|b| b.get_str("status") == Ok("completed"))
        {
            count("completed booking");
        }
        if dataset.bookings.len() > dataset.options.recent_bookings_limit {
            count("more bookings than the window");
        }
        if dataset
            .subscriptions
            .iter()
            .any(|s| s.get_str("status") == Ok("expired"))
        {
            count("expired subscription");
        }
    }
    for case in [
        "deleted user",
        "deactivation",
        "revoked sessions",
        "null name",
        "cancelled booking",
        "completed booking",
        "more bookings than the window",
        "expired subscription",
    ] {
        assert!(seen.get(case).copied().unwrap_or(0) >= 3, "{case}: {seen:?}");
    }
}

/// Same comparison against a real server, through `MongoSourceOfTruth`.
#[tokio::test]
async fn mongodb_assembly_equals_projection() {
    let Ok(uri) = std::env::var("SESSIONFOLD_TEST_MONGODB_URI") else {
        eprintln!(
            "skipped: SESSIONFOLD_TEST_MONGODB_URI is not set; run `docker compose up -d mongo` and set \
             SESSIONFOLD_TEST_MONGODB_URI=mongodb://127.0.0.1:27017/?replicaSet=rs0&directConnection=true"
        );
        return;
    };
    use sessionfold_common::mongo::migrations;
    use sessionfold_common::mongo::{BOOKINGS, MongoConfig, MongoSourceOfTruth, SUBSCRIPTIONS, USERS};
    use sessionfold_common::source::SourceOfTruth;

    let config = MongoConfig {
        uri,
        database: format!("sessionfold_test_{}", uuid::Uuid::new_v4().simple()),
    };
    let database = config.connect().await.expect("connect to MongoDB");
    for migration in migrations::embedded().unwrap() {
        migrations::apply(&database, &migration).await.expect("migration");
    }

    let seeds: Vec<u64> = (0..40).collect();
    let datasets: Vec<Dataset> = seeds.iter().map(|&seed| generate(seed)).collect();
    for dataset in &datasets {
        // Seeds can share a user id; keep only the first of each.
        let users = database.collection::<Document>(USERS);
        if users
            .find_one(doc! { "userId": &dataset.user_id })
            .await
            .unwrap()
            .is_some()
        {
            continue;
        }
        users.insert_one(&dataset.user).await.unwrap();
        if !dataset.bookings.is_empty() {
            database
                .collection::<Document>(BOOKINGS)
                .insert_many(&dataset.bookings)
                .await
                .unwrap();
        }
        if !dataset.subscriptions.is_empty() {
            database
                .collection::<Document>(SUBSCRIPTIONS)
                .insert_many(&dataset.subscriptions)
                .await
                .unwrap();
        }
    }

    let mut seen = std::collections::HashSet::new();
    for (seed, dataset) in seeds.iter().zip(&datasets) {
        if !seen.insert(dataset.user_id.clone()) {
            continue;
        }
        let source = MongoSourceOfTruth::new(
            database.clone(),
            dataset.options.recent_bookings_limit,
            Duration::from_secs(5),
        )
        .with_clock(now);
        let state = source.load_state(&dataset.user_id).await.unwrap();
        let assembled = stored(&dataset.user_id, state.as_ref(), &dataset.options);
        let folded = fold::fold_all(FoldState::default(), &dataset.events);
        let projected = stored(&dataset.user_id, Some(&folded), &dataset.options);
        assert_same(dataset, projected, assembled, *seed);
    }

    let missing = MongoSourceOfTruth::new(database.clone(), 5, Duration::from_secs(5))
        .load_state("user-does-not-exist")
        .await
        .unwrap();
    assert!(missing.is_none());
    database.drop().await.unwrap();
}
