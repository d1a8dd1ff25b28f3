//! The query of `GET /api/v1/tasks/{id}/logs` (wire contract §5): `tail`, `follow`,
//! `since` and the `Last-Event-ID` header.

use axum::http::HeaderMap;
use serde::Deserialize;
use solti_core::{OutputQuery, OutputStart};

use crate::ApiError;

/// The resume header browsers' `EventSource` sends on reconnect.
pub(super) const LAST_EVENT_ID: &str = "last-event-id";

/// Query parameters of the log stream; unknown parameters are ignored.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LogParams {
    tail: Option<String>,
    follow: Option<String>,
    since: Option<String>,
}

/// The subscription the request asks for. `Last-Event-ID` wins over `tail` and `since`
/// (a reconnecting `EventSource` repeats the original URL).
pub(super) fn parse(params: &LogParams, headers: &HeaderMap) -> Result<OutputQuery, ApiError> {
    let tail = params
        .tail
        .as_deref()
        .map(|raw| match raw.trim() {
            "all" => Ok(OutputStart::All),
            n => n
                .parse::<u64>()
                .map(OutputStart::Tail)
                .map_err(|_| bad("tail", "a non-negative integer or \"all\"", raw)),
        })
        .transpose()?;
    let since = params
        .since
        .as_deref()
        .map(|raw| {
            raw.trim()
                .parse::<i64>()
                .map(OutputStart::Since)
                .map_err(|_| bad("since", "a Unix time in milliseconds", raw))
        })
        .transpose()?;
    let follow = match params.follow.as_deref().map(str::trim) {
        None | Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(raw) => return Err(bad("follow", "true or false", raw)),
    };
    let after = match headers.get(LAST_EVENT_ID) {
        None => None,
        Some(value) => {
            let raw = String::from_utf8_lossy(value.as_bytes());
            Some(
                raw.trim()
                    .parse::<u64>()
                    .map(OutputStart::After)
                    .map_err(|_| {
                        bad(
                            "Last-Event-ID",
                            "an event id of this stream (a non-negative integer)",
                            &raw,
                        )
                    })?,
            )
        }
    };
    let start = match (after, tail, since) {
        (Some(after), _, _) => after,
        (None, Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "since",
                "cannot be combined with tail (use one of them)",
            ));
        }
        (None, Some(start), None) | (None, None, Some(start)) => start,
        (None, None, None) => OutputStart::Live,
    };
    Ok(OutputQuery::new(start).follow(follow))
}

fn bad(field: &str, what: &str, raw: &str) -> ApiError {
    ApiError::invalid(
        field,
        format!(
            "must be {what}, got {:?}",
            raw.chars().take(32).collect::<String>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(tail: Option<&str>, follow: Option<&str>, since: Option<&str>) -> LogParams {
        LogParams {
            tail: tail.map(str::to_owned),
            follow: follow.map(str::to_owned),
            since: since.map(str::to_owned),
        }
    }

    fn query(p: &LogParams, last: Option<&str>) -> Result<OutputQuery, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(last) = last {
            headers.insert(LAST_EVENT_ID, last.parse().unwrap());
        }
        parse(p, &headers)
    }

    #[test]
    fn accepted_forms() {
        let q = |t, f, s, l| query(&params(t, f, s), l).unwrap();
        assert_eq!(q(None, None, None, None), OutputQuery::live());
        assert_eq!(
            q(Some("all"), Some("false"), None, None),
            OutputQuery::new(OutputStart::All).follow(false)
        );
        assert_eq!(q(Some("5"), None, None, None).start, OutputStart::Tail(5));
        assert_eq!(
            q(None, None, Some("1700000000000"), None).start,
            OutputStart::Since(1_700_000_000_000)
        );
        assert_eq!(
            q(Some("5"), None, None, Some("41")).start,
            OutputStart::After(41)
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = |t, f, s, l| query(&params(t, f, s), l).unwrap_err().to_string();
        assert!(e(Some("-1"), None, None, None).starts_with("tail: "));
        assert!(e(Some("x"), None, None, None).starts_with("tail: "));
        assert!(e(None, None, Some("abc"), None).starts_with("since: "));
        assert!(e(None, Some("maybe"), None, None).starts_with("follow: "));
        assert!(e(None, None, None, Some("-3")).starts_with("Last-Event-ID: "));
        assert!(e(Some("1"), None, Some("2"), None).starts_with("since: "));
    }
}
