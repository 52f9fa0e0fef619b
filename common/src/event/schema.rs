//! JSON Schema validation of CloudEvent envelopes and event payloads.
//!
//! The schemas in `common/schemas/v1` are the machine-readable event contract.
//! They are embedded at compile time and compiled once, as JSON Schema draft
//! 2020-12 with `format` enforced. The draft treats `format` as an annotation
//! unless the validator is configured to assert it, which would let
//! `"time": "yesterday"` through.
//! The envelope and the `data` object are validated separately, so a caller
//! can tell a malformed event from a well-formed event of an unknown type.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use jsonschema::{ValidationError, Validator};
use serde_json::Value;

/// Name under which [`schema_text`] returns the envelope schema.
pub const ENVELOPE_SCHEMA_NAME: &str = "envelope";

/// Maximum number of violations that [`SchemaViolations`] prints.
pub const MAX_DISPLAYED_VIOLATIONS: usize = 3;

/// Maximum length of one violation message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Maximum number of violations collected from one validation, so the list
/// stays small whatever the payload. Counting stops at this number.
pub const MAX_COLLECTED_VIOLATIONS: usize = 64;

/// Placeholder that replaces the offending value in violation messages.
/// Messages end up in logs and dead-letter headers, and the value may be
/// personal data (an email address) or arbitrarily large.
const VALUE_PLACEHOLDER: &str = "value";

/// JSON pointer of the `data` attribute inside the envelope.
const DATA_POINTER: &str = "/data";

const ENVELOPE_SCHEMA: &str = include_str!("../../schemas/v1/envelope.json");

/// Every event type of contract version 1 with its `data` schema, in the
/// order the contract lists them.
const DATA_SCHEMAS: [(&str, &str); 17] = [
    ("user.created", include_str!("../../schemas/v1/user.created.json")),
    (
        "user.profile_updated",
        include_str!("../../schemas/v1/user.profile_updated.json"),
    ),
    (
        "user.preferences_changed",
        include_str!("../../schemas/v1/user.preferences_changed.json"),
    ),
    (
        "user.role_changed",
        include_str!("../../schemas/v1/user.role_changed.json"),
    ),
    (
        "user.verified",
        include_str!("../../schemas/v1/user.verified.json"),
    ),
    (
        "user.deactivated",
        include_str!("../../schemas/v1/user.deactivated.json"),
    ),
    (
        "user.reactivated",
        include_str!("../../schemas/v1/user.reactivated.json"),
    ),
    (
        "user.sessions_revoked",
        include_str!("../../schemas/v1/user.sessions_revoked.json"),
    ),
    ("user.deleted", include_str!("../../schemas/v1/user.deleted.json")),
    (
        "booking.created",
        include_str!("../../schemas/v1/booking.created.json"),
    ),
    (
        "booking.rescheduled",
        include_str!("../../schemas/v1/booking.rescheduled.json"),
    ),
    (
        "booking.cancelled",
        include_str!("../../schemas/v1/booking.cancelled.json"),
    ),
    (
        "booking.completed",
        include_str!("../../schemas/v1/booking.completed.json"),
    ),
    (
        "subscription.activated",
        include_str!("../../schemas/v1/subscription.activated.json"),
    ),
    (
        "subscription.renewed",
        include_str!("../../schemas/v1/subscription.renewed.json"),
    ),
    (
        "subscription.cancelled",
        include_str!("../../schemas/v1/subscription.cancelled.json"),
    ),
    (
        "subscription.expired",
        include_str!("../../schemas/v1/subscription.expired.json"),
    ),
];

static GLOBAL_REGISTRY: LazyLock<SchemaRegistry> = LazyLock::new(SchemaRegistry::new);

/// Returns the text of an embedded schema: `"envelope"` or an event type such
/// as `"booking.created"`, with or without a `.json` suffix. Returns `None`
/// for any other name.
pub fn schema_text(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".json").unwrap_or(name);
    if name == ENVELOPE_SCHEMA_NAME {
        return Some(ENVELOPE_SCHEMA);
    }

    DATA_SCHEMAS
        .iter()
        .find(|(event_type, _)| *event_type == name)
        .map(|(_, text)| *text)
}

/// Compiled validators for the envelope and the `data` object of every known
/// event type. Compiling is the expensive part, so build one registry (or use
/// [`SchemaRegistry::global`]) and share it across threads.
pub struct SchemaRegistry {
    envelope: Validator,
    data: HashMap<&'static str, Validator>,
}

impl SchemaRegistry {
    /// Compiles every embedded schema.
    ///
    /// # Panics
    ///
    /// Panics if an embedded schema is not valid JSON or not a valid draft
    /// 2020-12 schema. The schemas are fixed at compile time and a test
    /// compiles them, so this is a build defect, never an input error.
    pub fn new() -> Self {
        let envelope = compile_schema(ENVELOPE_SCHEMA_NAME, ENVELOPE_SCHEMA);
        let data = DATA_SCHEMAS
            .iter()
            .map(|(event_type, text)| (*event_type, compile_schema(event_type, text)))
            .collect();

        Self { envelope, data }
    }

    /// Returns the registry shared by the whole process, compiled on first use.
    pub fn global() -> &'static SchemaRegistry {
        &GLOBAL_REGISTRY
    }

    /// Lists the event types that have a `data` schema, in contract order.
    pub fn known_types(&self) -> impl Iterator<Item = &'static str> {
        DATA_SCHEMAS.iter().map(|(event_type, _)| *event_type)
    }

    /// Validates a structured-mode CloudEvent envelope. Only the type of the
    /// `data` attribute is checked here, and [`Self::validate_data`] checks
    /// its fields.
    pub fn validate_envelope(&self, value: &Value) -> Result<(), SchemaViolations> {
        collect_violations(&self.envelope, value, "")
    }

    /// Validates the `data` object of an event of type `event_type`.
    ///
    /// Returns `Ok(None)` when the type has no schema, because consumers skip
    /// unknown types instead of rejecting them. Violation paths start with
    /// `/data`, as if the object were still inside its envelope.
    pub fn validate_data(&self, event_type: &str, data: &Value) -> Result<Option<()>, SchemaViolations> {
        let Some(validator) = self.data.get(event_type) else {
            return Ok(None);
        };

        collect_violations(validator, data, DATA_POINTER).map(Some)
    }

    /// Validates a whole structured-mode event: the envelope first, then its
    /// `data` against the schema of its `type`.
    ///
    /// Returns `Ok(None)` for a valid envelope whose type is unknown, with the
    /// same meaning as in [`Self::validate_data`].
    pub fn validate_event(&self, event: &Value) -> Result<Option<()>, SchemaViolations> {
        self.validate_envelope(event)?;

        // A valid envelope has a string `type` and an object `data`.
        let event_type = event["type"].as_str().unwrap_or_default();
        self.validate_data(event_type, &event["data"])
    }
}

impl Default for SchemaRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("known_types", &self.known_types().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Parses and compiles one embedded schema, with `format` enforced and
/// unknown format names rejected so that a typo in a schema fails the build.
fn compile_schema(name: &str, text: &str) -> Validator {
    let schema: Value = serde_json::from_str(text)
        .unwrap_or_else(|err| panic!("embedded schema {name} is not valid JSON: {err}"));

    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(&schema)
        .unwrap_or_else(|err| panic!("embedded schema {name} does not compile: {err}"))
}

/// Runs `validator` on `instance` and converts the errors into violations
/// whose paths start with `path_prefix`.
fn collect_violations(
    validator: &Validator,
    instance: &Value,
    path_prefix: &str,
) -> Result<(), SchemaViolations> {
    let violations: Vec<SchemaViolation> = validator
        .iter_errors(instance)
        .take(MAX_COLLECTED_VIOLATIONS)
        .map(|error| SchemaViolation::from_error(&error, path_prefix))
        .collect();

    if violations.is_empty() {
        Ok(())
    } else {
        Err(SchemaViolations(violations))
    }
}

/// The schema violations of one rejected envelope or payload, in the order
/// the validator reported them.
///
/// The list contains at most [`MAX_COLLECTED_VIOLATIONS`] entries. `Display`
/// prints the first [`MAX_DISPLAYED_VIOLATIONS`] as `<path>: <message>`,
/// separated by `; `, followed by the number of the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolations(pub Vec<SchemaViolation>);

/// One failed schema rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer to the failing value, relative to the envelope: a `data`
    /// field reads `/data/startsAt`. The empty string is the envelope itself.
    /// A missing required property is reported at the object that lacks it.
    pub path: String,
    /// Message from the validator, with the offending value replaced by
    /// `value` and cut to [`MAX_MESSAGE_CHARS`] characters.
    pub message: String,
}

impl SchemaViolation {
    fn from_error(error: &ValidationError<'_>, path_prefix: &str) -> Self {
        let path = format!("{path_prefix}{}", error.instance_path.as_str());

        let mut message = BoundedText::new(MAX_MESSAGE_CHARS);
        // An error here only means the message reached the limit.
        let _ = write!(message, "{}", error.masked_with(VALUE_PLACEHOLDER));

        Self {
            path,
            message: message.finish(),
        }
    }
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(envelope)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

impl fmt::Display for SchemaViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no schema violations");
        }

        for (index, violation) in self.0.iter().take(MAX_DISPLAYED_VIOLATIONS).enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }

        let rest = self.0.len().saturating_sub(MAX_DISPLAYED_VIOLATIONS);
        if rest > 0 {
            let noun = if rest == 1 { "violation" } else { "violations" };
            write!(f, "; and {rest} more {noun}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SchemaViolations {}

/// A `fmt::Write` target that keeps at most `max_chars` characters and fails
/// the write once the limit is reached, which stops formatting early.
struct BoundedText {
    text: String,
    chars: usize,
    max_chars: usize,
    truncated: bool,
}

impl BoundedText {
    const ELLIPSIS: &'static str = "...";

    fn new(max_chars: usize) -> Self {
        Self {
            text: String::new(),
            chars: 0,
            max_chars,
            truncated: false,
        }
    }

    /// Returns the text, ending in `...` when it was cut, and never longer
    /// than `max_chars` characters.
    fn finish(mut self) -> String {
        if self.truncated {
            for _ in 0..Self::ELLIPSIS.len() {
                self.text.pop();
            }
            self.text.push_str(Self::ELLIPSIS);
        }
        self.text
    }
}

impl fmt::Write for BoundedText {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        for character in part.chars() {
            if self.chars == self.max_chars {
                self.truncated = true;
                return Err(fmt::Error);
            }
            self.text.push(character);
            self.chars += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_keeps_short_text() {
        let mut text = BoundedText::new(10);
        write!(text, "abc").unwrap();

        assert_eq!(text.finish(), "abc");
    }

    #[test]
    fn bounded_text_cuts_long_text() {
        let mut text = BoundedText::new(10);
        let result = write!(text, "{}", "é".repeat(50));

        assert!(result.is_err());
        let finished = text.finish();
        assert_eq!(finished.chars().count(), 10);
        assert!(finished.ends_with("..."));
    }

    #[test]
    fn registry_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SchemaRegistry>();
    }
}
