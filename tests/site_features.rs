//! The website's identity and the theme page's extras, over HTTP: the configured title,
//! programme and logo; episode artwork with the feed's as fallback; the player's markup; the
//! theme's "Resources Available", printable posters served as attachments, and directory links;
//! and the server-side search, which finds only what the viewer may see.

mod common;

use common::{get, Browser, Demo, Resp, Server, PUBLIC_URL};
use rollcall::config::Config;

const THEME: &str = "/feeds/defusing-difficult-encounters";
const EPISODE: &str = "/episodes/defining-de-escalation";

fn html(r: &Resp) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// Every `src` or `href` value in `page` that starts with `prefix`.
fn urls(page: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in page.split(attr).skip(1) {
            let url = &piece[..piece.find('"').unwrap()];
            if url.starts_with(prefix) {
                out.push(url.to_owned());
            }
        }
    }
    out
}

#[test]
fn the_site_title_programme_and_logo_come_from_config() {
    let demo = Demo::new();
    let logo = std::fs::read(common::repo().join("feeds/programme-logo.png")).unwrap();
    demo.write("brand/logo.png", "");
    std::fs::write(demo.path("brand/logo.png"), &logo).unwrap();
    let mut text = demo.read("config.toml");
    text.push_str(
        "[site]\ntitle = \"Spotlight on Safety\"\nprogramme = \"BJA VALOR Initiative\"\n\
         programme_url = \"https://bja.ojp.gov/program/valor\"\nlogo = \"brand/logo.png\"\n",
    );
    demo.write("config.toml", &text);
    let config = Config::load(&demo.path("config.toml")).unwrap();
    let server = Server::start_with(config);

    let home = html(&get(server.addr, "/", &[]));
    assert!(
        home.contains("<title>Spotlight on Safety</title>"),
        "{home}"
    );
    assert!(home.contains("<h1>Spotlight on Safety</h1>"));
    assert!(!home.contains(">Podcasts<"), "the default title is gone");
    assert!(home.contains("<meta property=\"og:site_name\" content=\"Spotlight on Safety\">"));
    assert!(home.contains("<span class=\"programme\">BJA VALOR Initiative</span>"));
    assert!(home.contains(
        "is published by <a href=\"https://bja.ojp.gov/program/valor\">BJA VALOR Initiative</a>."
    ));
    let logos = urls(&home, "/artwork/_site/");
    assert_eq!(logos.len(), 1, "{home}");
    assert!(logos[0].ends_with("/logo.png"));

    // Every page carries the brand, and a page's own title comes first.
    let episode = html(&get(server.addr, EPISODE, &[]));
    assert!(episode.contains("<title>Defining De-Escalation · Spotlight on Safety</title>"));
    assert_eq!(urls(&episode, "/artwork/_site/"), logos);

    // The logo is public, with the same bytes, whoever asks.
    let r = get(server.addr, &logos[0], &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.body, logo);
}

#[test]
fn a_bad_site_setting_is_named_and_the_default_title_is_podcasts() {
    let demo = Demo::new();
    let home = html(&get(Server::start(&demo).addr, "/", &[]));
    assert!(home.contains("<title>Podcasts</title>"));
    assert!(home.contains("<span>Podcasts</span>"));

    let mut text = demo.read("config.toml");
    text.push_str("[site]\nlogo = \"missing.png\"\n");
    demo.write("config.toml", &text);
    let config = Config::load(&demo.path("config.toml")).unwrap();
    let problems = match rollcall::catalog::load(
        &rollcall::catalog::Source::from(&config),
        &Default::default(),
    ) {
        Err(p) => p.0.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        Ok(_) => panic!("a missing logo must fail the catalog"),
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("config.toml: site.logo: "),
        "{problems:?}"
    );
    assert!(problems[0].contains("missing.png"), "{problems:?}");
    assert!(problems[0].contains("PNG or JPEG"), "{problems:?}");

    demo.write(
        "config.toml",
        &format!(
            "public_url = \"{PUBLIC_URL}\"\n[site]\nprogramme_url = \"javascript:alert(1)\"\n"
        ),
    );
    let err = Config::load(&demo.path("config.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("field 'site.programme_url'"), "{err}");
    assert!(err.contains("is not an http(s) URL"), "{err}");
}

#[test]
fn episodes_show_their_own_artwork_or_their_feeds() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let own = catalog.episode("defining-de-escalation").unwrap();
    let own_image = &own
        .image
        .as_ref()
        .expect("the demo episode has its own image")
        .url_path;
    let other = catalog
        .episode("behavioral-response-to-stress-and-fear")
        .unwrap();
    assert!(other.image.is_none());
    let feed_art = &catalog
        .feed("defusing-difficult-encounters")
        .unwrap()
        .artwork
        .url_path;
    let server = Server::start(&demo);

    let page = html(&get(server.addr, EPISODE, &[]));
    assert!(page.contains(&format!("<img class=\"artwork\" src=\"{own_image}\"")));
    let page = html(&get(
        server.addr,
        "/episodes/behavioral-response-to-stress-and-fear",
        &[],
    ));
    assert!(page.contains(&format!("<img class=\"artwork\" src=\"{feed_art}\"")));

    let theme = html(&get(server.addr, THEME, &[]));
    assert!(theme.contains(&format!("<img class=\"thumb\" src=\"{own_image}\"")));
    assert!(theme.contains(&format!("<img class=\"thumb\" src=\"{feed_art}\"")));
    assert_eq!(get(server.addr, own_image, &[]).status, 200);

    // A teaser shows no artwork at all: the members feed's files are members files.
    let teaser = html(&get(
        server.addr,
        "/episodes/roll-call-briefing-defusing-difficult-encounters",
        &[],
    ));
    assert!(!teaser.contains("class=\"artwork\""), "{teaser}");
}

#[test]
fn players_carry_their_duration_and_stay_plain_audio_without_a_script() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let ep = catalog.episode("defining-de-escalation").unwrap();
    let server = Server::start(&demo);
    let page = html(&get(server.addr, EPISODE, &[]));
    assert!(page.contains(&format!(
        "<div class=\"player\" data-player data-duration=\"{}\">\n<audio id=\"player\" controls preload=\"metadata\" src=\"{}\"",
        ep.duration_secs(),
        ep.audio.url_path
    )), "{page}");
    let theme = html(&get(server.addr, THEME, &[]));
    assert_eq!(theme.matches("data-player").count(), 2);
    // A theme page lists many episodes: none of its players loads anything until asked.
    assert_eq!(theme.matches("preload=\"none\"").count(), 2);
    assert!(!theme.contains("preload=\"metadata\""));
}

#[test]
fn the_theme_page_has_its_resources_printables_and_directory_links() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let feed = catalog.feed("defusing-difficult-encounters").unwrap();
    assert_eq!(feed.printables.len(), 3);
    assert_eq!(feed.resources.len(), 6);
    let server = Server::start(&demo);
    let page = html(&get(server.addr, THEME, &[]));

    assert!(page.contains("<h2 id=\"resources-title\">Resources Available</h2>"));
    for r in &feed.resources {
        assert!(
            page.contains(&format!(
                "<li><a href=\"{}\">{}</a>",
                r.url,
                r.title.replace('\'', "&#39;")
            )),
            "{}",
            r.title
        );
    }
    assert!(page.contains("<h2 id=\"printables-title\">Printable material</h2>"));
    for title in [
        "Increase Officer Safety",
        "Keep Calm and De-Escalate",
        "What You See",
    ] {
        assert!(page.contains(&format!("<span class=\"printable-title\">{title}</span>")));
        assert!(page.contains(&format!("alt=\"Thumbnail of {title}\"")));
    }
    // The directory links sit in the subscribe panel, in the documented order.
    let panel = &page
        [page.find("id=\"subscribe-title\"").unwrap()..page.find("id=\"episodes-title\"").unwrap()];
    let apple = panel
        .find(">Apple Podcasts</a>")
        .expect("an Apple Podcasts link");
    let spotify = panel.find(">Spotify</a>").expect("a Spotify link");
    let index = panel
        .find(">Podcast Index</a>")
        .expect("a Podcast Index link");
    assert!(apple < spotify && spotify < index);
    assert!(panel.contains("href=\"https://podcastindex.org/search?q=Spotlight%20on%20Safety\""));

    // Each printable downloads as an attachment with its exact bytes; its thumbnail is an image.
    for p in &feed.printables {
        let r = get(server.addr, &p.file.url_path, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/pdf"));
        assert_eq!(
            r.header("content-disposition"),
            Some(format!("attachment; filename=\"{}\"", p.file.file_name).as_str())
        );
        assert_eq!(r.body, std::fs::read(&p.file.path).unwrap());
        assert!(r.body.starts_with(b"%PDF-"));
        let thumb = p.thumbnail.as_ref().unwrap();
        assert!(page.contains(&format!("<img src=\"{}\"", thumb.url_path)));
        let t = get(server.addr, &thumb.url_path, &[]);
        assert_eq!(t.status, 200);
        assert_eq!(t.header("content-type"), Some("image/png"));
        // A range still works on a printable, for resumed downloads.
        let part = get(server.addr, &p.file.url_path, &[("Range", "bytes=0-4")]);
        assert_eq!(part.status, 206);
        assert_eq!(part.body, b"%PDF-");
    }
}

#[test]
fn a_members_feeds_printables_are_members_files() {
    let demo = Demo::new();
    let mut toml = demo.read("feeds/valor-members.toml");
    toml.push_str(
        "\n[[printables]]\ntitle = \"Roll-call card\"\n\
         file = \"defusing-difficult-encounters/what-you-see.pdf\"\n\
         thumbnail = \"defusing-difficult-encounters/what-you-see.png\"\n",
    );
    // The same file as the public theme's: copy it, so it has a URL of its own.
    std::fs::create_dir_all(demo.path("feeds/members")).unwrap();
    std::fs::copy(
        demo.path("feeds/defusing-difficult-encounters/what-you-see.pdf"),
        demo.path("feeds/members/roll-call-card.pdf"),
    )
    .unwrap();
    let toml = toml.replace(
        "file = \"defusing-difficult-encounters/what-you-see.pdf\"",
        "file = \"members/roll-call-card.pdf\"",
    );
    demo.write("feeds/valor-members.toml", &toml);
    let catalog = demo.load().unwrap();
    let card = &catalog.feed("valor-members").unwrap().printables[0];
    let server = Server::start(&demo);

    let teaser = html(&get(server.addr, "/feeds/valor-members", &[]));
    assert!(
        !teaser.contains("Roll-call card"),
        "a teaser lists no printables"
    );
    let hidden = get(server.addr, &card.file.url_path, &[]);
    let never = get(
        server.addr,
        "/files/valor-members/000000000000/nothing.pdf",
        &[],
    );
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.body, never.body);

    demo.add_user("avery", "officer", "correct horse battery");
    let browser = Browser::new(&server, demo.root(), "avery");
    assert_eq!(
        browser.sign_in("avery", "correct horse battery").status,
        303
    );
    let page = browser.get("/feeds/valor-members");
    assert!(page.body.contains("Roll-call card"), "{}", page.body);
    let file = browser.get(&card.file.url_path);
    assert_eq!(file.status, 200);
    assert!(file.body.starts_with("%PDF-"));
}

#[test]
fn bad_theme_extras_are_named_and_nothing_else_fails() {
    let demo = Demo::new();
    let feed = "feeds/defusing-difficult-encounters.toml";
    demo.edit(
        feed,
        "file = \"defusing-difficult-encounters/what-you-see.pdf\"",
        "file = \"defusing-difficult-encounters/missing.pdf\"",
    );
    demo.edit(
        feed,
        "podcast_index = ",
        "myspace = \"https://myspace.com/x\"\npodcast_index = ",
    );
    demo.edit(feed, "spotify = \"https://", "spotify = \"http://");
    demo.edit(
        feed,
        "thumbnail = \"defusing-difficult-encounters/increase-officer-safety.png\"",
        "thumbnail = \"defusing-difficult-encounters/increase-officer-safety.pdf\"",
    );
    let mut members = demo.read("feeds/valor-members.toml");
    members.push_str("\n[directories]\napple = \"https://podcasts.apple.com/x\"\n");
    demo.write("feeds/valor-members.toml", &members);
    let problems = demo.problems();
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has("feeds/defusing-difficult-encounters.toml: printables[2].file: \"defusing-difficult-encounters/missing.pdf\" does not exist"),
        "{problems:#?}"
    );
    assert!(
        has("feeds/defusing-difficult-encounters.toml: directories.myspace: is not a directory Rollcall knows: use one of: apple, spotify"),
        "{problems:#?}"
    );
    assert!(
        has("feeds/defusing-difficult-encounters.toml: directories.spotify: \"http://open.spotify.com/search/Spotlight%20on%20Safety/podcasts\" is not an https URL"),
        "{problems:#?}"
    );
    assert!(
        has("printables[0].thumbnail: \"defusing-difficult-encounters/increase-officer-safety.pdf\" is not a JPEG or PNG file"),
        "{problems:#?}"
    );
    assert!(
        has("feeds/valor-members.toml: directories: a members feed is kept out of directories"),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 5, "{problems:#?}");
}

#[test]
fn a_bad_extra_on_a_live_server_keeps_the_last_good_catalog() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let before = html(&get(server.addr, THEME, &[]));
    demo.edit(
        "feeds/defusing-difficult-encounters.toml",
        "title = \"Polis Solutions\"",
        "title = \"\"",
    );
    assert!(server.live.reload().is_err());
    let after = html(&get(server.addr, THEME, &[]));
    assert_eq!(before, after, "the page stays as it was");
    assert!(after.contains(">Polis Solutions</a>"));
}

fn search(addr: std::net::SocketAddr, q: &str) -> String {
    let r = get(addr, &format!("/search?q={q}"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    html(&r)
}

fn result_titles(page: &str) -> Vec<String> {
    page.split("<li class=\"result\">")
        .skip(1)
        .map(|r| {
            let at = r.find("<h2><a href=\"").unwrap();
            let rest = &r[at..];
            let start = rest.find("\">").unwrap() + 2;
            rest[start..rest.find("</a>").unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn search_finds_titles_guests_notes_and_resources_on_the_server() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let home = html(&get(server.addr, "/", &[]));
    assert!(
        home.contains("<form class=\"search\" role=\"search\" method=\"get\" action=\"/search\">")
    );

    // A guest's affiliation.
    let page = search(server.addr, "seattle");
    assert_eq!(result_titles(&page), ["Defining De-Escalation"], "{page}");
    assert!(page.contains("Found in: guests, notes"), "{page}");
    assert!(page.contains("<mark>Seattle</mark>"), "{page}");
    assert!(page.contains("1 episode matches “seattle”."));
    // A mentioned resource only.
    let page = search(server.addr, "Police+Executive+Research+Forum");
    assert_eq!(
        result_titles(&page),
        [
            "Defining De-Escalation",
            "Behavioral Response to Stress and Fear"
        ],
        "{page}"
    );
    let second = page.split("<li class=\"result\">").nth(2).unwrap();
    assert!(second.contains("Found in: resources</p>"), "{page}");
    // Every word must match; case does not matter; a title match ranks first.
    let page = search(server.addr, "STRESS");
    assert_eq!(
        result_titles(&page)[0],
        "Behavioral Response to Stress and Fear"
    );
    assert!(result_titles(&search(server.addr, "stress+seattle")).is_empty());
    let none = search(server.addr, "zebra");
    assert!(none.contains("No episode matches “zebra”."));
    // The query is text, never markup.
    let page = search(server.addr, "%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;\""),
        "{page}"
    );
    // No query: just the form.
    let empty = search(server.addr, "");
    assert!(empty.contains("<h1>Search</h1>") && !empty.contains("role=\"status\""));
}

#[test]
fn search_shows_only_what_the_viewer_may_see() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    // The members feed is a preview: its members-only episode is found as a teaser, with no media.
    let page = search(server.addr, "roll-call");
    assert_eq!(
        result_titles(&page),
        ["Roll-Call Briefing: Defusing Difficult Encounters"],
        "{page}"
    );
    assert!(page.contains("<span class=\"badge\">Members only</span>"));
    assert!(!page.contains("/media/"), "{page}");
    assert!(!page.contains("/artwork/roll-call"), "{page}");
    drop(server);

    // Without a preview, anonymous searches cannot find it; a signed-in officer can.
    demo.edit(
        "feeds/valor-members.toml",
        "preview = true",
        "preview = false",
    );
    let server = Server::start(&demo);
    assert!(result_titles(&search(server.addr, "roll-call")).is_empty());
    assert!(result_titles(&search(server.addr, "briefing")).is_empty());
    demo.add_user("avery", "officer", "correct horse battery");
    let browser = Browser::new(&server, demo.root(), "avery");
    assert_eq!(
        browser.sign_in("avery", "correct horse battery").status,
        303
    );
    let mine = browser.get("/search?q=roll-call");
    assert_eq!(mine.status, 200);
    assert_eq!(
        result_titles(&mine.body),
        ["Roll-Call Briefing: Defusing Difficult Encounters"]
    );
    assert_eq!(
        mine.headers
            .iter()
            .find(|(k, _)| k == "cache-control")
            .map(|(_, v)| v.as_str()),
        Some("private, no-cache")
    );
    assert!(mine.body.contains("Sign out avery"));
}
