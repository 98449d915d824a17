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
