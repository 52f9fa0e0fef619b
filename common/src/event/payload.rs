//! Typed events: what the fold consumes once an envelope has been validated.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// A user role as events carry it. The permissions each role grants are
/// configuration (see [`crate::permissions`]), not part of the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Student,
    Teacher,
    ShaalaOwner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Student, Role::Teacher, Role::ShaalaOwner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::ShaalaOwner => "shaala_owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "student" => Ok(Role::Student),
            "teacher" => Ok(Role::Teacher),
            "shaala_owner" => Ok(Role::ShaalaOwner),
            other => Err(format!(
                "unknown role {other:?}; allowed: student, teacher, shaala_owner"
            )),
        }
    }
}

/// One decoded, validated event for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// CloudEvents `id`, unique per event.
    pub id: String,
    pub source: String,
    /// The user id (CloudEvents `subject`, also the Kafka key).
    pub user_id: String,
    pub time: DateTime<Utc>,
    /// Version of the changed entity after the change (`data.version`).
    pub version: u64,
    pub kind: EventKind,
}

impl Event {
    /// Returns the CloudEvents `type` this event was decoded from.
    pub fn event_type(&self) -> &'static str {
        self.kind.event_type()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    UserCreated(UserCreated),
    UserProfileUpdated(ProfileUpdate),
    UserPreferencesChanged(PreferencesUpdate),
    UserRoleChanged {
        role: Role,
        owner_approved: Option<bool>,
    },
    UserVerified,
    UserDeactivated,
    UserReactivated,
    UserSessionsRevoked {
        token_version: u64,
    },
    UserDeleted,
    BookingCreated(BookingCreated),
    BookingRescheduled(BookingRescheduled),
    BookingCancelled {
        booking_id: String,
        reason: Option<String>,
    },
    BookingCompleted {
        booking_id: String,
    },
    SubscriptionActivated(SubscriptionActivated),
    SubscriptionRenewed(SubscriptionRenewed),
    SubscriptionCancelled {
        subscription_id: String,
    },
    SubscriptionExpired {
        subscription_id: String,
    },
}

impl EventKind {
    pub fn event_type(&self) -> &'static str {
        match self {
            EventKind::UserCreated(_) => "user.created",
            EventKind::UserProfileUpdated(_) => "user.profile_updated",
            EventKind::UserPreferencesChanged(_) => "user.preferences_changed",
            EventKind::UserRoleChanged { .. } => "user.role_changed",
            EventKind::UserVerified => "user.verified",
            EventKind::UserDeactivated => "user.deactivated",
            EventKind::UserReactivated => "user.reactivated",
            EventKind::UserSessionsRevoked { .. } => "user.sessions_revoked",
            EventKind::UserDeleted => "user.deleted",
            EventKind::BookingCreated(_) => "booking.created",
            EventKind::BookingRescheduled(_) => "booking.rescheduled",
            EventKind::BookingCancelled { .. } => "booking.cancelled",
            EventKind::BookingCompleted { .. } => "booking.completed",
            EventKind::SubscriptionActivated(_) => "subscription.activated",
            EventKind::SubscriptionRenewed(_) => "subscription.renewed",
            EventKind::SubscriptionCancelled { .. } => "subscription.cancelled",
            EventKind::SubscriptionExpired { .. } => "subscription.expired",
        }
    }
}

/// Preferences as events carry them: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferencesUpdate {
    pub theme: Option<String>,
    pub language: Option<String>,
    pub notifications: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    pub email: String,
    pub name: String,
    pub avatar_url: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    pub is_verified: Option<bool>,
    pub owner_approved: Option<bool>,
    #[serde(default)]
    pub preferences: PreferencesUpdate,
}

/// A partial profile change. The outer `Option` records whether the field was
/// present at all; the inner one is `None` when it was present as `null`,
/// which clears the field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUpdate {
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub avatar_url: Option<Option<String>>,
}

/// Deserializes a field that was present (possibly as `null`) into `Some`.
/// Together with `#[serde(default)]` this distinguishes "absent" from "null".
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingCreated {
    pub booking_id: String,
    pub class_id: String,
    pub class_name: String,
    pub shaala_id: String,
    pub shaala_name: String,
    pub teacher_name: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingRescheduled {
    pub booking_id: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionActivated {
    pub subscription_id: String,
    pub plan_id: String,
    pub plan_name: String,
    pub shaala_id: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub classes_remaining: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRenewed {
    pub subscription_id: String,
    pub ends_at: DateTime<Utc>,
    /// Absent means unchanged; `Some(None)` (explicit `null`) clears it.
    #[serde(default, deserialize_with = "present")]
    pub classes_remaining: Option<Option<u32>>,
}
