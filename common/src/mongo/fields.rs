//! Typed reads of BSON document fields, with errors that name the
//! collection, the document and the field.
//!
//! Other services write the documents of the system of record, so every
//! field is checked. A wrong type is reported and never coerced, because a
//! coerced value would render a session that the projection (fed by
//! validated events) would not.

use std::fmt;

use chrono::{DateTime, Utc};
use mongodb::bson::{Bson, Document};

/// One document that could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {collection} document {document_id}: field {field}: {problem}")]
pub struct MappingError {
    pub collection: &'static str,
    /// The business id (`userId`, `bookingId`, ...) when it is readable,
    /// otherwise the `_id`.
    pub document_id: String,
    /// Dotted path of the field, e.g. `preferences.theme`.
    pub field: String,
    pub problem: String,
}

/// Returns the `$type` name MongoDB uses for a BSON value, for error messages.
pub fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Symbol(_) => "symbol",
        Bson::Decimal128(_) => "decimal",
        Bson::Undefined => "undefined",
        Bson::MaxKey => "maxKey",
        Bson::MinKey => "minKey",
        Bson::DbPointer(_) => "dbPointer",
    }
}

/// Reads the fields of one document. `prefix` is the path of a nested
/// document (`preferences.`), so errors name the full path.
pub struct FieldReader<'a> {
    collection: &'static str,
    document_id: String,
    prefix: String,
    document: &'a Document,
}

impl<'a> FieldReader<'a> {
    /// Creates a reader whose errors name the document by `id_field` (for
    /// example `bookingId`), or by `_id` when that field is not a usable string.
    pub fn new(collection: &'static str, id_field: &str, document: &'a Document) -> Self {
        let document_id = match document.get(id_field) {
            Some(Bson::String(id)) if !id.is_empty() => id.clone(),
            _ => match document.get("_id") {
                Some(Bson::ObjectId(id)) => format!("_id {id}"),
                Some(other) => format!("_id {other}"),
                None => "(no _id)".to_owned(),
            },
        };
        Self {
            collection,
            document_id,
            prefix: String::new(),
            document,
        }
    }

    pub fn document_id(&self) -> &str {
        &self.document_id
    }

    /// Builds an error about `field` of this document.
    pub fn error(&self, field: &str, problem: impl fmt::Display) -> MappingError {
        MappingError {
            collection: self.collection,
            document_id: self.document_id.clone(),
            field: format!("{}{field}", self.prefix),
            problem: problem.to_string(),
        }
    }

    fn unexpected(&self, field: &str, expected: &str, found: &Bson) -> MappingError {
        self.error(field, format!("expected {expected}, found {}", type_name(found)))
    }

    /// Returns the field, treating an explicit `null` like an absent field.
    fn present(&self, field: &str) -> Option<&'a Bson> {
        self.document
            .get(field)
            .filter(|value| !matches!(value, Bson::Null))
    }

    /// Reads a required string that must not be empty (ids and names).
    pub fn id(&self, field: &str) -> Result<String, MappingError> {
        match self.document.get(field) {
            Some(Bson::String(value)) if !value.is_empty() => Ok(value.clone()),
            Some(Bson::String(_)) => {
                Err(self.error(field, "expected a non-empty string, found an empty string"))
            }
            Some(other) => Err(self.unexpected(field, "a string", other)),
            None => Err(self.error(field, "missing")),
        }
    }

    /// Reads a field that must be present and is a string or `null`.
    pub fn nullable_string(&self, field: &str) -> Result<Option<String>, MappingError> {
        match self.document.get(field) {
            Some(Bson::String(value)) => Ok(Some(value.clone())),
            Some(Bson::Null) => Ok(None),
            Some(other) => Err(self.unexpected(field, "a string or null", other)),
            None => Err(self.error(field, "missing (it may be null, but must be present)")),
        }
    }

    /// Reads an optional string; absent and `null` read as `None`.
    pub fn optional_string(&self, field: &str) -> Result<Option<String>, MappingError> {
        match self.present(field) {
            None => Ok(None),
            Some(Bson::String(value)) => Ok(Some(value.clone())),
            Some(other) => Err(self.unexpected(field, "a string", other)),
        }
    }

    /// Reads an optional non-empty string; absent and `null` read as `None`.
    pub fn optional_id(&self, field: &str) -> Result<Option<String>, MappingError> {
        match self.present(field) {
            None => Ok(None),
            Some(_) => self.id(field).map(Some),
        }
    }

    pub fn optional_bool(&self, field: &str) -> Result<Option<bool>, MappingError> {
        match self.present(field) {
            None => Ok(None),
            Some(Bson::Boolean(value)) => Ok(Some(*value)),
            Some(other) => Err(self.unexpected(field, "a bool", other)),
        }
    }

    /// Reads an integer stored as BSON `int` or `long`. Doubles are
    /// rejected, because a fractional version or count has no meaning.
    fn integer(&self, field: &str, value: &Bson) -> Result<i64, MappingError> {
        match value {
            Bson::Int32(value) => Ok(i64::from(*value)),
            Bson::Int64(value) => Ok(*value),
            other => Err(self.unexpected(field, "an int or long", other)),
        }
    }

    /// Reads the entity version, a required integer of at least 1.
    pub fn version(&self, field: &str) -> Result<u64, MappingError> {
        let Some(value) = self.present(field) else {
            return Err(self.error(field, "missing"));
        };
        let number = self.integer(field, value)?;
        u64::try_from(number)
            .ok()
            .filter(|&version| version >= 1)
            .ok_or_else(|| {
                self.error(
                    field,
                    format!("expected an integer of at least 1, found {number}"),
                )
            })
    }

    /// Reads an optional integer of at least 0 that fits in `u64`; absent
    /// and `null` read as `None`.
    pub fn optional_unsigned(&self, field: &str) -> Result<Option<u64>, MappingError> {
        let Some(value) = self.present(field) else {
            return Ok(None);
        };
        let number = self.integer(field, value)?;
        u64::try_from(number).map(Some).map_err(|_| {
            self.error(
                field,
                format!("expected an integer of at least 0, found {number}"),
            )
        })
    }

    /// Reads an optional count from 0 to `u32::MAX`; absent and `null` read as `None`.
    pub fn optional_count(&self, field: &str) -> Result<Option<u32>, MappingError> {
        match self.optional_unsigned(field)? {
            None => Ok(None),
            Some(number) => u32::try_from(number).map(Some).map_err(|_| {
                self.error(
                    field,
                    format!("expected an integer from 0 to {}, found {number}", u32::MAX),
                )
            }),
        }
    }

    /// Reads a required BSON date.
    pub fn date(&self, field: &str) -> Result<DateTime<Utc>, MappingError> {
        match self.optional_date(field)? {
            Some(date) => Ok(date),
            None => Err(self.error(field, "missing")),
        }
    }

    /// Reads an optional BSON date; absent and `null` read as `None`. Dates
    /// stored as strings are rejected, since their time zone is a guess.
    pub fn optional_date(&self, field: &str) -> Result<Option<DateTime<Utc>>, MappingError> {
        match self.present(field) {
            None => Ok(None),
            Some(Bson::DateTime(date)) => {
                let millis = date.timestamp_millis();
                DateTime::from_timestamp_millis(millis)
                    .map(Some)
                    .ok_or_else(|| self.error(field, format!("date {millis} ms is out of range")))
            }
            Some(other) => Err(self.unexpected(field, "a date", other)),
        }
    }

    /// Reads a string that must be one of `allowed`, parsed by `parse`.
    pub fn required_enum<T>(
        &self,
        field: &str,
        allowed: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, MappingError> {
        match self.optional_enum(field, allowed, parse)? {
            Some(value) => Ok(value),
            None => Err(self.error(field, format!("missing; expected one of {allowed}"))),
        }
    }

    /// Reads an optional string that must be one of `allowed` when present.
    pub fn optional_enum<T>(
        &self,
        field: &str,
        allowed: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, MappingError> {
        match self.present(field) {
            None => Ok(None),
            Some(Bson::String(value)) => parse(value)
                .map(Some)
                .ok_or_else(|| self.error(field, format!("expected one of {allowed}, found {value:?}"))),
            Some(other) => Err(self.unexpected(field, &format!("one of {allowed}"), other)),
        }
    }

    /// Reads an optional array of strings; absent and `null` read as empty.
    pub fn string_list(&self, field: &str) -> Result<Vec<String>, MappingError> {
        match self.present(field) {
            None => Ok(Vec::new()),
            Some(Bson::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Bson::String(value) => Ok(value.clone()),
                    other => Err(self.unexpected(&format!("{field}.{index}"), "a string", other)),
                })
                .collect(),
            Some(other) => Err(self.unexpected(field, "an array of strings", other)),
        }
    }

    /// Opens a reader over an optional nested document; absent and `null`
    /// read as `None`.
    pub fn nested(&self, field: &str) -> Result<Option<FieldReader<'a>>, MappingError> {
        match self.present(field) {
            None => Ok(None),
            Some(Bson::Document(inner)) => Ok(Some(FieldReader {
                collection: self.collection,
                document_id: self.document_id.clone(),
                prefix: format!("{}{field}.", self.prefix),
                document: inner,
            })),
            Some(other) => Err(self.unexpected(field, "an object", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::oid::ObjectId;
    use mongodb::bson::{self, doc};

    use super::*;

    fn reader(document: &Document) -> FieldReader<'_> {
        FieldReader::new("bookings", "bookingId", document)
    }

    #[test]
    fn error_names_collection_id_and_field() {
        let document = doc! { "bookingId": "bk-1", "startsAt": "2026-01-01T00:00:00Z" };
        let error = reader(&document).date("startsAt").unwrap_err();
        assert_eq!(error.collection, "bookings");
        assert_eq!(error.document_id, "bk-1");
        assert_eq!(error.field, "startsAt");
        assert_eq!(
            error.to_string(),
            "invalid bookings document bk-1: field startsAt: expected a date, found string"
        );
    }

    #[test]
    fn object_id_names_document_without_business_id() {
        let id = ObjectId::parse_str("65a1f0c2e4b0a1b2c3d4e5f6").unwrap();
        let document = doc! { "_id": id, "bookingId": 17 };
        let error = reader(&document).id("bookingId").unwrap_err();
        assert_eq!(error.document_id, "_id 65a1f0c2e4b0a1b2c3d4e5f6");
        assert_eq!(error.problem, "expected a string, found int");
    }

    #[test]
    fn version_accepts_int_and_long() {
        let document = doc! { "a": 3_i32, "b": 4_000_000_000_i64 };
        assert_eq!(reader(&document).version("a").unwrap(), 3);
        assert_eq!(reader(&document).version("b").unwrap(), 4_000_000_000);
    }

    #[test]
    fn version_rejects_double_zero_and_missing() {
        let document = doc! { "double": 2.0, "zero": 0_i32, "negative": -1_i64 };
        let reader = reader(&document);
        assert_eq!(
            reader.version("double").unwrap_err().problem,
            "expected an int or long, found double"
        );
        assert_eq!(
            reader.version("zero").unwrap_err().problem,
            "expected an integer of at least 1, found 0"
        );
        assert_eq!(
            reader.version("negative").unwrap_err().problem,
            "expected an integer of at least 1, found -1"
        );
        assert_eq!(reader.version("missing").unwrap_err().problem, "missing");
    }

    #[test]
    fn null_and_absent_optional_fields_read_as_none() {
        let document = doc! { "a": bson::Bson::Null };
        let reader = reader(&document);
        assert_eq!(reader.optional_string("a").unwrap(), None);
        assert_eq!(reader.optional_string("b").unwrap(), None);
        assert_eq!(reader.optional_date("a").unwrap(), None);
        assert_eq!(reader.optional_count("a").unwrap(), None);
        assert_eq!(reader.optional_bool("b").unwrap(), None);
    }

    #[test]
    fn nullable_string_must_be_present() {
        let document = doc! { "name": bson::Bson::Null };
        let reader = reader(&document);
        assert_eq!(reader.nullable_string("name").unwrap(), None);
        assert!(
            reader
                .nullable_string("email")
                .unwrap_err()
                .problem
                .starts_with("missing")
        );
    }

    #[test]
    fn count_out_of_range_is_rejected() {
        let document = doc! { "big": 5_000_000_000_i64, "negative": -2_i32 };
        let reader = reader(&document);
        assert!(
            reader
                .optional_count("big")
                .unwrap_err()
                .problem
                .contains("from 0 to")
        );
        assert!(
            reader
                .optional_count("negative")
                .unwrap_err()
                .problem
                .contains("at least 0")
        );
    }

    #[test]
    fn nested_errors_carry_the_path() {
        let document = doc! { "bookingId": "bk-2", "preferences": { "theme": 1_i32 } };
        let reader = reader(&document);
        let nested = reader.nested("preferences").unwrap().unwrap();
        let error = nested.optional_string("theme").unwrap_err();
        assert_eq!(error.field, "preferences.theme");
    }

    #[test]
    fn enum_lists_allowed_values() {
        let document = doc! { "status": "pending" };
        let error = reader(&document)
            .required_enum("status", "confirmed, cancelled, completed", |_| None::<()>)
            .unwrap_err();
        assert_eq!(
            error.problem,
            "expected one of confirmed, cancelled, completed, found \"pending\""
        );
    }

    #[test]
    fn string_list_names_the_bad_element() {
        let document = doc! { "interests": ["yoga", 3_i32] };
        let error = reader(&document).string_list("interests").unwrap_err();
        assert_eq!(error.field, "interests.1");
    }
}
