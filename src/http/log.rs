//! The access log: one line per response, written from its [`Delivery`] record by one batching
//! thread.
//!
//! The log subscribes to the server's [`Deliveries`] with a bounded queue. Its thread wakes every
//! [`INTERVAL`], formats whatever arrived and writes it in one go, so requests never wait on the
//! log's output and no request wakes a thread. If the output stops draining, the queue fills, and
//! the lines past it are dropped and counted in a warning rather than stalling requests or growing
//! memory. Lines carry method, path (never the query, which may carry tokens), status, body bytes
//! the socket accepted, the announced length, milliseconds and user agent.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::stats::{Consumer, Deliveries, Delivery, Subscription};

/// How often the log thread writes what arrived.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Records the queue holds while the output is slow; past it, lines are dropped and counted.
pub const QUEUE: usize = 64 * 1024;

thread_local! {
    /// The current second, formatted, so each line formats only its microseconds.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The running access log; [`AccessLog::finish`] writes what is left and stops it.
pub struct AccessLog(Consumer);

impl AccessLog {
    /// Subscribes to `deliveries` and writes a line per record to `out` from its own thread.
    pub fn start(
        deliveries: &Deliveries,
        out: impl Write + Send + 'static,
    ) -> std::io::Result<AccessLog> {
        Consumer::spawn(deliveries, "access log", QUEUE, move |sub, stop| {
            run(sub, out, stop)
        })
        .map(AccessLog)
    }

    /// Writes every record published so far, then stops the thread.
    pub fn finish(self) {
        self.0.finish();
    }
}

fn run(sub: Subscription, mut out: impl Write, stop: &AtomicBool) {
    let mut batch = String::with_capacity(256 * 1024);
    let mut reported = 0;
    loop {
        let last = stop.load(Ordering::Relaxed);
        for d in sub.records.try_iter() {
            line(&mut batch, &d);
        }
        if !batch.is_empty() {
            let _ = out.write_all(batch.as_bytes());
            let _ = out.flush();
            batch.clear();
        }
        let dropped = sub.dropped();
        if dropped > reported {
            tracing::warn!(
                dropped = dropped - reported,
                "access log lines dropped: the log output fell behind; check that whatever reads the server's stderr (journald, a pipe, a log shipper) keeps up"
            );
            reported = dropped;
        }
        if last {
            return;
        }
        std::thread::park_timeout(INTERVAL);
    }
}

/// Appends one access line for `d`, formatted like the `tracing` output around it.
fn line(out: &mut String, d: &Delivery) {
    use std::fmt::Write;
    timestamp(out, d.at + d.duration);
    let micros = d.duration.as_micros();
    let _ = write!(
        out,
        "  INFO access: method={} path={} status={} bytes={} length={} ms={}.{:03} ua={}",
        d.request.method(),
        d.request.path(),
        d.status,
        d.bytes,
        Length(d.length),
        micros / 1000,
        micros % 1000,
        d.request.user_agent().unwrap_or("-"),
    );
    // A personal URL's token shows only as its fingerprint.
    if let crate::access::Credentials::Personal {
        fingerprint: [a, b, c, e],
        ..
    } = d.credentials
    {
        let _ = write!(out, " token={a:02x}{b:02x}{c:02x}{e:02x}");
    }
    out.push('\n');
}

/// `2026-11-23T15:16:44.848805Z`, as tracing-subscriber writes it.
fn timestamp(out: &mut String, at: SystemTime) {
    let now = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *cached = secs;
            text.clear();
            if let Some(t) = chrono::DateTime::from_timestamp(secs as i64, 0) {
                use std::fmt::Write;
                let _ = write!(text, "{}", t.format("%Y-%m-%dT%H:%M:%S"));
            }
        }
        out.push_str(text);
    });
    use std::fmt::Write;
    let _ = write!(out, ".{:06}Z", now.subsec_micros());
}

/// `Content-Length` for the log: the number, or `-` when the body had none.
struct Length(Option<u64>);

impl std::fmt::Display for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An output that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn delivery(path: &str) -> Delivery {
        Delivery {
            at: SystemTime::now(),
            duration: Duration::from_micros(1500),
            request: crate::stats::RequestLine::new("GET", path, None, Some("gPodder/3")),
            route: crate::stats::RouteKind::Feed,
            episode: None,
            audio: None,
            extent: Default::default(),
            status: 200,
            length: Some(10),
            bytes: 4,
            sendfile_bytes: 0,
            complete: false,
            client: [127, 0, 0, 1].into(),
            credentials: Default::default(),
        }
    }

    #[test]
    fn finish_writes_every_record_in_order() {
        let hub = Deliveries::default();
        let kept = Kept::default();
        let log = AccessLog::start(&hub, kept.clone()).unwrap();
        hub.publish(delivery("/one"));
        hub.publish(delivery("/two"));
        log.finish();
        let text = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(
            "INFO access: method=GET path=/one status=200 bytes=4 length=10 ms=1.500 ua=gPodder/3"
        ), "{text}");
        assert!(lines[1].contains("path=/two"), "{text}");
    }

    #[test]
    fn timestamps_look_like_the_rest_of_the_log() {
        let mut s = String::new();
        timestamp(&mut s, SystemTime::now());
        // 2026-11-23T15:16:44.848805Z
        assert_eq!(s.len(), 27, "{s}");
        assert!(
            s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.',
            "{s}"
        );
    }
}
