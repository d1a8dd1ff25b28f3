//! A bounded, seeded mutation fuzz of `POST /api/v1/tasks` over HTTP: every mutated body
//! must get 201, 400 or 413 (errors as JSON), never a 5xx, a hang or a dead agent.

use std::{collections::BTreeMap, time::Instant};

use anyhow::Result;
use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use super::command_spec;
use crate::{client::Api, report::Report};

/// A xorshift64* generator: deterministic, so a failing case can be replayed by its index.
#[derive(Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"\"",
    "0.5",
    "\u{fffd}",
    "\u{7f}",
    " ",
    "\"TASK_STATUS_FAILED\"",
    "\"RESTART_STRATEGY_ALWAYS\"",
    "99999999999",
];

/// One mutation of `base`.
pub(super) fn mutate(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..=rng.below(3) {
        let len = out.len().max(1);
        let at = rng.below(len);
        match rng.below(6) {
            0 => {
                if let Some(b) = out.get_mut(at) {
                    *b = u8::try_from(rng.below(256)).unwrap_or(0);
                }
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(at.min(out.len())..at.min(out.len()), t.bytes());
            }
            2 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let span = out[at.min(end)..end].to_vec();
                out.splice(at.min(out.len())..at.min(out.len()), span);
            }
            4 => out.truncate(at),
            _ => {
                // Swap a JSON number or string value for a token.
                if let Some(colon) = out[at.min(out.len())..].iter().position(|&b| b == b':') {
                    let pos = at + colon + 1;
                    let t = TOKENS[rng.below(TOKENS.len())];
                    out.splice(pos..pos, t.bytes());
                }
            }
        }
    }
    out
}

pub(super) async fn run(api: &Api, report: &mut Report, cases: usize) -> Result<()> {
    let mut spec = command_spec("fuzz", "true", &[], std::time::Duration::from_secs(5));
    spec["backoff"] = json!({ "jitter": "JITTER_STRATEGY_FULL", "firstMs": "100", "maxMs": "1000", "factor": 2.0 });
    spec["kind"]["subprocess"]["env"] = json!([{ "key": "K", "value": "V" }]);
    let base = serde_json::to_vec(&json!({ "spec": spec }))?;
    let check = api
        .conn()
        .await?
        .send(
            Method::POST,
            "/api/v1/tasks",
            Some(Bytes::from(base.clone())),
            &[],
        )
        .await?;
    anyhow::ensure!(
        check.status.as_u16() == 201,
        "fuzz base body refused: {}",
        check.describe()
    );
    let mut rng = Rng::new(0x5EED_50D1);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    let started = Instant::now();
    let mut conn = api.conn().await?;
    for case in 0..cases {
        let body = mutate(&base, &mut rng);
        if conn.is_closed() {
            conn = api.conn().await?;
        }
        match conn
            .send(
                Method::POST,
                "/api/v1/tasks",
                Some(Bytes::from(body.clone())),
                &[],
            )
            .await
        {
            Ok(r) => {
                let code = r.status.as_u16();
                *statuses.entry(code).or_default() += 1;
                let fine = code == 201 || (matches!(code, 400 | 413) && r.is_json_error());
                if !fine {
                    bad.push(format!(
                        "case {case}: body {:?} -> {}",
                        String::from_utf8_lossy(&body),
                        r.describe()
                    ));
                }
            }
            Err(e) => {
                bad.push(format!(
                    "case {case}: body {:?} -> {e:#}",
                    String::from_utf8_lossy(&body)
                ));
                conn = api.conn().await?;
            }
        }
    }
    report.check(
        "fuzz-submit",
        bad.is_empty(),
        format!(
            "{cases} mutated POST /api/v1/tasks bodies (seed 0x5EED50D1) in {:.1}s: statuses {statuses:?}{}",
            started.elapsed().as_secs_f64(),
            super::load::first_failures(&bad)
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_differ() {
        let base = br#"{"spec":{"slot":"x","timeoutMs":"5"}}"#;
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let ma: Vec<Vec<u8>> = (0..50).map(|_| mutate(base, &mut a)).collect();
        let mb: Vec<Vec<u8>> = (0..50).map(|_| mutate(base, &mut b)).collect();
        assert_eq!(ma, mb);
        assert!(ma.iter().filter(|m| m.as_slice() != base).count() > 40);
    }
}
