//! The website over HTTP: the home, theme and episode pages' content, player and download URLs
//! that really answer, feed discovery links, validators and compression like the feeds, styled
//! 404 pages, members-only hiding, and escaping of catalog text.

mod common;

use std::io::Read;

use common::{eventually, get, Demo, Resp, Server, PUBLIC_URL};

const THEME: &str = "/feeds/defusing-difficult-encounters";
const EPISODE: &str = "/episodes/defining-de-escalation";

fn html(r: &Resp) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// The text between `start` and the next `end`, failing if either is absent.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not found"))
        + start.len();
    let len = text[from..].find(end).expect("end marker");
    &text[from..from + len]
}

#[test]
fn home_lists_public_feeds_with_artwork_and_discovery_links() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let server = Server::start(&demo);
    let r = get(server.addr, "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = html(&r);
    for feed in catalog
        .feeds
        .iter()
        .filter(|f| rollcall::access::is_public(f))
    {
        assert!(
            page.contains(&format!(
                "<link rel=\"alternate\" type=\"application/rss+xml\" title=\"{}\" href=\"{PUBLIC_URL}/feeds/{}.xml\">",
                feed.title, feed.id
            )),
            "{page}"
        );
        assert!(page.contains(&format!(
            "<h3><a href=\"/feeds/{}\">{}</a></h3>",
            feed.id, feed.title
        )));
        assert!(page.contains(&format!("<img src=\"{}\"", feed.artwork.url_path)));
        assert_eq!(get(server.addr, &feed.artwork.url_path, &[]).status, 200);
    }
    assert!(page.contains("<p>Spotlight on Safety is a themed outreach plan"));
    for landmark in ["<header", "<nav aria-label=\"Site\">", "<main", "<footer"] {
        assert!(page.contains(landmark), "missing {landmark}");
    }
}

#[test]
fn theme_page_lists_episodes_newest_first_with_player_download_and_resources() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let server = Server::start(&demo);
    let r = get(server.addr, THEME, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = html(&r);
    assert!(page.contains(
        "<h1 id=\"theme-title\">Spotlight on Safety: Defusing Difficult Encounters</h1>"
    ));
    assert!(page.contains(&format!(
        "<link rel=\"alternate\" type=\"application/rss+xml\" title=\"Spotlight on Safety: Defusing Difficult Encounters\" href=\"{PUBLIC_URL}/feeds/defusing-difficult-encounters.xml\">"
    )));
    // Same date: ties go by slug, as in the feed.
    let first = page
        .find("Behavioral Response to Stress and Fear</a></h3>")
        .unwrap();
    let second = page.find("Defining De-Escalation</a></h3>").unwrap();
    assert!(first < second);

    // Durations come from the measured audio (the demo's short readings), in "16 minutes" style.
    let expect = [
        ("behavioral-response-to-stress-and-fear", "34 seconds"),
        ("defining-de-escalation", "30 seconds"),
    ];
    for (slug, text) in expect {
        let ep = catalog.episode(slug).unwrap();
        assert_eq!(format!("{} seconds", ep.duration_secs()), text);
        let article = between(
            &page,
            &format!("<article class=\"episode\" id=\"{slug}\""),
            "</article>",
        );
        assert!(
            article.contains(&format!(
                "<time datetime=\"2016-06-30\">June 30, 2016</time> · <time datetime=\"PT{}S\">{text}</time>",
                ep.duration_secs()
            )),
            "{article}"
        );
        assert!(article.contains(&format!("<p>{}</p>", ep.summary.replace('\'', "&#39;"))));
        // Listen streams through the range-serving media URL, Download is the attachment variant.
        let media = &ep.audio.url_path;
        assert!(article.contains(&format!("<audio controls preload=\"none\" src=\"{media}\"")));
        assert!(article.contains(&format!("href=\"{media}?download=1\" download>Download")));
        let listen = get(server.addr, media, &[("Range", "bytes=1000-")]);
        assert_eq!(listen.status, 206);
        assert_eq!(listen.body.len() as u64, ep.audio.size - 1000);
        let download = get(server.addr, &format!("{media}?download=1"), &[]);
        assert_eq!(download.status, 200);
        assert_eq!(download.body, std::fs::read(&ep.audio.path).unwrap());
        assert!(download
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment"));
        assert!(article.contains("<h4>Resources Mentioned in This Podcast</h4>"));
        for res in &ep.resources {
            assert!(article.contains(&format!(
                "<li><a href=\"{}\">{}</a>",
                res.url,
                res.title.replace('\'', "&#39;")
            )));
        }
    }
    let article = between(&page, "id=\"defining-de-escalation\"", "</article>");
    assert!(article.contains(
        "<li><span class=\"guest-name\">Eric Pisconski</span>, Sergeant, Seattle Police Department, Crisis Response Unit</li>"
    ));
    assert!(
        !article.contains("Mark Sawa"),
        "guests stay with their episode"
    );

    // Subscribe controls use public_url, never the request's address.
    let feed = format!("{PUBLIC_URL}/feeds/defusing-difficult-encounters.xml");
    assert!(page.contains(&format!(
        "<input id=\"feed-url\" type=\"url\" readonly value=\"{feed}\">"
    )));
    assert!(page.contains("data-copy=\"#feed-url\">Copy feed URL</button>"));
    assert!(page.contains("href=\"podcast://podcasts.example.org/feeds/defusing-difficult-encounters.xml\">Apple Podcasts</a>"));
    assert!(page.contains("href=\"overcast://x-callback-url/add?url=https%3A%2F%2Fpodcasts.example.org%2Ffeeds%2Fdefusing-difficult-encounters.xml\">Overcast</a>"));
    assert!(page.contains("href=\"pktc://subscribe/podcasts.example.org/feeds/defusing-difficult-encounters.xml\">Pocket Casts</a>"));
    assert!(page.contains("href=\"https://antennapod.org/deeplink/subscribe?url=https%3A%2F%2Fpodcasts.example.org%2Ffeeds%2Fdefusing-difficult-encounters.xml\">AntennaPod</a>"));
    let qr = between(&page, "<figure class=\"qr\">", "</figure>");
    assert!(qr.contains(&format!(
        "<svg role=\"img\" aria-label=\"QR code of the feed URL {feed}\""
    )));
    assert!(qr.contains("<path fill=\"#000000\" d=\"M"));
    // Two episodes fit on one page.
    assert!(!page.contains("aria-label=\"Pagination\""));
}

#[test]
fn episode_page_has_notes_guests_resources_transcript_and_chapters() {
    let demo = Demo::new();
    demo.write(
        "episodes/defining-de-escalation/transcript.vtt",
        "WEBVTT\n\n00:00:00.000 --> 00:00:05.000\n<v Eric Pisconski>Slow it down & talk.</v>\n\n00:00:12.500 --> 00:00:20.000\nA <b>second</b> cue.\n",
    );
    demo.write(
        "episodes/defining-de-escalation/chapters.json",
        r#"{"version": "1.2.0", "chapters": [{"startTime": 0, "title": "Introduction"}, {"startTime": 15, "title": "What de-escalation means"}]}"#,
    );
    // The demo ships both for every episode; this one goes without.
    for file in ["transcript.vtt", "chapters.json"] {
        std::fs::remove_file(demo.path(&format!(
            "episodes/behavioral-response-to-stress-and-fear/{file}"
        )))
        .unwrap();
    }
    let catalog = demo.load().unwrap();
    let ep = catalog.episode("defining-de-escalation").unwrap();
    let server = Server::start(&demo);
    let r = get(server.addr, EPISODE, &[]);
    assert_eq!(r.status, 200);
    let page = html(&r);
    assert!(page.contains("<title>Defining De-Escalation · Podcasts</title>"));
    assert!(page.contains("<h1 id=\"episode-title\">Defining De-Escalation</h1>"));
    assert!(page.contains(&format!(
        "href=\"{PUBLIC_URL}/feeds/defusing-difficult-encounters.xml\">"
    )));
    assert!(
        page.contains(&format!(
            "href=\"{PUBLIC_URL}/feeds/spotlight-on-safety.xml\">"
        )),
        "the episode is in both public feeds"
    );
    assert!(page.contains("<a href=\"/feeds/defusing-difficult-encounters\">Spotlight on Safety: Defusing Difficult Encounters</a>"));
    let secs = ep.duration_secs();
    assert!(page.contains(&format!(
        "<time datetime=\"PT{secs}S\">{secs} seconds</time>"
    )));
    // Show notes from notes.md, rendered from Markdown.
    assert!(page.contains("Part of the <em>Spotlight on Safety</em> theme <strong>Defusing Difficult Encounters</strong>"));
    assert!(page.contains("<span class=\"guest-name\">Eric Pisconski</span>, Sergeant"));
    assert!(page.contains("<h3>Resources Mentioned in This Podcast</h3>"));
    assert!(page.contains("<li><a href=\"https://bja.ojp.gov/\">Training For Police-Mental Health Collaboration Programs</a>"));
    assert!(page.contains(&format!(
        "<audio id=\"player\" controls preload=\"metadata\" src=\"{}\"",
        ep.audio.url_path
    )));
    // Chapters seek the player; the transcript is text, escaped (its & here).
    assert!(page.contains("<a href=\"#t=15\" data-seek=\"15\"><span class=\"time\">0:15</span> What de-escalation means</a>"));
    assert!(page.contains("<a href=\"#t=0\" data-seek=\"0\" class=\"time\">0:00</a> <strong>Eric Pisconski:</strong> Slow it down &#38; talk."));
    // Cue tags are stripped for display, as players do.
    assert!(
        page.contains("<a href=\"#t=12\" data-seek=\"12\" class=\"time\">0:12</a> A second cue.")
    );
    // The script that reads "#t=90" is linked and served.
    let js_url = between(&page, "<script src=\"", "\"");
    let js = get(server.addr, js_url, &[]);
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(html(&js).contains("#t="));

    // Without a transcript or chapters, neither section appears.
    let other = html(&get(
        server.addr,
        "/episodes/behavioral-response-to-stress-and-fear",
        &[],
    ));
    assert!(!other.contains("Transcript</h2>"));
    assert!(!other.contains("Chapters</h2>"));
}

#[test]
fn pages_have_strong_etags_304_and_compression() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    for path in ["/", THEME, EPISODE] {
        let r = get(server.addr, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        // A signed-in member gets another page at the same URL.
        assert_eq!(r.header("vary"), Some("Accept-Encoding, Cookie"));
        let etag = r.header("etag").unwrap().to_owned();
        assert!(etag.starts_with('"'), "strong ETag: {etag}");
        let again = get(server.addr, path, &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        // Compressed variants may be filled in just after the snapshot goes live.
        assert!(eventually(10, || {
            get(server.addr, path, &[("Accept-Encoding", "gzip")]).header("content-encoding")
                == Some("gzip")
        }));
        let gz = get(server.addr, path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(gz.header("content-encoding"), Some("gzip"));
        assert!(gz.body.len() < r.body.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, r.body, "{path}");
        let gz_etag = gz.header("etag").unwrap();
        assert_ne!(gz_etag, etag);
        assert_eq!(
            get(
                server.addr,
                path,
                &[("Accept-Encoding", "gzip"), ("If-None-Match", gz_etag)]
            )
            .status,
            304
        );
    }
}

#[test]
fn static_files_have_versioned_urls_and_long_caching() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let page = html(&get(server.addr, "/", &[]));
    let css_url = between(&page, "<link rel=\"stylesheet\" href=\"", "\"");
    assert!(css_url.starts_with("/static/site.css?v="), "{css_url}");
    let css = get(server.addr, css_url, &[("Accept-Encoding", "br")]);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("content-encoding"), Some("br"));
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let plain = html(&get(server.addr, "/static/site.css", &[]));
    assert!(plain.contains("@media print"));
    assert!(plain.contains("@media (max-width: 40rem)"));
    assert_eq!(get(server.addr, "/static/nope.css", &[]).status, 404);
}

#[test]
fn unknown_pages_get_the_styled_404_page() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    for path in ["/episodes/no-such-episode", "/feeds/no-such-feed"] {
        let r = get(server.addr, path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let page = html(&r);
        assert!(page.contains("<h1>Page not found</h1>"), "{page}");
        assert!(page.contains("<main id=\"main\""));
        assert!(page.contains("<a href=\"/feeds/defusing-difficult-encounters\">"));
    }
    // Any other path: browsers get the page, feed readers and tools the short plain body.
    let browser = get(
        server.addr,
        "/no/such/path",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    );
    assert_eq!(browser.status, 404);
    assert!(html(&browser).contains("<h1>Page not found</h1>"));
    let tool = get(server.addr, "/no/such/path", &[]);
    assert_eq!(tool.status, 404);
    assert_eq!(html(&tool), "not found\n");
    // The feed itself keeps its plain 404.
    assert_eq!(
        html(&get(server.addr, "/feeds/no-such-feed.xml", &[])),
        "not found\n"
    );
}

#[test]
fn members_only_feeds_and_their_episodes_have_no_pages() {
    let demo = Demo::new();
    demo.edit(
        "feeds/spotlight-on-safety.toml",
        "access = \"public\"",
        "access = \"members\"",
    );
    demo.edit(
        "episodes/defining-de-escalation/episode.toml",
        "feeds = [\"defusing-difficult-encounters\"]",
        "feeds = []",
    );
    // Without preview, the demo's members feed shows no teaser pages either.
    demo.edit(
        "feeds/valor-members.toml",
        "preview = true",
        "preview = false",
    );
    let server = Server::start(&demo);
    let hidden = get(server.addr, "/feeds/spotlight-on-safety", &[]);
    assert_eq!(hidden.status, 404);
    assert!(html(&hidden).contains("<h1>Page not found</h1>"));
    assert!(!html(&hidden).contains("spotlight-on-safety"));
    assert_eq!(get(server.addr, EPISODE, &[]).status, 404);
    assert_eq!(
        get(
            server.addr,
            "/episodes/behavioral-response-to-stress-and-fear",
            &[]
        )
        .status,
        200
    );
    let home = html(&get(server.addr, "/", &[]));
    assert!(!home.contains("spotlight-on-safety"), "{home}");
    assert!(home.contains("/feeds/defusing-difficult-encounters"));
    let theme = html(&get(server.addr, THEME, &[]));
    assert!(!theme.contains("Defining De-Escalation"));
}

#[test]
fn script_in_a_title_is_escaped_everywhere() {
    let demo = Demo::new();
    demo.edit(
        "episodes/defining-de-escalation/episode.toml",
        "title = \"Defining De-Escalation\"",
        "title = \"Defining <script>alert(1)</script> De-Escalation\"",
    );
    demo.edit(
        "episodes/defining-de-escalation/notes.md",
        "Although",
        "<script>alert(2)</script> Although",
    );
    let server = Server::start(&demo);
    for path in [THEME, EPISODE, "/feeds/spotlight-on-safety"] {
        let page = html(&get(server.addr, path, &[]));
        assert!(
            page.contains("Defining &#60;script&#62;alert(1)&#60;/script&#62; De-Escalation"),
            "{path}: {page}"
        );
        assert!(!page.contains("<script>"), "{path} has a raw script tag");
        assert!(
            !page.contains("alert(1)</script>"),
            "{path} has a raw script tag"
        );
    }
    let page = html(&get(server.addr, EPISODE, &[]));
    assert!(page.contains("&lt;script&gt;alert(2)&lt;/script&gt; Although"));
    assert!(page.contains(
        "<title>Defining &#60;script&#62;alert(1)&#60;/script&#62; De-Escalation · Podcasts</title>"
    ));
}

#[test]
fn pages_follow_catalog_edits() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let before = get(server.addr, THEME, &[]);
    demo.edit(
        "episodes/defining-de-escalation/episode.toml",
        "title = \"Defining De-Escalation\"",
        "title = \"Defining De-Escalation, Revised\"",
    );
    assert!(eventually(10, || html(&get(server.addr, THEME, &[]))
        .contains("Defining De-Escalation, Revised</a></h3>")));
    let after = get(server.addr, THEME, &[]);
    assert_ne!(after.header("etag"), before.header("etag"));
    assert!(html(&get(server.addr, EPISODE, &[]))
        .contains("<h1 id=\"episode-title\">Defining De-Escalation, Revised</h1>"));
}

#[test]
fn the_500_page_is_in_the_site_style() {
    let demo = Demo::new();
    let snapshot = rollcall::snapshot::Snapshot::build(demo.load().unwrap(), None);
    let page = String::from_utf8(snapshot.pages.error.identity.to_bytes().to_vec()).unwrap();
    assert_eq!(
        snapshot.pages.error.content_type,
        "text/html; charset=utf-8"
    );
    assert!(page.contains("<h1>Something went wrong</h1>"), "{page}");
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/static/site.css?v="));
    assert!(page.contains("<main id=\"main\""));
    assert!(page.contains("<a href=\"/\">Go to the home page</a>"));
}

/// Adds `n` copies of the demo's "Defining De-Escalation" episode, `paged-00` (oldest) to
/// `paged-NN` (newest), all newer than the demo's episodes and in the same public feeds.
fn add_copies(demo: &Demo, n: usize) {
    let from = demo.path("episodes/defining-de-escalation");
    let toml = demo.read("episodes/defining-de-escalation/episode.toml");
    for i in 0..n {
        let slug = format!("paged-{i:02}");
        let dir = demo.path(&format!("episodes/{slug}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::hard_link(from.join("audio.mp3"), dir.join("audio.mp3")).unwrap();
        std::fs::copy(from.join("notes.md"), dir.join("notes.md")).unwrap();
        std::fs::hard_link(from.join("cover.jpg"), dir.join("cover.jpg")).unwrap();
        let text = toml
            .replace(
                "guid = \"e6be906a-3576-5e57-a8a6-6711becf9e96\"",
                &format!("guid = \"00000000-0000-4000-8000-0000000000{i:02}\""),
            )
            .replace(
                "title = \"Defining De-Escalation\"",
                &format!("title = \"Paged episode {i:02}\""),
            )
            .replace(
                "published = 2016-06-30T09:00:00-04:00",
                &format!(
                    "published = {}-01-{:02}T09:00:00-04:00",
                    2020 + i / 28,
                    i % 28 + 1
                ),
            );
        assert_ne!(text, toml);
        std::fs::write(dir.join("episode.toml"), text).unwrap();
    }
}

/// The slugs of the episode articles on a theme page, in page order.
fn article_slugs(page: &str) -> Vec<String> {
    page.split("<article class=\"episode\" id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

#[test]
fn theme_pages_show_fifty_episodes_each_newest_first_with_prev_next_links() {
    assert_eq!(rollcall::site::THEME_PAGE_SIZE, 50);
    let demo = Demo::new();
    add_copies(&demo, 60);
    // 60 copies, newest first, then the demo's two episodes (same date: by slug).
    let mut expected: Vec<String> = (0..60).rev().map(|i| format!("paged-{i:02}")).collect();
    expected.push("behavioral-response-to-stress-and-fear".into());
    expected.push("defining-de-escalation".into());
    let server = Server::start(&demo);

    let first = get(server.addr, THEME, &[]);
    assert_eq!(first.status, 200);
    let first = html(&first);
    assert_eq!(article_slugs(&first), expected[..50]);
    assert!(first.contains("<p class=\"meta\">Episodes 1–50 of 62, newest first</p>"));
    let nav = between(
        &first,
        "<nav class=\"pagination\" aria-label=\"Pagination\">",
        "</nav>",
    );
    assert!(nav.contains(&format!(
        "<a class=\"button\" href=\"{THEME}?page=2\" rel=\"next\">Older episodes</a>"
    )));
    assert!(nav.contains("<span>Page 1 of 2</span>"));
    assert!(!nav.contains("rel=\"prev\""), "{nav}");
    assert!(first
        .contains("<title>Spotlight on Safety: Defusing Difficult Encounters · Podcasts</title>"));

    let second = get(server.addr, &format!("{THEME}?page=2"), &[]);
    assert_eq!(second.status, 200);
    let second = html(&second);
    assert_eq!(article_slugs(&second), expected[50..]);
    assert!(second.contains("<p class=\"meta\">Episodes 51–62 of 62, newest first</p>"));
    assert!(second.contains(
        "<title>Spotlight on Safety: Defusing Difficult Encounters, page 2 of 2 · Podcasts</title>"
    ));
    let nav = between(
        &second,
        "<nav class=\"pagination\" aria-label=\"Pagination\">",
        "</nav>",
    );
    assert!(nav.contains(&format!(
        "<a class=\"button\" href=\"{THEME}\" rel=\"prev\">Newer episodes</a>"
    )));
    assert!(!nav.contains("rel=\"next\""), "{nav}");
    // Subscribe controls, QR code and artwork are on every page.
    for page in [&first, &second] {
        assert!(page.contains("<input id=\"feed-url\" type=\"url\" readonly value=\""));
        assert!(page.contains("<figure class=\"qr\">"));
        assert!(page.contains("<img class=\"artwork\" src=\"/artwork/"));
    }

    // Page 1 has one URL.
    let one = get(server.addr, &format!("{THEME}?page=1"), &[]);
    assert_eq!(one.status, 301);
    assert_eq!(one.header("location"), Some(THEME));
    // Other query parameters do not change the page.
    let tagged = get(server.addr, &format!("{THEME}?utm_source=qr&page=2"), &[]);
    assert_eq!(article_slugs(&html(&tagged)), expected[50..]);

    for query in [
        "page=3",
        "page=0",
        "page=abc",
        "page=",
        "page=02",
        "page=2&page=2",
    ] {
        let r = get(server.addr, &format!("{THEME}?{query}"), &[]);
        assert_eq!(r.status, 404, "{query}");
        assert!(html(&r).contains("<h1>Page not found</h1>"), "{query}");
    }
    for path in ["/feeds/no-such-feed?page=2", "/feeds/no-such-feed?page=1"] {
        assert_eq!(get(server.addr, path, &[]).status, 404, "{path}");
    }
}

#[test]
fn a_theme_with_fifty_episodes_has_one_page_and_no_pagination() {
    let demo = Demo::new();
    add_copies(&demo, 48);
    let server = Server::start(&demo);
    let page = html(&get(server.addr, THEME, &[]));
    assert_eq!(article_slugs(&page).len(), 50);
    assert!(!page.contains("aria-label=\"Pagination\""));
    assert!(!page.contains("Episodes 1–50"));
    assert_eq!(
        get(server.addr, &format!("{THEME}?page=2"), &[]).status,
        404
    );
}

#[test]
fn episode_pages_render_on_first_request_with_etag_304_and_gzip() {
    use rollcall::site::{Lookup, PageRef};
    use rollcall::snapshot::Snapshot;

    let demo = Demo::new();
    let snapshot = Snapshot::build(demo.load().unwrap(), None);
    let key = PageRef::Episode {
        slug: "defining-de-escalation".into(),
    };
    assert!(matches!(snapshot.pages.lookup(&key), Lookup::Render));
    let rendered = snapshot.pages.render(&snapshot.catalog, &key).unwrap();
    assert!(rendered.gzip().is_some(), "compressed when rendered");
    assert!(matches!(snapshot.pages.lookup(&key), Lookup::Ready(_)));
    let missing = PageRef::Episode {
        slug: "no-such-episode".into(),
    };
    assert!(matches!(snapshot.pages.lookup(&missing), Lookup::Missing));
    assert!(snapshot.pages.render(&snapshot.catalog, &missing).is_none());

    // Over HTTP, the very first request already gets the compressed variant.
    let server = Server::start(&demo);
    let gz = get(server.addr, EPISODE, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut body)
        .unwrap();
    assert!(String::from_utf8(body.clone())
        .unwrap()
        .contains("<h1 id=\"episode-title\">Defining De-Escalation</h1>"));
    let gz_etag = gz.header("etag").unwrap().to_owned();
    assert!(
        gz_etag.starts_with('"') && gz_etag.ends_with("-gzip\""),
        "{gz_etag}"
    );
    let again = get(
        server.addr,
        EPISODE,
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz_etag)],
    );
    assert_eq!(again.status, 304);
    let plain = get(server.addr, EPISODE, &[]);
    assert_eq!(plain.body, body);
    assert_eq!(
        get(
            server.addr,
            EPISODE,
            &[("If-None-Match", plain.header("etag").unwrap())]
        )
        .status,
        304
    );
    assert_eq!(plain.header("last-modified"), gz.header("last-modified"));
}

#[test]
fn a_reload_keeps_unchanged_episode_pages_and_re_renders_changed_ones() {
    use rollcall::site::{Lookup, PageRef};
    use rollcall::snapshot::Snapshot;

    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let old = Snapshot::build(catalog.clone(), None);
    let page = |slug: &str| PageRef::Episode { slug: slug.into() };
    let kept = page("defining-de-escalation");
    let edited = page("behavioral-response-to-stress-and-fear");
    let before = old.pages.render(&old.catalog, &kept).unwrap();
    let edited_before = old.pages.render(&old.catalog, &edited).unwrap();

    let mut changed = catalog;
    let i = changed
        .episodes
        .iter()
        .position(|e| e.slug == "behavioral-response-to-stress-and-fear")
        .unwrap();
    std::sync::Arc::make_mut(&mut changed.episodes[i])
        .title
        .push_str(", Revised");
    let new = Snapshot::build(changed, Some(&old));
    match new.pages.lookup(&kept) {
        Lookup::Ready(enc) => {
            assert_eq!(enc.etag, before.etag);
            assert_eq!(enc.last_modified, before.last_modified);
        }
        other => panic!("the unchanged page was not carried over: {other:?}"),
    }
    assert!(matches!(new.pages.lookup(&edited), Lookup::Render));
    let edited_after = new.pages.render(&new.catalog, &edited).unwrap();
    assert_ne!(edited_after.etag, edited_before.etag);
    assert!(
        String::from_utf8_lossy(&edited_after.identity.to_bytes()).contains("Fear, Revised</h1>")
    );

    // A renamed feed changes every page that links to it.
    let mut renamed = new.catalog.clone();
    let f = renamed
        .feeds
        .iter()
        .position(|f| f.id == "defusing-difficult-encounters")
        .unwrap();
    renamed.feeds[f].title = "Renamed theme".into();
    let newer = Snapshot::build(renamed, Some(&new));
    assert!(matches!(newer.pages.lookup(&kept), Lookup::Render));
    let html = newer.pages.render(&newer.catalog, &kept).unwrap();
    assert!(String::from_utf8_lossy(&html.identity.to_bytes()).contains(">Renamed theme</a>"));
}

#[test]
fn a_theme_page_rendered_again_with_the_same_bytes_keeps_last_modified() {
    use rollcall::site::{Lookup, PageRef};
    use rollcall::snapshot::Snapshot;

    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let old = Snapshot::build(catalog.clone(), None);
    let theme = PageRef::Theme {
        id: "defusing-difficult-encounters".into(),
        page: 1,
    };
    let before = old.pages.render(&old.catalog, &theme).unwrap();
    // HTTP dates have whole seconds: a fresh Last-Modified would differ after this.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let new = Snapshot::build(catalog, Some(&old));
    assert!(matches!(new.pages.lookup(&theme), Lookup::Render));
    let after = new.pages.render(&new.catalog, &theme).unwrap();
    assert_eq!(after.etag, before.etag);
    assert_eq!(after.last_modified, before.last_modified);
}

#[test]
fn pages_speak_their_feeds_language_and_carry_link_previews_and_a_favicon() {
    let demo = Demo::new();
    // A theme in another language declares it.
    demo.edit(
        "feeds/defusing-difficult-encounters.toml",
        "language = \"en-us\"",
        "language = \"es-mx\"",
    );
    let server = Server::start(&demo);
    let catalog = demo.load().unwrap();
    let ep = catalog.episode("defining-de-escalation").unwrap();

    let theme = html(&get(
        server.addr,
        "/feeds/defusing-difficult-encounters",
        &[],
    ));
    assert!(
        theme.contains("<html lang=\"es-mx\">"),
        "the feed's language"
    );
    assert!(theme.contains("<meta property=\"og:type\" content=\"website\">"));
    assert!(theme.contains(&format!(
        "<meta property=\"og:url\" content=\"{PUBLIC_URL}/feeds/defusing-difficult-encounters\">"
    )));
    assert!(theme.contains(&format!(
        "<meta property=\"og:image\" content=\"{PUBLIC_URL}/artwork/"
    )));
    assert!(theme.contains("<meta name=\"twitter:card\" content=\"summary\">"));
    // A page listing many episodes loads no audio until asked.
    assert!(theme.contains("preload=\"none\""));
    assert!(!theme.contains("preload=\"metadata\""));

    let page = html(&get(server.addr, "/episodes/defining-de-escalation", &[]));
    assert!(page.contains(&format!(
        "<meta property=\"og:audio\" content=\"{PUBLIC_URL}{}\">",
        ep.audio.url_path
    )));
    assert!(page.contains("<meta property=\"og:audio:type\" content=\"audio/mpeg\">"));
    assert!(page.contains("<meta property=\"og:title\" content=\"Defining De-Escalation\">"));

    // The members-only briefing's teaser page gives no media away in its previews.
    let teaser = get(
        server.addr,
        "/episodes/roll-call-briefing-defusing-difficult-encounters",
        &[],
    );
    assert_eq!(teaser.status, 200, "the members feed is in preview mode");
    let teaser = html(&teaser);
    assert!(teaser.contains("og:title"), "{teaser}");
    assert!(!teaser.contains("og:audio"), "{teaser}");
    assert!(!teaser.contains("og:image"), "{teaser}");

    let icon = between(
        &page,
        "<link rel=\"icon\" type=\"image/svg+xml\" href=\"",
        "\"",
    )
    .to_owned();
    let r = get(server.addr, &icon, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert!(String::from_utf8(r.body).unwrap().starts_with("<svg"));
}
