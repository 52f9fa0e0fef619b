//! The command line of `sessionfold-api`, shared by its binary and by the
//! copy the cross-process tests build.

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
        #[arg(long, default_value = "127.0.0.1:4001", value_parser = crate::config::parse_listen)]
        listen: SocketAddr,
        /// NDJSON CloudEvents to project at start (`-` for stdin) instead of the demo dataset.
        #[arg(long)]
        events: Option<PathBuf>,
    },
    /// Run the production API against Redis, configured from the environment.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:4001", value_parser = crate::config::parse_listen)]
        listen: SocketAddr,
    },
    /// Print an HS256 token signed with JWT_SECRET (with JWT_ISSUER and the
    /// first JWT_AUDIENCE), valid for 12 hours: for trying `serve` by hand.
    Token {
        /// The user id (`sub` claim).
        #[arg(long)]
        user: String,
        /// Token version (`tv` claim).
        #[arg(long, default_value_t = 0)]
        tv: u64,
    },
}

/// Runs the whole program: logging, arguments, the command, the exit status.
pub async fn main() -> ExitCode {
    if let Err(message) = crate::telemetry::init() {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev { listen, events } => crate::run::dev(listen, events).await,
        Command::Serve { listen } => crate::run::serve(listen).await,
        Command::Token { user, tv } => crate::run::print_token(&user, tv),
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
