//! `sessionfold-api`: the session read API.
//!
//! - `dev`: API + in-process projector on embedded defaults.
//! - `serve`: the production API against Redis (see the README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::error;

#[derive(Parser)]
#[command(
    name = "sessionfold-api",
    version,
    about = "Serves GET /auth/session from precomputed session documents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API with an in-process projector, in-memory store and demo data.
    Dev {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4001", value_parser = sessionfold_api::config::parse_listen)]
        listen: SocketAddr,
        /// NDJSON CloudEvents to project at start (`-` for stdin) instead of the demo dataset.
        #[arg(long)]
        events: Option<PathBuf>,
    },
    /// Run the production API against Redis, configured from the environment.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:4001", value_parser = sessionfold_api::config::parse_listen)]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    sessionfold_api::telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev { listen, events } => sessionfold_api::run::dev(listen, events).await,
        Command::Serve { listen } => sessionfold_api::run::serve(listen).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
