//! `sessionfold-api`: the session read API.
//!
//! - `dev`: API + in-process projector on embedded defaults.
//! - `serve`: the production API against Redis (see the README).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    sessionfold_api::cli::main().await
}
