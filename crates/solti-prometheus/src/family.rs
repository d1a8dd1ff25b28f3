//! Building and registering metric families (the only place that calls `Registry::register`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, core::Collector,
};

use crate::MetricsError;

pub(crate) fn register<C>(
    registry: &Registry,
    name: &'static str,
    collector: C,
) -> Result<C, MetricsError>
where
    C: Collector + Clone + 'static,
{
    registry
        .register(Box::new(collector.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(collector)
}

pub(crate) fn counter(
    registry: &Registry,
    name: &'static str,
    help: &str,
) -> Result<IntCounter, MetricsError> {
    let c = IntCounter::with_opts(Opts::new(name, help))
        .map_err(|source| MetricsError::Register { name, source })?;
    register(registry, name, c)
}

pub(crate) fn counter_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .map_err(|source| MetricsError::Register { name, source })?;
    register(registry, name, c)
}

pub(crate) fn gauge(
    registry: &Registry,
    name: &'static str,
    help: &str,
) -> Result<IntGauge, MetricsError> {
    let g = IntGauge::with_opts(Opts::new(name, help))
        .map_err(|source| MetricsError::Register { name, source })?;
    register(registry, name, g)
}

pub(crate) fn gauge_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .map_err(|source| MetricsError::Register { name, source })?;
    register(registry, name, g)
}

pub(crate) fn histogram(
    registry: &Registry,
    name: &'static str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, MetricsError> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .map_err(|source| MetricsError::Register { name, source })?;
    register(registry, name, h)
}

pub(crate) fn histogram_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, MetricsError> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .map_err(|source| MetricsError::Register { name, source })?;
    register(registry, name, h)
}
