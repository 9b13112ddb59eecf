//! What the wire really carried: delivery records count the bytes the socket took, pipelined
//! media responses (zero-copy and not) keep exactly their own bytes, a body cut short never leaks
//! into the next response, and the request context believes forwarding headers only from trusted
//! proxies.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{evict, get, split_responses, Demo, Server};
use rollcall::stats::{Delivery, Subscription};

const STRESS: &str = "behavioral-response-to-stress-and-fear";
const DEESC: &str = "defining-de-escalation";

fn start(demo: &Demo, extra: &str) -> Server {
    demo.write(
        "config.toml",
        &format!("public_url = \"{}\"\n{extra}\n", common::PUBLIC_URL),
    );
    Server::start_with(rollcall::config::Config::load(&demo.path("config.toml")).unwrap())
}

fn next_record(sub: &Subscription, path: &str) -> Arc<Delivery> {
    loop {
        let d = sub
            .records
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no delivery record for {path}"));
        if d.request.path() == path {
            return d;
        }
    }
}

/// Shrinks the client's receive buffer, so little can sit in flight between the two sockets.
fn small_receive_buffer(s: &TcpStream, bytes: usize) {
    rustix::net::sockopt::set_socket_recv_buffer_size(s, bytes).unwrap();
}

/// Reads until the head and at least `body` body bytes arrived; returns the head's length and
/// everything read.
fn read_at_least(s: &mut TcpStream, body: usize) -> (usize, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.len() >= end + 4 + body {
                return (end + 4, buf);
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn an_abandoned_download_records_what_the_socket_took_not_what_was_queued() {
    let demo = Demo::new();
    let big = demo.enlarge_audio(STRESS, 16); // about 4 MB, in the page cache: zero-copy chunks
    let server = start(&demo, "[server]\nsend_buffer_bytes = 4096");
    let path = server.audio_path(STRESS);
    let sub = server.deliveries.subscribe("test", 256);

    let mut s = TcpStream::connect(server.addr).unwrap();
    small_receive_buffer(&s, 4096);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: podcasts.example.org\r\nUser-Agent: test-abandon\r\n\r\n"
    )
    .unwrap();
    let (head, got) = read_at_least(&mut s, 16 * 1024);
    let read = got.len() - head;
    assert_eq!(&got[head..], &big[..read], "the body so far is the file");
    // Let the server fill both socket buffers and block, then hang up.
    std::thread::sleep(Duration::from_millis(300));
    drop(s);

    let d = next_record(&sub, &path);
    assert_eq!(d.status, 200);
    assert_eq!(d.length, Some(big.len() as u64));
    assert!(!d.complete);
    assert!(
        d.bytes >= read as u64,
        "recorded {} bytes, but the client read {read}",
        d.bytes
    );
    // A frame-time count would include the whole 2 MiB zero-copy chunk in progress; what the
    // socket took is the client's 16 KiB plus what small buffers hold.
    assert!(
        d.bytes < (read + 512 * 1024) as u64,
        "recorded {} bytes for a client that read {read}",
        d.bytes
    );
    assert_eq!(d.request.user_agent(), Some("test-abandon"));
    assert_eq!(d.episode.as_deref(), Some(STRESS));
}

/// One file comes from the page cache, the other was dropped from it, so the server must read it
/// from disk on the blocking pool before it can send it with `sendfile`.
#[test]
fn pipelined_media_responses_larger_than_a_zero_copy_chunk_keep_their_own_bytes() {
    let demo = Demo::new();
    let a = demo.enlarge_audio(STRESS, 12); // about 3 MB
    let b = demo.enlarge_audio(DEESC, 20); // about 4.5 MB
    let server = Server::start(&demo);
    let (pa, pb) = (server.audio_path(STRESS), server.audio_path(DEESC));
    // `b` is read from disk, `a` comes from the page cache.
    evict(&demo.path(&format!("episodes/{DEESC}/audio.mp3")));
    let sub = server.deliveries.subscribe("test", 256);

    let mid = a.len() / 2;
    let requests: Vec<(&str, &str, Option<String>)> = vec![
        ("GET", &pa, None),
        ("GET", &pb, None),
        ("GET", &pa, Some(format!("bytes={mid}-"))),
        ("HEAD", &pb, None),
        ("GET", &pb, Some("bytes=100-2999999".into())),
        ("GET", &pa, Some("bytes=-70000".into())),
        ("GET", &pb, None),
    ];
    let mut text = String::new();
    for (method, path, range) in &requests {
        text.push_str(&format!(
            "{method} {path} HTTP/1.1\r\nHost: podcasts.example.org\r\n"
        ));
        if let Some(r) = range {
            text.push_str(&format!("Range: {r}\r\n"));
        }
        text.push_str("\r\n");
    }
    text.push_str("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(text.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();

    let heads: Vec<bool> = requests
        .iter()
        .map(|(m, ..)| *m == "HEAD")
        .chain([false])
        .collect();
    let r = split_responses(&all, &heads);
    let want: Vec<(u16, &[u8])> = vec![
        (200, &a),
        (200, &b),
        (206, &a[mid..]),
        (200, b""),
        (206, &b[100..3_000_000]),
        (206, &a[a.len() - 70000..]),
        (200, &b),
        (200, b"ok\n"),
    ];
    for (i, (got, (status, body))) in r.iter().zip(&want).enumerate() {
        assert_eq!(got.status, *status, "response {i}");
        assert!(
            got.body == *body,
            "response {i}: body differs from the file's bytes"
        );
    }

    // Every record counts exactly its own body; both paths to the socket were used.
    let records: Vec<Arc<Delivery>> = (0..requests.len())
        .map(|_| sub.records.recv_timeout(Duration::from_secs(20)).unwrap())
        .collect();
    for (d, (status, body)) in records.iter().zip(&want) {
        assert_eq!((d.status, d.bytes), (*status, body.len() as u64), "{d:?}");
        assert!(d.complete, "{d:?}");
    }
    // Media bytes go out with sendfile whether they were cached or not: the evicted file's chunks
    // are read into the page cache on the blocking pool first, never copied through the server.
    for d in &records {
        assert_eq!(d.sendfile_bytes, d.bytes, "copied instead of sent: {d:?}");
    }
    let evicted: u64 = records
        .iter()
        .filter(|d| d.request.path() == pb)
        .map(|d| d.sendfile_bytes)
        .sum();
    assert_eq!(
        evicted,
        2 * b.len() as u64 + 2_999_900,
        "the evicted file's bytes"
    );
}

#[test]
fn a_body_cut_short_never_leaks_into_the_next_response() {
    let demo = Demo::new();
    let big = demo.enlarge_audio(STRESS, 20); // about 5 MB
    let server = start(&demo, "[server]\nsend_buffer_bytes = 8192");
    let path = server.audio_path(STRESS);
    let sub = server.deliveries.subscribe("test", 256);

    let mut s = TcpStream::connect(server.addr).unwrap();
    // Small enough that far less than the cut is in flight, large enough to stream quickly.
    small_receive_buffer(&s, 64 * 1024);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let (head, mut got) = read_at_least(&mut s, 64 * 1024);
    // The file shrinks in place under the open download (what an editor overwriting it does).
    let cut = 1024 * 1024;
    std::fs::OpenOptions::new()
        .write(true)
        .open(demo.path(&format!("episodes/{STRESS}/audio.mp3")))
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    s.read_to_end(&mut got).unwrap();
    let body = &got[head..];
    assert!(
        body.len() <= cut,
        "{} bytes arrived: the second response, or bytes past the cut",
        body.len()
    );
    assert!(
        body == &big[..body.len()],
        "the body is a prefix of the file"
    );
    assert!(
        !body.windows(9).any(|w| w == b"HTTP/1.1 "),
        "the next response's head was sent inside the cut body"
    );
    let d = next_record(&sub, &path);
    assert!(!d.complete);
    assert_eq!(d.bytes, body.len() as u64);
}

#[test]
fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let demo = Demo::new();
    let xff = [("X-Forwarded-For", "6.6.6.6, 198.51.100.7")];

    let server = Server::start(&demo);
    let sub = server.deliveries.subscribe("test", 16);
    assert_eq!(get(server.addr, "/healthz", &xff).status, 200);
    let d = next_record(&sub, "/healthz");
    assert_eq!(
        d.client.to_string(),
        "127.0.0.1",
        "an untrusted peer's header is ignored"
    );
    drop(server);

    let server = start(&demo, "trusted_proxies = [\"127.0.0.1\"]");
    let sub = server.deliveries.subscribe("test", 16);
    assert_eq!(get(server.addr, "/healthz", &xff).status, 200);
    let d = next_record(&sub, "/healthz");
    assert_eq!(d.client.to_string(), "198.51.100.7");
    assert_eq!(d.route, rollcall::stats::RouteKind::Health);
}

#[test]
fn a_personal_url_without_a_valid_token_is_the_same_404_as_nothing() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let nothing = get(server.addr, "/no/such/path", &[]);
    let feed = server.live.snapshot().catalog.feeds[0].id.clone();
    for path in [
        format!("/p/0123456789abcdef/feeds/{feed}.xml"),
        format!("/p/x/{}", server.audio_path(STRESS).trim_start_matches('/')),
    ] {
        let r = get(server.addr, &path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, nothing.body, "{path}");
        // The same 404, marked private as everything under /p/ is.
        let mut expected = nothing.stable_headers();
        expected.push(("cache-control".into(), "private, no-store".into()));
        expected.push(("referrer-policy".into(), "no-referrer".into()));
        expected.sort();
        assert_eq!(r.stable_headers(), expected, "{path}");
    }
}

/// A large rendered feed goes out with `sendfile` from its kept file once it is written (in the
/// background, with the compressed variants), byte for byte the rendered XML.
#[test]
fn a_large_feed_is_sent_from_its_kept_file() {
    let demo = Demo::new();
    let paragraph = "Slow the encounter down; time is a tactical advantage. ".repeat(20);
    let notes: String = (0..600).map(|i| format!("{i}. {paragraph}\n\n")).collect();
    demo.write(&format!("episodes/{DEESC}/notes.md"), &notes);
    let server = Server::start(&demo);
    let id = "defusing-difficult-encounters";
    let path = format!("/feeds/{id}.xml");
    let rendered = server.live.snapshot().feeds[id].encoded.identity.to_bytes();
    assert!(
        rendered.len() >= rollcall::render::FILE_AT,
        "{}",
        rendered.len()
    );
    let sub = server.deliveries.subscribe("test", 256);
    let mut zero_copy = None;
    for _ in 0..200 {
        let r = get(server.addr, &path, &[]);
        assert_eq!(r.status, 200);
        assert!(
            r.body == rendered,
            "the feed's bytes differ from the rendered XML"
        );
        assert_eq!(
            r.header("content-length"),
            Some(&*rendered.len().to_string())
        );
        let d = next_record(&sub, &path);
        assert_eq!(d.bytes, rendered.len() as u64);
        if d.sendfile_bytes > 0 {
            zero_copy = Some(d.sendfile_bytes);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        zero_copy,
        Some(rendered.len() as u64),
        "the feed never went out with sendfile"
    );
    // HEAD announces the same length and sends nothing.
    let h = common::request(server.addr, "HEAD", &path, &[]);
    assert_eq!(
        h.header("content-length"),
        Some(&*rendered.len().to_string())
    );
}

/// At the shutdown deadline a stalled download is cut off, and it is recorded as cut off, with
/// the bytes the socket took. (`serve_ops` checks that the access log has its line.)
#[test]
fn a_download_cut_off_at_the_shutdown_deadline_is_recorded() {
    let demo = Demo::new();
    let big = demo.enlarge_audio(STRESS, 40); // about 10 MB: more than the socket buffers hold
    let server = start(&demo, "[server]\nshutdown_grace_secs = 1");
    let path = server.audio_path(STRESS);
    let sub = server.deliveries.subscribe("test", 256);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, got) = read_at_least(&mut s, 4096);
    // The client stops reading; stopping the server waits for the grace, then closes it.
    drop(server);
    let d = sub
        .records
        .try_iter()
        .find(|d| d.request.path() == path)
        .expect("the cut-off download's record was published before serve returned");
    assert!(!d.complete);
    assert!(d.bytes >= (got.len() - head) as u64);
    assert!(d.bytes < big.len() as u64);
}

/// A feed whose gzip is large too goes out copied from memory, not with `sendfile` (which cost
/// a 367 KB gzip feed two to four times the CPU from a memfd: BENCHMARKS.md), once the
/// background job has compressed it: byte for byte that gzip, under its ETag, and it decodes to
/// the rendered XML.
#[test]
fn a_large_gzip_feed_is_copied_from_memory_once_compressed() {
    let demo = Demo::new();
    // Text that gzip cannot shrink below FILE_AT: letters from a small generator.
    let mut x: u32 = 1;
    let notes: String = (0..700_000)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            if i % 8 == 7 {
                ' '
            } else {
                (b'a' + ((x >> 16) % 26) as u8) as char
            }
        })
        .collect();
    demo.write(&format!("episodes/{DEESC}/notes.md"), &notes);
    let server = Server::start(&demo);
    let id = "defusing-difficult-encounters";
    let path = format!("/feeds/{id}.xml");
    let rendered = server.live.snapshot().feeds[id].encoded.identity.to_bytes();
    let sub = server.deliveries.subscribe("test", 256);
    let mut sent = None;
    for _ in 0..200 {
        let r = get(server.addr, &path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain)
            .unwrap();
        assert!(plain == rendered, "the gzip does not decode to the feed");
        let d = next_record(&sub, &path);
        assert_eq!(d.bytes, r.body.len() as u64);
        assert_eq!(
            d.sendfile_bytes, 0,
            "a gzip variant is copied, not sent from a file"
        );
        // The stitched gzip serves until the whole-feed gzip is compressed.
        let snap = server.live.snapshot();
        let enc = &snap.feeds[id].encoded;
        if enc.gzip().is_some_and(|g| *g == r.body) {
            sent = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = sent.expect("the whole-feed gzip was never served");
    let snap = server.live.snapshot();
    let enc = &snap.feeds[id].encoded;
    let gzip = enc.gzip().expect("compressed by now");
    assert!(gzip.len() >= rollcall::render::FILE_AT, "{}", gzip.len());
    assert_eq!(r.header("etag"), Some(enc.etag_gzip.as_str()));
    assert_eq!(r.header("content-length"), Some(&*gzip.len().to_string()));
}
