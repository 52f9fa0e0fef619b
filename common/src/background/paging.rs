//! Orderings, cursor positions and page assembly for the background lists.
//!
//! The MongoDB queries in `crate::mongo::queries` express the same orderings
//! and "after the cursor" conditions in BSON; the embedded source applies
//! these functions in memory. Keyset pagination: a page is the first `limit`
//! items strictly after the cursor, and one extra item is fetched to learn
//! whether another page follows.
//!
//! Times are compared at millisecond precision, the precision of BSON dates
//! and of cursors, so an item is never skipped because a cursor dropped its
//! sub-millisecond digits.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::cursor::truncate_to_millis;
use super::{
    BookingCursor, BookingHistoryItem, BookingHistoryQuery, BookingPage, Notification, NotificationCursor,
    NotificationPage, NotificationQuery,
};

/// Booking history order: latest start first; equal starts by booking id,
/// ascending. The same order as `recentBookings` in the session.
pub fn booking_order(a: &BookingHistoryItem, b: &BookingHistoryItem) -> Ordering {
    let a_start = truncate_to_millis(a.starts_at);
    let b_start = truncate_to_millis(b.starts_at);
    b_start.cmp(&a_start).then_with(|| a.id.cmp(&b.id))
}

/// Returns whether a booking sorts strictly after the cursor position.
pub fn booking_is_after(starts_at: DateTime<Utc>, booking_id: &str, cursor: &BookingCursor) -> bool {
    let starts_at = truncate_to_millis(starts_at);
    starts_at < cursor.starts_at || (starts_at == cursor.starts_at && booking_id > cursor.booking_id.as_str())
}

/// Returns whether a booking passes the status and date filters of `query`; the
/// cursor is not checked here.
pub fn booking_matches_filters(item: &BookingHistoryItem, query: &BookingHistoryQuery) -> bool {
    let starts_at = truncate_to_millis(item.starts_at);
    (query.statuses.is_empty() || query.statuses.contains(&item.status))
        && query.from.is_none_or(|from| starts_at >= from)
        && query.to.is_none_or(|to| starts_at < to)
}

/// Builds a page from items already filtered, sorted and limited to at most
/// `limit + 1`: the extra item only signals that a next page exists.
pub fn finish_booking_page(mut fetched: Vec<BookingHistoryItem>, limit: u32) -> BookingPage {
    let limit = limit as usize;
    let next_cursor = if fetched.len() > limit {
        fetched.truncate(limit);
        fetched
            .last()
            .map(|last| BookingCursor::new(last.starts_at, &last.id).encode())
    } else {
        None
    };
    BookingPage {
        bookings: fetched,
        next_cursor,
    }
}

/// Pages a user's complete booking list in memory.
pub fn page_bookings(mut items: Vec<BookingHistoryItem>, query: &BookingHistoryQuery) -> BookingPage {
    items.retain(|item| {
        booking_matches_filters(item, query)
            && query
                .after
                .as_ref()
                .is_none_or(|cursor| booking_is_after(item.starts_at, &item.id, cursor))
    });
    items.sort_by(booking_order);
    items.truncate(query.limit as usize + 1);
    finish_booking_page(items, query.limit)
}

/// Notification order: unread first, then latest first; equal times by
/// notification id, ascending.
pub fn notification_order(a: &Notification, b: &Notification) -> Ordering {
    let a_created = truncate_to_millis(a.created_at);
    let b_created = truncate_to_millis(b.created_at);
    b.is_unread()
        .cmp(&a.is_unread())
        .then_with(|| b_created.cmp(&a_created))
        .then_with(|| a.id.cmp(&b.id))
}

/// Returns whether a notification sorts strictly after the cursor position.
pub fn notification_is_after(item: &Notification, cursor: &NotificationCursor) -> bool {
    let unread = item.is_unread();
    if unread != cursor.unread {
        // Unread items come first, so only a read item can follow an unread cursor.
        return cursor.unread && !unread;
    }
    let created_at = truncate_to_millis(item.created_at);
    created_at < cursor.created_at
        || (created_at == cursor.created_at && item.id.as_str() > cursor.notification_id.as_str())
}

/// Builds a page from items already sorted and limited to at most `limit + 1`.
pub fn finish_notification_page(
    mut fetched: Vec<Notification>,
    limit: u32,
    unread_count: u64,
) -> NotificationPage {
    let limit = limit as usize;
    let next_cursor = if fetched.len() > limit {
        fetched.truncate(limit);
        fetched
            .last()
            .map(|last| NotificationCursor::new(last.is_unread(), last.created_at, &last.id).encode())
    } else {
        None
    };
    NotificationPage {
        notifications: fetched,
        unread_count,
        next_cursor,
    }
}

/// Pages a user's complete notification list in memory.
pub fn page_notifications(mut items: Vec<Notification>, query: &NotificationQuery) -> NotificationPage {
    let unread_count = items.iter().filter(|item| item.is_unread()).count() as u64;
    if let Some(cursor) = &query.after {
        items.retain(|item| notification_is_after(item, cursor));
    }
    items.sort_by(notification_order);
    items.truncate(query.limit as usize + 1);
    finish_notification_page(items, query.limit, unread_count)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::fold::state::BookingStatus;

    fn base() -> DateTime<Utc> {
        "2026-03-01T10:00:00Z".parse().unwrap()
    }

    fn booking(id: &str, hours: i64, status: BookingStatus) -> BookingHistoryItem {
        let starts_at = base() + Duration::hours(hours);
        BookingHistoryItem {
            id: id.to_owned(),
            class_id: "cl-1".to_owned(),
            class_name: "Morning Hatha".to_owned(),
            shaala_id: "sh-1".to_owned(),
            shaala_name: "Lotus Shaala".to_owned(),
            teacher_name: None,
            starts_at,
            ends_at: starts_at + Duration::hours(1),
            status,
            cancelled_at: None,
            updated_at: None,
        }
    }

    fn ids(page: &BookingPage) -> Vec<&str> {
        page.bookings.iter().map(|item| item.id.as_str()).collect()
    }

    fn query(limit: u32) -> BookingHistoryQuery {
        BookingHistoryQuery {
            limit,
            ..BookingHistoryQuery::default()
        }
    }

    #[test]
    fn bookings_are_newest_first_with_id_tiebreak() {
        let items = vec![
            booking("bk-b", 0, BookingStatus::Confirmed),
            booking("bk-a", 0, BookingStatus::Confirmed),
            booking("bk-c", 5, BookingStatus::Cancelled),
            booking("bk-d", -5, BookingStatus::Completed),
        ];
        let page = page_bookings(items, &query(10));
        assert_eq!(ids(&page), ["bk-c", "bk-a", "bk-b", "bk-d"]);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn booking_pages_cover_every_item_once() {
        let items: Vec<_> = (0..7)
            .map(|n| booking(&format!("bk-{n}"), n / 2, BookingStatus::Confirmed))
            .collect();
        let mut seen = Vec::new();
        let mut query = query(3);
        loop {
            let page = page_bookings(items.clone(), &query);
            seen.extend(ids(&page).into_iter().map(str::to_owned));
            match page.next_cursor {
                Some(text) => query.after = Some(BookingCursor::decode(&text).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, ["bk-6", "bk-4", "bk-5", "bk-2", "bk-3", "bk-0", "bk-1"]);
    }

    #[test]
    fn exact_multiple_of_limit_ends_without_cursor() {
        let items: Vec<_> = (0..4)
            .map(|n| booking(&format!("bk-{n}"), n, BookingStatus::Confirmed))
            .collect();
        let first = page_bookings(items.clone(), &query(2));
        let cursor = BookingCursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
        let second = page_bookings(
            items,
            &BookingHistoryQuery {
                after: Some(cursor),
                ..query(2)
            },
        );
        assert_eq!(ids(&second), ["bk-1", "bk-0"]);
        assert_eq!(second.next_cursor, None);
    }

    #[test]
    fn filters_apply_status_and_half_open_range() {
        let items = vec![
            booking("bk-1", 0, BookingStatus::Confirmed),
            booking("bk-2", 1, BookingStatus::Cancelled),
            booking("bk-3", 2, BookingStatus::Completed),
            booking("bk-4", 3, BookingStatus::Confirmed),
        ];
        let filtered = BookingHistoryQuery {
            statuses: vec![BookingStatus::Confirmed, BookingStatus::Cancelled],
            from: Some(base()),
            to: Some(base() + Duration::hours(3)),
            ..query(10)
        };
        assert_eq!(ids(&page_bookings(items, &filtered)), ["bk-2", "bk-1"]);
    }

    #[test]
    fn sub_millisecond_starts_page_consistently() {
        let mut first = booking("bk-z", 0, BookingStatus::Confirmed);
        first.starts_at += Duration::microseconds(700);
        let mut second = booking("bk-a", 0, BookingStatus::Confirmed);
        second.starts_at += Duration::microseconds(300);
        let items = vec![first, second];
        let page = page_bookings(items.clone(), &query(1));
        assert_eq!(ids(&page), ["bk-a"]);
        let cursor = BookingCursor::decode(page.next_cursor.as_deref().unwrap()).unwrap();
        let rest = page_bookings(
            items,
            &BookingHistoryQuery {
                after: Some(cursor),
                ..query(1)
            },
        );
        assert_eq!(ids(&rest), ["bk-z"]);
    }

    fn notification(id: &str, minutes: i64, read: bool) -> Notification {
        let created_at = base() + Duration::minutes(minutes);
        Notification {
            id: id.to_owned(),
            kind: "announcement".to_owned(),
            title: "Title".to_owned(),
            body: "Body".to_owned(),
            created_at,
            read_at: read.then(|| created_at + Duration::minutes(1)),
        }
    }

    #[test]
    fn notifications_list_unread_first_then_newest() {
        let items = vec![
            notification("n-1", 1, true),
            notification("n-2", 2, false),
            notification("n-3", 3, true),
            notification("n-4", 0, false),
            notification("n-5", 3, true),
        ];
        let page = page_notifications(
            items,
            &NotificationQuery {
                limit: 10,
                after: None,
            },
        );
        let ids: Vec<_> = page.notifications.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["n-2", "n-4", "n-3", "n-5", "n-1"]);
        assert_eq!(page.unread_count, 2);
    }

    #[test]
    fn notification_cursor_crosses_from_unread_to_read() {
        let items = vec![
            notification("n-1", 1, true),
            notification("n-2", 2, false),
            notification("n-3", 3, true),
        ];
        let mut query = NotificationQuery {
            limit: 1,
            after: None,
        };
        let mut seen = Vec::new();
        loop {
            let page = page_notifications(items.clone(), &query);
            assert_eq!(page.unread_count, 1, "the count covers every page");
            seen.extend(page.notifications.iter().map(|n| n.id.clone()));
            match page.next_cursor {
                Some(text) => query.after = Some(NotificationCursor::decode(&text).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, ["n-2", "n-3", "n-1"]);
    }

    #[test]
    fn read_cursor_never_returns_unread_items() {
        let unread = notification("n-1", 9, false);
        let cursor = NotificationCursor::new(false, base(), "n-0");
        assert!(!notification_is_after(&unread, &cursor));
    }
}
