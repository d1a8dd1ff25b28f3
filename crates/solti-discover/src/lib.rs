//! solti-discover (work in progress).
#![forbid(unsafe_code)]
