//! `/auth/session` in process: the whole router (token verification, L1
//! cache, response composition) driven with `oneshot`, no sockets.
//!
//! Run: `cargo bench -p sessionfold-api --bench session_handler`

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, header};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sessionfold_api::config::ApiConfig;
use sessionfold_api::{app, run::build_state};
use sessionfold_common::config::Env;
use sessionfold_common::event::{Decoded, Decoder};
use sessionfold_common::store::{MemoryStore, ProjectionStore};
use sessionfold_projector::Projector;
use sessionfold_projector::demo::{DEMO_USER_ID, demo_events};
use tower::ServiceExt;

const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

fn bench_session(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async {
        let mut env = Env::from_pairs(&[("JWT_SECRET", SECRET)]);
        let config = ApiConfig::from_env(&mut env);
        env.finish().unwrap();
        let store: Arc<dyn ProjectionStore> = Arc::new(MemoryStore::new());
        let decoder = Decoder::default();
        let events: Vec<_> = demo_events(chrono::Utc::now())
            .into_iter()
            .filter_map(|event| match decoder.decode_value(event) {
                Ok(Decoded::Event(event)) => Some(event),
                _ => None,
            })
            .collect();
        Projector::new(store.clone(), config.render)
            .project(&events)
            .await
            .unwrap();
        build_state(&config, store, None, None).unwrap()
    });

    let now = chrono::Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": DEMO_USER_ID, "exp": now + 86_400, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let verifier = state.verifier.clone();
    let sessions = state.sessions.clone();
    let router = app(state);

    // The parts of an L1 hit, to see where the time goes.
    let mut group = c.benchmark_group("auth_session_parts");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_hs256", |b| {
        b.iter(|| verifier.verifier().verify(&token).unwrap())
    });
    group.bench_function("verify_cached", |b| b.iter(|| verifier.verify(&token).unwrap()));
    group.bench_function("l1_lookup", |b| {
        b.to_async(&runtime)
            .iter(|| async { sessions.load(DEMO_USER_ID).await.unwrap() });
    });
    group.finish();

    let mut group = c.benchmark_group("auth_session_in_process");
    group.throughput(Throughput::Elements(1));
    group.bench_function("l1_hit", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/auth/session")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            to_bytes(response.into_body(), 1 << 20).await.unwrap()
        });
    });
    group.bench_function("anonymous", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/auth/session").body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            to_bytes(response.into_body(), 1 << 20).await.unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, bench_session);
criterion_main!(benches);
