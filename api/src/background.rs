//! Loading background data (detailed profile, booking history,
//! notifications) for the routes in `routes::background`.
//!
//! Each response body is cached per user and query for
//! `USER_DATA_CACHE_TTL`, and concurrent misses for the same key share one
//! read (moka's `try_get_with`). Reads are bounded by
//! `NON_CRITICAL_DATA_TIMEOUT`; failures are never cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use serde::Serialize;
use sessionfold_common::background::{
    BackgroundSource, BookingHistoryQuery, NotificationQuery, ProfileDetails,
};
use sessionfold_common::config::Env;
use sessionfold_common::mongo::mapping::booking_status_name;
use sessionfold_common::source::SourceOfTruthError;
use tracing::{error, warn};

/// Settings of the background endpoints.
#[derive(Debug, Clone, Copy)]
pub struct BackgroundSettings {
    /// `NON_CRITICAL_DATA_TIMEOUT` (ms, default 5000): budget of one read.
    pub timeout: Duration,
    /// `USER_DATA_CACHE_TTL` (seconds, default 60; 0 disables the cache).
    pub cache_ttl: Duration,
    /// `USER_DATA_CACHE_MAX_BYTES` (default 32 MiB): bound on cached bodies.
    pub cache_max_bytes: u64,
}

impl Default for BackgroundSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(5000),
            cache_ttl: Duration::from_secs(60),
            cache_max_bytes: 32 * 1024 * 1024,
        }
    }
}

impl BackgroundSettings {
    pub fn from_env(env: &mut Env) -> Self {
        let defaults = Self::default();
        Self {
            timeout: env.millis("NON_CRITICAL_DATA_TIMEOUT", 5000, 1, 60_000),
            cache_ttl: env.seconds("USER_DATA_CACHE_TTL", 60, 86_400),
            cache_max_bytes: env.integer(
                "USER_DATA_CACHE_MAX_BYTES",
                defaults.cache_max_bytes,
                0,
                u64::MAX >> 1,
                "bytes",
            ),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackgroundError {
    #[error("timed out after {0} ms")]
    TimedOut(u64),
    /// The source failed or could not be reached; retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// The source returned data that cannot be served; retrying will not help.
    #[error("{0}")]
    InvalidData(String),
}

/// List that a cache entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    Profile,
    BookingHistory,
    Notifications,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Profile => "profile",
            Endpoint::BookingHistory => "booking_history",
            Endpoint::Notifications => "notifications",
        }
    }
}

/// User, endpoint and the query in canonical form.
type CacheKey = (String, Endpoint, String);

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub struct BackgroundCounters {
    /// Reads that reached the source (cache misses).
    pub source_reads: AtomicU64,
}

pub struct BackgroundService {
    source: Arc<dyn BackgroundSource>,
    timeout: Duration,
    cache: Option<Cache<CacheKey, Bytes>>,
    counters: BackgroundCounters,
}

impl BackgroundService {
    pub fn new(source: Arc<dyn BackgroundSource>, settings: BackgroundSettings) -> Arc<Self> {
        let cache = (!settings.cache_ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(settings.cache_max_bytes)
                .weigher(|key: &CacheKey, value: &Bytes| {
                    let size = key.0.len() + key.2.len() + value.len();
                    u32::try_from(size).unwrap_or(u32::MAX)
                })
                .time_to_live(settings.cache_ttl)
                .build()
        });
        Arc::new(Self {
            source,
            timeout: settings.timeout,
            cache,
            counters: BackgroundCounters::default(),
        })
    }

    pub fn counters(&self) -> &BackgroundCounters {
        &self.counters
    }

    /// Loads the detailed profile as JSON; an empty profile when none is stored.
    pub async fn profile(&self, user_id: &str) -> Result<Bytes, BackgroundError> {
        let key = (user_id.to_owned(), Endpoint::Profile, String::new());
        self.cached(key, async {
            let profile = self.source.profile_details(user_id).await?;
            Ok(to_json(
                &profile.unwrap_or_else(|| ProfileDetails::empty(user_id)),
            ))
        })
        .await
    }

    /// Loads one page of the booking history as JSON.
    pub async fn booking_history(
        &self,
        user_id: &str,
        query: &BookingHistoryQuery,
    ) -> Result<Bytes, BackgroundError> {
        let key = (user_id.to_owned(), Endpoint::BookingHistory, history_key(query));
        self.cached(key, async {
            let page = self.source.booking_history(user_id, query).await?;
            Ok(to_json(&page))
        })
        .await
    }

    /// Loads one page of notifications as JSON.
    pub async fn notifications(
        &self,
        user_id: &str,
        query: &NotificationQuery,
    ) -> Result<Bytes, BackgroundError> {
        let key = (
            user_id.to_owned(),
            Endpoint::Notifications,
            notification_key(query),
        );
        self.cached(key, async {
            let page = self.source.notifications(user_id, query).await?;
            Ok(to_json(&page))
        })
        .await
    }

    async fn cached(
        &self,
        key: CacheKey,
        load: impl Future<Output = Result<Bytes, SourceOfTruthError>>,
    ) -> Result<Bytes, BackgroundError> {
        let endpoint = key.1;
        let user_id = key.0.clone();
        let load = self.load_with_timeout(&user_id, endpoint, load);
        match &self.cache {
            None => load.await,
            Some(cache) => cache
                .try_get_with(key, load)
                .await
                .map_err(|error: Arc<BackgroundError>| (*error).clone()),
        }
    }

    async fn load_with_timeout(
        &self,
        user_id: &str,
        endpoint: Endpoint,
        load: impl Future<Output = Result<Bytes, SourceOfTruthError>>,
    ) -> Result<Bytes, BackgroundError> {
        self.counters.source_reads.fetch_add(1, Ordering::Relaxed);
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        match tokio::time::timeout(self.timeout, load).await {
            Ok(Ok(body)) => Ok(body),
            Err(_) | Ok(Err(SourceOfTruthError::TimedOut(_))) => {
                warn!(
                    user_id,
                    endpoint = endpoint.name(),
                    timeout_ms,
                    "background data read timed out"
                );
                Err(BackgroundError::TimedOut(timeout_ms))
            }
            Ok(Err(SourceOfTruthError::Unavailable(reason))) => {
                warn!(
                    user_id,
                    endpoint = endpoint.name(),
                    reason,
                    "background data source unavailable"
                );
                Err(BackgroundError::Unavailable(reason))
            }
            Ok(Err(invalid @ SourceOfTruthError::InvalidData { .. })) => {
                error!(user_id, endpoint = endpoint.name(), error = %invalid, "background data is invalid");
                Err(BackgroundError::InvalidData(invalid.to_string()))
            }
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(
        serde_json::to_vec(value).expect("background response serializes: strings, numbers and dates"),
    )
}

/// The canonical text of a history query: equal queries give equal keys.
fn history_key(query: &BookingHistoryQuery) -> String {
    let statuses: Vec<&str> = query
        .statuses
        .iter()
        .map(|status| booking_status_name(*status))
        .collect();
    format!(
        "limit={} after={} status={} from={} to={}",
        query.limit,
        query
            .after
            .as_ref()
            .map(|cursor| cursor.encode())
            .unwrap_or_default(),
        statuses.join(","),
        query
            .from
            .map(|at| at.timestamp_millis().to_string())
            .unwrap_or_default(),
        query
            .to
            .map(|at| at.timestamp_millis().to_string())
            .unwrap_or_default(),
    )
}

fn notification_key(query: &NotificationQuery) -> String {
    format!(
        "limit={} after={}",
        query.limit,
        query
            .after
            .as_ref()
            .map(|cursor| cursor.encode())
            .unwrap_or_default()
    )
}
