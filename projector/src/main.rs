//! `sessionfold-projector`: consumes change events into session documents,
//! and the operator commands around it.

use std::process::ExitCode;

use clap::Parser;
use sessionfold_projector::cli::{self, Cli};
use tracing::error;

#[tokio::main]
async fn main() -> ExitCode {
    cli::init_logging();
    let cli = Cli::parse();
    match cli::execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
