//! Behaviour tests of solti-observe through its public API.

mod capture;
mod format;
mod init;
mod lifecycle;
