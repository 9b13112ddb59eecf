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

/// How access lines look: the format of the rest of the log, and how much of the client's address
/// they show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStyle {
    pub json: bool,
    pub client: crate::config::ClientAddress,
}

impl AccessLog {
    /// Subscribes to `deliveries` and writes a line per record to `out` from its own thread.
    pub fn start(
        deliveries: &Deliveries,
        out: impl Write + Send + 'static,
        style: LogStyle,
    ) -> std::io::Result<AccessLog> {
        Consumer::spawn(
            deliveries,
            "access log",
            QUEUE,
            crate::stats::everything,
            move |sub, stop| run(sub, out, style, stop),
        )
        .map(AccessLog)
    }

    /// Writes every record published so far, then stops the thread.
    pub fn finish(self) {
        self.0.finish();
    }
}

fn run(sub: Subscription, mut out: impl Write, style: LogStyle, stop: &AtomicBool) {
    let mut batch = String::with_capacity(256 * 1024);
    let mut reported = 0;
    loop {
        let last = stop.load(Ordering::Relaxed);
        for d in sub.records.try_iter() {
            if style.json {
                json_line(&mut batch, &d, style.client);
            } else {
                line(&mut batch, &d, style.client);
            }
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

/// The client's address as the log shows it: whole, truncated (IPv4 to its /24, IPv6 to its
/// /48, as analytics tools anonymise), or not at all (`None`).
fn shown_client(ip: std::net::IpAddr, how: crate::config::ClientAddress) -> Option<String> {
    use crate::config::ClientAddress;
    match how {
        ClientAddress::None => None,
        ClientAddress::Full => Some(ip.to_string()),
        ClientAddress::Truncated => Some(match ip {
            std::net::IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0")
            }
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
            }
        }),
    }
}

/// `"text"` with `"`, `\` and control characters escaped, so a header can never break a line or
/// forge a field; `-` for an absent header.
fn quoted(out: &mut String, text: Option<&str>) {
    use std::fmt::Write;
    let Some(text) = text else {
        out.push('-');
        return;
    };
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends one access line for `d`, formatted like the `tracing` output around it.
fn line(out: &mut String, d: &Delivery, client: crate::config::ClientAddress) {
    use std::fmt::Write;
    timestamp(out, d.at + d.duration);
    out.push_str("  INFO access:");
    if let Some(c) = shown_client(d.client, client) {
        let _ = write!(out, " client={c}");
    }
    let micros = d.duration.as_micros();
    let _ = write!(
        out,
        " method={} path={} status={} bytes={} length={} range=",
        d.request.method(),
        d.request.path(),
        d.status,
        d.bytes,
        Length(d.length),
    );
    quoted(out, d.request.range());
    out.push_str(" referer=");
    quoted(out, d.request.referer());
    let _ = write!(out, " ms={}.{:03} ua=", micros / 1000, micros % 1000);
    quoted(out, d.request.user_agent());
    // A personal URL's token shows only as its fingerprint.
    push_fingerprint(out, " token=", d);
    out.push('\n');
}

/// Appends `prefix` and the fingerprint (8 hex digits) of the personal URL's token `d` was asked
/// with, if any: a token shows in the log only as that.
fn push_fingerprint(out: &mut String, prefix: &str, d: &Delivery) {
    use std::fmt::Write;
    if let crate::access::Credentials::Personal {
        fingerprint: [a, b, c, e],
        ..
    } = d.credentials
    {
        out.push_str(prefix);
        let _ = write!(out, "{a:02x}{b:02x}{c:02x}{e:02x}");
    }
}

/// Appends one access line for `d` as JSON, in the shape of tracing-subscriber's JSON lines
/// (`timestamp`, `level`, `fields`, `target`), so one parser reads the whole log.
fn json_line(out: &mut String, d: &Delivery, client: crate::config::ClientAddress) {
    let mut at = String::new();
    timestamp(&mut at, d.at + d.duration);
    let micros = d.duration.as_micros() as u64;
    let mut fields = serde_json::json!({
        "message": "access",
        "method": d.request.method(),
        "path": d.request.path(),
        "status": d.status,
        "bytes": d.bytes,
        "length": d.length,
        "range": d.request.range(),
        "referer": d.request.referer(),
        "ms": micros as f64 / 1000.0,
        "ua": d.request.user_agent(),
    });
    if let Some(c) = shown_client(d.client, client) {
        fields["client"] = c.into();
    }
    let mut token = String::new();
    push_fingerprint(&mut token, "", d);
    if !token.is_empty() {
        fields["token"] = token.into();
    }
    let line = serde_json::json!({
        "timestamp": at,
        "level": "INFO",
        "fields": fields,
        "target": "access",
    });
    out.push_str(&line.to_string());
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
        let log = AccessLog::start(&hub, kept.clone(), LogStyle::default()).unwrap();
        hub.publish(delivery("/one"));
        hub.publish(delivery("/two"));
        log.finish();
        let text = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(
            "INFO access: client=127.0.0.1 method=GET path=/one status=200 bytes=4 length=10 range=- referer=- ms=1.500 ua=\"gPodder/3\""
        ), "{text}");
        assert!(lines[1].contains("path=/two"), "{text}");
    }

    #[test]
    fn json_lines_parse_and_addresses_show_as_configured() {
        use crate::config::ClientAddress;
        let hub = Deliveries::default();
        let kept = Kept::default();
        let style = LogStyle {
            json: true,
            client: ClientAddress::Truncated,
        };
        let log = AccessLog::start(&hub, kept.clone(), style).unwrap();
        let mut d = delivery("/one");
        d.client = "192.0.2.77".parse().unwrap();
        d.request = crate::stats::RequestLine::with_referer(
            "GET",
            "/one",
            Some("bytes=0-1"),
            Some("say \"hi\"\n"),
            Some("https://x.example/"),
        );
        hub.publish(d);
        log.finish();
        let text = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["target"], "access");
        assert_eq!(v["fields"]["client"], "192.0.2.0");
        assert_eq!(v["fields"]["range"], "bytes=0-1");
        assert_eq!(v["fields"]["ua"], "say \"hi\"\n");
        assert_eq!(v["fields"]["referer"], "https://x.example/");
        assert_eq!(
            shown_client("2001:db8:1:2::9".parse().unwrap(), ClientAddress::Truncated).unwrap(),
            "2001:db8:1::"
        );
        assert_eq!(
            shown_client("192.0.2.7".parse().unwrap(), ClientAddress::None),
            None
        );
        let mut s = String::new();
        quoted(&mut s, Some("a\"b\\c\nd"));
        assert_eq!(s, "\"a\\\"b\\\\c\\x0ad\"");
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
