//! The request message of a task service call, checked by the gate before tonic sees it.
//!
//! Every RPC of `solti.task.v1.TaskService` takes one message. The gate reads it (at most
//! [`MAX_MESSAGE_BYTES`] plus the 5-byte frame header), refuses an oversized or malformed
//! frame with the contract's code, and for `SubmitTask` / `ApplyTask` refuses lists over
//! their limit before prost decodes them ([`shape`](super::shape)). The call then goes on
//! with the same bytes. Bytes that frame correctly but are not the message are left to the
//! codec ([`ProtoCodec`](crate::codec::ProtoCodec): `INVALID_ARGUMENT`).

use axum::{body::Body, extract::Request};
use http_body_util::BodyExt as _;

use super::MAX_MESSAGE_BYTES;
use crate::ApiError;

/// Reads the one message of `rpc`'s request and hands the request back with the same bytes.
pub(crate) async fn read(req: Request, rpc: &str) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_MESSAGE_BYTES + 5)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::invalid(
                "could not read the request",
                e.to_string(),
            ));
        }
    };
    let message = match &bytes[..] {
        [0, a, b, c, d, rest @ ..] => {
            let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
            if len > MAX_MESSAGE_BYTES {
                return Err(too_large());
            }
            if rest.len() != len {
                return Err(invalid(format!(
                    "expected one message of {len} bytes, got {} bytes after the frame header",
                    rest.len()
                )));
            }
            rest
        }
        [1, ..] => return Err(invalid("compressed messages are not accepted".to_owned())),
        _ => {
            return Err(invalid(format!(
                "expected one length-prefixed message, got {} bytes",
                bytes.len()
            )));
        }
    };
    if matches!(rpc, "SubmitTask" | "ApplyTask") {
        super::shape::check(message)?;
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge {
        what: "message",
        limit: MAX_MESSAGE_BYTES,
    }
}

fn invalid(rule: String) -> ApiError {
    ApiError::invalid("invalid request message", rule)
}
