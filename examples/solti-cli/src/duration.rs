//! Human durations: `500ms`, `30s`, `5m`, `2h`, `1d`, and sums such as `1m30s`.

use std::time::Duration;

/// The longest duration the agents accept (365 days), in milliseconds.
pub(crate) const MAX_MS: u64 = 365 * 24 * 3_600_000;

/// Parses a human duration. The error says what is wrong, without the flag name (the caller
/// adds it).
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. 500ms, 30s, 5m, 2h or 1d".to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{text:?}: expected a number at {rest:?}"));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, next) = after.split_at(unit_len);
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "{text:?}: a unit is required (ms, s, m, h or d), e.g. {number}s"
                ));
            }
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?}; use ms, s, m, h or d"
                ));
            }
        };
        let value: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        total = value
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: too large"))?;
        rest = next;
    }
    Ok(Duration::from_millis(total))
}

/// Parses a duration for an agent field: 1 ms ..= 365 days.
pub(crate) fn parse_agent_ms(s: &str) -> Result<u64, String> {
    let ms = u64::try_from(parse(s)?.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(format!("{s:?}: must be at least 1ms"));
    }
    if ms > MAX_MS {
        return Err(format!("{s:?}: must be at most 365d"));
    }
    Ok(ms)
}

/// A compact, readable duration: `850ms`, `4.2s`, `3m05s`, `2h10m`, `3d4h`.
pub(crate) fn format_ms(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", s, (ms % 1000) / 100),
        60_000..3_600_000 if s.is_multiple_of(60) => format!("{}m", s / 60),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 if (s % 3600) / 60 == 0 => format!("{}h", s / 3600),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ if (s % 86_400) / 3600 == 0 => format!("{}d", s / 86_400),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago `then_ms` (Unix ms) was, relative to `now_ms`: `just now`, `12s ago`,
/// `5m ago`, `3h ago`, `2d ago`.
pub(crate) fn ago(now_ms: i64, then_ms: i64) -> String {
    let d = now_ms.saturating_sub(then_ms);
    match d {
        i64::MIN..1_000 => "just now".to_owned(),
        1_000..60_000 => format!("{}s ago", d / 1000),
        60_000..3_600_000 => format!("{}m ago", d / 60_000),
        3_600_000..86_400_000 => format!("{}h ago", d / 3_600_000),
        _ => format!("{}d ago", d / 86_400_000),
    }
}

/// A compact age for tables: `now`, `12s`, `5m`, `3h`, `2d`.
pub(crate) fn age(now_ms: i64, then_ms: i64) -> String {
    match ago(now_ms, then_ms).as_str() {
        "just now" => "now".to_owned(),
        other => other.trim_end_matches(" ago").to_owned(),
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse(" 2h ").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in ["", "30", "5x", "s", "1.5s", "-1s", "99999999999999999999s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("30").unwrap_err().contains("30s"));
        assert!(parse_agent_ms("0s").is_err());
        assert!(parse_agent_ms("366d").is_err());
        assert_eq!(parse_agent_ms("365d").unwrap(), MAX_MS);
    }

    #[test]
    fn formats_readably() {
        assert_eq!(format_ms(850), "850ms");
        assert_eq!(format_ms(4_250), "4.2s");
        assert_eq!(format_ms(185_000), "3m05s");
        assert_eq!(format_ms(7_800_000), "2h10m");
        assert_eq!(format_ms(273_600_000), "3d4h");
        assert_eq!(format_ms(86_400_000), "1d");
        assert_eq!(format_ms(300_000), "5m");
        assert_eq!(format_ms(7_200_000), "2h");
        assert_eq!(ago(10_000, 9_500), "just now");
        assert_eq!(ago(100_000, 88_000), "12s ago");
        assert_eq!(ago(10_000_000, 0), "2h ago");
    }
}
