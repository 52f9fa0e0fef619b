//! Loading session documents for the read path.
//!
//! Order of lookups: the L1 cache (moka, in process), then one read from the
//! projection store, then live assembly from the source of truth. Concurrent
//! misses for one user share a single load (moka's `try_get_with`), so a
//! cold user under load causes one store read or one assembly, not one per
//! request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use moka::future::Cache;
use sessionfold_common::document::StoredDocument;
use sessionfold_common::fold::{self, RenderOptions};
use sessionfold_common::source::SourceOfTruth;
use sessionfold_common::store::{DocumentWrite, ProjectionStore, ProjectionWrite, StoreError};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, error, info, warn};

/// A cached lookup: `None` records that the user has no session, so a flood
/// of requests for an unknown user does not reach the store each time.
pub type CachedSession = Option<Arc<StoredDocument>>;

/// L1 cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Upper bound on cached document bytes.
    pub max_bytes: u64,
    /// Safety-net lifetime of an entry: bounds staleness even if an
    /// invalidation message is lost.
    pub ttl: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("projection store and source of truth both unavailable")]
    Unavailable,
}

/// Counters exposed for tests and metrics.
#[derive(Debug, Default)]
pub struct SessionCounters {
    pub store_reads: AtomicU64,
    pub assemblies: AtomicU64,
    pub backfills: AtomicU64,
    pub rerenders: AtomicU64,
}

pub struct SessionService {
    store: Arc<dyn ProjectionStore>,
    source: Option<Arc<dyn SourceOfTruth>>,
    render_options: RenderOptions,
    assembly_timeout: Duration,
    /// `None` when `L1_CACHE_MAX_BYTES` is 0: every request reads the store.
    cache: Option<Cache<String, CachedSession>>,
    counters: SessionCounters,
}

impl SessionService {
    pub fn new(
        store: Arc<dyn ProjectionStore>,
        source: Option<Arc<dyn SourceOfTruth>>,
        render_options: RenderOptions,
        assembly_timeout: Duration,
        cache: CacheSettings,
    ) -> Arc<Self> {
        let cache = (cache.max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(cache.max_bytes)
                .weigher(|key: &String, value: &CachedSession| {
                    let size = key.len() + value.as_ref().map_or(16, |document| document.size());
                    u32::try_from(size).unwrap_or(u32::MAX)
                })
                .time_to_live(cache.ttl)
                .build()
        });
        Arc::new(Self {
            store,
            source,
            render_options,
            assembly_timeout,
            cache,
            counters: SessionCounters::default(),
        })
    }

    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    pub fn store(&self) -> &Arc<dyn ProjectionStore> {
        &self.store
    }

    /// Loads the session document of `user_id`, or `None` if the user has none.
    pub async fn load(&self, user_id: &str) -> Result<CachedSession, LoadError> {
        let Some(cache) = &self.cache else {
            return self.load_uncached(user_id).await;
        };
        if let Some(cached) = cache.get(user_id).await {
            match &cached {
                Some(document) if document.is_stale(Utc::now()) => {
                    cache.invalidate(user_id).await;
                }
                _ => return Ok(cached),
            }
        }
        let key = user_id.to_owned();
        cache
            .try_get_with(key, self.load_uncached(user_id))
            .await
            .map_err(|error: Arc<LoadError>| (*error).clone())
    }

    /// Drops one user from the L1 cache (an invalidation message arrived).
    pub async fn invalidate(&self, user_id: &str) {
        if let Some(cache) = &self.cache {
            cache.invalidate(user_id).await;
        }
    }

    pub fn invalidate_all(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    async fn load_uncached(&self, user_id: &str) -> Result<CachedSession, LoadError> {
        self.counters.store_reads.fetch_add(1, Ordering::Relaxed);
        match self.store.get_document(user_id).await {
            Ok(Some(bytes)) => match StoredDocument::decode(bytes) {
                Ok(document) if !document.is_stale(Utc::now()) => return Ok(Some(Arc::new(document))),
                Ok(_) => {
                    if let Some(document) = self.rerender(user_id).await {
                        return Ok(Some(document));
                    }
                }
                Err(err) => {
                    error!(user_id, error = %err, "stored session document is unreadable; assembling live");
                }
            },
            Ok(None) => debug!(user_id, "no projected session document; assembling live"),
            Err(err) => {
                warn!(user_id, error = %err, "projection store read failed; assembling live");
                return self.assemble(user_id, false).await;
            }
        }
        self.assemble(user_id, true).await
    }

    /// Renders a stale document again from its fold state and writes it
    /// back with compare-and-set. `None` when there is no fold state (a
    /// backfilled document) or the store fails.
    async fn rerender(&self, user_id: &str) -> Option<Arc<StoredDocument>> {
        self.counters.rerenders.fetch_add(1, Ordering::Relaxed);
        let stored = match self.store.load_states(&[user_id.to_owned()]).await {
            Ok(mut states) => states.pop().flatten()?,
            Err(err) => {
                warn!(user_id, error = %err, "cannot load fold state to refresh a stale document");
                return None;
            }
        };
        let state = sessionfold_projector::engine::decode_state(user_id, &stored.state);
        let now = Utc::now();
        let rendered = fold::render(user_id, &state, now, &self.render_options)?;
        let revision = stored.revision + 1;
        let document = StoredDocument::from_rendered(&rendered, revision, now);

        let write = ProjectionWrite {
            user_id: user_id.to_owned(),
            expected_revision: stored.revision,
            state: stored.state,
            document: DocumentWrite::Put(document.encode()),
        };
        // Losing this race is fine: the winner wrote a newer document.
        if let Err(err) = self.store.write_batch(&[write]).await {
            warn!(user_id, error = %err, "cannot write back the refreshed document");
        }
        Some(Arc::new(document))
    }

    /// Live assembly: fold state from the source of truth, rendered like a
    /// projection. With `backfill`, the result is stored if the store still
    /// has no document (create only).
    async fn assemble(&self, user_id: &str, backfill: bool) -> Result<CachedSession, LoadError> {
        let Some(source) = &self.source else {
            // Without a source of truth the projection is the only record:
            // a store that returned "no document" means no such user, and a
            // store that failed leaves nothing to serve.
            return if backfill {
                Ok(None)
            } else {
                Err(LoadError::Unavailable)
            };
        };
        self.counters.assemblies.fetch_add(1, Ordering::Relaxed);

        let state = match tokio::time::timeout(self.assembly_timeout, source.load_state(user_id)).await {
            Ok(Ok(Some(state))) => state,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(err)) => {
                error!(user_id, error = %err, "live assembly failed");
                return Err(LoadError::Unavailable);
            }
            Err(_) => {
                error!(
                    user_id,
                    timeout_ms = self.assembly_timeout.as_millis() as u64,
                    "live assembly timed out"
                );
                return Err(LoadError::Unavailable);
            }
        };
        let now = Utc::now();
        let Some(rendered) = fold::render(user_id, &state, now, &self.render_options) else {
            return Ok(None);
        };
        let document = StoredDocument::from_rendered(&rendered, 0, now);

        if backfill {
            self.backfill(user_id, document.encode()).await;
        }
        Ok(Some(Arc::new(document)))
    }

    async fn backfill(&self, user_id: &str, bytes: Bytes) {
        match self.store.backfill_document(user_id, bytes).await {
            Ok(true) => {
                self.counters.backfills.fetch_add(1, Ordering::Relaxed);
                info!(user_id, "backfilled session document from live assembly");
            }
            Ok(false) => debug!(user_id, "backfill skipped: a document appeared meanwhile"),
            Err(StoreError::Unavailable(reason)) | Err(StoreError::Protocol(reason)) => {
                warn!(
                    user_id,
                    reason, "backfill failed; serving the assembled document anyway"
                );
            }
        }
    }
}

/// Keeps the L1 cache in step with writes from every process sharing the
/// store. Runs for the life of the process.
///
/// When the invalidation stream is lost, the cache is kept, not cleared:
/// while the store is unreachable no process can write to it, so cached entries
/// stay true, and they are what keeps users served through the outage.
/// Messages may have been missed around the disconnect, so the whole cache
/// is dropped once the stream is back. Entry lifetime (`L1_CACHE_TTL_MS`)
/// bounds staleness in between.
pub async fn follow_invalidations(service: Arc<SessionService>) {
    let mut resubscribing = false;
    loop {
        let mut receiver = match service.store.subscribe_invalidations().await {
            Ok(receiver) => receiver,
            Err(err) => {
                warn!(error = %err, "cannot subscribe to invalidations; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                resubscribing = true;
                continue;
            }
        };
        if resubscribing {
            info!("invalidation stream restored; clearing the L1 cache");
            service.invalidate_all();
        }
        loop {
            match receiver.recv().await {
                Ok(user_id) => service.invalidate(&user_id).await,
                Err(RecvError::Lagged(missed)) => {
                    warn!(missed, "invalidation stream lagged; clearing the L1 cache");
                    service.invalidate_all();
                }
                Err(RecvError::Closed) => {
                    warn!("invalidation stream lost; resubscribing");
                    resubscribing = true;
                    break;
                }
            }
        }
    }
}
