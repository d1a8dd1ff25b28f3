//! Behaviour of the model through its public API: every validation rule, policy spellings,
//! serde round trips, identifiers and tokens.
#![allow(clippy::unwrap_used, reason = "test code")]

mod rules;
mod spellings;
