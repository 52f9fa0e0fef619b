//! The operator CLI: one file per subcommand.

pub mod demo;
pub mod migrate;
pub mod publish;
pub mod replay;
pub mod run;
pub mod run_mongo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::error;
use tracing_subscriber::EnvFilter;

pub use migrate::MigrateArgs;
pub use publish::PublishArgs;
pub use replay::ReplayArgs;
pub use run::RunArgs;

#[derive(Parser)]
#[command(
    name = "sessionfold-projector",
    version,
    about = "Folds change events into session documents, and rebuilds, replays and verifies projections"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Consume events and keep the projection up to date.
    Run(RunArgs),
    /// Produce NDJSON CloudEvents to a Kafka topic, keyed by `subject`.
    Publish(PublishArgs),
    /// Fold an NDJSON file of CloudEvents into the projection store.
    Replay(ReplayArgs),
    /// Print the demo dataset of `dev` mode as NDJSON.
    Demo,
    /// Apply pending MongoDB migrations (indexes, validators); `--dry-run` prints them.
    Migrate(MigrateArgs),
}

/// Logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` for JSON lines.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    drop(result);
}

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::execute(args).await,
        Command::Publish(args) => publish::execute(args).await,
        Command::Replay(args) => replay::execute(args).await,
        Command::Demo => demo::execute(),
        Command::Migrate(args) => migrate::execute(args).await,
    }
}

/// Runs the whole program: logging, arguments, the subcommand, and the exit
/// status. The end-to-end tests build their copy of the binary on this, so
/// it behaves like `sessionfold-projector` itself.
pub async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
