//! `GET /healthz`: liveness for load balancers and compose health checks.

pub async fn get_health() -> &'static str {
    "ok"
}
