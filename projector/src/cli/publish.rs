//! `publish`: produce NDJSON CloudEvents to a Kafka topic.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use sessionfold_common::config::Env;

use crate::kafka::config::brokers_from_env;
use crate::kafka::publish::{self, PublishMode};

/// Produces NDJSON CloudEvents to a topic, keyed by `subject`. Reads
/// `KAFKA_BROKERS` from the environment.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Send binary-mode CloudEvents (attributes in `ce_*` headers, `data` as
    /// the value) instead of structured mode (the whole event as the value).
    #[arg(long)]
    pub binary: bool,
    /// NDJSON file with one CloudEvent per line; `-` reads standard input.
    pub file: PathBuf,
}

/// Publishes the file and prints a summary. Fails, after sending every
/// valid line, when any line was skipped or not acknowledged.
pub async fn execute(args: PublishArgs) -> anyhow::Result<()> {
    let mut env = Env::from_process();
    let brokers = brokers_from_env(&mut env);
    env.finish()?;

    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = File::open(&args.file).with_context(|| format!("open {}", args.file.display()))?;
        Box::new(BufReader::new(file))
    };
    let mode = if args.binary {
        PublishMode::Binary
    } else {
        PublishMode::Structured
    };

    let producer = publish::producer(&brokers).context("create the Kafka producer")?;
    let report = publish::publish(&producer, &args.topic, mode, input)
        .await
        .with_context(|| format!("read {}", args.file.display()))?;

    for problem in &report.skipped {
        eprintln!(
            "{}:{}: skipped: {}",
            args.file.display(),
            problem.line,
            problem.reason
        );
    }
    for problem in &report.failed {
        eprintln!(
            "{}:{}: not delivered: {}",
            args.file.display(),
            problem.line,
            problem.reason
        );
    }
    println!(
        "published {} events to {} ({} lines skipped, {} not delivered)",
        report.sent,
        args.topic,
        report.skipped.len(),
        report.failed.len()
    );
    if !report.is_complete() {
        anyhow::bail!(
            "{} lines skipped and {} not delivered; see the lines listed above",
            report.skipped.len(),
            report.failed.len()
        );
    }
    Ok(())
}
