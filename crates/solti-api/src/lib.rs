//! solti-api (work in progress).
#![forbid(unsafe_code)]
