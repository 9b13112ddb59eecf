//! The access log: one line per response, written from its [`Delivery`] record by one batching
//! thread.
//!
//! The log subscribes to the server's [`Deliveries`] with a bounded queue. Its thread formats
//! whatever arrived every 5 to 100 ms, by the rate lines come
//! ([`crate::stats::Subscription::pause`]), and writes the lines every [`INTERVAL`] or 192 KiB in
//! one go, so requests never wait on the log's output and no request wakes a thread.
//! If the output stops draining, the queue fills, and the lines past it are dropped and counted in
//! a warning rather than stalling requests or growing memory. Lines carry method, path (never the query, which may carry tokens), status, body bytes
//! the socket accepted, the announced length, milliseconds and user agent.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::stats::{Consumer, Deliveries, Delivery, Subscription};

/// How often the log thread writes what arrived.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Formatted lines held before a write, whatever the interval.
const BATCH: usize = 192 * 1024;
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
    let mut written = std::time::Instant::now();
    loop {
        let last = stop.load(Ordering::Relaxed);
        for d in sub.drain() {
            if style.json {
                json_line(&mut batch, &d, style.client);
            } else {
                line(&mut batch, &d, style.client);
            }
        }
        if !batch.is_empty() && (last || batch.len() >= BATCH || written.elapsed() >= INTERVAL) {
            written = std::time::Instant::now();
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
        sub.pause((!batch.is_empty()).then(|| written + INTERVAL));
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
    // Almost every header is printable ASCII with nothing to escape: copied whole.
    if text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(text);
    } else {
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
    }
    out.push('"');
}

/// Appends `n` in decimal.
fn push_number(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends the address as the log shows it (see [`shown_client`]) after `prefix`, if it shows.
fn push_client(
    out: &mut String,
    prefix: &str,
    ip: std::net::IpAddr,
    how: crate::config::ClientAddress,
) {
    use crate::config::ClientAddress;
    let v4 = match (ip, how) {
        (_, ClientAddress::None) => return,
        (std::net::IpAddr::V4(v4), ClientAddress::Full) => v4.octets(),
        (std::net::IpAddr::V4(v4), ClientAddress::Truncated) => {
            let [a, b, c, _] = v4.octets();
            [a, b, c, 0]
        }
        (ip, how) => {
            out.push_str(prefix);
            out.push_str(&shown_client(ip, how).unwrap_or_default());
            return;
        }
    };
    out.push_str(prefix);
    for (i, octet) in v4.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_number(out, octet);
    }
}

/// Appends one access line for `d`, formatted like the `tracing` output around it. Written
/// piece by piece rather than through `format!`: the log thread shares the server's cores, and
/// this is most of its work.
fn line(out: &mut String, d: &Delivery, client: crate::config::ClientAddress) {
    timestamp(out, d.at + d.duration);
    out.push_str("  INFO access:");
    push_client(out, " client=", d.client, client);
    out.push_str(" method=");
    out.push_str(d.request.method());
    out.push_str(" path=");
    out.push_str(d.request.path());
    out.push_str(" status=");
    push_number(out, d.status);
    out.push_str(" bytes=");
    push_number(out, d.bytes);
    out.push_str(" length=");
    match d.length {
        Some(n) => push_number(out, n),
        None => out.push('-'),
    }
    out.push_str(" range=");
    quoted(out, d.request.range());
    out.push_str(" referer=");
    quoted(out, d.request.referer());
    let micros = d.duration.as_micros();
    out.push_str(" ms=");
    push_number(out, micros / 1000);
    push_digits(out, (micros % 1000) as u32, 3, ".");
    out.push_str(" ua=");
    quoted(out, d.request.user_agent());
    // A personal URL's token shows only as its fingerprint.
    push_fingerprint(out, " token=", d);
    out.push('\n');
}

/// Appends `prefix` and `n` as exactly `width` decimal digits, zero-padded (`n` must fit).
fn push_digits(out: &mut String, n: u32, width: u32, prefix: &str) {
    out.push_str(prefix);
    let mut scale = 10u32.pow(width - 1);
    while scale > 0 {
        out.push(char::from(b'0' + (n / scale % 10) as u8));
        scale /= 10;
    }
}

/// Appends `prefix` and the fingerprint (8 hex digits) of the personal URL's token `d` was asked
/// with, if any: a token shows in the log only as that.
fn push_fingerprint(out: &mut String, prefix: &str, d: &Delivery) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if let crate::access::Credentials::Personal { fingerprint, .. } = d.credentials {
        out.push_str(prefix);
        for b in fingerprint {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
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
    push_digits(out, now.subsec_micros(), 6, ".");
    out.push('Z');
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

    /// The line as `format!` writes it, to hold the piecewise writer to.
    fn line_by_format(d: &Delivery, how: crate::config::ClientAddress) -> String {
        let mut out = String::new();
        timestamp(&mut out, d.at + d.duration);
        out += "  INFO access:";
        if let Some(c) = shown_client(d.client, how) {
            out += &format!(" client={c}");
        }
        let quote = |t: Option<&str>| match t {
            None => "-".to_string(),
            Some(t) => {
                let mut q = String::from("\"");
                for c in t.chars() {
                    match c {
                        '"' => q += "\\\"",
                        '\\' => q += "\\\\",
                        c if c.is_control() => q += &format!("\\x{:02x}", c as u32),
                        c => q.push(c),
                    }
                }
                q + "\""
            }
        };
        let micros = d.duration.as_micros();
        out += &format!(
            " method={} path={} status={} bytes={} length={} range={} referer={} ms={}.{:03} ua={}",
            d.request.method(),
            d.request.path(),
            d.status,
            d.bytes,
            d.length.map_or("-".to_string(), |n| n.to_string()),
            quote(d.request.range()),
            quote(d.request.referer()),
            micros / 1000,
            micros % 1000,
            quote(d.request.user_agent()),
        );
        if let crate::access::Credentials::Personal { fingerprint: f, .. } = d.credentials {
            out += &format!(" token={:02x}{:02x}{:02x}{:02x}", f[0], f[1], f[2], f[3]);
        }
        out + "\n"
    }

    #[test]
    fn text_lines_are_what_format_would_write() {
        use crate::config::ClientAddress;
        let agents = [
            None,
            Some("AntennaPod/3.4"),
            Some("say \"hi\" \\ back\n"),
            Some("Caf\u{e9} \u{85} \u{7f} app"),
            Some(""),
        ];
        let clients: [std::net::IpAddr; 3] = [
            [10, 1, 2, 3].into(),
            [255, 0, 99, 250].into(),
            "2001:db8:1:2::9".parse().unwrap(),
        ];
        let mut checked = 0;
        for (i, ua) in agents.into_iter().enumerate() {
            for client in clients {
                for how in [
                    ClientAddress::Full,
                    ClientAddress::Truncated,
                    ClientAddress::None,
                ] {
                    let mut d = delivery("/p/*/feeds/m.xml");
                    d.request = crate::stats::RequestLine::with_referer(
                        "HEAD",
                        "/media/a.mp3",
                        (i % 2 == 0).then_some("bytes=0-1"),
                        ua,
                        (i == 1).then_some("https://x.example/\"q\""),
                    );
                    d.client = client;
                    d.length = (i != 2).then_some(31_415_926);
                    d.bytes = [0, 7, 1 << 40, u64::MAX, 1000][i];
                    d.status = [200, 206, 304, 404, 416][i];
                    d.duration = Duration::from_micros([0, 999, 1_000, 1_234_567, 60_000_001][i]);
                    if i % 2 == 1 {
                        d.credentials = crate::access::Credentials::Personal {
                            id: 3,
                            role: crate::access::Role::Officer,
                            fingerprint: [0x0a, 0xff, 0x00, 0x9c],
                        };
                    }
                    let mut got = String::new();
                    line(&mut got, &d, how);
                    assert_eq!(got, line_by_format(&d, how));
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 45);
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
