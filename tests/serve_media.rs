//! The media range and conditional matrix (RFC 9110 sections 13 and 14), over real HTTP against a
//! server on 127.0.0.1:0. Every body is compared byte for byte with the file.

mod common;

use common::{get, request, Demo, Resp, Server};

struct Fixture {
    _demo: Demo,
    server: Server,
    path: String,
    file: Vec<u8>,
    etag: String,
    last_modified: String,
}

fn fixture() -> Fixture {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let ep = catalog
        .episode("behavioral-response-to-stress-and-fear")
        .unwrap();
    let path = ep.audio.url_path.clone();
    let file = std::fs::read(&ep.audio.path).unwrap();
    let server = Server::start(&demo);
    let full = get(server.addr, &path, &[]);
    assert_eq!(full.status, 200);
    Fixture {
        etag: full.header("etag").unwrap().to_owned(),
        last_modified: full.header("last-modified").unwrap().to_owned(),
        _demo: demo,
        server,
        path,
        file,
    }
}

impl Fixture {
    fn get(&self, headers: &[(&str, &str)]) -> Resp {
        get(self.server.addr, &self.path, headers)
    }

    fn range(&self, range: &str) -> Resp {
        self.get(&[("Range", range)])
    }

    fn len(&self) -> usize {
        self.file.len()
    }

    fn assert_partial(&self, r: &Resp, first: usize, last: usize) {
        assert_eq!(r.status, 206, "{:?}", r.headers);
        assert_eq!(
            r.header("content-range").unwrap(),
            format!("bytes {first}-{last}/{}", self.len())
        );
        assert_eq!(
            r.header("content-length").unwrap(),
            (last - first + 1).to_string()
        );
        assert_eq!(r.body, &self.file[first..=last]);
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }

    fn assert_full(&self, r: &Resp) {
        assert_eq!(r.status, 200, "{:?}", r.headers);
        assert_eq!(r.header("content-length").unwrap(), self.len().to_string());
        assert!(r.header("content-range").is_none());
        assert_eq!(r.body, self.file);
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }
}

#[test]
fn range_matrix() {
    let f = fixture();
    let n = f.len();
    // Whole file, with validators and the listen disposition.
    let full = f.get(&[]);
    f.assert_full(&full);
    assert_eq!(full.header("content-type"), Some("audio/mpeg"));
    assert_eq!(
        full.header("content-disposition"),
        Some("inline; filename=\"behavioral-response-to-stress-and-fear.mp3\"")
    );
    assert!(full.etag_is_strong());
    assert_eq!(
        full.header("access-control-allow-origin"),
        Some("*"),
        "web players need CORS"
    );
    // Apple's probe.
    f.assert_partial(&f.range("bytes=0-1"), 0, 1);
    f.assert_partial(&f.range("bytes=100-199"), 100, 199);
    f.assert_partial(&f.range("bytes=1-3"), 1, 3);
    // Open-ended, suffix, clamped end.
    f.assert_partial(&f.range("bytes=1000-"), 1000, n - 1);
    f.assert_partial(&f.range("bytes=-500"), n - 500, n - 1);
    f.assert_partial(&f.range(&format!("bytes=-{}", n * 2)), 0, n - 1);
    f.assert_partial(
        &f.range(&format!("bytes={}-{}", n - 10, n * 10)),
        n - 10,
        n - 1,
    );
    // The unit is case-insensitive.
    f.assert_partial(&f.range("BYTES=0-1"), 0, 1);
    f.assert_partial(&f.range("Bytes=0-1"), 0, 1);
    // Overlapping and adjacent ranges coalesce into one part.
    f.assert_partial(&f.range("bytes=0-10,5-20"), 0, 20);
    f.assert_partial(&f.range("bytes=0-4,5-9"), 0, 9);
    // Unsatisfiable.
    for h in [
        format!("bytes={n}-"),
        format!("bytes={}-{}", n + 5, n + 10),
        "bytes=-0".to_owned(),
    ] {
        let r = f.range(&h);
        assert_eq!(r.status, 416, "{h}");
        assert_eq!(
            r.header("content-range").unwrap(),
            format!("bytes */{n}"),
            "{h}"
        );
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
    }
    // Malformed or foreign: ignored, 200 with the whole file.
    for h in [
        "bytes=5-1",
        "items=0-1",
        "bytes=abc",
        "bytes=",
        "bytes=0-1;x",
        "bytes 0-1",
    ] {
        f.assert_full(&f.range(h));
    }
    // Numbers past u64 never cause a 5xx.
    let huge = "184467440737095516160000";
    assert_eq!(f.range(&format!("bytes={huge}-")).status, 416);
    f.assert_partial(&f.range(&format!("bytes=0-{huge}")), 0, n - 1);
    f.assert_partial(&f.range(&format!("bytes=-{huge}")), 0, n - 1);
    // The "Apache Killer": many overlapping ranges get a plain 200.
    let killer = format!(
        "bytes=0-,{}",
        (0..1300)
            .map(|i| format!("5-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    f.assert_full(&f.range(&killer));
    let many = format!(
        "bytes={}",
        (0..40)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",")
    );
    f.assert_full(&f.range(&many));
}

#[test]
fn multipart_byteranges_body_is_exact() {
    let f = fixture();
    let n = f.len();
    let r = f.range("bytes=10-19, 50-59,-5");
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(ct);
    let mut want = Vec::new();
    for (i, (a, b)) in [(10, 19), (50, 59), (n - 5, n - 1)].into_iter().enumerate() {
        if i > 0 {
            want.extend_from_slice(b"\r\n");
        }
        want.extend_from_slice(format!("--{boundary}\r\nContent-Type: audio/mpeg\r\nContent-Range: bytes {a}-{b}/{n}\r\n\r\n").as_bytes());
        want.extend_from_slice(&f.file[a..=b]);
    }
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(r.body, want);
    assert_eq!(r.header("content-length").unwrap(), want.len().to_string());
    assert!(
        r.header("content-range").is_none(),
        "multipart responses carry Content-Range per part"
    );
}

#[test]
fn preconditions_in_rfc_order() {
    let f = fixture();
    let etag = f.etag.as_str();
    let lm = f.last_modified.as_str();
    let past = "Mon, 01 Jan 2001 00:00:00 GMT";
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    // If-Match.
    assert_eq!(f.get(&[("If-Match", "\"nope\"")]).status, 412);
    assert_eq!(
        f.get(&[("If-Match", &format!("W/{etag}"))]).status,
        412,
        "If-Match is strong"
    );
    f.assert_full(&f.get(&[("If-Match", etag)]));
    f.assert_full(&f.get(&[("If-Match", "*")]));
    f.assert_partial(&f.get(&[("If-Match", etag), ("Range", "bytes=0-1")]), 0, 1);
    // If-Unmodified-Since, skipped when If-Match is present.
    assert_eq!(f.get(&[("If-Unmodified-Since", past)]).status, 412);
    f.assert_full(&f.get(&[("If-Unmodified-Since", future)]));
    f.assert_full(&f.get(&[("If-Match", etag), ("If-Unmodified-Since", past)]));
    // If-None-Match: weak comparison, 304 with validators and no body.
    for inm in [
        etag.to_owned(),
        format!("W/{etag}"),
        "*".to_owned(),
        format!("\"x\", {etag}"),
    ] {
        let r = f.get(&[("If-None-Match", &inm)]);
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag));
    }
    f.assert_full(&f.get(&[("If-None-Match", "\"other\"")]));
    // If-Modified-Since, skipped when If-None-Match is present.
    assert_eq!(f.get(&[("If-Modified-Since", lm)]).status, 304);
    assert_eq!(f.get(&[("If-Modified-Since", future)]).status, 304);
    f.assert_full(&f.get(&[("If-Modified-Since", past)]));
    f.assert_full(&f.get(&[
        ("If-None-Match", "\"other\""),
        ("If-Modified-Since", future),
    ]));
    f.assert_full(&f.get(&[("If-Modified-Since", "not a date")]));
    // A failed If-Match beats a matching If-None-Match.
    assert_eq!(
        f.get(&[("If-Match", "\"nope\""), ("If-None-Match", etag)])
            .status,
        412
    );
    // 304 takes precedence over Range.
    assert_eq!(
        f.get(&[("If-None-Match", etag), ("Range", "bytes=0-1")])
            .status,
        304
    );
}

#[test]
fn if_range_is_strong() {
    let f = fixture();
    let etag = f.etag.as_str();
    f.assert_partial(&f.get(&[("Range", "bytes=5-9"), ("If-Range", etag)]), 5, 9);
    f.assert_full(&f.get(&[("Range", "bytes=5-9"), ("If-Range", "\"stale\"")]));
    f.assert_full(&f.get(&[("Range", "bytes=5-9"), ("If-Range", &format!("W/{etag}"))]));
    f.assert_partial(
        &f.get(&[("Range", "bytes=5-9"), ("If-Range", &f.last_modified)]),
        5,
        9,
    );
    f.assert_full(&f.get(&[
        ("Range", "bytes=5-9"),
        ("If-Range", "Fri, 01 Jan 2100 00:00:00 GMT"),
    ]));
}

#[test]
fn head_has_exactly_the_headers_of_get() {
    let f = fixture();
    for headers in [
        vec![],
        vec![("Range", "bytes=0-1")],
        vec![("Range", "bytes=0-0,10-20")],
        vec![("Range", "bytes=99999999-")],
        vec![("If-None-Match", f.etag.as_str())],
    ] {
        let g = f.get(&headers);
        let h = request(f.server.addr, "HEAD", &f.path, &headers);
        assert_eq!(h.status, g.status, "{headers:?}");
        assert_eq!(h.stable_headers(), g.stable_headers(), "{headers:?}");
        assert!(h.body.is_empty());
    }
}

#[test]
fn other_methods_get_405_with_allow() {
    let f = fixture();
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = request(f.server.addr, m, &f.path, &[("Content-Length", "0")]);
        assert_eq!(r.status, 405, "{m}");
        let allow = r.header("allow").unwrap();
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
    }
}

#[test]
fn download_is_an_attachment_with_a_filename() {
    let f = fixture();
    let r = get(f.server.addr, &format!("{}?download=1", f.path), &[]);
    f.assert_full(&r);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"behavioral-response-to-stress-and-fear.mp3\"")
    );
    let r = get(
        f.server.addr,
        &format!("{}?download=1", f.path),
        &[("Range", "bytes=0-1")],
    );
    f.assert_partial(&r, 0, 1);
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
}

#[test]
fn request_without_host_gets_400() {
    let f = fixture();
    let r = common::raw(
        f.server.addr,
        format!("GET {} HTTP/1.1\r\nConnection: close\r\n\r\n", f.path).as_bytes(),
        false,
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("Host"));
}

trait StrongEtag {
    fn etag_is_strong(&self) -> bool;
}

impl StrongEtag for Resp {
    fn etag_is_strong(&self) -> bool {
        self.header("etag")
            .is_some_and(|e| e.starts_with('"') && e.ends_with('"') && e.len() > 10)
    }
}

/// Pipelined requests on one keep-alive connection, mixing zero-copy (`sendfile`) ranges, a whole
/// file, a multipart response (read, not sent from the page cache) and a HEAD: each response must
/// carry exactly its own bytes, in order, so no file region can be sent for the wrong response.
#[test]
fn pipelined_media_responses_keep_their_own_bytes() {
    use std::io::{Read, Write};
    let f = fixture();
    let mut s = std::net::TcpStream::connect(f.server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let len = f.file.len();
    let cases: Vec<(&str, String)> = vec![
        ("GET", "bytes=100-199".into()),
        ("GET", format!("bytes={}-", len - 5000)),
        ("GET", String::new()),
        ("HEAD", "bytes=0-9".into()),
        ("GET", "bytes=0-9,1000-1009".into()),
        ("GET", "bytes=-70000".into()),
    ];
    let mut batch = String::new();
    for (i, (method, range)) in cases.iter().enumerate() {
        let close = if i + 1 == cases.len() {
            "Connection: close\r\n"
        } else {
            ""
        };
        let range = if range.is_empty() {
            String::new()
        } else {
            format!("Range: {range}\r\n")
        };
        batch.push_str(&format!(
            "{method} {} HTTP/1.1\r\nHost: x\r\n{range}{close}\r\n",
            f.path
        ));
    }
    s.write_all(batch.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();

    let mut rest = &all[..];
    let mut next = |head: bool| -> Resp {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let text = std::str::from_utf8(&rest[..end])
            .unwrap()
            .to_ascii_lowercase();
        let length: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let body_len = if head { 0 } else { length };
        let r = common::parse_response(&rest[..end + body_len], head).unwrap();
        rest = &rest[end + body_len..];
        r
    };
    let r = next(false);
    assert_eq!((r.status, &r.body[..]), (206, &f.file[100..200]));
    let r = next(false);
    assert_eq!((r.status, &r.body[..]), (206, &f.file[len - 5000..]));
    let r = next(false);
    assert_eq!(r.status, 200);
    assert!(r.body == f.file, "whole file");
    let r = next(true);
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some(&*format!("bytes 0-9/{len}")))
    );
    let r = next(false);
    assert_eq!(r.status, 206);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("multipart/byteranges"));
    let first = &f.file[0..10];
    let second = &f.file[1000..1010];
    let pos1 = r
        .body
        .windows(10)
        .position(|w| w == first)
        .expect("first part");
    let pos2 = r
        .body
        .windows(10)
        .position(|w| w == second)
        .expect("second part");
    assert!(pos1 < pos2);
    let r = next(false);
    assert_eq!((r.status, &r.body[..]), (206, &f.file[len - 70000..]));
    assert!(
        rest.is_empty(),
        "{} stray bytes after the last response",
        rest.len()
    );
}

/// Cached media goes out with `sendfile`: the response's own delivery record says how many of
/// its bytes went that way. (If stand-in frames stopped reaching the socket writer, this count
/// would stay at zero while every byte-for-byte test kept passing.)
#[test]
fn cached_media_is_sent_with_sendfile() {
    let f = fixture();
    let records = f.server.deliveries.subscribe("test", 64);
    let r = f.get(&[]);
    assert_eq!(r.status, 200);
    assert!(r.body == f.file);
    let d = records
        .records
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a delivery record");
    assert_eq!(d.request.path(), f.path);
    assert_eq!(
        d.episode.as_deref(),
        Some("behavioral-response-to-stress-and-fear")
    );
    assert_eq!(d.bytes, f.file.len() as u64);
    assert!(d.complete);
    assert_eq!(
        d.sendfile_bytes,
        f.file.len() as u64,
        "only {} of {} bytes went out with sendfile",
        d.sendfile_bytes,
        f.file.len()
    );
}
