//! HTTP answers shared by the command center's API and the lead endpoints: the
//! contract's error body and a bounded JSON body reader.

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridcast_protocol::ErrorCode;
use gridcast_protocol::api::{ErrorBody, ErrorDetail};
use serde::de::DeserializeOwned;

use crate::Hub;
use crate::incident::Refusal;

/// An API error: contract code, message, and for a refused registry every problem.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) problems: Vec<String>,
}

impl ApiError {
    /// An error with a code and message.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        Self::new(r.code, r.message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Refusal::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                problems: self.problems,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// A handler's result.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Reads a JSON body of at most `limit` bytes within `--body-timeout-s`.
pub(crate) async fn parse_body<T: DeserializeOwned>(
    hub: &Hub,
    body: Body,
    limit: usize,
) -> ApiResult<T> {
    let bytes = read_body(hub, body, limit).await?;
    // Every body of the API is an object: serde would also read a struct from an
    // array (`[]` as an empty registry).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "invalid JSON body: it must be a JSON object",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body: {e}")))
}

/// Reads a whole body within `limit` bytes and the body timeout.
pub(crate) async fn read_body(hub: &Hub, body: Body, limit: usize) -> ApiResult<bytes::Bytes> {
    use http_body_util::BodyExt;
    let deadline = std::time::Duration::from_secs(hub.config.body_timeout_s);
    let read = tokio::time::timeout(
        deadline,
        http_body_util::Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "the request body did not arrive within {} s",
                deadline.as_secs()
            ),
        )
    })?;
    let bytes = read
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::new(
                    ErrorCode::TooLarge,
                    format!("request body is over the limit of {limit} bytes"),
                )
            } else {
                ApiError::new(ErrorCode::BadRequest, format!("reading the body: {e}"))
            }
        })?
        .to_bytes();
    Ok(bytes)
}

/// `axum::extract::Query` whose refusal (a duplicate or malformed parameter) is the
/// contract's JSON error, like every other refusal of the API.
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("query: {}", e.body_text())))
    }
}
