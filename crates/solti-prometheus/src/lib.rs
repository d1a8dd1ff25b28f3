//! solti-prometheus (work in progress).
#![forbid(unsafe_code)]
