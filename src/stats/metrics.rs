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

/// Statuses whose counters each route keeps at hand; others are looked up in the family.
const COMMON_STATUSES: [u16; 6] = [200, 206, 304, 404, 416, 429];

/// A route's series, once it has been seen: handles that share their values with the families,
/// so a response costs no label hashing and no family lock (that was about 1.3% of a 304's
/// samples), and `/metrics` still lists only the series that occurred.
#[derive(Debug, Default)]
struct Handles {
    statuses: [OnceLock<Counter>; COMMON_STATUSES.len()],
    bytes: OnceLock<Counter>,
    latency: OnceLock<Histogram>,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    bytes: Family<Route, Counter>,
    latency: Latency,
    /// By [`super::RouteKind`] as an index.
    handles: [Handles; super::RouteKind::COUNT],
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
            handles: Default::default(),
            measurement,
        }
    }
}

impl Metrics {
    /// Counts one response.
    pub fn observe(&self, d: &Delivery) {
        let route = d.route.as_str();
        let h = &self.handles[d.route as usize];
        let requests = |status| {
            self.requests
                .get_or_create(&RouteStatus { route, status })
                .clone()
        };
        match COMMON_STATUSES.iter().position(|&s| s == d.status) {
            Some(i) => h.statuses[i].get_or_init(|| requests(d.status)).inc(),
            None => requests(d.status).inc(),
        };
        let r = Route { route };
        if d.bytes > 0 {
            h.bytes
                .get_or_init(|| self.bytes.get_or_create(&r).clone())
                .inc_by(d.bytes);
        }
        h.latency
            .get_or_init(|| self.latency.get_or_create(&r).clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Extent, RequestLine, RouteKind};
    use std::time::{Duration, SystemTime};

    fn delivery(route: RouteKind, status: u16, bytes: u64) -> Delivery {
        Delivery {
            at: SystemTime::now(),
            duration: Duration::from_millis(3),
            request: RequestLine::new("GET", "/", None, None),
            route,
            episode: None,
            audio: None,
            extent: Extent::None,
            status,
            length: None,
            bytes,
            sendfile_bytes: 0,
            complete: true,
            client: std::net::IpAddr::from([127, 0, 0, 1]),
            credentials: crate::access::Credentials::Anonymous,
        }
    }

    #[test]
    fn kept_handles_and_family_lookups_count_the_same_series() {
        let m = Metrics::default();
        for _ in 0..2 {
            m.observe(&delivery(RouteKind::Feed, 304, 0));
            m.observe(&delivery(RouteKind::Feed, 503, 10));
            m.observe(&delivery(RouteKind::Media, 206, 100));
        }
        let text = m.encode();
        for line in [
            "rollcall_http_requests_total{route=\"feed\",status=\"304\"} 2",
            "rollcall_http_requests_total{route=\"feed\",status=\"503\"} 2",
            "rollcall_http_requests_total{route=\"media\",status=\"206\"} 2",
            "rollcall_http_response_body_bytes_total{route=\"feed\"} 20",
            "rollcall_http_response_body_bytes_total{route=\"media\"} 200",
            "rollcall_http_response_seconds_count{route=\"feed\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(
            !text.contains("route=\"home\""),
            "a route never seen has no series"
        );
    }
}
