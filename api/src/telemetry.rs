//! Logging setup: `RUST_LOG` filters (default `info`), `LOG_FORMAT` is
//! `text` (default) or `json` for JSON lines.

use tracing_subscriber::EnvFilter;

/// Installs the log subscriber; `Err` names an invalid `LOG_FORMAT` or
/// `RUST_LOG`, and start-up stops.
pub fn init() -> Result<(), String> {
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        None | Some("") | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(format!("invalid LOG_FORMAT={other:?}: expected text or json")),
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .map_err(|err| format!("invalid RUST_LOG={directives:?}: {err}"))?,
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already set (tests) is fine.
    drop(result);
    Ok(())
}
