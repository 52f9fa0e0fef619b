//! Decoding raw CloudEvents into typed events.

use serde_json::{Value, json};
use sessionfold_common::event::{DecodeProblem, Decoded, Decoder, EventKind};

fn booking_created() -> Value {
    json!({
        "specversion": "1.0", "id": "7f6c0d1e-3a52-4a8e-9d53-0c8f0f6a2b11",
        "source": "/services/bookings", "type": "booking.created",
        "subject": "user-0001", "time": "2026-11-02T08:15:00Z",
        "datacontenttype": "application/json",
        "data": {"version": 1, "bookingId": "bk-501", "classId": "cl-88",
                 "className": "Morning Hatha", "shaalaId": "sh-3", "shaalaName": "Lotus Shaala",
                 "teacherName": "A. Teacher", "startsAt": "2026-11-05T06:30:00Z",
                 "endsAt": "2026-11-05T07:30:00Z"}
    })
}

#[test]
fn every_valid_fixture_decodes_to_its_type() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events/valid");
    let decoder = Decoder::default();
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let declared: Value = serde_json::from_slice(&bytes).unwrap();
        match decoder.decode_structured(&bytes) {
            Ok(Decoded::Event(event)) => {
                assert_eq!(event.event_type(), declared["type"], "{}", path.display());
                assert_eq!(event.user_id, declared["subject"], "{}", path.display());
            }
            other => panic!("{} did not decode: {other:?}", path.display()),
        }
        count += 1;
    }
    assert!(count >= 17, "expected a fixture per type, found {count}");
}

#[test]
fn structured_event_decodes_typed_payload() {
    let bytes = serde_json::to_vec(&booking_created()).unwrap();
    let Decoded::Event(event) = Decoder::default().decode_structured(&bytes).unwrap() else {
        panic!("expected an event");
    };
    assert_eq!(event.version, 1);
    let EventKind::BookingCreated(created) = event.kind else {
        panic!("expected booking.created");
    };
    assert_eq!(created.booking_id, "bk-501");
    assert_eq!(created.teacher_name.as_deref(), Some("A. Teacher"));
}

#[test]
fn binary_mode_event_decodes_from_headers() {
    let event = booking_created();
    let headers: Vec<(String, Vec<u8>)> = ["specversion", "id", "source", "type", "subject", "time"]
        .iter()
        .map(|name| {
            (
                format!("ce_{name}"),
                event[name].as_str().unwrap().as_bytes().to_vec(),
            )
        })
        .collect();
    let payload = serde_json::to_vec(&event["data"]).unwrap();
    let decoded = Decoder::default()
        .decode_binary(headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())), &payload)
        .unwrap();
    assert!(matches!(decoded, Decoded::Event(event) if event.id == "7f6c0d1e-3a52-4a8e-9d53-0c8f0f6a2b11"));
}

#[test]
fn binary_mode_without_specversion_is_rejected() {
    let error = Decoder::default()
        .decode_binary([("ce_id", b"e-1".as_slice())], b"{}")
        .unwrap_err();
    assert_eq!(error.event_id.as_deref(), Some("e-1"));
    assert!(matches!(
        error.problem,
        DecodeProblem::MissingHeader("ce_specversion")
    ));
}

#[test]
fn unknown_type_is_skipped_not_rejected() {
    let mut event = booking_created();
    event["type"] = json!("booking.waitlisted");
    let decoded = Decoder::default().decode_value(event).unwrap();
    assert!(matches!(decoded, Decoded::UnknownType { event_type, .. } if event_type == "booking.waitlisted"));
}

#[test]
fn ends_before_start_names_event_and_field() {
    let mut event = booking_created();
    event["data"]["endsAt"] = json!("2026-11-05T06:00:00Z");
    let error = Decoder::default().decode_value(event).unwrap_err();
    assert_eq!(
        error.event_id.as_deref(),
        Some("7f6c0d1e-3a52-4a8e-9d53-0c8f0f6a2b11")
    );
    assert_eq!(error.user_id.as_deref(), Some("user-0001"));
    let text = error.to_string();
    assert!(text.contains("/data/endsAt"), "{text}");
}

#[test]
fn schema_violation_names_event_and_field() {
    let mut event = booking_created();
    event["data"]["startsAt"] = json!("next tuesday");
    let error = Decoder::default().decode_value(event).unwrap_err();
    assert_eq!(error.code(), "invalid_data");
    let text = error.to_string();
    assert!(text.contains("7f6c0d1e"), "{text}");
    assert!(text.contains("/data/startsAt"), "{text}");
}

#[test]
fn not_json_is_rejected_without_panic() {
    let error = Decoder::default()
        .decode_structured(b"{\"specversion\": ")
        .unwrap_err();
    assert_eq!(error.code(), "not_json");
    assert_eq!(error.event_id, None);
}

#[test]
fn oversize_record_is_rejected_before_parsing() {
    let error = Decoder::new(64).decode_structured(&[b' '; 65]).unwrap_err();
    assert!(matches!(
        error.problem,
        DecodeProblem::TooLarge { size: 65, max: 64 }
    ));
}

#[test]
fn non_object_event_is_rejected() {
    let error = Decoder::default().decode_structured(b"[1, 2]").unwrap_err();
    assert_eq!(error.code(), "invalid_envelope");
}

#[test]
fn event_time_in_the_future_is_rejected() {
    let mut event = booking_created();
    event["time"] = json!("2099-01-01T00:00:00Z");
    let error = Decoder::default().decode_value(event).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("/time"), "{text}");
    assert!(text.contains("in the future"), "{text}");
}
