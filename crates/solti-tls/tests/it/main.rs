//! Behaviour tests for solti-tls.
