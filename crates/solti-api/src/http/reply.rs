//! JSON bodies in and out, the extractors that reject as [`ApiError`], and the JSON error
//! body.

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use solti_model::TaskId;

use crate::{ApiError, convert};

/// A `200`/`201` JSON response with the proto3 JSON of `msg`.
pub(super) fn json<T: Serialize>(status: StatusCode, msg: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(msg).map_err(|e| ApiError::internal(EncodeError(e)))?;
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

#[derive(Debug, thiserror::Error)]
#[error("failed to encode the response")]
struct EncodeError(#[source] serde_json::Error);

/// A proto3 JSON request body, decoded; a bad body rejects as [`ApiError`].
///
/// The gate has already refused a body without `Content-Type: application/json` (415); the
/// check here stays for routers built without it. A body over `MAX_BODY_BYTES` is a 413;
/// lists over their field's limit are refused before decoding allocates every entry.
pub(super) struct JsonBody<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let is_json = mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"));
            if !is_json {
                return Err(ApiError::invalid(
                    "Content-Type",
                    format!(
                        "must be application/json, got {:?}",
                        ct.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    what: "request body",
                    limit: super::MAX_BODY_BYTES,
                }
            } else {
                ApiError::invalid("could not read the request body", e.body_text())
            }
        })?;
        if body.is_empty() {
            return Err(ApiError::invalid("body", "required: a JSON object"));
        }
        super::shape::check(&body)?;
        let mut json = serde_json::Deserializer::from_slice(&body);
        let value = serde_path_to_error::deserialize(&mut json)
            .map_err(|e| convert::json_error(&e.path().to_string(), e.inner()))?;
        json.end()
            .map_err(|e| ApiError::invalid("invalid JSON body", e.to_string()))?;
        Ok(Self(value))
    }
}

/// The `{id}` of a task route; a bad segment rejects as a 400 naming `id`.
pub(super) struct IdPath(pub(super) TaskId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid("id", e.body_text()))?;
        convert::task_id("id", &raw).map(Self)
    }
}

/// Query parameters; a malformed query string rejects as a 400.
pub(super) struct Params<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid("invalid query string", e.body_text()))?;
        Ok(Self(params))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let wire = self.wire();
        let status = StatusCode::from_u16(wire.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": wire.label, "message": self.to_string() });
        let mut res = Response::new(Body::from(body.to_string()));
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, Self::Unauthenticated) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
