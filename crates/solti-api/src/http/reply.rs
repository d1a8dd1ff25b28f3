//! JSON bodies in and out, and the JSON error body.

use axum::{
    body::{Body, Bytes},
    extract::rejection::{BytesRejection, PathRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::ApiError;

/// A `200`/`201` JSON response with the proto3 JSON of `msg`.
pub(crate) fn json<T: Serialize>(status: StatusCode, msg: &T) -> Response {
    match serde_json::to_vec(msg) {
        Ok(body) => {
            let mut res = Response::new(Body::from(body));
            *res.status_mut() = status;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => ApiError::Internal(format!("failed to encode the response: {e}")).into_response(),
    }
}

/// Decodes a proto3 JSON request body.
///
/// The browser guard (`http::guard`) has already refused a body without
/// `Content-Type: application/json` (415); this check stays for routers built without it.
pub(crate) fn decode<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
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
    let body = body.map_err(|e| body_error(&e))?;
    if body.is_empty() {
        return Err(ApiError::invalid("body", "required: a JSON object"));
    }
    // Lists over their field's limit are refused before decoding allocates every entry.
    super::shape::check(&body)?;
    let mut json = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut json)
        .map_err(|e| crate::convert::json_error(&e.path().to_string(), e.inner()))?;
    json.end()
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// Maps a failure to read the body: over the limit → 413, anything else → 400.
fn body_error(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit: super::MAX_BODY_BYTES,
        }
    } else {
        ApiError::InvalidRequest(format!(
            "could not read the request body: {}",
            rejection.body_text()
        ))
    }
}

/// Maps a bad `{id}` path segment (invalid percent-encoding) to a 400.
pub(crate) fn path_error(rejection: &PathRejection) -> ApiError {
    ApiError::invalid("id", rejection.body_text())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.label(), "message": self.to_string() });
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
