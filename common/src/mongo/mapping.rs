//! BSON documents from the system of record -> typed records -> fold state.
//!
//! Live assembly must render the same bytes as the projection, so documents
//! become fold state (not a document) and go through the same render. Every
//! register written from a document carries the stamp
//! `Stamp::new(version, "mongo:<collection>:<id>")`: the entity version of
//! the document, with a tiebreak that is the same for every read of that
//! document. An event with a higher version therefore wins over what was
//! read here, and the change stream (which builds its events from these
//! records) writes exactly the registers that live assembly builds.
//!
//! Field names and types are described in `docs/DATA_MODEL.md`.

use chrono::{DateTime, Utc};
use mongodb::bson::Document;

use super::fields::{FieldReader, MappingError};
use super::{BOOKINGS, NOTIFICATIONS, PROFILE_DETAILS, SUBSCRIPTIONS, USERS};
use crate::background::{Address, BookingHistoryItem, EmergencyContact, Notification, ProfileDetails};
use crate::event::Role;
use crate::event::payload::PreferencesUpdate;
use crate::fold::FoldState;
use crate::fold::register::{Stamp, merge};
use crate::fold::state::{BookingDetails, BookingStatus, Interval, SubscriptionDetails, SubscriptionStatus};

const ROLES: &str = "student, teacher, shaala_owner";
const BOOKING_STATUSES: &str = "confirmed, cancelled, completed";
const SUBSCRIPTION_STATUSES: &str = "active, cancelled, expired";

/// Returns the stamp of every register written from one document.
pub fn stamp_for(collection: &str, id: &str, version: u64) -> Stamp {
    Stamp::new(version, &format!("mongo:{collection}:{id}"))
}

pub fn parse_booking_status(text: &str) -> Option<BookingStatus> {
    match text {
        "confirmed" => Some(BookingStatus::Confirmed),
        "cancelled" => Some(BookingStatus::Cancelled),
        "completed" => Some(BookingStatus::Completed),
        _ => None,
    }
}

pub fn booking_status_name(status: BookingStatus) -> &'static str {
    match status {
        BookingStatus::Confirmed => "confirmed",
        BookingStatus::Cancelled => "cancelled",
        BookingStatus::Completed => "completed",
    }
}

pub fn parse_subscription_status(text: &str) -> Option<SubscriptionStatus> {
    match text {
        "active" => Some(SubscriptionStatus::Active),
        "cancelled" => Some(SubscriptionStatus::Cancelled),
        "expired" => Some(SubscriptionStatus::Expired),
        _ => None,
    }
}

/// A `users` document.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user_id: String,
    pub version: u64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    /// `None` renders as `DEFAULT_USER_ROLE`.
    pub role: Option<Role>,
    /// An absent `isActive` means active, as in the render.
    pub is_active: bool,
    pub is_verified: Option<bool>,
    pub owner_approved: Option<bool>,
    pub preferences: PreferencesUpdate,
    /// 0 when no session revocation ever happened.
    pub token_version: u64,
    /// Tokens issued at or before this instant are revoked.
    pub tokens_valid_after: Option<DateTime<Utc>>,
    /// A soft-deleted user has no session.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl UserRecord {
    pub fn from_document(document: &Document) -> Result<Self, MappingError> {
        let reader = FieldReader::new(USERS, "userId", document);
        let preferences = match reader.nested("preferences")? {
            None => PreferencesUpdate::default(),
            Some(nested) => PreferencesUpdate {
                theme: nested.optional_id("theme")?,
                language: nested.optional_id("language")?,
                notifications: nested.optional_bool("notifications")?,
            },
        };
        Ok(Self {
            user_id: reader.id("userId")?,
            version: reader.version("version")?,
            email: reader.nullable_string("email")?,
            name: reader.nullable_string("name")?,
            avatar_url: reader.optional_string("avatarUrl")?,
            role: reader.optional_enum("role", ROLES, |text| text.parse().ok())?,
            is_active: reader.optional_bool("isActive")?.unwrap_or(true),
            is_verified: reader.optional_bool("isVerified")?,
            owner_approved: reader.optional_bool("ownerApproved")?,
            preferences,
            token_version: reader.optional_unsigned("tokenVersion")?.unwrap_or(0),
            tokens_valid_after: reader.optional_date("tokensValidAfter")?,
            deleted_at: reader.optional_date("deletedAt")?,
        })
    }

    pub fn stamp(&self) -> Stamp {
        stamp_for(USERS, &self.user_id, self.version)
    }

    /// Builds the fold state that contains this user's fields (no bookings
    /// or subscriptions yet); `None` for a soft-deleted user.
    pub fn to_state(&self) -> Option<FoldState> {
        if self.deleted_at.is_some() {
            return None;
        }

        let stamp = self.stamp();
        let mut state = FoldState::default();
        let user = &mut state.user;
        user.created = Some(stamp);
        merge(&mut user.email, stamp, self.email.clone());
        merge(&mut user.name, stamp, self.name.clone());
        merge(&mut user.avatar_url, stamp, self.avatar_url.clone());

        if let Some(role) = self.role {
            merge(&mut user.role, stamp, role);
        }
        merge(&mut user.active, stamp, self.is_active);
        if let Some(verified) = self.is_verified {
            merge(&mut user.verified, stamp, verified);
        }
        if let Some(approved) = self.owner_approved {
            merge(&mut user.owner_approved, stamp, approved);
        }

        if let Some(theme) = &self.preferences.theme {
            merge(&mut user.theme, stamp, theme.clone());
        }
        if let Some(language) = &self.preferences.language {
            merge(&mut user.language, stamp, language.clone());
        }
        if let Some(notifications) = self.preferences.notifications {
            merge(&mut user.notifications, stamp, notifications);
        }

        state.token_version = self.token_version;
        // The fold keeps whole seconds (the `iat` claim has no fraction).
        state.tokens_valid_after = self.tokens_valid_after.map(|at| at.timestamp());
        Some(state)
    }
}

/// A `bookings` document.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingRecord {
    pub booking_id: String,
    pub user_id: String,
    pub version: u64,
    pub details: BookingDetails,
    pub times: Interval,
    pub status: BookingStatus,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl BookingRecord {
    pub fn from_document(document: &Document) -> Result<Self, MappingError> {
        let reader = FieldReader::new(BOOKINGS, "bookingId", document);
        let times = Interval {
            starts_at: reader.date("startsAt")?,
            ends_at: reader.date("endsAt")?,
        };
        if times.ends_at <= times.starts_at {
            return Err(reader.error("endsAt", "must be later than startsAt"));
        }
        Ok(Self {
            booking_id: reader.id("bookingId")?,
            user_id: reader.id("userId")?,
            version: reader.version("version")?,
            details: BookingDetails {
                class_id: reader.id("classId")?,
                class_name: reader.id("className")?,
                shaala_id: reader.id("shaalaId")?,
                shaala_name: reader.id("shaalaName")?,
                teacher_name: reader.optional_id("teacherName")?,
            },
            times,
            status: reader.required_enum("status", BOOKING_STATUSES, parse_booking_status)?,
            cancelled_at: reader.optional_date("cancelledAt")?,
            updated_at: reader.optional_date("updatedAt")?,
        })
    }

    pub fn stamp(&self) -> Stamp {
        stamp_for(BOOKINGS, &self.booking_id, self.version)
    }

    /// Merges this booking into `state`. A cancelled booking becomes a
    /// status-only tombstone, as the fold leaves it.
    pub fn apply(&self, state: &mut FoldState) {
        let stamp = self.stamp();
        let entry = state.bookings.entry(self.booking_id.clone()).or_default();
        merge(&mut entry.status, stamp, self.status);
        merge(&mut entry.details, stamp, self.details.clone());
        merge(&mut entry.times, stamp, self.times);
        if entry.is_cancelled() {
            entry.details = None;
            entry.times = None;
        }
    }

    pub fn to_history_item(&self) -> BookingHistoryItem {
        BookingHistoryItem {
            id: self.booking_id.clone(),
            class_id: self.details.class_id.clone(),
            class_name: self.details.class_name.clone(),
            shaala_id: self.details.shaala_id.clone(),
            shaala_name: self.details.shaala_name.clone(),
            teacher_name: self.details.teacher_name.clone(),
            starts_at: self.times.starts_at,
            ends_at: self.times.ends_at,
            status: self.status,
            cancelled_at: self.cancelled_at,
            updated_at: self.updated_at,
        }
    }
}

/// A `subscriptions` document.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
    pub subscription_id: String,
    pub user_id: String,
    pub version: u64,
    pub details: SubscriptionDetails,
    pub ends_at: DateTime<Utc>,
    /// `None` for plans without a class count.
    pub classes_remaining: Option<u32>,
    pub status: SubscriptionStatus,
}

impl SubscriptionRecord {
    pub fn from_document(document: &Document) -> Result<Self, MappingError> {
        let reader = FieldReader::new(SUBSCRIPTIONS, "subscriptionId", document);
        let starts_at = reader.date("startsAt")?;
        let ends_at = reader.date("endsAt")?;
        if ends_at <= starts_at {
            return Err(reader.error("endsAt", "must be later than startsAt"));
        }
        Ok(Self {
            subscription_id: reader.id("subscriptionId")?,
            user_id: reader.id("userId")?,
            version: reader.version("version")?,
            details: SubscriptionDetails {
                plan_id: reader.id("planId")?,
                plan_name: reader.id("planName")?,
                shaala_id: reader.optional_id("shaalaId")?,
                starts_at,
            },
            ends_at,
            classes_remaining: reader.optional_count("classesRemaining")?,
            status: reader.required_enum("status", SUBSCRIPTION_STATUSES, parse_subscription_status)?,
        })
    }

    pub fn stamp(&self) -> Stamp {
        stamp_for(SUBSCRIPTIONS, &self.subscription_id, self.version)
    }

    pub fn apply(&self, state: &mut FoldState) {
        let stamp = self.stamp();
        let entry = state
            .subscriptions
            .entry(self.subscription_id.clone())
            .or_default();
        merge(&mut entry.status, stamp, self.status);
        merge(&mut entry.details, stamp, self.details.clone());
        merge(&mut entry.ends_at, stamp, self.ends_at);
        merge(&mut entry.classes_remaining, stamp, self.classes_remaining);
    }
}

/// Assembles the fold state of one user from the documents the live
/// queries returned. `None` when the user is soft-deleted. A booking or
/// subscription of another user is an error, not skipped: it means a query
/// or the data is wrong.
pub fn assemble(
    user: &Document,
    bookings: &[Document],
    subscriptions: &[Document],
) -> Result<Option<FoldState>, MappingError> {
    let user = UserRecord::from_document(user)?;
    let booking_records = bookings
        .iter()
        .map(BookingRecord::from_document)
        .collect::<Result<Vec<_>, _>>()?;
    let subscription_records = subscriptions
        .iter()
        .map(SubscriptionRecord::from_document)
        .collect::<Result<Vec<_>, _>>()?;

    let Some(mut state) = user.to_state() else {
        return Ok(None);
    };
    for booking in &booking_records {
        check_owner(BOOKINGS, &booking.booking_id, &booking.user_id, &user.user_id)?;
        booking.apply(&mut state);
    }
    for subscription in &subscription_records {
        check_owner(
            SUBSCRIPTIONS,
            &subscription.subscription_id,
            &subscription.user_id,
            &user.user_id,
        )?;
        subscription.apply(&mut state);
    }
    Ok(Some(state))
}

fn check_owner(collection: &'static str, id: &str, owner: &str, expected: &str) -> Result<(), MappingError> {
    if owner == expected {
        return Ok(());
    }
    Err(MappingError {
        collection,
        document_id: id.to_owned(),
        field: "userId".to_owned(),
        problem: format!("belongs to user {owner:?}, but was read for user {expected:?}"),
    })
}

/// Maps a `notifications` document.
pub fn notification_from_document(document: &Document) -> Result<Notification, MappingError> {
    let reader = FieldReader::new(NOTIFICATIONS, "notificationId", document);
    Ok(Notification {
        id: reader.id("notificationId")?,
        kind: reader.id("kind")?,
        title: reader.id("title")?,
        body: match reader.optional_string("body")? {
            Some(body) => body,
            None => return Err(reader.error("body", "missing")),
        },
        created_at: reader.date("createdAt")?,
        read_at: reader.optional_date("readAt")?,
    })
}

/// Maps a `profile_details` document.
pub fn profile_from_document(document: &Document) -> Result<ProfileDetails, MappingError> {
    let reader = FieldReader::new(PROFILE_DETAILS, "userId", document);
    let address = match reader.nested("address")? {
        None => None,
        Some(nested) => Some(Address {
            line1: nested.id("line1")?,
            line2: nested.optional_string("line2")?,
            city: nested.id("city")?,
            region: nested.optional_string("region")?,
            postal_code: nested.optional_string("postalCode")?,
            country: nested.id("country")?,
        }),
    };
    let emergency_contact = match reader.nested("emergencyContact")? {
        None => None,
        Some(nested) => Some(EmergencyContact {
            name: nested.id("name")?,
            phone: nested.id("phone")?,
            relationship: nested.optional_string("relationship")?,
        }),
    };
    Ok(ProfileDetails {
        user_id: reader.id("userId")?,
        bio: reader.optional_string("bio")?,
        phone: reader.optional_string("phone")?,
        address,
        emergency_contact,
        interests: reader.string_list("interests")?,
        updated_at: reader.optional_date("updatedAt")?,
    })
}

#[cfg(test)]
mod tests;
