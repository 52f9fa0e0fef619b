//! Fold throughput: events folded per second, and render cost.
//!
//! Run: `cargo bench -p sessionfold-common --bench fold`

use chrono::{Duration, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sessionfold_common::event::{Decoded, Decoder, Event};
use sessionfold_common::fold::{FoldState, RenderOptions, apply, fold_all, render};

/// A realistic history for one user: created, profile changes, `bookings`
/// bookings with a third of them cancelled, and two subscriptions.
fn history(user_id: &str, bookings: usize) -> Vec<Event> {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap();
    let mut raw = vec![
        json!({"type": "user.created", "data": {"version": 1, "email": "asha@example.com", "name": "Asha", "role": "student"}}),
    ];
    raw.push(
        json!({"type": "user.preferences_changed", "data": {"version": 2, "preferences": {"theme": "dark"}}}),
    );
    for n in 0..bookings {
        let starts_at = t0 + Duration::hours(n as i64 * 7);
        raw.push(json!({"type": "booking.created", "data": {
            "version": 1, "bookingId": format!("bk-{n}"), "classId": "cl-88", "className": "Morning Hatha",
            "shaalaId": "sh-3", "shaalaName": "Lotus Shaala", "teacherName": "A. Iyer",
            "startsAt": starts_at.to_rfc3339(), "endsAt": (starts_at + Duration::hours(1)).to_rfc3339()}}));
        if n % 3 == 0 {
            raw.push(
                json!({"type": "booking.cancelled", "data": {"version": 2, "bookingId": format!("bk-{n}")}}),
            );
        }
    }
    for n in 0..2 {
        raw.push(json!({"type": "subscription.activated", "data": {
            "version": 1, "subscriptionId": format!("sub-{n}"), "planId": "plan-10", "planName": "10-Class Pack",
            "startsAt": t0.to_rfc3339(), "endsAt": (t0 + Duration::days(30)).to_rfc3339(), "classesRemaining": 5}}));
    }
    let decoder = Decoder::default();
    raw.into_iter()
        .enumerate()
        .map(|(i, mut event)| {
            event["specversion"] = json!("1.0");
            event["id"] = json!(format!("{user_id}-{i}"));
            event["source"] = json!("/bench");
            event["subject"] = json!(user_id);
            event["time"] = json!(t0.to_rfc3339());
            match decoder.decode_value(event).unwrap() {
                Decoded::Event(event) => event,
                other => panic!("{other:?}"),
            }
        })
        .collect()
}

fn bench_fold(c: &mut Criterion) {
    let mut group = c.benchmark_group("fold");
    for bookings in [5, 50] {
        let events = history("user-1", bookings);
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_with_input(BenchmarkId::new("events", bookings), &events, |b, events| {
            b.iter(|| fold_all(FoldState::default(), events));
        });
    }
    group.finish();

    // One new event onto an existing state, the projector's steady state:
    // deserialize, apply, render, serialize.
    let events = history("user-1", 20);
    let state = fold_all(FoldState::default(), &events[..events.len() - 1]);
    let stored = serde_json::to_vec(&state).unwrap();
    let last = events.last().unwrap().clone();
    let now = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap();
    let mut group = c.benchmark_group("projector_step");
    group.throughput(Throughput::Elements(1));
    group.bench_function("load_apply_render_store", |b| {
        b.iter(|| {
            let mut state: FoldState = serde_json::from_slice(&stored).unwrap();
            apply(&mut state, &last);
            let rendered = render("user-1", &state, now, &RenderOptions::default()).unwrap();
            let body = serde_json::to_vec(&rendered.body).unwrap();
            let state = serde_json::to_vec(&state).unwrap();
            (body, state)
        });
    });
    group.finish();

    let raw = serde_json::to_vec(&json!({
        "specversion": "1.0", "id": "7f6c0d1e-3a52-4a8e-9d53-0c8f0f6a2b11", "source": "/services/bookings",
        "type": "booking.created", "subject": "user-0001", "time": "2026-11-02T08:15:00Z",
        "data": {"version": 1, "bookingId": "bk-501", "classId": "cl-88", "className": "Morning Hatha",
                 "shaalaId": "sh-3", "shaalaName": "Lotus Shaala", "teacherName": "A. Teacher",
                 "startsAt": "2026-11-05T06:30:00Z", "endsAt": "2026-11-05T07:30:00Z"}
    }))
    .unwrap();
    let decoder = Decoder::default();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("structured_with_schema", |b| {
        b.iter(|| decoder.decode_structured(&raw).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_fold);
criterion_main!(benches);
