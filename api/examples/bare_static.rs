//! The throughput ceiling for HTTP benchmarks: a bare axum handler that
//! returns 2 KB of static bytes, no auth, no cache, no store.
//!
//! Run: `cargo run --release -p sessionfold-api --example bare_static -- 127.0.0.1:4090`

use axum::Router;
use axum::routing::get;

static BODY: [u8; 2048] = [b'x'; 2048];

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4090".to_owned());
    let app = Router::new().route("/auth/session", get(|| async { &BODY[..] }));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("bare_static listening on http://{address}");
    axum::serve(listener, app).await
}
