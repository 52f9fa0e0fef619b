//! Live assembly from MongoDB: the [`SourceOfTruth`] the API falls back to
//! when a session is not projected or the projection store is down.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::Document;
use mongodb::options::{ReadPreference, SelectionCriteria};
use mongodb::{Collection, Database};

use super::queries::{self, FindSpec};
use super::{BOOKINGS, SUBSCRIPTIONS, USERS, invalid_data, mapping, read_error};
use crate::fold::FoldState;
use crate::source::{SourceOfTruth, SourceOfTruthError};

/// Returns the read preference of every read: a secondary when one is
/// available, which keeps this fallback load off the primary. The price is
/// replication lag, so a change made a moment ago may not be visible yet.
/// The projection corrects that when the change's event arrives.
pub fn read_preference() -> SelectionCriteria {
    SelectionCriteria::ReadPreference(ReadPreference::SecondaryPreferred { options: None })
}

/// Runs one `find` and collects every document. `max_time` bounds the work
/// on the server, so a query the caller gave up on does not keep running.
pub(crate) async fn find_all(
    collection: &Collection<Document>,
    spec: FindSpec,
    max_time: Duration,
) -> Result<Vec<Document>, mongodb::error::Error> {
    let mut find = collection
        .find(spec.filter)
        .projection(spec.projection)
        .max_time(max_time)
        .selection_criteria(read_preference());
    if let Some(sort) = spec.sort {
        find = find.sort(sort);
    }
    if let Some(limit) = spec.limit {
        find = find.limit(limit);
    }
    find.await?.try_collect().await
}

/// Runs one `findOne`.
pub(crate) async fn find_one(
    collection: &Collection<Document>,
    spec: FindSpec,
    max_time: Duration,
) -> Result<Option<Document>, mongodb::error::Error> {
    collection
        .find_one(spec.filter)
        .projection(spec.projection)
        .max_time(max_time)
        .selection_criteria(read_preference())
        .await
}

/// Assembles fold state from the `users`, `bookings` and `subscriptions`
/// collections, with the three reads in parallel.
pub struct MongoSourceOfTruth {
    database: Database,
    recent_bookings_limit: usize,
    max_time: Duration,
    clock: fn() -> DateTime<Utc>,
}

impl MongoSourceOfTruth {
    /// `recent_bookings_limit` is `RECENT_BOOKINGS_LIMIT`; `max_time` is
    /// the server-side bound of each query, normally the caller's own
    /// timeout (`CRITICAL_DATA_TIMEOUT`).
    pub fn new(database: Database, recent_bookings_limit: usize, max_time: Duration) -> Self {
        Self {
            database,
            recent_bookings_limit,
            max_time,
            clock: Utc::now,
        }
    }

    /// Replaces the wall clock that decides which subscriptions are live.
    pub fn with_clock(mut self, clock: fn() -> DateTime<Utc>) -> Self {
        self.clock = clock;
        self
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.database.collection(name)
    }
}

#[async_trait]
impl SourceOfTruth for MongoSourceOfTruth {
    async fn load_state(&self, user_id: &str) -> Result<Option<FoldState>, SourceOfTruthError> {
        let now = (self.clock)();
        let users = self.collection(USERS);
        let bookings = self.collection(BOOKINGS);
        let subscriptions = self.collection(SUBSCRIPTIONS);

        let read = |error: mongodb::error::Error| read_error(&error, self.max_time);
        let (user, booking_documents, subscription_documents) = tokio::try_join!(
            async {
                find_one(&users, queries::user_query(user_id), self.max_time)
                    .await
                    .map_err(read)
            },
            async {
                let spec = queries::recent_bookings_query(user_id, self.recent_bookings_limit);
                find_all(&bookings, spec, self.max_time).await.map_err(read)
            },
            async {
                let spec = queries::live_subscriptions_query(user_id, now);
                find_all(&subscriptions, spec, self.max_time).await.map_err(read)
            },
        )?;

        let Some(user) = user else {
            return Ok(None);
        };
        mapping::assemble(&user, &booking_documents, &subscription_documents)
            .map_err(|error| invalid_data(user_id, error))
    }
}
