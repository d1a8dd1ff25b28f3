//! The crate's error type.

/// Why registering, encoding or serving metrics failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric family could not be registered: usually the same family was already
    /// registered on this registry (for example `SoltiMetrics::new` called twice on one
    /// registry).
    #[error("failed to register metric family {name}")]
    Register {
        /// The family that was being registered.
        name: &'static str,
        /// The registry's error.
        #[source]
        source: prometheus::Error,
    },
    /// The gathered metrics could not be encoded in the text exposition format.
    #[error("failed to encode metrics")]
    Encode(#[source] prometheus::Error),
    /// The `/metrics` server stopped with an I/O error.
    #[error("metrics server failed")]
    Serve(#[source] std::io::Error),
}
