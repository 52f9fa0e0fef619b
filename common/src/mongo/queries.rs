//! Every filter, projection, sort and pipeline the service sends to MongoDB,
//! as pure functions, so tests can pin the exact BSON.
//!
//! Each query names the index it relies on; `docs/DATA_MODEL.md` lists the
//! indexes and `migrations/0001_indexes.json` creates them. Projections
//! name only the fields the mapping reads, plus `_id` so errors can name a
//! document whose business id is broken.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};

use super::mapping::booking_status_name;
use super::{BOOKINGS, SUBSCRIPTIONS, USERS};
use crate::background::{BookingHistoryQuery, NotificationQuery};

/// Bookings fetched for the session beyond `RECENT_BOOKINGS_LIMIT`. The
/// query excludes exactly the bookings the render hides (cancelled ones)
/// and sorts like the render, so `limit` rows would fill the window. The
/// margin costs a few documents and keeps the window full should the two
/// ever drift apart.
pub const RECENT_BOOKINGS_MARGIN: usize = 5;

/// One `find`: what the driver call needs besides the collection.
#[derive(Debug, Clone, PartialEq)]
pub struct FindSpec {
    pub filter: Document,
    pub projection: Document,
    pub sort: Option<Document>,
    pub limit: Option<i64>,
}

/// Converts to a BSON date, which keeps millisecond precision.
pub fn bson_date(at: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(at.timestamp_millis())
}

fn include(fields: &[&str]) -> Document {
    let mut projection = Document::new();
    for field in fields {
        projection.insert(*field, 1_i32);
    }
    projection
}

const USER_FIELDS: &[&str] = &[
    "_id",
    "userId",
    "version",
    "email",
    "name",
    "avatarUrl",
    "role",
    "isActive",
    "isVerified",
    "ownerApproved",
    "preferences",
    "tokenVersion",
    "tokensValidAfter",
    "deletedAt",
];

const SESSION_BOOKING_FIELDS: &[&str] = &[
    "_id",
    "bookingId",
    "userId",
    "version",
    "classId",
    "className",
    "shaalaId",
    "shaalaName",
    "teacherName",
    "startsAt",
    "endsAt",
    "status",
];

const HISTORY_BOOKING_FIELDS: &[&str] = &[
    "_id",
    "bookingId",
    "userId",
    "version",
    "classId",
    "className",
    "shaalaId",
    "shaalaName",
    "teacherName",
    "startsAt",
    "endsAt",
    "status",
    "cancelledAt",
    "updatedAt",
];

const SUBSCRIPTION_FIELDS: &[&str] = &[
    "_id",
    "subscriptionId",
    "userId",
    "version",
    "planId",
    "planName",
    "shaalaId",
    "startsAt",
    "endsAt",
    "classesRemaining",
    "status",
];

const NOTIFICATION_FIELDS: &[&str] = &[
    "_id",
    "notificationId",
    "userId",
    "kind",
    "title",
    "body",
    "createdAt",
    "readAt",
];

const PROFILE_FIELDS: &[&str] = &[
    "_id",
    "userId",
    "bio",
    "phone",
    "address",
    "emergencyContact",
    "interests",
    "updatedAt",
];

/// Builds the query for the user document. Index: `users.userId_1` (unique).
pub fn user_query(user_id: &str) -> FindSpec {
    FindSpec {
        filter: doc! { "userId": user_id },
        projection: include(USER_FIELDS),
        sort: None,
        limit: Some(1),
    }
}

/// Builds the query for the bookings that can appear in `recentBookings`: not cancelled, latest
/// start first, equal starts by `bookingId` ascending (the render's order).
/// Index: `bookings.userId_1_startsAt_-1_bookingId_1`; `status` is checked
/// on the fetched documents.
pub fn recent_bookings_query(user_id: &str, recent_bookings_limit: usize) -> FindSpec {
    let limit = recent_bookings_limit + RECENT_BOOKINGS_MARGIN;
    FindSpec {
        filter: doc! { "userId": user_id, "status": { "$ne": "cancelled" } },
        projection: include(SESSION_BOOKING_FIELDS),
        sort: Some(doc! { "startsAt": -1, "bookingId": 1 }),
        limit: Some(i64::try_from(limit).unwrap_or(i64::MAX)),
    }
}

/// Subscriptions that are active and not yet over at `now`. Those that
/// have not started yet are included, because the render uses their start
/// to know when the stored document goes stale. Index:
/// `subscriptions.userId_1_status_1_endsAt_1`.
pub fn live_subscriptions_query(user_id: &str, now: DateTime<Utc>) -> FindSpec {
    FindSpec {
        filter: doc! {
            "userId": user_id,
            "status": "active",
            "endsAt": { "$gt": bson_date(now) },
        },
        projection: include(SUBSCRIPTION_FIELDS),
        sort: None,
        limit: None,
    }
}

/// Builds the query for one page of the booking history: `limit + 1` bookings after the cursor,
/// newest first. Index: `bookings.userId_1_startsAt_-1_bookingId_1`, the
/// same index and order as the session query, so both read it forward.
pub fn booking_history_query(user_id: &str, query: &BookingHistoryQuery) -> FindSpec {
    let mut filter = doc! { "userId": user_id };
    if !query.statuses.is_empty() {
        let names: Vec<Bson> = query
            .statuses
            .iter()
            .map(|status| Bson::String(booking_status_name(*status).to_owned()))
            .collect();
        filter.insert("status", doc! { "$in": names });
    }
    let mut range = Document::new();
    if let Some(from) = query.from {
        range.insert("$gte", bson_date(from));
    }
    if let Some(to) = query.to {
        range.insert("$lt", bson_date(to));
    }
    if !range.is_empty() {
        filter.insert("startsAt", range);
    }
    if let Some(cursor) = &query.after {
        let starts_at = bson_date(cursor.starts_at);
        filter.insert(
            "$or",
            vec![
                Bson::Document(doc! { "startsAt": { "$lt": starts_at } }),
                Bson::Document(doc! {
                    "startsAt": starts_at,
                    "bookingId": { "$gt": cursor.booking_id.as_str() },
                }),
            ],
        );
    }
    FindSpec {
        filter,
        projection: include(HISTORY_BOOKING_FIELDS),
        sort: Some(doc! { "startsAt": -1, "bookingId": 1 }),
        limit: Some(i64::from(query.limit) + 1),
    }
}

/// Builds the pipeline for one page of notifications and the unread total, in one round trip.
///
/// The order (unread first, then newest) sorts on a computed flag, which no
/// index can provide, so the `items` facet sorts the user's notifications
/// in memory with the limit pushed into the sort. Index:
/// `notifications.userId_1_createdAt_-1_notificationId_1` for the `$match`.
/// A notification is unread while `readAt` is absent or null.
pub fn notifications_pipeline(user_id: &str, query: &NotificationQuery) -> Vec<Document> {
    let mut items = vec![doc! {
        "$addFields": { "unread": { "$eq": [ { "$ifNull": ["$readAt", Bson::Null] }, Bson::Null ] } }
    }];
    if let Some(cursor) = &query.after {
        let created_at = bson_date(cursor.created_at);
        let id = cursor.notification_id.as_str();
        let same_group_after = vec![
            Bson::Document(doc! { "createdAt": { "$lt": created_at } }),
            Bson::Document(doc! { "createdAt": created_at, "notificationId": { "$gt": id } }),
        ];
        let after = if cursor.unread {
            doc! {
                "$or": [
                    { "unread": false },
                    { "unread": true, "createdAt": { "$lt": created_at } },
                    { "unread": true, "createdAt": created_at, "notificationId": { "$gt": id } },
                ]
            }
        } else {
            doc! { "unread": false, "$or": same_group_after }
        };
        items.push(doc! { "$match": after });
    }
    let mut projection = include(NOTIFICATION_FIELDS);
    projection.insert("unread", 1_i32);
    items.push(doc! { "$sort": { "unread": -1, "createdAt": -1, "notificationId": 1 } });
    items.push(doc! { "$limit": i64::from(query.limit) + 1 });
    items.push(doc! { "$project": projection });

    vec![
        doc! { "$match": { "userId": user_id } },
        doc! {
            "$facet": {
                "items": items,
                "unread": [
                    { "$match": { "readAt": Bson::Null } },
                    { "$count": "count" },
                ],
            }
        },
    ]
}

/// Builds the query for the detailed profile. Index: `profile_details.userId_1` (unique).
pub fn profile_query(user_id: &str) -> FindSpec {
    FindSpec {
        filter: doc! { "userId": user_id },
        projection: include(PROFILE_FIELDS),
        sort: None,
        limit: Some(1),
    }
}

/// Builds the change stream filter of the projector: changes to the three
/// collections the session is built from, plus the events that end or
/// invalidate a database-level stream.
pub fn change_stream_pipeline() -> Vec<Document> {
    vec![doc! {
        "$match": {
            "$or": [
                { "ns.coll": { "$in": [USERS, BOOKINGS, SUBSCRIPTIONS] } },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ]
        }
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::background::{BookingCursor, NotificationCursor};
    use crate::fold::state::BookingStatus;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn user_query_filters_on_user_id() {
        let spec = user_query("user-0001");
        assert_eq!(spec.filter, doc! { "userId": "user-0001" });
        assert_eq!(
            spec.projection,
            doc! {
                "_id": 1, "userId": 1, "version": 1, "email": 1, "name": 1, "avatarUrl": 1,
                "role": 1, "isActive": 1, "isVerified": 1, "ownerApproved": 1, "preferences": 1,
                "tokenVersion": 1, "tokensValidAfter": 1, "deletedAt": 1,
            }
        );
        assert_eq!(spec.sort, None);
        assert_eq!(spec.limit, Some(1));
    }

    #[test]
    fn recent_bookings_query_matches_the_render_order() {
        let spec = recent_bookings_query("user-0001", 5);
        assert_eq!(
            spec.filter,
            doc! { "userId": "user-0001", "status": { "$ne": "cancelled" } }
        );
        assert_eq!(spec.sort, Some(doc! { "startsAt": -1, "bookingId": 1 }));
        assert_eq!(spec.limit, Some(10));
        assert_eq!(
            spec.projection,
            doc! {
                "_id": 1, "bookingId": 1, "userId": 1, "version": 1, "classId": 1, "className": 1,
                "shaalaId": 1, "shaalaName": 1, "teacherName": 1, "startsAt": 1, "endsAt": 1,
                "status": 1,
            }
        );
    }

    #[test]
    fn live_subscriptions_query_uses_bson_date() {
        let spec = live_subscriptions_query("user-0001", at("2026-01-15T10:20:30.456Z"));
        assert_eq!(
            spec.filter,
            doc! {
                "userId": "user-0001",
                "status": "active",
                "endsAt": { "$gt": bson::DateTime::from_millis(1_768_472_430_456) },
            }
        );
        assert_eq!(spec.limit, None);
        assert_eq!(
            spec.projection,
            doc! {
                "_id": 1, "subscriptionId": 1, "userId": 1, "version": 1, "planId": 1,
                "planName": 1, "shaalaId": 1, "startsAt": 1, "endsAt": 1,
                "classesRemaining": 1, "status": 1,
            }
        );
    }

    #[test]
    fn booking_history_first_page_without_filters() {
        let spec = booking_history_query("user-0001", &BookingHistoryQuery::default());
        assert_eq!(spec.filter, doc! { "userId": "user-0001" });
        assert_eq!(spec.sort, Some(doc! { "startsAt": -1, "bookingId": 1 }));
        assert_eq!(spec.limit, Some(21));
        assert!(spec.projection.contains_key("cancelledAt"));
        assert!(spec.projection.contains_key("updatedAt"));
    }

    #[test]
    fn booking_history_with_every_filter_and_cursor() {
        let query = BookingHistoryQuery {
            limit: 10,
            after: Some(BookingCursor::new(at("2026-02-01T06:30:00Z"), "bk-9")),
            statuses: vec![BookingStatus::Confirmed, BookingStatus::Completed],
            from: Some(at("2026-01-01T00:00:00Z")),
            to: Some(at("2026-03-01T00:00:00Z")),
        };
        let spec = booking_history_query("user-0001", &query);
        let cursor_time = bson::DateTime::from_millis(at("2026-02-01T06:30:00Z").timestamp_millis());
        assert_eq!(
            spec.filter,
            doc! {
                "userId": "user-0001",
                "status": { "$in": ["confirmed", "completed"] },
                "startsAt": {
                    "$gte": bson::DateTime::from_millis(at("2026-01-01T00:00:00Z").timestamp_millis()),
                    "$lt": bson::DateTime::from_millis(at("2026-03-01T00:00:00Z").timestamp_millis()),
                },
                "$or": [
                    { "startsAt": { "$lt": cursor_time } },
                    { "startsAt": cursor_time, "bookingId": { "$gt": "bk-9" } },
                ],
            }
        );
        assert_eq!(spec.limit, Some(11));
    }

    #[test]
    fn booking_history_with_only_from() {
        let query = BookingHistoryQuery {
            from: Some(at("2026-01-01T00:00:00Z")),
            ..BookingHistoryQuery::default()
        };
        let spec = booking_history_query("u", &query);
        assert_eq!(
            spec.filter,
            doc! {
                "userId": "u",
                "startsAt": { "$gte": bson::DateTime::from_millis(at("2026-01-01T00:00:00Z").timestamp_millis()) },
            }
        );
    }

    fn expected_items_tail(limit: i64) -> Vec<Document> {
        vec![
            doc! { "$sort": { "unread": -1, "createdAt": -1, "notificationId": 1 } },
            doc! { "$limit": limit },
            doc! { "$project": {
                "_id": 1, "notificationId": 1, "userId": 1, "kind": 1, "title": 1, "body": 1,
                "createdAt": 1, "readAt": 1, "unread": 1,
            } },
        ]
    }

    fn unread_flag() -> Document {
        doc! { "$addFields": { "unread": { "$eq": [ { "$ifNull": ["$readAt", Bson::Null] }, Bson::Null ] } } }
    }

    fn wrap(items: Vec<Document>) -> Vec<Document> {
        vec![
            doc! { "$match": { "userId": "user-0001" } },
            doc! { "$facet": {
                "items": items,
                "unread": [ { "$match": { "readAt": Bson::Null } }, { "$count": "count" } ],
            } },
        ]
    }

    #[test]
    fn notifications_first_page_pipeline() {
        let pipeline = notifications_pipeline(
            "user-0001",
            &NotificationQuery {
                limit: 20,
                after: None,
            },
        );
        let mut items = vec![unread_flag()];
        items.extend(expected_items_tail(21));
        assert_eq!(pipeline, wrap(items));
    }

    #[test]
    fn notifications_pipeline_after_unread_cursor() {
        let created = at("2026-01-05T10:00:00Z");
        let query = NotificationQuery {
            limit: 5,
            after: Some(NotificationCursor::new(true, created, "ntf-3")),
        };
        let t = bson::DateTime::from_millis(created.timestamp_millis());
        let mut items = vec![
            unread_flag(),
            doc! { "$match": { "$or": [
                { "unread": false },
                { "unread": true, "createdAt": { "$lt": t } },
                { "unread": true, "createdAt": t, "notificationId": { "$gt": "ntf-3" } },
            ] } },
        ];
        items.extend(expected_items_tail(6));
        assert_eq!(notifications_pipeline("user-0001", &query), wrap(items));
    }

    #[test]
    fn notifications_pipeline_after_read_cursor() {
        let created = at("2026-01-05T10:00:00Z");
        let query = NotificationQuery {
            limit: 5,
            after: Some(NotificationCursor::new(false, created, "ntf-3")),
        };
        let t = bson::DateTime::from_millis(created.timestamp_millis());
        let mut items = vec![
            unread_flag(),
            doc! { "$match": { "unread": false, "$or": [
                { "createdAt": { "$lt": t } },
                { "createdAt": t, "notificationId": { "$gt": "ntf-3" } },
            ] } },
        ];
        items.extend(expected_items_tail(6));
        assert_eq!(notifications_pipeline("user-0001", &query), wrap(items));
    }

    #[test]
    fn profile_query_projects_profile_fields() {
        let spec = profile_query("user-0001");
        assert_eq!(spec.filter, doc! { "userId": "user-0001" });
        assert_eq!(
            spec.projection,
            doc! {
                "_id": 1, "userId": 1, "bio": 1, "phone": 1, "address": 1,
                "emergencyContact": 1, "interests": 1, "updatedAt": 1,
            }
        );
    }

    #[test]
    fn change_stream_pipeline_watches_three_collections() {
        assert_eq!(
            change_stream_pipeline(),
            vec![doc! { "$match": { "$or": [
                { "ns.coll": { "$in": ["users", "bookings", "subscriptions"] } },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ] } }]
        );
    }
}
