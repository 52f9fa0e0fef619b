//! Rendering fold state into the served session body at a given time.
//!
//! Rendering is pure: the same state, time and options give the same bytes.
//! Time-based facts (a subscription past its `endsAt`, a booking whose
//! `endsAt` has passed) are evaluated at `now`, and the render reports the
//! next instant at which one of them flips, so readers know when the stored
//! bytes stop being true.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::register::value;
use super::state::*;
use crate::event::Role;

/// Defaults when an event never set a field.
pub const DEFAULT_THEME: &str = "light";
pub const DEFAULT_LANGUAGE: &str = "en";
pub const DEFAULT_NOTIFICATIONS: bool = true;

/// Settings that shape the rendered document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// `RECENT_BOOKINGS_LIMIT`: how many bookings `recentBookings` shows.
    pub recent_bookings_limit: usize,
    /// `DEFAULT_USER_ROLE`: the role of a user whose events never named one.
    pub default_role: Role,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            recent_bookings_limit: 5,
            default_role: Role::Student,
        }
    }
}

/// The part of `GET /auth/session` that comes from the projection. The API
/// appends `permissions` and `sessionMetadata` at request time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    pub authenticated: bool,
    pub user: UserView,
    pub recent_bookings: Vec<BookingView>,
    pub active_subscriptions: Vec<SubscriptionView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub role: Role,
    pub is_active: bool,
    pub is_verified: bool,
    pub preferences: PreferencesView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferencesView {
    pub theme: String,
    pub language: String,
    pub notifications: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingView {
    pub id: String,
    pub class_id: String,
    pub class_name: String,
    pub shaala_id: String,
    pub shaala_name: String,
    pub teacher_name: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: ShownStatus,
}

/// Booking status as served: `confirmed`, or `completed` once
/// `booking.completed` arrived or `endsAt` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShownStatus {
    Confirmed,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub plan_id: String,
    pub plan_name: String,
    pub shaala_id: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub classes_remaining: Option<u32>,
}

/// The inputs of the permission policy, kept beside the body so the API can
/// apply the current policy without parsing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessFacts {
    pub role: Role,
    pub is_active: bool,
    pub owner_approved: bool,
}

/// A rendered session: the body plus what the read path needs beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub body: SessionBody,
    pub access: AccessFacts,
    pub token_version: u64,
    pub tokens_valid_after: Option<i64>,
    /// The next instant at which a time-based fact in `body` changes.
    pub stale_at: Option<DateTime<Utc>>,
}

/// Renders the session of `user_id` at `now`; `None` when there is nothing to
/// serve (no `user.created` folded yet, or the user is deleted).
pub fn render(
    user_id: &str,
    state: &FoldState,
    now: DateTime<Utc>,
    options: &RenderOptions,
) -> Option<Rendered> {
    if !state.has_user() {
        return None;
    }
    let user = &state.user;
    let mut stale_at = StaleAt::default();

    let access = AccessFacts {
        role: value(&user.role).copied().unwrap_or(options.default_role),
        is_active: value(&user.active).copied().unwrap_or(true),
        owner_approved: value(&user.owner_approved).copied().unwrap_or(false),
    };
    let user_view = UserView {
        id: user_id.to_owned(),
        email: value(&user.email).cloned().flatten(),
        name: value(&user.name).cloned().flatten(),
        avatar: value(&user.avatar_url).cloned().flatten(),
        role: access.role,
        is_active: access.is_active,
        is_verified: value(&user.verified).copied().unwrap_or(false),
        preferences: PreferencesView {
            theme: value(&user.theme)
                .cloned()
                .unwrap_or_else(|| DEFAULT_THEME.to_owned()),
            language: value(&user.language)
                .cloned()
                .unwrap_or_else(|| DEFAULT_LANGUAGE.to_owned()),
            notifications: value(&user.notifications)
                .copied()
                .unwrap_or(DEFAULT_NOTIFICATIONS),
        },
    };

    let recent_bookings = recent_bookings(state, now, options.recent_bookings_limit, &mut stale_at);
    let active_subscriptions = active_subscriptions(state, now, &mut stale_at);

    Some(Rendered {
        body: SessionBody {
            authenticated: true,
            user: user_view,
            recent_bookings,
            active_subscriptions,
        },
        access,
        token_version: state.token_version,
        tokens_valid_after: state.tokens_valid_after,
        stale_at: stale_at.0,
    })
}

/// The earliest future instant seen so far.
#[derive(Default)]
struct StaleAt(Option<DateTime<Utc>>);

impl StaleAt {
    fn consider(&mut self, now: DateTime<Utc>, instant: DateTime<Utc>) {
        if instant > now && self.0.is_none_or(|current| instant < current) {
            self.0 = Some(instant);
        }
    }
}

fn recent_bookings(
    state: &FoldState,
    now: DateTime<Utc>,
    limit: usize,
    stale_at: &mut StaleAt,
) -> Vec<BookingView> {
    let mut shown: Vec<(&String, &BookingDetails, Interval, BookingStatus)> = state
        .bookings
        .iter()
        .filter_map(|(id, entry)| {
            let details = value(&entry.details)?;
            let times = *value(&entry.times)?;
            let status = value(&entry.status).copied().unwrap_or(BookingStatus::Confirmed);
            (status != BookingStatus::Cancelled).then_some((id, details, times, status))
        })
        .collect();
    // Latest start first; the id breaks ties so equal starts render stably.
    shown.sort_by(|a, b| b.2.starts_at.cmp(&a.2.starts_at).then_with(|| a.0.cmp(b.0)));
    shown.truncate(limit);

    shown
        .into_iter()
        .map(|(id, details, times, status)| {
            let completed = status == BookingStatus::Completed || times.ends_at <= now;
            if !completed {
                stale_at.consider(now, times.ends_at);
            }
            BookingView {
                id: id.clone(),
                class_id: details.class_id.clone(),
                class_name: details.class_name.clone(),
                shaala_id: details.shaala_id.clone(),
                shaala_name: details.shaala_name.clone(),
                teacher_name: details.teacher_name.clone(),
                starts_at: times.starts_at,
                ends_at: times.ends_at,
                status: if completed {
                    ShownStatus::Completed
                } else {
                    ShownStatus::Confirmed
                },
            }
        })
        .collect()
}

fn active_subscriptions(
    state: &FoldState,
    now: DateTime<Utc>,
    stale_at: &mut StaleAt,
) -> Vec<SubscriptionView> {
    let mut shown: Vec<SubscriptionView> = state
        .subscriptions
        .iter()
        .filter_map(|(id, entry)| {
            let details = value(&entry.details)?;
            let ends_at = *value(&entry.ends_at)?;
            if value(&entry.status) != Some(&SubscriptionStatus::Active) {
                return None;
            }
            // Both edges of the term are time-based facts.
            stale_at.consider(now, details.starts_at);
            stale_at.consider(now, ends_at);
            if !(details.starts_at <= now && now < ends_at) {
                return None;
            }
            Some(SubscriptionView {
                id: id.clone(),
                plan_id: details.plan_id.clone(),
                plan_name: details.plan_name.clone(),
                shaala_id: details.shaala_id.clone(),
                starts_at: details.starts_at,
                ends_at,
                classes_remaining: value(&entry.classes_remaining).copied().flatten(),
            })
        })
        .collect();
    // Soonest to end first: the one the user is most likely to act on.
    shown.sort_by(|a, b| a.ends_at.cmp(&b.ends_at).then_with(|| a.id.cmp(&b.id)));
    shown
}
