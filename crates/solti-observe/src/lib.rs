//! solti-observe (work in progress).
#![forbid(unsafe_code)]
