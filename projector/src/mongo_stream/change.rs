//! Change events -> the typed events the fold takes. Pure, no I/O.
//!
//! A change stream with `fullDocument: updateLookup` reports *that* a
//! document changed and what it looks like now, not *which* business event
//! happened.
//! So every insert, update or replace becomes the set of events that
//! writes the whole current document into the fold state, using the same
//! records as live assembly (`sessionfold_common::mongo::mapping`).
//!
//! All events of one document carry the stamp of live assembly: version =
//! the document's `version`, event id = `mongo:<collection>:<id>`. At equal
//! stamps the first write to a register wins (a second write with the same
//! stamp is a duplicate to the fold), so the events are ordered with the
//! exact values first: `user.profile_updated` (which can write `null`)
//! before `user.created`, and a booking's or subscription's final status
//! before the event that sets its details. The result is exactly the state
//! live assembly builds from the same document; a test checks this.

use chrono::{DateTime, Utc};
use mongodb::bson::{Bson, Document};
use sessionfold_common::event::payload::{BookingCreated, ProfileUpdate, SubscriptionActivated, UserCreated};
use sessionfold_common::event::{Event, EventKind};
use sessionfold_common::fold::state::{BookingStatus, SubscriptionStatus};
use sessionfold_common::mongo::fields::FieldReader;
use sessionfold_common::mongo::mapping::{BookingRecord, SubscriptionRecord, UserRecord};
use sessionfold_common::mongo::{BOOKINGS, MappingError, SUBSCRIPTIONS, USERS};

/// Meaning of one change for the projection.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOutcome {
    /// Fold these events, in this order.
    Events(Vec<Event>),
    /// Nothing to fold; the reason is for debug logs.
    Skip(&'static str),
    /// The projection may now be wrong for users this change cannot name
    /// (a dropped collection, a hard delete without a pre-image): an
    /// operator must rebuild it.
    RebuildRequired(String),
    /// The stream ended (`invalidate`); it cannot be resumed, only started anew.
    Invalidated,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    #[error("change event is malformed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Document(#[from] MappingError),
}

impl ChangeError {
    /// Returns the part of the change that is wrong, for the dead-letter reason.
    pub fn field(&self) -> &'static str {
        match self {
            ChangeError::Malformed(_) => "change",
            ChangeError::Document(_) => "fullDocument",
        }
    }
}

/// The parts of a change event every mapping needs.
struct Change<'a> {
    operation: &'a str,
    collection: Option<&'a str>,
    database: &'a str,
    time: DateTime<Utc>,
    full_document: Option<&'a Document>,
    before: Option<&'a Document>,
    document_key: Option<&'a Bson>,
}

fn parse(change: &Document) -> Result<Change<'_>, ChangeError> {
    let malformed = |text: &str| ChangeError::Malformed(text.to_owned());
    let operation = change
        .get_str("operationType")
        .map_err(|_| malformed("operationType is missing or not a string"))?;
    let namespace = change.get_document("ns").ok();
    let collection = namespace.and_then(|ns| ns.get_str("coll").ok());
    let database = namespace.and_then(|ns| ns.get_str("db").ok()).unwrap_or("");
    let time = change_time(change).ok_or_else(|| malformed("neither wallTime nor clusterTime is present"))?;
    let document = |field: &str| match change.get(field) {
        Some(Bson::Document(document)) => Some(document),
        _ => None,
    };
    Ok(Change {
        operation,
        collection,
        database,
        time,
        full_document: document("fullDocument"),
        before: document("fullDocumentBeforeChange"),
        document_key: change
            .get_document("documentKey")
            .ok()
            .and_then(|key| key.get("_id")),
    })
}

/// When the change happened: `wallTime` (MongoDB 6.0+) or the seconds of
/// `clusterTime`.
fn change_time(change: &Document) -> Option<DateTime<Utc>> {
    if let Some(Bson::DateTime(at)) = change.get("wallTime") {
        return DateTime::from_timestamp_millis(at.timestamp_millis());
    }
    match change.get("clusterTime") {
        Some(Bson::Timestamp(timestamp)) => DateTime::from_timestamp(i64::from(timestamp.time), 0),
        _ => None,
    }
}

fn event(
    change: &Change<'_>,
    collection: &str,
    id: &str,
    user_id: &str,
    version: u64,
    kind: EventKind,
) -> Event {
    Event {
        id: format!("mongo:{collection}:{id}"),
        source: format!("/mongodb/{}/{collection}", change.database),
        user_id: user_id.to_owned(),
        time: change.time,
        version,
        kind,
    }
}

/// Maps one change event (as the server sends it) to what it means.
pub fn events_from_change(change: &Document) -> Result<ChangeOutcome, ChangeError> {
    let change = parse(change)?;
    match change.operation {
        "insert" | "update" | "replace" => match (change.collection, change.full_document) {
            (_, None) => Ok(ChangeOutcome::Skip(
                "the document was deleted before the lookup; its delete event follows",
            )),
            (Some(USERS), Some(document)) => user_events(&change, document),
            (Some(BOOKINGS), Some(document)) => booking_events(&change, document),
            (Some(SUBSCRIPTIONS), Some(document)) => subscription_events(&change, document),
            _ => Ok(ChangeOutcome::Skip("a collection the session is not built from")),
        },
        "delete" => delete_events(&change),
        "drop" => Ok(ChangeOutcome::RebuildRequired(format!(
            "collection {}.{} was dropped",
            change.database,
            change.collection.unwrap_or("?")
        ))),
        "rename" => Ok(ChangeOutcome::RebuildRequired(format!(
            "collection {}.{} was renamed",
            change.database,
            change.collection.unwrap_or("?")
        ))),
        "dropDatabase" => Ok(ChangeOutcome::RebuildRequired(format!(
            "database {} was dropped",
            change.database
        ))),
        "invalidate" => Ok(ChangeOutcome::Invalidated),
        _ => Ok(ChangeOutcome::Skip("an operation that changes no document")),
    }
}

fn user_events(change: &Change<'_>, document: &Document) -> Result<ChangeOutcome, ChangeError> {
    let record = UserRecord::from_document(document)?;
    Ok(ChangeOutcome::Events(user_record_events(change, &record)))
}

fn user_record_events(change: &Change<'_>, record: &UserRecord) -> Vec<Event> {
    let make = |kind| {
        event(
            change,
            USERS,
            &record.user_id,
            &record.user_id,
            record.version,
            kind,
        )
    };
    if record.deleted_at.is_some() {
        return vec![make(EventKind::UserDeleted)];
    }
    let mut events = vec![
        // First, so its exact values (including null) win over the
        // placeholders `user.created` needs for absent email and name.
        make(EventKind::UserProfileUpdated(ProfileUpdate {
            email: Some(record.email.clone()),
            name: Some(record.name.clone()),
            avatar_url: Some(record.avatar_url.clone()),
        })),
        make(EventKind::UserCreated(UserCreated {
            email: record.email.clone().unwrap_or_default(),
            name: record.name.clone().unwrap_or_default(),
            avatar_url: record.avatar_url.clone(),
            role: record.role,
            is_active: Some(record.is_active),
            is_verified: record.is_verified,
            owner_approved: record.owner_approved,
            preferences: record.preferences.clone(),
        })),
    ];
    if let Some(valid_after) = record.tokens_valid_after {
        // The fold takes the revocation instant from a deactivation's time.
        // Its `isActive` write is a duplicate of the one above (same
        // stamp), so it changes nothing else.
        let mut deactivated = make(EventKind::UserDeactivated);
        deactivated.time = valid_after;
        events.push(deactivated);
    }
    if record.token_version > 0 {
        events.push(make(EventKind::UserSessionsRevoked {
            token_version: record.token_version,
        }));
    }
    events
}

fn booking_events(change: &Change<'_>, document: &Document) -> Result<ChangeOutcome, ChangeError> {
    let record = BookingRecord::from_document(document)?;
    Ok(ChangeOutcome::Events(booking_record_events(change, &record)))
}

fn booking_record_events(change: &Change<'_>, record: &BookingRecord) -> Vec<Event> {
    let make = |kind| {
        event(
            change,
            BOOKINGS,
            &record.booking_id,
            &record.user_id,
            record.version,
            kind,
        )
    };
    let booking_id = record.booking_id.clone();
    let created = EventKind::BookingCreated(BookingCreated {
        booking_id: booking_id.clone(),
        class_id: record.details.class_id.clone(),
        class_name: record.details.class_name.clone(),
        shaala_id: record.details.shaala_id.clone(),
        shaala_name: record.details.shaala_name.clone(),
        teacher_name: record.details.teacher_name.clone(),
        starts_at: record.times.starts_at,
        ends_at: record.times.ends_at,
    });
    match record.status {
        BookingStatus::Confirmed => vec![make(created)],
        BookingStatus::Completed => vec![make(EventKind::BookingCompleted { booking_id }), make(created)],
        // The fold keeps only a tombstone of a cancelled booking.
        BookingStatus::Cancelled => vec![make(EventKind::BookingCancelled {
            booking_id,
            reason: None,
        })],
    }
}

fn subscription_events(change: &Change<'_>, document: &Document) -> Result<ChangeOutcome, ChangeError> {
    let record = SubscriptionRecord::from_document(document)?;
    let make = |kind| {
        event(
            change,
            SUBSCRIPTIONS,
            &record.subscription_id,
            &record.user_id,
            record.version,
            kind,
        )
    };
    let subscription_id = record.subscription_id.clone();
    let activated = make(EventKind::SubscriptionActivated(SubscriptionActivated {
        subscription_id: subscription_id.clone(),
        plan_id: record.details.plan_id.clone(),
        plan_name: record.details.plan_name.clone(),
        shaala_id: record.details.shaala_id.clone(),
        starts_at: record.details.starts_at,
        ends_at: record.ends_at,
        classes_remaining: record.classes_remaining,
    }));
    let events = match record.status {
        SubscriptionStatus::Active => vec![activated],
        SubscriptionStatus::Cancelled => vec![
            make(EventKind::SubscriptionCancelled { subscription_id }),
            activated,
        ],
        SubscriptionStatus::Expired => vec![
            make(EventKind::SubscriptionExpired { subscription_id }),
            activated,
        ],
    };
    Ok(ChangeOutcome::Events(events))
}

/// Maps a hard delete. The change carries only `documentKey._id` (an ObjectId),
/// so the user and business id come from the pre-image, which MongoDB 6.0+
/// records once `changeStreamPreAndPostImages` is enabled (migration 0003).
fn delete_events(change: &Change<'_>) -> Result<ChangeOutcome, ChangeError> {
    let (collection, id_field) = match change.collection {
        Some(USERS) => (USERS, "userId"),
        Some(BOOKINGS) => (BOOKINGS, "bookingId"),
        Some(SUBSCRIPTIONS) => (SUBSCRIPTIONS, "subscriptionId"),
        _ => return Ok(ChangeOutcome::Skip("a collection the session is not built from")),
    };
    let Some(before) = change.before else {
        let key = change
            .document_key
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        return Ok(ChangeOutcome::RebuildRequired(format!(
            "a {collection} document (_id {key}) was deleted and the change has no pre-image, so the \
             affected user is unknown; enable changeStreamPreAndPostImages (migration 0003)"
        )));
    };
    let reader = FieldReader::new(collection, id_field, before);
    let user_id = reader.id("userId")?;
    let id = reader.id(id_field)?;
    // The delete is the next change of the entity, so it outranks the
    // pre-image and every earlier change.
    let version = reader.version("version")?.saturating_add(1);
    let kind = match collection {
        USERS => EventKind::UserDeleted,
        BOOKINGS => EventKind::BookingCancelled {
            booking_id: id.clone(),
            reason: None,
        },
        _ => EventKind::SubscriptionCancelled {
            subscription_id: id.clone(),
        },
    };
    Ok(ChangeOutcome::Events(vec![event(
        change, collection, &id, &user_id, version, kind,
    )]))
}

#[cfg(test)]
mod tests;
