//! Feeds over HTTP: content type, validators, 304s, compression, OPML, members-only hiding, and
//! path traversal attempts that must never return file bytes.

mod common;

use std::io::Read;

use common::{get, request, Demo, Server, PUBLIC_URL};

const FEED: &str = "/feeds/defusing-difficult-encounters.xml";

#[test]
fn feed_headers_and_conditional_gets() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let r = get(server.addr, FEED, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let etag = r.header("etag").unwrap().to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong ETag: {etag}"
    );
    let lm = r.header("last-modified").unwrap().to_owned();
    let body = String::from_utf8(r.body.clone()).unwrap();
    assert!(body.contains("<title>Spotlight on Safety: Defusing Difficult Encounters</title>"));
    assert!(
        body.contains(&format!("{PUBLIC_URL}/media/")),
        "absolute URLs come from public_url, not the request"
    );
    // Rendered once per catalog change: the same bytes every time.
    assert_eq!(get(server.addr, FEED, &[]).body, r.body);

    let r304 = get(server.addr, FEED, &[("If-None-Match", &etag)]);
    assert_eq!(r304.status, 304);
    assert!(r304.body.is_empty());
    assert_eq!(r304.header("etag"), Some(etag.as_str()));
    assert_eq!(
        get(server.addr, FEED, &[("If-Modified-Since", &lm)]).status,
        304
    );
    assert_eq!(
        get(server.addr, FEED, &[("If-None-Match", "\"old\"")]).status,
        200
    );
    assert_eq!(
        get(
            server.addr,
            FEED,
            &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")]
        )
        .status,
        200
    );

    let head = request(server.addr, "HEAD", FEED, &[]);
    assert_eq!(head.stable_headers(), r.stable_headers());
}

#[test]
fn feeds_compress_with_gzip_and_brotli() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let plain = get(server.addr, FEED, &[]).body;
    // Compression runs in the background after the catalog goes live; identity is served meanwhile.
    assert!(common::eventually(10, || {
        get(server.addr, FEED, &[("Accept-Encoding", "br")]).header("content-encoding")
            == Some("br")
    }));

    let gz = get(server.addr, FEED, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert!(gz.body.len() < plain.len());
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain);

    let br = get(
        server.addr,
        FEED,
        &[("Accept-Encoding", "gzip, deflate, br")],
    );
    assert_eq!(br.header("content-encoding"), Some("br"));
    let mut out = Vec::new();
    brotli::Decompressor::new(&br.body[..], 4096)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain);

    // The gzip variant's ETag revalidates too.
    let gz_etag = gz.header("etag").unwrap();
    assert_ne!(
        gz_etag,
        br.header("etag").unwrap(),
        "each encoding has its own strong ETag"
    );
    assert_eq!(
        get(
            server.addr,
            FEED,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", gz_etag)]
        )
        .status,
        304
    );
}

#[test]
fn opml_lists_public_feeds_and_members_feeds_are_hidden() {
    let demo = Demo::new();
    demo.edit(
        "feeds/spotlight-on-safety.toml",
        "access = \"public\"",
        "access = \"members\"",
    );
    // An episode only the members feed carries: its media must not be public.
    demo.edit(
        "episodes/defining-de-escalation/episode.toml",
        "feeds = [\"defusing-difficult-encounters\"]",
        "feeds = []",
    );
    let catalog = demo.load().unwrap();
    let hidden = catalog
        .episode("defining-de-escalation")
        .unwrap()
        .audio
        .url_path
        .clone();
    let public = catalog
        .episode("behavioral-response-to-stress-and-fear")
        .unwrap()
        .audio
        .url_path
        .clone();
    let server = Server::start(&demo);
    let opml = get(server.addr, "/feeds.opml", &[]);
    assert_eq!(opml.status, 200);
    let text = String::from_utf8(opml.body).unwrap();
    assert!(
        text.contains(&format!(
            "xmlUrl=\"{PUBLIC_URL}/feeds/defusing-difficult-encounters.xml\""
        )),
        "{text}"
    );
    assert!(!text.contains("spotlight-on-safety"), "{text}");
    assert_eq!(
        get(server.addr, "/feeds/spotlight-on-safety.xml", &[]).status,
        404
    );
    assert_eq!(get(server.addr, &hidden, &[]).status, 404);
    assert_eq!(
        get(server.addr, &public, &[("Range", "bytes=0-1")]).status,
        206
    );
    assert_eq!(get(server.addr, "/feeds/nope.xml", &[]).status, 404);
    assert_eq!(get(server.addr, "/healthz", &[]).status, 200);
}

#[test]
fn traversal_attempts_never_return_file_bytes() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let ep = catalog.episode("defining-de-escalation").unwrap();
    let real = ep.audio.url_path.clone();
    let dir = real.rsplit_once('/').unwrap().0.to_owned();
    // A symlink planted inside the catalog after loading, pointing outside it.
    std::os::unix::fs::symlink(
        "/etc/passwd",
        demo.path("episodes/defining-de-escalation/passwd.mp3"),
    )
    .unwrap();
    let server = Server::start(&demo);
    let attempts = [
        "/media/../../../../etc/passwd".to_owned(),
        "/media/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/media/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd".to_owned(),
        "/media/..%2f..%2f..%2fetc%2fpasswd".to_owned(),
        "/media/..%5c..%5cetc%5cpasswd".to_owned(),
        "/media/..\\..\\etc\\passwd".to_owned(),
        format!("{dir}/../../../../etc/passwd"),
        format!("{dir}/%2e%2e/%2e%2e/config.toml"),
        format!("{dir}/audio.mp3"),
        format!("{dir}/episode.toml"),
        format!("{dir}/passwd.mp3"),
        format!("{real}%00"),
        format!("{real}%00.txt"),
        "/media/defining-de-escalation/episode.toml".to_owned(),
        "/media//etc/passwd".to_owned(),
        "/artwork/../config.toml".to_owned(),
        "/feeds/../config.toml".to_owned(),
        "/feeds/..%2fconfig.toml".to_owned(),
        "/episodes/../config.toml".to_owned(),
    ];
    for path in &attempts {
        let r = get(server.addr, path, &[]);
        assert!(
            r.status == 404 || r.status == 400,
            "{path} gave {}",
            r.status
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("root:"), "{path} leaked /etc/passwd");
        assert!(!body.contains("guid ="), "{path} leaked catalog metadata");
        assert!(r.body.len() < 200, "{path} returned {} bytes", r.body.len());
    }
    // A raw NUL byte in the request line.
    let r = common::raw(
        server.addr,
        format!("GET {real}\0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        false,
    );
    assert!(r.status == 400 || r.status == 404, "NUL gave {}", r.status);
    // The real URL still works.
    assert_eq!(
        get(server.addr, &real, &[("Range", "bytes=0-1")]).status,
        206
    );
}

/// Routing: each route answers GET and HEAD alike, other methods get 405 with `Allow` everywhere,
/// and paths that only look like routes (nested, trailing slash, empty segment) are 404s.
#[test]
fn routes_answer_get_and_head_and_nothing_else() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    for path in [
        "/",
        "/healthz",
        "/feeds.opml",
        FEED,
        "/feeds/defusing-difficult-encounters",
        "/episodes/defining-de-escalation",
    ] {
        let r = get(server.addr, path, &[]);
        assert_eq!(r.status, 200, "GET {path}");
        let head = request(server.addr, "HEAD", path, &[]);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has no body");
        assert_eq!(
            head.header("content-length"),
            Some(r.body.len().to_string().as_str()),
            "HEAD {path} announces the GET body's length"
        );
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = request(server.addr, method, path, &[]);
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    // A HEAD answered 304 describes no body, as the GET's 304 does not.
    let etag = get(server.addr, FEED, &[])
        .header("etag")
        .unwrap()
        .to_owned();
    for method in ["GET", "HEAD"] {
        let r = request(server.addr, method, FEED, &[("If-None-Match", &etag)]);
        assert_eq!(r.status, 304, "{method}");
        assert_eq!(r.header("content-length"), None, "{method} 304");
    }
    for path in [
        "/feeds/",
        "/feeds/defusing-difficult-encounters.xml/",
        "/feeds/a/b",
        "/episodes/",
        "/episodes/defining-de-escalation/notes.md",
        "/static/",
        "/healthz/",
        "/nothing",
    ] {
        assert_eq!(get(server.addr, path, &[]).status, 404, "GET {path}");
        assert_eq!(
            request(server.addr, "POST", path, &[]).status,
            404,
            "POST {path}"
        );
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Regression: the gzip variant used to appear only when a background job finished after each
/// start or reload, and clients that asked for gzip got identity bytes meanwhile.
#[test]
fn gzip_is_there_the_moment_a_snapshot_goes_live() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    // The very first request after the start.
    let gz = get(server.addr, FEED, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let plain = get(server.addr, FEED, &[]).body;
    assert_eq!(gunzip(&gz.body), plain);
    // Later the whole-feed gzip (smaller) replaces the stitched one: another ETag, the same
    // bytes once decoded, and either ETag revalidates.
    let snapshot = server.live.snapshot();
    let encoded = &snapshot.feeds["defusing-difficult-encounters"].encoded;
    assert!(encoded.stitched().is_some());
    assert!(common::eventually(10, || encoded.gzip().is_some()));
    let whole = get(server.addr, FEED, &[("Accept-Encoding", "gzip")]);
    assert_eq!(whole.header("etag"), Some(encoded.etag_gzip.as_str()));
    assert_eq!(gunzip(&whole.body), plain);
    assert!(whole.body.len() <= encoded.stitched().unwrap().len());
    for etag in [encoded.etag_stitched.as_str(), encoded.etag_gzip.as_str()] {
        let r = get(
            server.addr,
            FEED,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", etag)],
        );
        assert_eq!(r.status, 304, "{etag}");
    }
    drop(snapshot);
    // And the first request after a reload made live by Live::reload.
    demo.edit(
        "episodes/defining-de-escalation/episode.toml",
        "title = \"Defining De-Escalation\"",
        "title = \"Defining De-Escalation, revised\"",
    );
    assert!(server.live.reload().unwrap());
    // Set when the snapshot is built, before it is stored: no background job to wait for.
    for (id, feed) in &server.live.snapshot().feeds {
        let e = &feed.encoded;
        assert!(
            e.gzip().is_some() || e.stitched().is_some(),
            "{id} has no gzip yet"
        );
    }
    let gz = get(server.addr, FEED, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let text = String::from_utf8(gunzip(&gz.body)).unwrap();
    assert!(text.contains("Defining De-Escalation, revised"));
    assert_eq!(text.as_bytes(), &get(server.addr, FEED, &[]).body[..]);
    // The OPML list and the home page too.
    for path in ["/feeds.opml", "/"] {
        let r = get(server.addr, path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
    }
}
