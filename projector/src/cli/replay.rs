//! `sessionfold-projector replay FILE`: folds an NDJSON file of CloudEvents
//! into the configured projection store (Redis), through the same pipeline
//! as `run`. Replaying events the store already holds changes nothing.

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sessionfold_common::config::{Env, render_options};
use sessionfold_common::event::Decoder;
use sessionfold_common::event::decode::DEFAULT_MAX_EVENT_BYTES;
use sessionfold_common::store::{ProjectionStore, RedisConfig, RedisStore};
use tokio::sync::watch;
use tracing::info;

use crate::Projector;
use crate::dead_letter::MemoryDeadLetters;
use crate::file_source::FileSource;
use crate::ndjson;
use crate::pipeline::{self, DEFAULT_BATCH_SIZE};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// NDJSON file of CloudEvents, or `-` for stdin.
    pub file: PathBuf,
}

pub async fn execute(args: ReplayArgs) -> anyhow::Result<()> {
    let mut env = Env::from_process();
    let redis = RedisConfig::from_env(&mut env);
    let render = render_options(&mut env);
    env.finish()?;

    let decoder = Decoder::new(DEFAULT_MAX_EVENT_BYTES);
    let records = if args.file.as_os_str() == "-" {
        ndjson::read_records(std::io::stdin().lock(), "stdin", &decoder)
            .context("reading events from stdin")?
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open events file {}", args.file.display()))?;
        let name = args.file.display().to_string();
        ndjson::read_records(BufReader::new(file), &name, &decoder)
            .with_context(|| format!("reading events file {}", args.file.display()))?
    };
    info!(records = records.len(), file = %args.file.display(), "replaying events");

    let store: Arc<dyn ProjectionStore> =
        Arc::new(RedisStore::new(redis).context("configure the Redis projection store")?);
    let projector = Projector::new(store, render);
    let dead_letters = MemoryDeadLetters::new(10_000);
    let (_keep_running, shutdown) = watch::channel(false);
    let mut source = FileSource::new(records);
    let report = pipeline::run(
        &mut source,
        &projector,
        &dead_letters,
        DEFAULT_BATCH_SIZE,
        shutdown,
    )
    .await?;

    let rejected = dead_letters.list();
    println!(
        "replayed {} events: {} applied, {} stale or duplicate, {} users written, {} skipped (unknown type), {} rejected",
        report.projection.applied + report.projection.stale + report.projection.dropped_for_deleted_user,
        report.projection.applied,
        report.projection.stale,
        report.projection.users_written,
        report.unknown_types,
        rejected.len()
    );
    for letter in &rejected {
        println!("  rejected {}: {}", letter.origin, letter.reason);
    }
    if !rejected.is_empty() {
        anyhow::bail!("{} events were rejected; see the lines above", rejected.len());
    }
    Ok(())
}
