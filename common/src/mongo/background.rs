//! The background endpoints' data from MongoDB.

use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document};
use mongodb::{Collection, Database};

use super::fields::{FieldReader, MappingError};
use super::mapping::{BookingRecord, notification_from_document, profile_from_document};
use super::source::{find_all, find_one, read_preference};
use super::{BOOKINGS, NOTIFICATIONS, PROFILE_DETAILS, invalid_data, queries, read_error};
use crate::background::paging::{finish_booking_page, finish_notification_page};
use crate::background::{
    BackgroundSource, BookingHistoryQuery, BookingPage, NotificationPage, NotificationQuery, ProfileDetails,
};
use crate::source::SourceOfTruthError;

/// Reads profiles, booking history and notifications, one query each (the
/// notifications and their unread count share one aggregation).
pub struct MongoBackgroundSource {
    database: Database,
    max_time: Duration,
}

impl MongoBackgroundSource {
    /// `max_time` bounds each query on the server; normally
    /// `NON_CRITICAL_DATA_TIMEOUT`.
    pub fn new(database: Database, max_time: Duration) -> Self {
        Self { database, max_time }
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.database.collection(name)
    }

    fn read_error(&self, error: mongodb::error::Error) -> SourceOfTruthError {
        read_error(&error, self.max_time)
    }
}

/// Splits the single `$facet` result of the notifications pipeline into
/// the page documents and the unread count.
pub fn split_notification_facets(result: &Document) -> Result<(Vec<Document>, u64), MappingError> {
    let reader = FieldReader::new(NOTIFICATIONS, "userId", result);
    let error = |field: &str, problem: &str| reader.error(field, problem);
    let items = match result.get("items") {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|item| match item {
                Bson::Document(document) => Ok(document.clone()),
                _ => Err(error("items", "expected an array of documents")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(error("items", "missing from the $facet result")),
    };
    let unread_count = match result.get("unread") {
        Some(Bson::Array(counts)) => match counts.first() {
            // `$count` emits nothing when no document matched.
            None => 0,
            Some(Bson::Document(count)) => FieldReader::new(NOTIFICATIONS, "userId", count)
                .optional_unsigned("count")?
                .unwrap_or(0),
            Some(_) => return Err(error("unread", "expected an array of documents")),
        },
        _ => return Err(error("unread", "missing from the $facet result")),
    };
    Ok((items, unread_count))
}

#[async_trait]
impl BackgroundSource for MongoBackgroundSource {
    async fn profile_details(&self, user_id: &str) -> Result<Option<ProfileDetails>, SourceOfTruthError> {
        let document = find_one(
            &self.collection(PROFILE_DETAILS),
            queries::profile_query(user_id),
            self.max_time,
        )
        .await
        .map_err(|error| self.read_error(error))?;
        document
            .map(|document| profile_from_document(&document))
            .transpose()
            .map_err(|error| invalid_data(user_id, error))
    }

    async fn booking_history(
        &self,
        user_id: &str,
        query: &BookingHistoryQuery,
    ) -> Result<BookingPage, SourceOfTruthError> {
        let documents = find_all(
            &self.collection(BOOKINGS),
            queries::booking_history_query(user_id, query),
            self.max_time,
        )
        .await
        .map_err(|error| self.read_error(error))?;
        let items = documents
            .iter()
            .map(|document| BookingRecord::from_document(document).map(|record| record.to_history_item()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid_data(user_id, error))?;
        Ok(finish_booking_page(items, query.limit))
    }

    async fn notifications(
        &self,
        user_id: &str,
        query: &NotificationQuery,
    ) -> Result<NotificationPage, SourceOfTruthError> {
        let pipeline = queries::notifications_pipeline(user_id, query);
        let results: Vec<Document> = self
            .collection(NOTIFICATIONS)
            .aggregate(pipeline)
            .max_time(self.max_time)
            .selection_criteria(read_preference())
            .await
            .map_err(|error| self.read_error(error))?
            .try_collect()
            .await
            .map_err(|error| self.read_error(error))?;
        let Some(result) = results.first() else {
            return Err(SourceOfTruthError::Unavailable(
                "MongoDB returned no $facet result for the notifications pipeline".to_owned(),
            ));
        };
        let (documents, unread_count) =
            split_notification_facets(result).map_err(|error| invalid_data(user_id, error))?;
        let items = documents
            .iter()
            .map(notification_from_document)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| invalid_data(user_id, error))?;
        Ok(finish_notification_page(items, query.limit, unread_count))
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    #[test]
    fn facets_split_into_items_and_count() {
        let result = doc! {
            "items": [ { "notificationId": "ntf-1" }, { "notificationId": "ntf-2" } ],
            "unread": [ { "count": 7_i32 } ],
        };
        let (items, count) = split_notification_facets(&result).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(count, 7);
    }

    #[test]
    fn empty_count_facet_means_zero_unread() {
        let result = doc! { "items": [], "unread": [] };
        assert_eq!(split_notification_facets(&result).unwrap(), (vec![], 0));
    }

    #[test]
    fn missing_facet_is_reported() {
        let error = split_notification_facets(&doc! { "unread": [] }).unwrap_err();
        assert_eq!(error.field, "items");
    }
}
