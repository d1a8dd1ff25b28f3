//! solti-exec (work in progress).
