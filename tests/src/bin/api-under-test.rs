//! The `sessionfold-api` program, built inside this package for the
//! cross-process tests (Cargo passes tests the path of a binary only when it
//! belongs to the tests' own package). Runs `sessionfold_api::cli::main`,
//! the same steps as `api/src/main.rs`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    sessionfold_api::cli::main().await
}
