//! Shared application state and the settings the handlers read.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sessionfold_common::permissions::PermissionTable;

use crate::session::SessionService;

/// Request-time settings of the session endpoint.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `SESSION_COOKIE_NAME`: cookie read when there is no Authorization header.
    pub cookie_name: String,
    /// `TOKEN_REFRESH_MARGIN`: `refreshAt` is this long before the token's `exp`.
    pub refresh_margin: Duration,
    /// `SESSION_CACHE_TTL`: clients may reuse a session response this long
    /// (`cacheExpiresAt`), unless a fact in it or the token expires sooner.
    pub client_cache_ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            cookie_name: "sf_session".to_owned(),
            refresh_margin: Duration::from_secs(300),
            client_cache_ttl: Duration::from_secs(300),
        }
    }
}

/// State shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub verifier: Arc<crate::auth::Authenticator>,
    pub sessions: Arc<SessionService>,
    /// Swapped atomically when the policy file is reloaded.
    pub permissions: Arc<ArcSwap<PermissionTable>>,
    pub settings: Arc<SessionSettings>,
    /// Present only in `dev` mode: enables the `/dev/*` routes.
    pub dev: Option<Arc<crate::dev::DevHandle>>,
    /// Present only in `dev` mode: mints tokens for `GET /dev/token`.
    pub dev_tokens: Option<Arc<crate::dev::TokenMinter>>,
    /// Data of the background endpoints; without it they answer 503.
    pub background: Option<Arc<crate::background::BackgroundService>>,
}
