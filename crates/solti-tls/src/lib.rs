//! solti-tls (work in progress).
#![forbid(unsafe_code)]
