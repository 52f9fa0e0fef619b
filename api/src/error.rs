//! API errors and their one mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sessionfold_common::jwt::TokenError;

/// Every error a handler returns. Each variant's status and `error.code`
/// are part of the API contract; 5xx bodies stay opaque and the cause goes
/// to the log where the error is raised.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 `<token error code>`: the token failed verification.
    #[error(transparent)]
    InvalidToken(#[from] TokenError),
    /// 401 `token_malformed`: the credentials are not a bearer token.
    #[error("{0}")]
    MalformedCredentials(&'static str),
    /// 401 `token_revoked`: valid signature, but revoked by
    /// `user.sessions_revoked` (lower `tv`) or `user.deactivated` (older `iat`).
    #[error("the token has been revoked; sign in again")]
    TokenRevoked,
    /// 401 `unknown_user`: the token's subject has no session.
    #[error("no session exists for this token's subject")]
    UnknownUser,
    /// 401 `token_missing`: the request carries no token, on an endpoint
    /// that has nothing to return without one.
    #[error("no access token: send Authorization: Bearer <token> or the session cookie")]
    MissingToken,
    /// 400 `<code>`: a request parameter or body is invalid.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 400 `invalid_parameter`: one query parameter is invalid. The body
    /// also carries `parameter`, `value` and `expected`.
    #[error("invalid query parameter {parameter}={value:?}: expected {expected}")]
    InvalidParameter {
        parameter: String,
        value: String,
        expected: String,
    },
    /// 415 `<code>`: the request body's content type is not accepted.
    #[error("{message}")]
    UnsupportedMediaType { code: &'static str, message: String },
    /// 404 `not_found`: no such route.
    #[error("no route for {0}")]
    NotFound(String),
    /// 405 `method_not_allowed`: the route exists for other methods.
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    /// 413 `payload_too_large`.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 503 `service_unavailable`: neither the projection store nor the
    /// source of truth could return data in time.
    #[error("session data is temporarily unavailable")]
    Unavailable,
    /// 503 `service_unavailable`: background data (profile, history,
    /// notifications) could not be read in time.
    #[error("this data is temporarily unavailable; retry shortly")]
    DataUnavailable,
    /// 500 `internal_error`.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidToken(error) => error.code(),
            ApiError::MalformedCredentials(_) => "token_malformed",
            ApiError::TokenRevoked => "token_revoked",
            ApiError::MissingToken => "token_missing",
            ApiError::UnknownUser => "unknown_user",
            ApiError::BadRequest { code, .. } => code,
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::UnsupportedMediaType { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unavailable | ApiError::DataUnavailable => "service_unavailable",
            ApiError::Internal => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidToken(_)
            | ApiError::MalformedCredentials(_)
            | ApiError::TokenRevoked
            | ApiError::MissingToken
            | ApiError::UnknownUser => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest { .. } | ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable | ApiError::DataUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let message = self.to_string();
        let mut body = if status == StatusCode::UNAUTHORIZED {
            json!({"authenticated": false, "error": {"code": code, "message": message}})
        } else {
            json!({"error": {"code": code, "message": message}})
        };
        if let ApiError::InvalidParameter {
            parameter,
            value,
            expected,
        } = &self
        {
            body["error"]["parameter"] = json!(parameter);
            body["error"]["value"] = json!(value);
            body["error"]["expected"] = json!(expected);
        }
        let mut response = (status, axum::Json(body)).into_response();
        // Errors depend on the credentials sent: never cached or shared.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 section 3: a rejected bearer token gets the
            // `invalid_token` error in the challenge; a request without any
            // token gets the challenge without an error code.
            let challenge = if matches!(self, ApiError::MissingToken) {
                "Bearer realm=\"sessionfold\"".to_owned()
            } else {
                format!(
                    "Bearer realm=\"sessionfold\", error=\"invalid_token\", error_description=\"{}\"",
                    message.replace(['"', '\\'], "'")
                )
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
