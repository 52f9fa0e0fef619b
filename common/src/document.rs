//! The stored session document: a one-line JSON header, a newline, then the
//! session body exactly as it is served.
//!
//! The body is serialized once, when the projection is written; a read only
//! parses the small header (token version, access facts, staleness) and
//! copies the body bytes into the response. Compact JSON never contains a raw
//! newline, so the first `\n` always ends the header.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Role;
use crate::fold::{AccessFacts, Rendered};

/// Everything the read path needs besides the body bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentHeader {
    /// Format version of this header; readers reject formats they do not know.
    #[serde(rename = "f")]
    pub format: u32,
    /// Revision of the fold state this document was rendered from (0 for a
    /// backfill from live assembly, which has no fold state).
    #[serde(rename = "rev")]
    pub revision: u64,
    /// Tokens whose `tv` claim is lower are revoked.
    #[serde(rename = "tv")]
    pub token_version: u64,
    /// Tokens issued (`iat`) before this unix time are revoked.
    #[serde(rename = "tva", default, skip_serializing_if = "Option::is_none")]
    pub tokens_valid_after: Option<i64>,
    /// Unix milliseconds after which a time-based fact in the body is wrong
    /// and the document must be rendered again.
    #[serde(rename = "stale", default, skip_serializing_if = "Option::is_none")]
    pub stale_at_ms: Option<i64>,
    pub role: Role,
    pub active: bool,
    pub approved: bool,
    /// Unix milliseconds at which the body was rendered.
    #[serde(rename = "at")]
    pub rendered_at_ms: i64,
}

pub const DOCUMENT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    pub header: DocumentHeader,
    /// The session body JSON: an object, without `permissions` and
    /// `sessionMetadata`, which the API adds per request.
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("stored session document has no header line")]
    MissingHeader,
    #[error("stored session document header is invalid: {0}")]
    InvalidHeader(#[from] serde_json::Error),
    #[error("stored session document has format {found}; this build reads format {DOCUMENT_FORMAT}")]
    UnknownFormat { found: u32 },
    #[error("stored session document body is not a JSON object")]
    InvalidBody,
}

impl StoredDocument {
    /// Serializes a render into a stored document.
    pub fn from_rendered(rendered: &Rendered, revision: u64, now: DateTime<Utc>) -> Self {
        let header = DocumentHeader {
            format: DOCUMENT_FORMAT,
            revision,
            token_version: rendered.token_version,
            tokens_valid_after: rendered.tokens_valid_after,
            stale_at_ms: rendered.stale_at.map(|at| at.timestamp_millis()),
            role: rendered.access.role,
            active: rendered.access.is_active,
            approved: rendered.access.owner_approved,
            rendered_at_ms: now.timestamp_millis(),
        };
        let body = serde_json::to_vec(&rendered.body)
            .expect("session body serializes: plain strings, numbers and dates");
        Self {
            header,
            body: Bytes::from(body),
        }
    }

    pub fn access(&self) -> AccessFacts {
        AccessFacts {
            role: self.header.role,
            is_active: self.header.active,
            owner_approved: self.header.approved,
        }
    }

    /// Returns whether a time-based fact in the body has changed since it was rendered.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.header
            .stale_at_ms
            .is_some_and(|stale_at| now.timestamp_millis() >= stale_at)
    }

    pub fn encode(&self) -> Bytes {
        let mut out = serde_json::to_vec(&self.header).expect("document header serializes");
        out.reserve(1 + self.body.len());
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    /// Parses stored bytes; the body is a zero-copy slice of `bytes`.
    pub fn decode(bytes: Bytes) -> Result<Self, DocumentError> {
        let split = bytes
            .iter()
            .position(|&byte| byte == b'\n')
            .ok_or(DocumentError::MissingHeader)?;
        let header: DocumentHeader = serde_json::from_slice(&bytes[..split])?;
        if header.format != DOCUMENT_FORMAT {
            return Err(DocumentError::UnknownFormat { found: header.format });
        }
        let body = bytes.slice(split + 1..);
        if body.first() != Some(&b'{') || body.last() != Some(&b'}') {
            return Err(DocumentError::InvalidBody);
        }
        Ok(Self { header, body })
    }

    /// Size in bytes, for cache weighing.
    pub fn size(&self) -> usize {
        self.body.len() + 128
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::render::*;

    fn rendered() -> Rendered {
        Rendered {
            body: SessionBody {
                authenticated: true,
                user: UserView {
                    id: "user-1".into(),
                    email: Some("a@example.com".into()),
                    name: Some("A".into()),
                    avatar: None,
                    role: Role::Teacher,
                    is_active: true,
                    is_verified: false,
                    preferences: PreferencesView {
                        theme: "light".into(),
                        language: "en".into(),
                        notifications: true,
                    },
                },
                recent_bookings: vec![],
                active_subscriptions: vec![],
            },
            access: AccessFacts {
                role: Role::Teacher,
                is_active: true,
                owner_approved: false,
            },
            token_version: 2,
            tokens_valid_after: Some(1_700_000_000),
            stale_at: None,
        }
    }

    #[test]
    fn document_round_trips_through_bytes() {
        let document = StoredDocument::from_rendered(&rendered(), 7, Utc::now());
        let decoded = StoredDocument::decode(document.encode()).unwrap();
        assert_eq!(decoded, document);
    }

    #[test]
    fn document_without_header_line_is_rejected() {
        let error = StoredDocument::decode(Bytes::from_static(b"{}")).unwrap_err();
        assert!(matches!(error, DocumentError::MissingHeader));
    }

    #[test]
    fn document_of_unknown_format_is_rejected() {
        let mut document = StoredDocument::from_rendered(&rendered(), 1, Utc::now());
        document.header.format = 99;
        let error = StoredDocument::decode(document.encode()).unwrap_err();
        assert!(matches!(error, DocumentError::UnknownFormat { found: 99 }));
    }
}
