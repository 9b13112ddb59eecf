//! Metrics for Prometheus (the `prometheus-client` crate), in its text format at `/metrics`.
//!
//! Every delivery record is observed here as it is published, before any subscriber's queue, so
//! the figures are exact even when a subscriber drops records: requests by route and status,
//! body bytes sent by route, and response time by route. The measurement thread's own counts
//! (events stored, downloads counted, events dropped) are read from its [`Status`] at each
//! scrape.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::measure::Status;
use super::Delivery;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: &'static str,
}

type Latency = Family<Route, Histogram, fn() -> Histogram>;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    bytes: Family<Route, Counter>,
    latency: Latency,
    measurement: Arc<OnceLock<Arc<Status>>>,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("rollcall");
        let requests = Family::<RouteStatus, Counter>::default();
        let bytes = Family::<Route, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP responses, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Response body bytes the socket accepted, by route",
            bytes.clone(),
        );
        registry.register(
            "http_response_seconds",
            "Time from a request's arrival to the end of its response, by route",
            latency.clone(),
        );
        let measurement = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(MeasurementCollector(Arc::clone(&measurement))));
        Metrics {
            registry,
            requests,
            bytes,
            latency,
            measurement,
        }
    }
}

impl Metrics {
    /// Counts one response.
    pub fn observe(&self, d: &Delivery) {
        let route = d.route.as_str();
        self.requests
            .get_or_create(&RouteStatus {
                route,
                status: d.status,
            })
            .inc();
        let r = Route { route };
        if d.bytes > 0 {
            self.bytes.get_or_create(&r).inc_by(d.bytes);
        }
        self.latency
            .get_or_create(&r)
            .observe(d.duration.as_secs_f64());
    }

    /// Reports the measurement thread's counts from now on.
    pub fn attach_measurement(&self, status: Arc<Status>) {
        let _ = self.measurement.set(status);
    }

    /// The measurement thread's status, once measurement runs.
    pub fn measurement(&self) -> Option<&Arc<Status>> {
        self.measurement.get()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[derive(Debug)]
struct MeasurementCollector(Arc<OnceLock<Arc<Status>>>);

impl Collector for MeasurementCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(s) = self.0.get() else {
            return Ok(());
        };
        let counters = [
            (
                "downloads",
                "Downloads counted by the IAB v2.3 rules (docs/measurement.md)",
                s.downloads.load(Relaxed),
            ),
            (
                "measurement_events",
                "Media events written to the store",
                s.events.load(Relaxed),
            ),
            (
                "measurement_events_dropped",
                "Media events lost before they were stored: queue full, or the store unwritable",
                s.dropped(),
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let g = ConstGauge::new(i64::from(s.failing.load(Relaxed)));
        g.encode(encoder.encode_descriptor(
            "measurement_store_failing",
            "1 while the last write of measurement events to the store failed",
            None,
            g.metric_type(),
        )?)?;
        Ok(())
    }
}
