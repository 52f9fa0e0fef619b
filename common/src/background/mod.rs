//! Background data: what a frontend loads after the session, off the
//! critical path (the detailed profile, the booking history and the
//! notifications).
//!
//! These reads go to the system of record on every cache miss; nothing here
//! is projected. [`BackgroundSource`] is implemented for MongoDB
//! (`crate::mongo::MongoBackgroundSource`) and for the embedded `dev` mode
//! (in the projector crate, over the dev event log).
//!
//! - [`cursor`]: the opaque pagination cursors.
//! - [`paging`]: the orderings, cursor positions and page assembly every
//!   source shares, so each source pages the same way.

pub mod cursor;
pub mod paging;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use cursor::{BookingCursor, CursorError, NotificationCursor};
pub use paging::{page_bookings, page_notifications};

use crate::fold::state::BookingStatus;
use crate::source::SourceOfTruthError;

/// Largest page size a client may request.
pub const MAX_PAGE_LIMIT: u32 = 100;
/// Page size when the client names none.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;

/// The detailed profile (`GET /auth/profile/detailed`): everything about a
/// user that the session document leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDetails {
    pub user_id: String,
    pub bio: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    pub emergency_contact: Option<EmergencyContact>,
    pub interests: Vec<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl ProfileDetails {
    /// Builds the profile of a user who never filled in any details.
    pub fn empty(user_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            bio: None,
            phone: None,
            address: None,
            emergency_contact: None,
            interests: Vec::new(),
            updated_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 code, e.g. `IN`; not checked against the list.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmergencyContact {
    pub name: String,
    pub phone: String,
    pub relationship: Option<String>,
}

/// One booking as the history lists it, cancelled ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingHistoryItem {
    pub id: String,
    pub class_id: String,
    pub class_name: String,
    pub shaala_id: String,
    pub shaala_name: String,
    pub teacher_name: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The stored status. Unlike `GET /auth/session`, the history does not
    /// show a confirmed booking whose `endsAt` has passed as completed.
    pub status: BookingStatus,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: String,
    /// Topic of the notification, e.g. `booking_reminder`; free text chosen
    /// by the producer.
    pub kind: String,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// `None` while unread.
    pub read_at: Option<DateTime<Utc>>,
}

impl Notification {
    pub fn is_unread(&self) -> bool {
        self.read_at.is_none()
    }
}

/// Booking statuses in their canonical order (confirmed, cancelled,
/// completed) without duplicates, so equal filters compare and cache equal.
pub fn normalize_statuses(statuses: &[BookingStatus]) -> Vec<BookingStatus> {
    [
        BookingStatus::Confirmed,
        BookingStatus::Cancelled,
        BookingStatus::Completed,
    ]
    .into_iter()
    .filter(|status| statuses.contains(status))
    .collect()
}

/// A validated `GET /auth/bookings/history` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingHistoryQuery {
    /// 1 to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// Position of the last item of the previous page.
    pub after: Option<BookingCursor>,
    /// Statuses to include, as [`normalize_statuses`] returns them; empty
    /// means all.
    pub statuses: Vec<BookingStatus>,
    /// Only bookings starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only bookings starting before this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
}

impl Default for BookingHistoryQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_LIMIT,
            after: None,
            statuses: Vec::new(),
            from: None,
            to: None,
        }
    }
}

/// A validated `GET /auth/notifications` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationQuery {
    /// 1 to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    pub after: Option<NotificationCursor>,
}

impl Default for NotificationQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_LIMIT,
            after: None,
        }
    }
}

/// One page of the booking history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingPage {
    pub bookings: Vec<BookingHistoryItem>,
    /// Cursor of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One page of notifications, unread first, then newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    pub notifications: Vec<Notification>,
    /// Unread notifications of the user in total, not only on this page.
    pub unread_count: u64,
    /// Cursor of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Source of the background endpoints' data. Errors reuse
/// [`SourceOfTruthError`], since the failure modes are those of the system
/// of record.
#[async_trait]
pub trait BackgroundSource: Send + Sync + 'static {
    /// Loads the detailed profile; `None` when the user has none stored.
    async fn profile_details(&self, user_id: &str) -> Result<Option<ProfileDetails>, SourceOfTruthError>;

    /// Loads one page of the user's bookings, cancelled ones included.
    async fn booking_history(
        &self,
        user_id: &str,
        query: &BookingHistoryQuery,
    ) -> Result<BookingPage, SourceOfTruthError>;

    /// Loads one page of the user's notifications with the total unread count.
    async fn notifications(
        &self,
        user_id: &str,
        query: &NotificationQuery,
    ) -> Result<NotificationPage, SourceOfTruthError>;
}
