//! Pagination cursors: the sort key of the last item of a page, as
//! unpadded base64url JSON.
//!
//! Clients must treat a cursor as opaque. It is not signed, because it only
//! selects a position within the caller's own data: the user id always
//! comes from the token, never from the cursor. Times are kept at
//! millisecond precision, the precision of BSON dates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Maximum cursor length accepted, so a huge query string is rejected
/// before it is decoded. Real cursors are well under 200 characters.
pub const MAX_CURSOR_LENGTH: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CursorError(pub &'static str);

/// Position in the booking history: (`startsAt`, `bookingId`) of the last
/// item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BookingCursor {
    pub starts_at: DateTime<Utc>,
    pub booking_id: String,
}

/// Position in the notification list: (unread, `createdAt`,
/// `notificationId`) of the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotificationCursor {
    pub unread: bool,
    pub created_at: DateTime<Utc>,
    pub notification_id: String,
}

/// The JSON inside a cursor. `k` names the list, so a notification
/// cursor sent to the booking history is rejected instead of misread.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Encoded {
    k: String,
    /// Unix milliseconds.
    t: i64,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<bool>,
}

const BOOKING_KIND: &str = "b";
const NOTIFICATION_KIND: &str = "n";

fn encode(encoded: &Encoded) -> String {
    let json = serde_json::to_vec(encoded).expect("cursor JSON serializes");
    URL_SAFE_NO_PAD.encode(json)
}

fn decode(text: &str, kind: &str) -> Result<(DateTime<Utc>, String, Option<bool>), CursorError> {
    if text.len() > MAX_CURSOR_LENGTH {
        return Err(CursorError("the cursor is too long"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CursorError("the cursor is not unpadded base64url"))?;
    let encoded: Encoded = serde_json::from_slice(&bytes)
        .map_err(|_| CursorError("the cursor content is not a valid cursor"))?;
    if encoded.k != kind {
        return Err(CursorError("the cursor belongs to another list"));
    }
    if encoded.id.is_empty() {
        return Err(CursorError("the cursor has an empty id"));
    }
    let at =
        DateTime::from_timestamp_millis(encoded.t).ok_or(CursorError("the cursor time is out of range"))?;
    Ok((at, encoded.id, encoded.u))
}

impl BookingCursor {
    /// Builds the cursor after a booking; the time is truncated to milliseconds.
    pub fn new(starts_at: DateTime<Utc>, booking_id: &str) -> Self {
        Self {
            starts_at: truncate_to_millis(starts_at),
            booking_id: booking_id.to_owned(),
        }
    }

    pub fn encode(&self) -> String {
        encode(&Encoded {
            k: BOOKING_KIND.to_owned(),
            t: self.starts_at.timestamp_millis(),
            id: self.booking_id.clone(),
            u: None,
        })
    }

    pub fn decode(text: &str) -> Result<Self, CursorError> {
        let (starts_at, booking_id, unread) = decode(text, BOOKING_KIND)?;
        if unread.is_some() {
            return Err(CursorError("the cursor content is not a valid cursor"));
        }
        Ok(Self {
            starts_at,
            booking_id,
        })
    }
}

impl NotificationCursor {
    pub fn new(unread: bool, created_at: DateTime<Utc>, notification_id: &str) -> Self {
        Self {
            unread,
            created_at: truncate_to_millis(created_at),
            notification_id: notification_id.to_owned(),
        }
    }

    pub fn encode(&self) -> String {
        encode(&Encoded {
            k: NOTIFICATION_KIND.to_owned(),
            t: self.created_at.timestamp_millis(),
            id: self.notification_id.clone(),
            u: Some(self.unread),
        })
    }

    pub fn decode(text: &str) -> Result<Self, CursorError> {
        let (created_at, notification_id, unread) = decode(text, NOTIFICATION_KIND)?;
        let unread = unread.ok_or(CursorError("the cursor content is not a valid cursor"))?;
        Ok(Self {
            unread,
            created_at,
            notification_id,
        })
    }
}

/// Drops sub-millisecond precision, which BSON dates cannot store.
pub fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn booking_cursor_round_trips() {
        let cursor = BookingCursor::new(at("2026-11-05T06:30:00.123Z"), "bk-501");
        let text = cursor.encode();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(BookingCursor::decode(&text).unwrap(), cursor);
    }

    #[test]
    fn booking_cursor_has_a_fixed_encoding() {
        // Cursors handed out before an upgrade must still decode after it.
        let cursor = BookingCursor::new(at("2026-11-05T06:30:00Z"), "bk-1");
        assert_eq!(
            cursor.encode(),
            "eyJrIjoiYiIsInQiOjE3OTM4NjAyMDAwMDAsImlkIjoiYmstMSJ9"
        );
    }

    #[test]
    fn notification_cursor_round_trips() {
        let cursor = NotificationCursor::new(true, at("2026-01-02T03:04:05Z"), "ntf-9");
        assert_eq!(NotificationCursor::decode(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn sub_millisecond_precision_is_dropped() {
        let cursor = BookingCursor::new(at("2026-11-05T06:30:00.123456Z"), "bk-1");
        assert_eq!(cursor.starts_at, at("2026-11-05T06:30:00.123Z"));
    }

    #[test]
    fn cursor_of_another_list_is_rejected() {
        let notification = NotificationCursor::new(false, at("2026-01-02T03:04:05Z"), "ntf-9").encode();
        assert_eq!(
            BookingCursor::decode(&notification).unwrap_err().0,
            "the cursor belongs to another list"
        );
        let booking = BookingCursor::new(at("2026-01-02T03:04:05Z"), "bk-1").encode();
        assert!(NotificationCursor::decode(&booking).is_err());
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        let cases = [
            ("not base64!", "the cursor is not unpadded base64url"),
            ("eyJrIjoiYiJ9=", "the cursor is not unpadded base64url"),
            (
                &URL_SAFE_NO_PAD.encode(b"[1,2]"),
                "the cursor content is not a valid cursor",
            ),
            (
                &URL_SAFE_NO_PAD.encode(br#"{"k":"b","t":1,"id":""}"#),
                "the cursor has an empty id",
            ),
            (
                &URL_SAFE_NO_PAD.encode(br#"{"k":"b","t":1,"id":"x","extra":1}"#),
                "the cursor content is not a valid cursor",
            ),
            (
                &URL_SAFE_NO_PAD.encode(br#"{"k":"b","t":9223372036854775807,"id":"x"}"#),
                "the cursor time is out of range",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(BookingCursor::decode(text).unwrap_err().0, expected, "{text}");
        }
    }

    #[test]
    fn overlong_cursor_is_rejected_before_decoding() {
        let text = "a".repeat(MAX_CURSOR_LENGTH + 1);
        assert_eq!(
            BookingCursor::decode(&text).unwrap_err().0,
            "the cursor is too long"
        );
    }
}
