//! The `sessionfold-projector` program, built inside this package for the
//! end-to-end tests: Cargo passes tests the path of a binary
//! (`CARGO_BIN_EXE_<name>`) only when the binary belongs to the tests' own
//! package. It runs `sessionfold_projector::cli::main`, the same steps as
//! `projector/src/main.rs`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    sessionfold_projector::cli::main().await
}
