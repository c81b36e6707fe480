//! One error type for every route. 4xx bodies say what was wrong and where (`field`); 5xx bodies say only
//! that it failed and carry the request id, while the real error is logged inside the request's span.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed or a field is invalid.
    Invalid {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 401: no valid token.
    Unauthenticated,
    /// 403: the token's role may not do this.
    Forbidden {
        permission: &'static str,
    },
    NotFound {
        what: String,
    },
    Conflict {
        what: String,
    },
    /// 409: the caller acted on what they read, and it changed meanwhile (a racing approval, an edit).
    Stale {
        what: String,
    },
    /// 409: the ticket's state does not allow this (approving an approved ticket, cancelling a rejected one).
    InvalidTransition {
        message: String,
    },
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 500: details go to the log, never to the client.
    Internal {
        request_id: String,
    },
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid { code: "invalid_field", message: message.into(), field: Some(field.into()) }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::Stale { .. } | ApiError::InvalidTransition { .. } => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps a store error; anything but not-found and conflict is logged here and becomes an opaque 500.
    pub fn from_store(e: StoreError, request_id: &str) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::NotFound { what },
            StoreError::Conflict { what } => ApiError::Conflict { what },
            other => {
                tracing::error!(request_id, error = %other, source = ?std::error::Error::source(&other).map(|s| s.to_string()), "store operation failed");
                ApiError::Internal { request_id: request_id.to_string() }
            }
        }
    }
}

/// The error body: `{"error": {"code": …, "message": …, "field": …}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_field`, `unauthenticated`, `not_found`.
    pub code: String,
    pub message: String,
    /// The request field at fault, as a path (`labels.team`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Present on 5xx: quote it when reporting the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (code, message, field, request_id) = match self {
            ApiError::Invalid { code, message, field } => (code.to_string(), message, field, None),
            ApiError::Unauthenticated => ("unauthenticated".into(), "a valid API token is required: send `Authorization: Bearer <token>`".into(), None, None),
            ApiError::Forbidden { permission } => ("forbidden".into(), format!("your role does not allow `{permission}`"), None, None),
            ApiError::NotFound { what } => ("not_found".into(), format!("{what} not found"), None, None),
            ApiError::Conflict { what } => ("conflict".into(), format!("{what} already exists"), None, None),
            ApiError::InvalidTransition { message } => ("invalid_transition".into(), message, None, None),
            ApiError::Stale { what } => ("stale".into(), format!("{what} changed meanwhile: read it again"), None, None),
            ApiError::UnsupportedMediaType => {
                ("unsupported_media_type".into(), "send the body as JSON with `Content-Type: application/json`".into(), None, None)
            }
            ApiError::Internal { request_id } => ("internal".into(), "the request failed on the server".into(), None, Some(request_id)),
        };
        let mut resp = (status, axum::Json(ErrorBody { error: ErrorDetail { code, message, field, request_id } })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
