//! Decoding of raw CloudEvents (structured or binary mode) into typed events.
//!
//! The order of checks matters for the error a producer gets: size, JSON
//! syntax, the envelope schema, then the schema of `data` for the event type,
//! then the rules JSON Schema cannot express (such as `endsAt` after
//! `startsAt`). Decoding never panics; every failure is a [`DecodeError`]
//! naming the event id when it could be read.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::payload::*;
use super::schema::{SchemaRegistry, SchemaViolations};

/// Events larger than this are rejected before parsing (a poison record
/// must not cost unbounded memory). 1 MiB, the Kafka default `max.message.bytes`.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Maximum distance of an event's `time` ahead of this process's clock,
/// because the time of a change cannot be in the future. A producer clock far
/// ahead would otherwise revoke every token until that date through
/// `user.deactivated`, and no event could undo it.
pub const MAX_FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The result of decoding one record that is not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(Event),
    /// A well-formed envelope of a type this version does not know. Skipped
    /// and counted, so producers can add types before consumers learn them.
    UnknownType {
        event_id: String,
        event_type: String,
        user_id: String,
    },
}

/// A record that could not be decoded: the reason and the ids that could be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("event {}: {problem}", event_id.as_deref().unwrap_or("<unreadable id>"))]
pub struct DecodeError {
    pub event_id: Option<String>,
    pub user_id: Option<String>,
    pub problem: DecodeProblem,
}

impl DecodeError {
    /// Returns a short stable code for the dead-letter reason header and metrics.
    pub fn code(&self) -> &'static str {
        match self.problem {
            DecodeProblem::TooLarge { .. } => "too_large",
            DecodeProblem::NotJson(_) => "not_json",
            DecodeProblem::Envelope(_) => "invalid_envelope",
            DecodeProblem::Data(_) => "invalid_data",
            DecodeProblem::Rule { .. } => "invalid_data",
            DecodeProblem::MissingHeader(_) => "invalid_envelope",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeProblem {
    #[error("record is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("invalid CloudEvents envelope: {0}")]
    Envelope(SchemaViolations),
    #[error("invalid data: {0}")]
    Data(SchemaViolations),
    #[error("{field}: {message}")]
    Rule { field: &'static str, message: String },
    #[error("binary-mode record has no {0} header")]
    MissingHeader(&'static str),
}

/// Decodes CloudEvents against the embedded schemas.
#[derive(Clone, Copy)]
pub struct Decoder {
    registry: &'static SchemaRegistry,
    max_bytes: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl Decoder {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            registry: SchemaRegistry::global(),
            max_bytes,
        }
    }

    /// Decodes a structured-mode record: the whole CloudEvent as one JSON object.
    pub fn decode_structured(&self, bytes: &[u8]) -> Result<Decoded, DecodeError> {
        self.check_size(bytes.len())?;
        let value: Value = serde_json::from_slice(bytes).map_err(|err| DecodeError {
            event_id: None,
            user_id: None,
            problem: DecodeProblem::NotJson(err.to_string()),
        })?;
        self.decode_value(value)
    }

    /// Decodes a binary-mode record: attributes in `ce_*` headers, `data` as
    /// the payload. `headers` yields (name, value) pairs as Kafka carries them.
    pub fn decode_binary<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        payload: &[u8],
    ) -> Result<Decoded, DecodeError> {
        self.check_size(payload.len())?;
        let mut envelope = Map::new();
        for (name, value) in headers {
            let Some(attribute) = name.strip_prefix("ce_") else {
                continue;
            };
            let text = String::from_utf8_lossy(value).into_owned();
            envelope.insert(attribute.to_owned(), Value::String(text));
        }
        if !envelope.contains_key("specversion") {
            return Err(DecodeError {
                event_id: envelope.get("id").and_then(Value::as_str).map(str::to_owned),
                user_id: None,
                problem: DecodeProblem::MissingHeader("ce_specversion"),
            });
        }
        let data: Value = serde_json::from_slice(payload).map_err(|err| DecodeError {
            event_id: envelope.get("id").and_then(Value::as_str).map(str::to_owned),
            user_id: envelope.get("subject").and_then(Value::as_str).map(str::to_owned),
            problem: DecodeProblem::NotJson(err.to_string()),
        })?;
        envelope.insert("data".to_owned(), data);
        self.decode_value(Value::Object(envelope))
    }

    /// Decodes an already parsed CloudEvent.
    pub fn decode_value(&self, value: Value) -> Result<Decoded, DecodeError> {
        let event_id = string_attribute(&value, "id");
        let user_id = string_attribute(&value, "subject");
        let fail = |problem| DecodeError {
            event_id: event_id.clone(),
            user_id: user_id.clone(),
            problem,
        };

        self.registry
            .validate_envelope(&value)
            .map_err(|violations| fail(DecodeProblem::Envelope(violations)))?;

        // The envelope schema guarantees these attributes exist and are strings.
        let Value::Object(mut envelope) = value else {
            return Err(fail(DecodeProblem::Rule {
                field: "/",
                message: "the event must be a JSON object".to_owned(),
            }));
        };
        let event_type = take_string(&mut envelope, "type");
        let id = take_string(&mut envelope, "id");
        let subject = take_string(&mut envelope, "subject");
        let source = take_string(&mut envelope, "source");
        let time = take_string(&mut envelope, "time");
        let data = envelope.remove("data").unwrap_or(Value::Null);

        match self.registry.validate_data(&event_type, &data) {
            Ok(None) => {
                return Ok(Decoded::UnknownType {
                    event_id: id,
                    event_type,
                    user_id: subject,
                });
            }
            Ok(Some(())) => {}
            Err(violations) => return Err(fail(DecodeProblem::Data(violations))),
        }

        let time = parse_time(&time).map_err(|message| {
            fail(DecodeProblem::Rule {
                field: "/time",
                message,
            })
        })?;
        let latest = Utc::now() + MAX_FUTURE_SKEW;
        if time > latest {
            return Err(fail(DecodeProblem::Rule {
                field: "/time",
                message: format!(
                    "{} is more than {} minutes in the future; the time of a change cannot be later than now",
                    time.to_rfc3339(),
                    MAX_FUTURE_SKEW.num_minutes()
                ),
            }));
        }
        let version = data.get("version").and_then(Value::as_u64).ok_or_else(|| {
            fail(DecodeProblem::Rule {
                field: "/data/version",
                message: "must be an integer >= 1".to_owned(),
            })
        })?;
        let kind = decode_kind(&event_type, data).map_err(fail)?;

        Ok(Decoded::Event(Event {
            id,
            source,
            user_id: subject,
            time,
            version,
            kind,
        }))
    }

    fn check_size(&self, size: usize) -> Result<(), DecodeError> {
        if size <= self.max_bytes {
            return Ok(());
        }
        Err(DecodeError {
            event_id: None,
            user_id: None,
            problem: DecodeProblem::TooLarge {
                size,
                max: self.max_bytes,
            },
        })
    }
}

fn string_attribute(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn take_string(envelope: &mut Map<String, Value>, name: &str) -> String {
    match envelope.remove(name) {
        Some(Value::String(text)) => text,
        _ => String::new(),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|err| format!("{text:?} is not an RFC 3339 timestamp: {err}"))
}

fn decode_kind(event_type: &str, data: Value) -> Result<EventKind, DecodeProblem> {
    let kind = match event_type {
        "user.created" => EventKind::UserCreated(payload(data)?),
        "user.profile_updated" => EventKind::UserProfileUpdated(payload(data)?),
        "user.preferences_changed" => {
            let wrapper: PreferencesChanged = payload(data)?;
            EventKind::UserPreferencesChanged(wrapper.preferences)
        }
        "user.role_changed" => {
            let changed: RoleChanged = payload(data)?;
            EventKind::UserRoleChanged {
                role: changed.role,
                owner_approved: changed.owner_approved,
            }
        }
        "user.verified" => EventKind::UserVerified,
        "user.deactivated" => EventKind::UserDeactivated,
        "user.reactivated" => EventKind::UserReactivated,
        "user.sessions_revoked" => {
            let revoked: SessionsRevoked = payload(data)?;
            EventKind::UserSessionsRevoked {
                token_version: revoked.token_version,
            }
        }
        "user.deleted" => EventKind::UserDeleted,
        "booking.created" => {
            let created: BookingCreated = payload(data)?;
            check_interval(created.starts_at, created.ends_at)?;
            EventKind::BookingCreated(created)
        }
        "booking.rescheduled" => {
            let rescheduled: BookingRescheduled = payload(data)?;
            check_interval(rescheduled.starts_at, rescheduled.ends_at)?;
            EventKind::BookingRescheduled(rescheduled)
        }
        "booking.cancelled" => {
            let cancelled: BookingCancelled = payload(data)?;
            EventKind::BookingCancelled {
                booking_id: cancelled.booking_id,
                reason: cancelled.reason,
            }
        }
        "booking.completed" => {
            let completed: BookingRef = payload(data)?;
            EventKind::BookingCompleted {
                booking_id: completed.booking_id,
            }
        }
        "subscription.activated" => {
            let activated: SubscriptionActivated = payload(data)?;
            check_interval(activated.starts_at, activated.ends_at)?;
            EventKind::SubscriptionActivated(activated)
        }
        "subscription.renewed" => EventKind::SubscriptionRenewed(payload(data)?),
        "subscription.cancelled" => {
            let cancelled: SubscriptionRef = payload(data)?;
            EventKind::SubscriptionCancelled {
                subscription_id: cancelled.subscription_id,
            }
        }
        "subscription.expired" => {
            let expired: SubscriptionRef = payload(data)?;
            EventKind::SubscriptionExpired {
                subscription_id: expired.subscription_id,
            }
        }
        other => {
            // The schema registry has a type this match lacks: a bug in
            // this crate, reported as a rule failure rather than a panic.
            return Err(DecodeProblem::Rule {
                field: "/type",
                message: format!("no decoder for known type {other:?}"),
            });
        }
    };
    Ok(kind)
}

fn payload<T: DeserializeOwned>(data: Value) -> Result<T, DecodeProblem> {
    serde_json::from_value(data).map_err(|err| DecodeProblem::Rule {
        field: "/data",
        message: err.to_string(),
    })
}

fn check_interval(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Result<(), DecodeProblem> {
    if ends_at > starts_at {
        return Ok(());
    }
    Err(DecodeProblem::Rule {
        field: "/data/endsAt",
        message: format!(
            "{} must be after startsAt {}",
            ends_at.to_rfc3339(),
            starts_at.to_rfc3339()
        ),
    })
}

#[derive(serde::Deserialize)]
struct PreferencesChanged {
    preferences: PreferencesUpdate,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleChanged {
    role: Role,
    owner_approved: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionsRevoked {
    token_version: u64,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookingCancelled {
    booking_id: String,
    reason: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookingRef {
    booking_id: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionRef {
    subscription_id: String,
}
