//! `run --source mongo`: keep the projection up to date from a MongoDB
//! change stream instead of Kafka.
//!
//! Settings: `MONGODB_URI` and `MONGODB_DATABASE`, the Redis variables of
//! `RedisConfig::from_env` (the projection store, which also keeps the
//! resume token) and the render options. The resume token of database `D`
//! is stored under `sf:v1:resume:mongo-D`. Shutdown works as for Kafka: the
//! batch in hand is finished and its token stored.

use std::sync::Arc;

use anyhow::Context;
use sessionfold_common::config::{Env, render_options};
use sessionfold_common::mongo::MongoConfig;
use sessionfold_common::mongo::config::redact_uri;
use sessionfold_common::store::{ProjectionStore, RedisConfig, RedisStore};
use tokio::sync::watch;
use tracing::{error, info};

use crate::engine::Projector;
use crate::mongo_stream::{LogDeadLetters, MongoChangeSource, RedisCheckpoints};
use crate::pipeline::{self, DEFAULT_BATCH_SIZE};

/// Returns the name under which a database's stream keeps its resume token.
pub fn stream_name(database: &str) -> String {
    format!("mongo-{database}")
}

pub async fn run_mongo() -> anyhow::Result<()> {
    let mut env = Env::from_process();
    let mongo = MongoConfig::from_env(&mut env);
    let redis = RedisConfig::from_env(&mut env);
    let options = render_options(&mut env);
    if mongo.is_none() {
        env.fail(
            "MONGODB_URI",
            "",
            "a MongoDB connection string to a replica set; --source mongo needs one",
        );
    }
    env.finish()?;
    let mongo = mongo.expect("checked above");

    let database = mongo
        .connect()
        .await
        .with_context(|| format!("cannot connect to MongoDB at {}", redact_uri(&mongo.uri)))?;
    let store: Arc<dyn ProjectionStore> =
        Arc::new(RedisStore::new(redis.clone()).context("configure the Redis projection store")?);
    let projector = Projector::new(store, options);
    let checkpoints = Arc::new(RedisCheckpoints::new(redis.clone()));
    let stream = stream_name(&mongo.database);
    let mut source = MongoChangeSource::start(database, &stream, checkpoints).await?;
    let dead_letters = LogDeadLetters::default();

    info!(
        mongodb = %redact_uri(&mongo.uri),
        database = %mongo.database,
        stream = %stream,
        redis = %redis.addresses().join(","),
        "projector starting on the MongoDB change stream"
    );
    let (stop, stopped) = watch::channel(false);
    let signals = tokio::spawn(super::run::watch_signals(stop));
    let result = pipeline::run(
        &mut source,
        &projector,
        &dead_letters,
        DEFAULT_BATCH_SIZE,
        stopped,
    )
    .await;
    signals.abort();

    match result {
        Ok(report) => {
            info!(?report, dead_letters = dead_letters.count(), "projector stopped");
            Ok(())
        }
        Err(err) => {
            error!(error = %err, "projector stopped after an error; changes after the stored token will be read again");
            Err(err.into())
        }
    }
}
