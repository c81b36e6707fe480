//! Request extractors whose rejections are [`ApiError`]s that name the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Errors say which field was wrong: `port: invalid type: string "x", expected u16`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| ApiError::Invalid {
            code: "invalid_body",
            message: format!("cannot read the request body: {e}"),
            field: None,
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, turning serde's error into an [`ApiError`] with the field path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::Invalid { code: "malformed_json", message: format!("the body is not valid JSON: {inner}"), field: None };
        }
        let message = inner.to_string();
        // serde_path_to_error's path ends at the unknown key already, but a missing field is reported against
        // the enclosing object: name the field itself.
        let missing = backticked(&message).filter(|_| message.starts_with("missing field"));
        let field = match (missing, path.as_str()) {
            (Some(name), "." | "") => name.to_string(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, p) => p.to_string(),
        };
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        ApiError::Invalid { code: "invalid_field", message: format!("{field}: {message}"), field: Some(field) }
    })
}

fn backticked(s: &str) -> Option<&str> {
    let start = s.find('`')? + 1;
    let end = start + s[start..].find('`')?;
    Some(&s[start..end])
}

/// Query string parameters with the same error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            let missing = backticked(&message).filter(|_| message.starts_with("missing field"));
            let field = missing.map(str::to_string).unwrap_or(path);
            ApiError::Invalid { code: "invalid_query", message: format!("query parameter `{field}`: {message}"), field: Some(field) }
        })
    }
}

/// A page size from the query string: `default` when absent, an error naming `limit` outside 1..=max.
pub fn page_limit(value: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = value.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::Invalid {
            code: "invalid_query",
            message: format!("query parameter `limit`: {limit} is out of range 1–{max}"),
            field: Some("limit".into()),
        })
    }
}
