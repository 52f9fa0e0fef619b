//! Background endpoints: data a frontend loads after the session.
//!
//! - `GET /auth/profile/detailed`
//! - `GET /auth/bookings/history?limit&cursor&status&from&to`
//! - `GET /auth/notifications?limit&cursor`
//!
//! Authentication is the session endpoint's: the same token sources and
//! verification, then the user's session document is loaded so a revoked
//! token or a deleted user is rejected exactly as `GET /auth/session` would
//! reject them. Unlike the session endpoint, a request without a token gets
//! 401, because there is no public variant of this data.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use sessionfold_common::background::{
    BookingCursor, BookingHistoryQuery, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, NotificationCursor,
    NotificationQuery, normalize_statuses,
};
use sessionfold_common::jwt::VerifiedToken;
use sessionfold_common::mongo::mapping::parse_booking_status;
use tracing::warn;

use crate::auth;
use crate::background::{BackgroundError, BackgroundService};
use crate::error::ApiError;
use crate::routes::json_response;
use crate::routes::session::check_revocation;
use crate::state::AppState;

/// Query parameters as sent. Deserializing into pairs cannot fail, so
/// axum's plain-text rejection never reaches a client: every check happens
/// in the parsers below and is reported as JSON.
type Pairs = Query<Vec<(String, String)>>;

pub async fn get_profile_detailed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let claims = authenticate(&state, &headers).await?;
    check_known(&pairs, &[])?;
    let service = service(&state)?;
    let body = service.profile(&claims.subject).await.map_err(unavailable)?;
    Ok(json_response(body))
}

pub async fn get_booking_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let claims = authenticate(&state, &headers).await?;
    let query = parse_history_query(&pairs)?;
    let service = service(&state)?;
    let body = service
        .booking_history(&claims.subject, &query)
        .await
        .map_err(unavailable)?;
    Ok(json_response(body))
}

pub async fn get_notifications(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Pairs,
) -> Result<Response, ApiError> {
    let claims = authenticate(&state, &headers).await?;
    let query = parse_notification_query(&pairs)?;
    let service = service(&state)?;
    let body = service
        .notifications(&claims.subject, &query)
        .await
        .map_err(unavailable)?;
    Ok(json_response(body))
}

/// Verifies the token and checks it against the user's session document.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<VerifiedToken, ApiError> {
    let token = auth::extract_token(headers, &state.settings.cookie_name)?.ok_or(ApiError::MissingToken)?;
    let claims = auth::verify(&state.verifier, token)?;
    let document = match state.sessions.load(&claims.subject).await {
        Ok(Some(document)) => document,
        Ok(None) => return Err(ApiError::UnknownUser),
        Err(err) => {
            warn!(user_id = %claims.subject, error = %err, "session unavailable for a background request");
            return Err(ApiError::Unavailable);
        }
    };
    check_revocation(&claims, &document)?;
    Ok(claims)
}

fn service(state: &AppState) -> Result<&BackgroundService, ApiError> {
    state.background.as_deref().ok_or_else(|| {
        warn!("a background endpoint was called, but no background source is configured");
        ApiError::DataUnavailable
    })
}

fn unavailable(error: BackgroundError) -> ApiError {
    // The cause was logged with the user id where it was raised.
    match error {
        BackgroundError::TimedOut(_) | BackgroundError::Unavailable(_) => ApiError::DataUnavailable,
        BackgroundError::InvalidData(_) => ApiError::Internal,
    }
}

fn invalid(parameter: &str, value: &str, expected: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter {
        parameter: parameter.to_owned(),
        value: value.to_owned(),
        expected: expected.into(),
    }
}

/// Rejects unknown and repeated parameters, naming them.
fn check_known(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), ApiError> {
    for (index, (name, value)) in pairs.iter().enumerate() {
        if !allowed.contains(&name.as_str()) {
            let expected = if allowed.is_empty() {
                "no query parameters on this endpoint".to_owned()
            } else {
                format!("one of the parameters {}", allowed.join(", "))
            };
            return Err(invalid(name, value, expected));
        }
        if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(invalid(name, value, "the parameter at most once"));
        }
    }
    Ok(())
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn parse_limit(pairs: &[(String, String)]) -> Result<u32, ApiError> {
    let Some(raw) = get(pairs, "limit") else {
        return Ok(DEFAULT_PAGE_LIMIT);
    };
    let expected = format!("an integer from 1 to {MAX_PAGE_LIMIT}");
    if raw.is_empty() || !raw.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid("limit", raw, expected));
    }
    match raw.parse::<u32>() {
        Ok(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(invalid("limit", raw, expected)),
    }
}

const CURSOR_EXPECTED: &str = "the nextCursor value of a previous page of this list";

fn parse_time(pairs: &[(String, String)], name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = get(pairs, name) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(raw)
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|_| {
            invalid(
                name,
                raw,
                "an RFC 3339 date-time with offset, e.g. 2026-01-31T18:30:00Z",
            )
        })
}

/// Parses `GET /auth/bookings/history` parameters.
pub fn parse_history_query(pairs: &[(String, String)]) -> Result<BookingHistoryQuery, ApiError> {
    check_known(pairs, &["limit", "cursor", "status", "from", "to"])?;
    let limit = parse_limit(pairs)?;
    let after = match get(pairs, "cursor") {
        None => None,
        Some(raw) => Some(
            BookingCursor::decode(raw)
                .map_err(|error| invalid("cursor", raw, format!("{CURSOR_EXPECTED} ({error})")))?,
        ),
    };
    let statuses = match get(pairs, "status") {
        None => Vec::new(),
        Some(raw) => {
            let mut statuses = Vec::new();
            for item in raw.split(',') {
                let status = parse_booking_status(item.trim()).ok_or_else(|| {
                    invalid(
                        "status",
                        raw,
                        "a comma-separated list of confirmed, cancelled, completed",
                    )
                })?;
                statuses.push(status);
            }
            normalize_statuses(&statuses)
        }
    };
    let from = parse_time(pairs, "from")?;
    let to = parse_time(pairs, "to")?;
    if let (Some(from_at), Some(to_at)) = (from, to)
        && from_at > to_at
    {
        let raw = get(pairs, "from").unwrap_or_default();
        let to_raw = get(pairs, "to").unwrap_or_default();
        return Err(invalid(
            "from",
            raw,
            format!("a date-time not after to ({to_raw})"),
        ));
    }
    Ok(BookingHistoryQuery {
        limit,
        after,
        statuses,
        from,
        to,
    })
}

/// Parses `GET /auth/notifications` parameters.
pub fn parse_notification_query(pairs: &[(String, String)]) -> Result<NotificationQuery, ApiError> {
    check_known(pairs, &["limit", "cursor"])?;
    let limit = parse_limit(pairs)?;
    let after = match get(pairs, "cursor") {
        None => None,
        Some(raw) => Some(
            NotificationCursor::decode(raw)
                .map_err(|error| invalid("cursor", raw, format!("{CURSOR_EXPECTED} ({error})")))?,
        ),
    };
    Ok(NotificationQuery { limit, after })
}

#[cfg(test)]
mod tests {
    use sessionfold_common::fold::state::BookingStatus;

    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn rejected(result: Result<impl std::fmt::Debug, ApiError>) -> (String, String, String) {
        match result.unwrap_err() {
            ApiError::InvalidParameter {
                parameter,
                value,
                expected,
            } => (parameter, value, expected),
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_without_parameters() {
        let query = parse_history_query(&[]).unwrap();
        assert_eq!(query, BookingHistoryQuery::default());
        assert_eq!(query.limit, 20);
    }

    #[test]
    fn limit_bounds_are_inclusive() {
        assert_eq!(parse_history_query(&pairs(&[("limit", "1")])).unwrap().limit, 1);
        assert_eq!(
            parse_history_query(&pairs(&[("limit", "100")])).unwrap().limit,
            100
        );
    }

    #[test]
    fn invalid_limits_name_value_and_range() {
        for raw in ["0", "101", "abc", "", "-1", "+5", "1.5", "99999999999"] {
            let (parameter, value, expected) = rejected(parse_history_query(&pairs(&[("limit", raw)])));
            assert_eq!(parameter, "limit");
            assert_eq!(value, raw);
            assert_eq!(expected, "an integer from 1 to 100");
        }
    }

    #[test]
    fn status_list_is_normalized() {
        let query = parse_history_query(&pairs(&[("status", "completed, confirmed,completed")])).unwrap();
        assert_eq!(
            query.statuses,
            [BookingStatus::Confirmed, BookingStatus::Completed]
        );
    }

    #[test]
    fn unknown_status_is_rejected() {
        for raw in ["pending", "confirmed,", ""] {
            let (parameter, value, expected) = rejected(parse_history_query(&pairs(&[("status", raw)])));
            assert_eq!(parameter, "status");
            assert_eq!(value, raw);
            assert!(expected.contains("confirmed, cancelled, completed"), "{expected}");
        }
    }

    #[test]
    fn dates_need_an_offset() {
        let (parameter, value, _) = rejected(parse_history_query(&pairs(&[("from", "2026-01-01")])));
        assert_eq!((parameter.as_str(), value.as_str()), ("from", "2026-01-01"));
        let (parameter, _, _) = rejected(parse_history_query(&pairs(&[("to", "2026-01-01T00:00:00")])));
        assert_eq!(parameter, "to");
        let query = parse_history_query(&pairs(&[("from", "2026-01-01T05:30:00+05:30")])).unwrap();
        assert_eq!(query.from.unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
    }

    #[test]
    fn from_after_to_is_rejected() {
        let (parameter, value, expected) = rejected(parse_history_query(&pairs(&[
            ("from", "2026-02-01T00:00:00Z"),
            ("to", "2026-01-01T00:00:00Z"),
        ])));
        assert_eq!(parameter, "from");
        assert_eq!(value, "2026-02-01T00:00:00Z");
        assert_eq!(expected, "a date-time not after to (2026-01-01T00:00:00Z)");
    }

    #[test]
    fn equal_from_and_to_is_an_empty_range() {
        let query = parse_history_query(&pairs(&[
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-01-01T00:00:00Z"),
        ]))
        .unwrap();
        assert_eq!(query.from, query.to);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_rejected() {
        let (parameter, _, expected) = rejected(parse_history_query(&pairs(&[("statuses", "confirmed")])));
        assert_eq!(parameter, "statuses");
        assert_eq!(expected, "one of the parameters limit, cursor, status, from, to");
        let (parameter, value, expected) = rejected(parse_notification_query(&pairs(&[
            ("limit", "5"),
            ("limit", "6"),
        ])));
        assert_eq!((parameter.as_str(), value.as_str()), ("limit", "6"));
        assert_eq!(expected, "the parameter at most once");
        let (parameter, _, expected) = rejected(check_known(&pairs(&[("x", "1")]), &[]));
        assert_eq!(parameter, "x");
        assert_eq!(expected, "no query parameters on this endpoint");
    }

    #[test]
    fn bad_cursor_names_the_reason() {
        let (parameter, value, expected) = rejected(parse_notification_query(&pairs(&[("cursor", "%%%")])));
        assert_eq!((parameter.as_str(), value.as_str()), ("cursor", "%%%"));
        assert!(expected.contains("not unpadded base64url"), "{expected}");
        let booking = BookingCursor::new(Utc::now(), "bk-1").encode();
        let (_, _, expected) = rejected(parse_notification_query(&pairs(&[("cursor", &booking)])));
        assert!(expected.contains("belongs to another list"), "{expected}");
    }
}
