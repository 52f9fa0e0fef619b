//! Process wiring for the `dev` and `serve` commands.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use chrono::Utc;
use sessionfold_common::config::Env;
use sessionfold_common::event::Decoder;
use sessionfold_common::jwt::TokenVerifier;
use sessionfold_common::mongo::{MongoBackgroundSource, MongoConfig, MongoSourceOfTruth};
use sessionfold_common::permissions::PermissionTable;
use sessionfold_common::source::SourceOfTruth;
use sessionfold_common::store::redis::RedisConfig;
use sessionfold_common::store::{MemoryStore, ProjectionStore, RedisStore};
use sessionfold_projector::Projector;
use sessionfold_projector::demo::{self, DEMO_USER_ID};
use sessionfold_projector::demo_background::EmbeddedBackgroundSource;
use sessionfold_projector::ndjson;
use sessionfold_projector::source::{RawRecord, Record};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::auth::Authenticator;
use crate::background::BackgroundService;
use crate::config::ApiConfig;
use crate::dev::{DevHandle, IngestReport};
use crate::session::{self, SessionService};
use crate::state::AppState;
use crate::{app, policy};

/// Runs `dev` mode until Ctrl-C or SIGTERM.
pub async fn dev(listen: SocketAddr, events: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = ApiConfig::from_process_env()?;
    let secret = match &config.jwt.secret {
        Some(secret) => secret.clone(),
        None => {
            // A fresh random secret per run: dev tokens never outlive the process.
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            config.jwt.secret = Some(secret.clone());
            secret
        }
    };

    let store: Arc<dyn ProjectionStore> = Arc::new(MemoryStore::new());
    let projector = Projector::new(Arc::clone(&store), config.render);
    let dev = DevHandle::start(projector);

    let report = match &events {
        Some(path) => ingest_file(&dev, path).await?,
        None => {
            let decoder = Decoder::default();
            let records = demo::demo_events(Utc::now())
                .into_iter()
                .enumerate()
                .map(|(index, event)| Record {
                    origin: format!("demo[{index}]"),
                    decoded: decoder.decode_value(event),
                    raw: RawRecord::default(),
                })
                .collect();
            dev.ingest(records).await
        }
    };
    print_ingest(&report, events.as_ref());

    let source: Arc<dyn SourceOfTruth> = Arc::clone(&dev.log) as Arc<dyn SourceOfTruth>;
    let demo_user = pick_demo_user(&dev);
    let state = build_state(&config, store, Some(source), Some(Arc::clone(&dev)))?;
    let dev_tokens = crate::dev::TokenMinter::new(&secret, &config.jwt);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;

    match demo_user {
        Some(user_id) => {
            let token = dev_tokens.mint(&user_id, 0);
            println!("\nsessionfold dev mode listening on http://{bound}");
            println!("demo user: {user_id}\n");
            println!("TOKEN={token}");
            println!("curl -H \"Authorization: Bearer $TOKEN\" http://{bound}/auth/session");
            println!(
                "curl -H \"Authorization: Bearer $TOKEN\" 'http://{bound}/auth/bookings/history?limit=5'\n"
            );
            println!(
                "More events: curl -H 'Content-Type: application/x-ndjson' --data-binary @events.ndjson http://{bound}/dev/events"
            );
            println!("Token for another user: curl 'http://{bound}/dev/token?user=ID'\n");
        }
        None => println!("\nsessionfold dev mode listening on http://{bound} (no user in the events yet)\n"),
    }

    let background = EmbeddedBackgroundSource::new(Arc::clone(&dev.log), Utc::now());
    let state = AppState {
        dev_tokens: Some(Arc::new(dev_tokens)),
        background: Some(BackgroundService::new(Arc::new(background), config.background)),
        ..state
    };
    serve_until_shutdown(listener, state).await
}

/// Runs the production API against Redis until Ctrl-C or SIGTERM. Every
/// configuration problem is reported at once and stops start-up.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let mut env = Env::from_process();
    let config = ApiConfig::from_env(&mut env);
    let redis = RedisConfig::from_env(&mut env);
    let mongo = MongoConfig::from_env(&mut env);
    env.finish()?;

    info!(redis = ?redis, mongo = ?mongo, "starting sessionfold api");
    let store: Arc<dyn ProjectionStore> =
        Arc::new(RedisStore::new(redis).context("invalid Redis configuration")?);
    // NOTE: without MONGODB_URI a missing projection is reported as an
    // unknown user, and the background endpoints return 503.
    let (source, background) = match &mongo {
        Some(mongo) => {
            // The client does not wait for the server (only a mongodb+srv URI
            // resolves DNS here), so an unreachable server fails requests, not start-up.
            let database = mongo.connect().await.context("invalid MongoDB configuration")?;
            let source: Arc<dyn SourceOfTruth> = Arc::new(MongoSourceOfTruth::new(
                database.clone(),
                config.render.recent_bookings_limit,
                config.critical_data_timeout,
            ));
            let background = MongoBackgroundSource::new(database, config.background.timeout);
            (
                Some(source),
                Some(BackgroundService::new(Arc::new(background), config.background)),
            )
        }
        None => {
            warn!(
                "MONGODB_URI is not set: no live assembly, so a user without a projected document \
                 gets 401 unknown_user, and the background endpoints answer 503"
            );
            (None, None)
        }
    };
    let mut state = build_state(&config, store, source, None)?;
    state.background = background;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    serve_until_shutdown(listener, state).await
}

/// Prints a token for `user` signed with `JWT_SECRET`.
pub fn print_token(user: &str, token_version: u64) -> anyhow::Result<()> {
    let config = ApiConfig::from_process_env()?;
    let Some(secret) = &config.jwt.secret else {
        anyhow::bail!("JWT_SECRET is not set; `token` signs HS256 tokens with it");
    };
    let minter = crate::dev::TokenMinter::new(secret, &config.jwt);
    println!("{}", minter.mint(user, token_version));
    Ok(())
}

/// Builds the shared state from configuration and starts its background
/// tasks (L1 invalidation, policy reload).
pub fn build_state(
    config: &ApiConfig,
    store: Arc<dyn ProjectionStore>,
    source: Option<Arc<dyn SourceOfTruth>>,
    dev: Option<Arc<DevHandle>>,
) -> anyhow::Result<AppState> {
    let verifier_config = config.jwt.verifier_config()?;
    let verifier = TokenVerifier::new(verifier_config).context(
        "invalid token verification settings (keys are numbered in this order: JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE)",
    )?;

    let policy = policy::load(&config.policy)?;
    let permissions = Arc::new(ArcSwap::from_pointee(PermissionTable::new(policy)));
    tokio::spawn(policy::reload_periodically(
        config.policy.clone(),
        Arc::clone(&permissions),
    ));

    let sessions = SessionService::new(
        store,
        source,
        config.render,
        config.critical_data_timeout,
        config.cache,
    );
    tokio::spawn(session::follow_invalidations(Arc::clone(&sessions)));

    Ok(AppState {
        verifier: Arc::new(Authenticator::new(
            verifier,
            config.jwt.leeway_secs,
            config.verified_token_cache_entries,
        )),
        sessions,
        permissions,
        settings: Arc::new(config.session.clone()),
        dev,
        dev_tokens: None,
        background: None,
    })
}

async fn serve_until_shutdown(listener: TcpListener, state: AppState) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    info!(%address, "sessionfold api listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    info!("sessionfold api stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received; shutting down"),
        () = terminate => info!("SIGTERM received; shutting down"),
    }
}

async fn ingest_file(dev: &DevHandle, path: &PathBuf) -> anyhow::Result<IngestReport> {
    let decoder = Decoder::default();
    let records = if path.as_os_str() == "-" {
        let stdin = std::io::stdin();
        ndjson::read_records(stdin.lock(), "stdin", &decoder).context("reading events from stdin")?
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open events file {}", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        ndjson::read_records(BufReader::new(file), &name, &decoder)
            .with_context(|| format!("reading events file {}", path.display()))?
    };
    Ok(dev.ingest(records).await)
}

fn print_ingest(report: &IngestReport, events: Option<&PathBuf>) {
    let from = events.map_or_else(
        || "the demo dataset".to_owned(),
        |path| path.display().to_string(),
    );
    println!(
        "projected {} events from {from}; {} skipped (unknown type), {} rejected",
        report.accepted,
        report.skipped.len(),
        report.rejected.len()
    );
    for letter in &report.rejected {
        println!("  rejected {}: {}", letter.origin, letter.reason);
    }
}

/// The demo user when the events have one, else the first user with a session.
fn pick_demo_user(dev: &DevHandle) -> Option<String> {
    let users = dev.log.user_ids();
    if users.iter().any(|id| id == DEMO_USER_ID) {
        return Some(DEMO_USER_ID.to_owned());
    }
    users.into_iter().find(|id| {
        let events = dev.log.events_for_user(id);
        sessionfold_common::fold::fold_all(Default::default(), &events).has_user()
    })
}
