//! Abuse limits over real sockets: an oversized URI gets 414 and oversized headers 431, each
//! naming its limit and closing the connection; a crowd of slowloris connections trickling their
//! headers does not hold up a normal request; range abuse (many, overlapping, on a 1-byte file)
//! gets exact answers; and path-traversal and symlink-escape attempts reach nothing on the public,
//! personal and admin routes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{get, raw, Demo, Server};

fn text(r: &common::Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn an_oversized_uri_gets_414_and_oversized_headers_431_naming_the_limit() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let at_limit = format!("/{}", "a".repeat(rollcall::http::MAX_URI_BYTES - 1));
    assert_eq!(
        get(server.addr, &at_limit, &[]).status,
        404,
        "a long but allowed URI"
    );

    for len in [rollcall::http::MAX_URI_BYTES + 1, 40_000] {
        let path = format!("/{}", "a".repeat(len - 1));
        let r = raw(
            server.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            false,
        );
        assert_eq!(r.status, 414, "a {len}-byte target");
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(
            text(&r),
            format!("URI too long: the request target is {len} bytes; the limit is 8192\n")
        );
    }
    // A query counts too.
    let r = get(server.addr, &format!("/search?q={}", "x".repeat(9000)), &[]);
    assert_eq!(r.status, 414);

    let big = "v".repeat(20_000);
    let r = raw(
        server.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Padding: {big}\r\n\r\n").as_bytes(),
        false,
    );
    assert_eq!(r.status, 431);
    assert!(
        text(&r).starts_with("request header fields too large: the request line and headers are "),
        "{}",
        text(&r)
    );
    assert!(text(&r).ends_with("bytes; the limit is 16384\n"));
    // Past hyper's own read buffer, hyper answers 431 itself.
    let huge = "v".repeat(100_000);
    let r = raw(
        server.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Padding: {huge}\r\n\r\n").as_bytes(),
        false,
    );
    assert_eq!(r.status, 431);
    // Many small headers add up the same way.
    let many: String = (0..400)
        .map(|i| format!("X-H{i}: {}\r\n", "w".repeat(40)))
        .collect();
    let r = raw(
        server.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        false,
    );
    assert_eq!(r.status, 431);
    // Nothing of that disturbed the server.
    assert_eq!(get(server.addr, "/healthz", &[]).status, 200);
}

#[test]
fn slowloris_connections_do_not_hold_up_a_normal_request() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    // 500 connections that each send a partial request head and then one more byte now and
    // then, as a slowloris attack does.
    let mut crowd: Vec<TcpStream> = (0..500)
        .map(|i| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(format!("GET /?n={i} HTTP/1.1\r\nHost: x\r\nX-a: ").as_bytes())
                .unwrap();
            s
        })
        .collect();
    // While they trickle, a normal request is answered, before any of them has finished.
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = server.addr;
    std::thread::spawn(move || {
        let r = get(addr, "/feeds/defusing-difficult-encounters.xml", &[]);
        tx.send(r.status).unwrap();
    });
    let mut answered = None;
    for _round in 0..20 {
        for s in &mut crowd {
            // A peer that closed (the header-read timeout) may refuse the byte; that is fine.
            let _ = s.write_all(b"b");
        }
        if let Ok(status) = rx.recv_timeout(Duration::from_millis(250)) {
            answered = Some(status);
            break;
        }
    }
    assert_eq!(
        answered,
        Some(200),
        "the normal request was answered while the slow heads were still trickling"
    );
    // None of the slow requests was answered in that time: they never completed their heads.
    let mut early = 0;
    for s in &mut crowd {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(n) if n > 0) {
            early += 1;
        }
    }
    assert_eq!(early, 0);
}

#[test]
fn range_abuse_gets_exact_answers() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let ep = catalog.episode("defining-de-escalation").unwrap();
    let (path, len) = (ep.audio.url_path.clone(), ep.audio.size);
    let file = std::fs::read(&ep.audio.path).unwrap();
    let server = Server::start(&demo);

    // More than 16 ranges: the whole file, 200.
    let many: Vec<String> = (0..40)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
        .collect();
    let r = get(
        server.addr,
        &path,
        &[("Range", &format!("bytes={}", many.join(",")))],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, len);
    // A thousand tiny ranges on one header: still the whole file, not a thousand parts.
    let tiny: Vec<String> = (0..1000).map(|i| format!("{i}-{i}")).collect();
    let r = get(
        server.addr,
        &path,
        &[("Range", &format!("bytes={}", tiny.join(",")))],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, file);
    // Overlapping and adjacent ranges merge into one.
    let r = get(
        server.addr,
        &path,
        &[("Range", "bytes=0-99,50-149,150-199")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-199/{len}").as_str())
    );
    assert_eq!(r.body, file[..200]);

    // A 1-byte file.
    demo.write("feeds/one.txt", "x");
    let one = "/feeds/one.txt";
    assert_eq!(get(server.addr, one, &[]).status, 404, "not a catalog file");
    let printable = &catalog
        .feed("defusing-difficult-encounters")
        .unwrap()
        .printables[0];
    std::fs::write(&printable.file.path, b"x").unwrap();
    server.live.reload().unwrap();
    let snap = server.live.snapshot();
    let p = &snap
        .catalog
        .feed("defusing-difficult-encounters")
        .unwrap()
        .printables[0];
    assert_eq!(p.file.size, 1);
    let url = p.file.url_path.clone();
    for (range, status, body, content_range) in [
        ("bytes=0-0", 206, &b"x"[..], Some("bytes 0-0/1")),
        ("bytes=0-", 206, b"x", Some("bytes 0-0/1")),
        ("bytes=-1", 206, b"x", Some("bytes 0-0/1")),
        ("bytes=-5", 206, b"x", Some("bytes 0-0/1")),
        ("bytes=0-100", 206, b"x", Some("bytes 0-0/1")),
        ("bytes=1-", 416, b"", Some("bytes */1")),
        ("bytes=1-1", 416, b"", Some("bytes */1")),
        ("bytes=0-0,0-0", 206, b"x", Some("bytes 0-0/1")),
        ("bytes=-0", 416, b"", Some("bytes */1")),
    ] {
        let r = get(server.addr, &url, &[("Range", range)]);
        assert_eq!(r.status, status, "{range}");
        assert_eq!(r.header("content-range"), content_range, "{range}");
        if status == 206 {
            assert_eq!(r.body, body, "{range}");
        }
    }
}

#[test]
fn traversal_and_symlink_escapes_reach_nothing_on_any_route() {
    let demo = Demo::new();
    // A secret outside the catalog, and a symlink in an episode folder pointing at it.
    demo.write("secret.txt", "do not serve\n");
    std::os::unix::fs::symlink(
        demo.path("secret.txt"),
        demo.path("episodes/defining-de-escalation/link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", demo.path("feeds/passwd.jpg")).unwrap();
    let server = Server::start(&demo);
    // A valid personal prefix, so the attempts reach resource lookup behind real credentials.
    demo.add_user("avery", "officer", "correct horse battery");
    let out = demo.run(&["user".as_ref(), "token".as_ref(), "avery".as_ref()]);
    let urls = String::from_utf8(out.stdout).unwrap();
    let feed = common::path_of(urls.lines().next().expect("a personal feed URL"));
    let personal = feed[..feed.find("/feeds/").unwrap()].to_owned();
    assert_eq!(get(server.addr, &feed, &[]).status, 200, "the token works");
    let prefixes = ["", personal.as_str()];
    let attempts = [
        "/media/../secret.txt",
        "/media/%2e%2e/secret.txt",
        "/media/..%2fsecret.txt",
        "/media/defining-de-escalation/link.txt",
        "/media/defining-de-escalation/x/link.txt",
        "/media/defining-de-escalation/x/../../../secret.txt",
        "/artwork/../../etc/passwd",
        "/artwork/passwd.jpg",
        "/artwork/x/y/passwd.jpg",
        "/files/../secret.txt",
        "/files/%2e%2e%2fsecret.txt",
        "/static/../Cargo.toml",
        "/static/..%2f..%2fCargo.toml",
        "/feeds/../config.toml",
        "/feeds/..%2fconfig.toml",
        "/episodes/../secret.txt",
        "/episodes/%2e%2e",
        "/feeds/passwd.jpg",
        "//etc/passwd",
        "/media//etc/passwd",
        "/media/defining-de-escalation/%00/x.mp3",
    ];
    for prefix in prefixes {
        for a in attempts {
            let path = format!("{prefix}{a}");
            let r = raw(
                server.addr,
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
                false,
            );
            assert!(
                [400, 404].contains(&r.status),
                "{path} answered {}",
                r.status
            );
            let body = text(&r);
            assert!(
                !body.contains("do not serve") && !body.contains("root:"),
                "{path}"
            );
        }
    }
    for a in [
        "/admin/../secret.txt",
        "/admin/%2e%2e/secret.txt",
        "/admin/static/../../secret.txt",
        "/admin/api/episodes/..%2f..%2fsecret.txt",
        "/admin/api/episodes/../../../etc/passwd",
    ] {
        let r = raw(
            server.addr,
            format!("GET {a} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            false,
        );
        assert!(
            [303, 400, 401, 403, 404].contains(&r.status),
            "{a} answered {}",
            r.status
        );
        let body = text(&r);
        assert!(
            !body.contains("do not serve") && !body.contains("root:"),
            "{a}"
        );
    }
    // The symlinked "artwork" is refused by the catalog itself if a feed names it.
    demo.edit(
        "feeds/spotlight-on-safety.toml",
        "artwork = \"spotlight-on-safety.jpg\"",
        "artwork = \"passwd.jpg\"",
    );
    let problems = demo.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("artwork: \"passwd.jpg\" points outside the catalog folder")),
        "{problems:?}"
    );
}
