//! The operator CLI: one file per subcommand.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
}

#[derive(clap::Args)]
pub struct RunArgs {}

/// Logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` for JSON lines.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    drop(result);
}

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(_) => anyhow::bail!("`run` is not implemented in this build"),
    }
}
