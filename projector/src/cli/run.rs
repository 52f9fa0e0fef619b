//! `run`: consume events and keep the projection store up to date.
//!
//! Settings come from the environment: the Kafka variables of
//! [`KafkaConfig::from_env`], the Redis variables of
//! [`RedisConfig::from_env`] and the render options of
//! [`render_options`]. Every invalid variable is reported at once.
//!
//! SIGTERM or Ctrl-C stops taking new batches; the batch in hand is
//! finished and committed, the consumer leaves its group, and the process
//! exits 0. A second signal exits at once with status 130 (nothing is lost:
//! uncommitted records are replayed by the next consumer).

use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use sessionfold_common::config::{Env, render_options};
use sessionfold_common::store::{ProjectionStore, RedisConfig, RedisStore};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::engine::Projector;
use crate::kafka::{KafkaConfig, KafkaDeadLetters, KafkaSource};
use crate::pipeline;

/// The event source of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// Kafka topics, as one member of a consumer group.
    Kafka,
    /// MongoDB change streams.
    Mongo,
}

/// Consumes events and keeps the projection up to date.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Event source to consume.
    #[arg(long, value_enum, default_value_t = SourceKind::Kafka)]
    pub source: SourceKind,
}

pub async fn execute(args: RunArgs) -> anyhow::Result<()> {
    match args.source {
        SourceKind::Kafka => run_kafka().await,
        SourceKind::Mongo => super::run_mongo::run_mongo().await,
    }
}

async fn run_kafka() -> anyhow::Result<()> {
    let mut env = Env::from_process();
    let kafka = KafkaConfig::from_env(&mut env);
    let redis = RedisConfig::from_env(&mut env);
    let options = render_options(&mut env);
    env.finish()?;

    let store: Arc<dyn ProjectionStore> =
        Arc::new(RedisStore::new(redis.clone()).context("configure the Redis projection store")?);
    let projector = Projector::new(store, options);
    let mut source = KafkaSource::new(&kafka)?;
    let dead_letters = KafkaDeadLetters::new(&kafka)?;

    info!(
        brokers = %kafka.brokers,
        topics = %kafka.topics.join(","),
        group_id = %kafka.group_id,
        dead_letter_topic = %kafka.dead_letter_topic,
        batch_size = kafka.batch_size,
        batch_wait_ms = kafka.batch_wait.as_millis() as u64,
        redis = %redis.addresses().join(","),
        "projector starting"
    );

    let (stop, stopped) = watch::channel(false);
    let signals = tokio::spawn(watch_signals(stop));

    let result = pipeline::run(&mut source, &projector, &dead_letters, kafka.batch_size, stopped).await;
    signals.abort();

    // Leave the group even after a failure, so the partitions move to
    // another consumer at once instead of after the session timeout.
    source.close().await;
    dead_letters.flush().await;

    match result {
        Ok(report) => {
            info!(?report, "projector stopped");
            Ok(())
        }
        Err(err) => {
            error!(error = %err, "projector stopped after an error; uncommitted records will be consumed again");
            Err(err.into())
        }
    }
}

/// Sets `stop` on the first SIGTERM or Ctrl-C; exits the process on the
/// second.
pub(super) async fn watch_signals(stop: watch::Sender<bool>) {
    let first = wait_for_signal().await;
    info!(signal = first, "stop requested; finishing the batch in hand");
    // The send fails only when the pipeline has ended and dropped the
    // receiver, so there is nothing left to stop.
    let _ = stop.send(true);

    let second = wait_for_signal().await;
    warn!(
        signal = second,
        "second stop request; exiting without finishing the batch"
    );
    std::process::exit(130);
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(err) => {
            error!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the projector cleanly");
            return wait_for_ctrl_c().await;
        }
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        name = wait_for_ctrl_c() => name,
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    wait_for_ctrl_c().await
}

async fn wait_for_ctrl_c() -> &'static str {
    if let Err(err) = tokio::signal::ctrl_c().await {
        error!(error = %err, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
    "SIGINT"
}
