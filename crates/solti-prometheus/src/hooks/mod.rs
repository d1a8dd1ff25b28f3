//! The observer traits of `solti-api` and `solti-discover`, implemented by the recorders
//! (each behind its feature).

#[cfg(feature = "api")]
mod api;
#[cfg(feature = "discover")]
mod discover;
