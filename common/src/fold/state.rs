//! Fold state: everything the projection remembers about one user.
//!
//! The state is larger than the served document: it keeps every booking and
//! subscription with the stamps of the events that shaped them, so that a
//! late or duplicate event can be merged correctly and a cancellation can
//! promote the next booking into the recent window. It is stored next to the
//! document (same hash slot) and never served.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::register::{Register, Stamp};
use crate::event::Role;

/// Fold state of one user. `Default` is the state before any event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FoldState {
    /// Set once `user.deleted` is folded. A deleted user keeps only this
    /// tombstone, so late events cannot bring the projection back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Stamp>,
    #[serde(default)]
    pub user: UserFields,
    /// Highest `tokenVersion` from `user.sessions_revoked`; tokens with a
    /// lower `tv` claim are rejected.
    #[serde(default)]
    pub token_version: u64,
    /// Latest `user.deactivated` time (unix seconds): tokens issued before it
    /// are rejected, even after a reactivation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_valid_after: Option<i64>,
    #[serde(default)]
    pub bookings: BTreeMap<String, BookingEntry>,
    #[serde(default)]
    pub subscriptions: BTreeMap<String, SubscriptionEntry>,
}

impl FoldState {
    /// Returns whether `user.created` has been folded and the user is not
    /// deleted. Only then is there a session document to serve.
    pub fn has_user(&self) -> bool {
        self.deleted.is_none() && self.user.created.is_some()
    }
}

/// User fields, each its own register so partial updates merge per field.
/// A register that was never written renders as the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserFields {
    /// Stamp of `user.created`; the user exists once it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Register<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Register<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<Register<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Register<Role>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_approved: Option<Register<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Register<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Register<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<Register<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Register<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Register<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
    Completed,
}

/// One booking. The details come from `booking.created`, the times from
/// `booking.created` or `booking.rescheduled`; a booking is shown only once
/// both are known and it is not cancelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookingEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Register<BookingDetails>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<Register<Interval>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Register<BookingStatus>>,
}

impl BookingEntry {
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self.status.as_ref().map(|r| r.value),
            Some(BookingStatus::Cancelled)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingDetails {
    pub class_id: String,
    pub class_name: String,
    pub shaala_id: String,
    pub shaala_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_name: Option<String>,
}

impl From<&crate::event::payload::BookingCreated> for BookingDetails {
    fn from(created: &crate::event::payload::BookingCreated) -> Self {
        Self {
            class_id: created.class_id.clone(),
            class_name: created.class_name.clone(),
            shaala_id: created.shaala_id.clone(),
            shaala_name: created.shaala_name.clone(),
            teacher_name: created.teacher_name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Cancelled,
    Expired,
}

/// One subscription. Its status is a register too, so a renewal with a
/// higher version than an expiry makes the subscription active again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Register<SubscriptionDetails>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Register<DateTime<Utc>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes_remaining: Option<Register<Option<u32>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Register<SubscriptionStatus>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDetails {
    pub plan_id: String,
    pub plan_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaala_id: Option<String>,
    pub starts_at: DateTime<Utc>,
}
