//! Tests of the embedded event schemas against the fixtures in
//! `tests/fixtures/events`.
//!
//! `valid/` contains complete CloudEvents that must pass envelope and data
//! validation. Each file in `invalid/` is `{"expect": {"path", "contains"},
//! "event": {...}}`: the event must fail with a violation at `path` whose
//! message contains `contains`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sessionfold_common::event::schema::{
    MAX_DISPLAYED_VIOLATIONS, MAX_MESSAGE_CHARS, SchemaRegistry, SchemaViolation, SchemaViolations,
    schema_text,
};

fn fixture_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(kind)
}

/// Reads every `*.json` file of one fixture folder, sorted by file name.
fn read_fixtures(kind: &str) -> Vec<(String, Value)> {
    let dir = fixture_dir(kind);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("failed to read fixture folder {}: {err}", dir.display()))
        .map(|entry| entry.expect("failed to read fixture folder entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();

    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("failed to read fixture {name}: {err}"));
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("fixture {name} is not valid JSON: {err}"));
            (name, value)
        })
        .collect()
}

fn registry() -> &'static SchemaRegistry {
    SchemaRegistry::global()
}

#[test]
fn registry_compiles_every_schema() {
    let registry = SchemaRegistry::new();

    assert_eq!(registry.known_types().count(), 17);
}

#[test]
fn known_types_match_contract() {
    let expected = [
        "user.created",
        "user.profile_updated",
        "user.preferences_changed",
        "user.role_changed",
        "user.verified",
        "user.deactivated",
        "user.reactivated",
        "user.sessions_revoked",
        "user.deleted",
        "booking.created",
        "booking.rescheduled",
        "booking.cancelled",
        "booking.completed",
        "subscription.activated",
        "subscription.renewed",
        "subscription.cancelled",
        "subscription.expired",
    ];

    let known: Vec<&str> = registry().known_types().collect();

    assert_eq!(known, expected);
}

#[test]
fn global_registry_is_shared() {
    assert!(std::ptr::eq(SchemaRegistry::global(), SchemaRegistry::global()));
}

#[test]
fn schema_texts_carry_id_and_version() {
    let envelope: Value = serde_json::from_str(schema_text("envelope").unwrap()).unwrap();
    assert_eq!(
        envelope["$id"],
        "https://sessionfold.dev/schemas/v1/envelope.json"
    );
    assert!(envelope["description"].is_string());

    for event_type in registry().known_types() {
        let text = schema_text(event_type).unwrap_or_else(|| panic!("no schema text for {event_type}"));
        let schema: Value = serde_json::from_str(text).unwrap();

        let expected_id = format!("https://sessionfold.dev/schemas/v1/{event_type}.json");
        assert_eq!(schema["$id"], expected_id.as_str(), "$id of {event_type}");
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "$schema of {event_type}"
        );
        assert!(
            schema["description"].is_string(),
            "{event_type} has no description"
        );
        let required = schema["required"].as_array().unwrap();
        assert!(
            required.contains(&json!("version")),
            "{event_type} does not require version"
        );
    }
}

#[test]
fn schema_text_accepts_file_names() {
    assert_eq!(
        schema_text("booking.created.json"),
        schema_text("booking.created")
    );
    assert_eq!(schema_text("envelope.json"), schema_text("envelope"));
    assert!(schema_text("booking.created").is_some());
}

#[test]
fn schema_text_of_unknown_name_is_none() {
    assert_eq!(schema_text("booking.moved"), None);
    assert_eq!(schema_text(""), None);
    assert_eq!(schema_text("../envelope"), None);
}

#[test]
fn valid_fixtures_pass() {
    let fixtures = read_fixtures("valid");
    assert!(!fixtures.is_empty(), "no valid fixtures found");

    let mut failures = Vec::new();
    for (name, event) in &fixtures {
        if let Err(violations) = registry().validate_envelope(event) {
            failures.push(format!("{name}: envelope: {violations}"));
            continue;
        }

        let event_type = event["type"].as_str().unwrap();
        match registry().validate_data(event_type, &event["data"]) {
            Ok(Some(())) => {}
            Ok(None) => failures.push(format!("{name}: type {event_type} is unknown")),
            Err(violations) => failures.push(format!("{name}: data: {violations}")),
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_fixture_names_match_types() {
    for (name, event) in read_fixtures("valid") {
        let event_type = event["type"].as_str().unwrap();
        let matches = name == format!("{event_type}.json") || name.starts_with(&format!("{event_type}."));

        assert!(matches, "fixture {name} has type {event_type}");
    }
}

#[test]
fn every_known_type_has_valid_fixture() {
    let covered: BTreeSet<String> = read_fixtures("valid")
        .into_iter()
        .map(|(_, event)| event["type"].as_str().unwrap().to_owned())
        .collect();

    let missing: Vec<&str> = registry()
        .known_types()
        .filter(|event_type| !covered.contains(*event_type))
        .collect();

    assert!(missing.is_empty(), "types without a valid fixture: {missing:?}");
}

#[test]
fn invalid_fixtures_fail_at_expected_path() {
    let fixtures = read_fixtures("invalid");
    assert!(!fixtures.is_empty(), "no invalid fixtures found");

    let mut failures = Vec::new();
    for (name, fixture) in &fixtures {
        let expected_path = fixture["expect"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: expect.path is missing"));
        let expected_text = fixture["expect"]["contains"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: expect.contains is missing"));

        let violations = match registry().validate_event(&fixture["event"]) {
            Ok(outcome) => {
                failures.push(format!("{name}: passed validation ({outcome:?})"));
                continue;
            }
            Err(violations) => violations,
        };

        // Each fixture breaks exactly one rule, so a second violation means
        // the rest of the fixture has gone stale.
        let [violation] = violations.0.as_slice() else {
            failures.push(format!("{name}: expected one violation, got {:?}", violations.0));
            continue;
        };
        if violation.path != expected_path || !violation.message.contains(expected_text) {
            failures.push(format!(
                "{name}: expected {expected_path:?} containing {expected_text:?}, got {violation:?}"
            ));
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_fixtures_cover_known_types() {
    for (name, fixture) in read_fixtures("invalid") {
        let event_type = fixture["event"]["type"].as_str().unwrap_or_default();

        assert!(
            registry().known_types().any(|known| known == event_type),
            "fixture {name} has unknown type {event_type:?}, so its data would be skipped"
        );
    }
}

#[test]
fn unknown_type_returns_none() {
    let data = json!({"version": 1, "nickname": "Pri"});

    let outcome = registry().validate_data("user.nickname_changed", &data);

    assert_eq!(outcome, Ok(None));
}

#[test]
fn unknown_type_event_returns_none() {
    let event = json!({
        "specversion": "1.0",
        "id": "0b7e43c4-6a0f-4c55-9d8c-2f3b1c1a9e21",
        "source": "/services/reviews",
        "type": "review.posted",
        "subject": "user-0001",
        "time": "2026-11-07T10:00:00Z",
        "data": {"reviewId": "rv-9", "stars": 5}
    });

    assert_eq!(registry().validate_event(&event), Ok(None));
}

#[test]
fn unknown_type_event_still_needs_valid_envelope() {
    let event = json!({
        "specversion": "1.0",
        "id": "0b7e43c4-6a0f-4c55-9d8c-2f3b1c1a9e22",
        "source": "/services/reviews",
        "type": "review.posted",
        "time": "2026-11-07T10:00:00Z",
        "data": {}
    });

    let violations = registry().validate_event(&event).unwrap_err();

    assert_eq!(violations.0[0].path, "");
    assert!(violations.0[0].message.contains("subject"));
}

#[test]
fn envelope_accepts_extension_attributes() {
    let event = json!({
        "specversion": "1.0",
        "id": "5d1c6a52-8f0e-4b8e-a0a4-0f5d7c1f6e33",
        "source": "/services/bookings",
        "type": "booking.completed",
        "subject": "user-0002",
        "time": "2026-11-06T19:20:00Z",
        "partitionkey": "user-0002",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "data": {"version": 2, "bookingId": "bk-503"}
    });

    assert_eq!(registry().validate_event(&event), Ok(Some(())));
}

#[test]
fn data_accepts_unknown_fields() {
    let data = json!({
        "version": 2,
        "subscriptionId": "sub-77",
        "cancelledBy": "user-0001",
        "refund": {"amount": 1200, "currency": "INR"}
    });

    let outcome = registry().validate_data("subscription.cancelled", &data);

    assert_eq!(outcome, Ok(Some(())));
}

#[test]
fn date_time_format_is_enforced() {
    let data = json!({
        "version": 2,
        "bookingId": "bk-501",
        "startsAt": "next Tuesday",
        "endsAt": "2026-11-06T07:30:00Z"
    });

    let violations = registry()
        .validate_data("booking.rescheduled", &data)
        .unwrap_err();

    assert_eq!(violations.0.len(), 1);
    assert_eq!(violations.0[0].path, "/data/startsAt");
    assert!(violations.0[0].message.contains("date-time"));
}

#[test]
fn profile_update_accepts_single_null() {
    let data = json!({"version": 4, "avatarUrl": null});

    let outcome = registry().validate_data("user.profile_updated", &data);

    assert_eq!(outcome, Ok(Some(())));
}

#[test]
fn data_paths_are_relative_to_envelope() {
    let data = json!({"version": 2, "email": 42});

    let violations = registry()
        .validate_data("user.profile_updated", &data)
        .unwrap_err();

    assert_eq!(violations.0[0].path, "/data/email");
    assert!(violations.to_string().starts_with("/data/email: "));
}

#[test]
fn root_violation_displays_envelope() {
    let violations = registry().validate_envelope(&json!("not an event")).unwrap_err();

    assert_eq!(violations.0[0].path, "");
    assert!(violations.to_string().starts_with("(envelope): "));
}

#[test]
fn messages_hide_offending_value() {
    let email = format!("{}@", "x".repeat(30));
    let data = json!({"version": 2, "email": email});

    let violations = registry()
        .validate_data("user.profile_updated", &data)
        .unwrap_err();

    assert!(!violations.to_string().contains(&email));
    assert!(violations.0[0].message.contains("does not match"));
}

#[test]
fn violations_are_capped() {
    let huge = "x".repeat(100_000);
    let data = json!({
        "version": huge,
        "bookingId": [huge],
        "classId": {"huge": huge},
        "className": 7,
        "shaalaId": null,
        "shaalaName": false,
        "teacherName": 3.5,
        "startsAt": huge,
        "endsAt": huge
    });

    let violations = registry().validate_data("booking.created", &data).unwrap_err();
    let text = violations.to_string();

    assert!(violations.0.len() > MAX_DISPLAYED_VIOLATIONS);
    let rest = violations.0.len() - MAX_DISPLAYED_VIOLATIONS;
    assert!(text.ends_with(&format!("; and {rest} more violations")), "{text}");
    assert_eq!(text.matches("; ").count(), MAX_DISPLAYED_VIOLATIONS);
    assert!(text.len() < 1_000, "display is {} bytes", text.len());
    for violation in &violations.0 {
        assert!(violation.message.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(!violation.message.contains("xxxx"));
    }
}

#[test]
fn display_joins_path_and_message() {
    let violations = SchemaViolations(vec![
        SchemaViolation {
            path: "/data/name".to_owned(),
            message: "value is shorter than 1 character".to_owned(),
        },
        SchemaViolation {
            path: "/data".to_owned(),
            message: "\"bookingId\" is a required property".to_owned(),
        },
    ]);

    assert_eq!(
        violations.to_string(),
        "/data/name: value is shorter than 1 character; /data: \"bookingId\" is a required property"
    );
}

#[test]
fn single_extra_violation_is_singular() {
    let violation = SchemaViolation {
        path: "/id".to_owned(),
        message: "value is shorter than 1 character".to_owned(),
    };
    let violations = SchemaViolations(vec![violation; MAX_DISPLAYED_VIOLATIONS + 1]);

    assert!(violations.to_string().ends_with("; and 1 more violation"));
}

#[test]
fn violations_are_std_errors() {
    let violations = registry().validate_envelope(&json!({})).unwrap_err();
    let error: Box<dyn std::error::Error + Send + Sync> = Box::new(violations);

    assert!(error.to_string().contains("is a required property"));
}
