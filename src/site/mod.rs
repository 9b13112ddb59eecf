//! The website: a home page of themes, a page per public feed and per episode, and styled error
//! pages, rendered from askama templates in `templates/`.
//!
//! [`build`] runs when a snapshot is built (once per catalog change, off the async runtime, so it
//! may read transcripts and chapters from disk). It turns the catalog into view values, renders each
//! page, and compresses it into an [`Encoded`] keyed by its URL path, so a page request is a map
//! lookup like a feed. Only public feeds, and episodes in at least one public feed, get pages.
//! Absolute URLs come from `public_url`, never from a request. The CSS and script in `static/` are
//! compiled in and served under a content-versioned URL.

pub mod format;

use std::collections::HashMap;
use std::sync::LazyLock;

use askama::Template;

use crate::catalog::{Access, Catalog, Episode, Feed, Guest, Resource};
use crate::render::notes::show_notes_html;
use crate::snapshot::Encoded;
use format::{Chapter, Cue, Subscribe};

pub const HTML_TYPE: &str = "text/html; charset=utf-8";

/// Every rendered page, and the error pages.
#[derive(Debug)]
pub struct Pages {
    /// Pages by URL path: `/`, `/feeds/<id>`, `/episodes/<slug>`.
    pub by_path: HashMap<String, Encoded>,
    pub not_found: Encoded,
    pub error: Encoded,
}

/// A file from `static/`, compressed once per process.
pub struct StaticFile {
    pub name: &'static str,
    pub encoded: Encoded,
    /// The URL pages use: `/static/<name>?v=<hash>`, so a changed file gets a new URL.
    pub url: String,
}

static STATIC: LazyLock<Vec<StaticFile>> = LazyLock::new(|| {
    [
        (
            "site.css",
            "text/css; charset=utf-8",
            include_str!("../../static/site.css"),
        ),
        (
            "site.js",
            "text/javascript; charset=utf-8",
            include_str!("../../static/site.js"),
        ),
    ]
    .into_iter()
    .map(|(name, content_type, text)| {
        let encoded = Encoded::new(content_type, text.as_bytes().to_vec(), None);
        encoded.compress();
        let url = format!("/static/{name}?v={}", &encoded.etag[1..9]);
        StaticFile { name, encoded, url }
    })
    .collect()
});

/// A compiled-in static file by name.
pub fn static_file(name: &str) -> Option<&'static StaticFile> {
    STATIC.iter().find(|f| f.name == name)
}

fn static_url(name: &str) -> &'static str {
    static_file(name).map(|f| f.url.as_str()).unwrap_or("")
}

/// What every page's `<head>` and header need.
struct Head {
    title: String,
    description: String,
    /// Feeds to announce with `<link rel="alternate">`: (title, absolute URL).
    alternates: Vec<(String, String)>,
    css: &'static str,
    js: &'static str,
}

impl Head {
    fn new(title: String, description: &str, feeds: &[&Feed], catalog: &Catalog) -> Head {
        Head {
            title,
            description: description.to_owned(),
            alternates: feeds
                .iter()
                .map(|f| (f.title.clone(), feed_url(catalog, f)))
                .collect(),
            css: static_url("site.css"),
            js: static_url("site.js"),
        }
    }
}

fn feed_url(catalog: &Catalog, feed: &Feed) -> String {
    catalog.url(&format!("/feeds/{}.xml", feed.id))
}

struct FeedCard<'a> {
    feed: &'a Feed,
    page: String,
    artwork: &'a str,
    episode_count: usize,
}

struct EpisodeView<'a> {
    ep: &'a Episode,
    page: String,
    date_iso: String,
    date_text: String,
    duration_iso: String,
    duration_text: String,
    media: &'a str,
    download: String,
    guests: &'a [Guest],
    resources: &'a [Resource],
}

impl<'a> EpisodeView<'a> {
    fn new(ep: &'a Episode) -> EpisodeView<'a> {
        EpisodeView {
            ep,
            page: format!("/episodes/{}", ep.slug),
            date_iso: ep.published.format("%Y-%m-%d").to_string(),
            date_text: ep.published.format("%B %-d, %Y").to_string(),
            duration_iso: format::iso_duration(ep.duration),
            duration_text: format::human_duration(ep.duration),
            media: &ep.audio.url_path,
            download: format!("{}?download=1", ep.audio.url_path),
            guests: &ep.guests,
            resources: &ep.resources,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    head: Head,
    feeds: Vec<FeedCard<'a>>,
}

#[derive(Template)]
#[template(path = "theme.html")]
struct ThemePage<'a> {
    head: Head,
    card: FeedCard<'a>,
    subscribe: Subscribe,
    qr: String,
    episodes: Vec<EpisodeView<'a>>,
}

#[derive(Template)]
#[template(path = "episode.html")]
struct EpisodePage<'a> {
    head: Head,
    view: EpisodeView<'a>,
    /// Public feeds carrying the episode: (title, theme page).
    themes: Vec<(&'a str, String)>,
    notes_html: String,
    chapters: Vec<Chapter>,
    cues: Vec<Cue>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    head: Head,
    heading: &'a str,
    message: &'a str,
    feeds: Vec<FeedCard<'a>>,
}

fn card(feed: &Feed) -> FeedCard<'_> {
    FeedCard {
        feed,
        page: format!("/feeds/{}", feed.id),
        artwork: &feed.artwork.url_path,
        episode_count: feed.episodes.len(),
    }
}

/// Renders every page of `catalog`. `previous` keeps Last-Modified of unchanged pages.
pub fn build(catalog: &Catalog, previous: Option<&Pages>) -> Pages {
    let public: Vec<&Feed> = catalog
        .feeds
        .iter()
        .filter(|f| f.access == Access::Public)
        .collect();
    let mut rendered: Vec<(String, String)> = Vec::new();

    let home = HomePage {
        head: Head::new(
            "Podcasts".to_owned(),
            "Every podcast theme, with episodes to listen to, download or subscribe to.",
            &public,
            catalog,
        ),
        feeds: public.iter().map(|f| card(f)).collect(),
    };
    rendered.push(("/".to_owned(), render(&home)));

    for feed in &public {
        let url = feed_url(catalog, feed);
        let page = ThemePage {
            head: Head::new(feed.title.clone(), &feed.description, &[feed], catalog),
            card: card(feed),
            qr: format::qr_svg(&url, &format!("QR code of the feed URL {url}")),
            subscribe: Subscribe::new(&url),
            episodes: catalog.feed_episodes(feed).map(EpisodeView::new).collect(),
        };
        rendered.push((format!("/feeds/{}", feed.id), render(&page)));
    }

    // Which public feeds carry each episode, by index: one pass, not a scan per episode.
    let mut feeds_of: Vec<Vec<&Feed>> = vec![Vec::new(); catalog.episodes.len()];
    for feed in &public {
        for &i in &feed.episodes {
            feeds_of[i].push(feed);
        }
    }
    for (ep, feeds) in catalog.episodes.iter().zip(feeds_of) {
        if feeds.is_empty() {
            continue;
        }
        let page = EpisodePage {
            head: Head::new(ep.title.clone(), &ep.summary, &feeds, catalog),
            themes: feeds
                .iter()
                .map(|f| (f.title.as_str(), format!("/feeds/{}", f.id)))
                .collect(),
            notes_html: show_notes_html(ep),
            chapters: ep
                .chapters
                .as_ref()
                .and_then(|a| read_text(&a.path))
                .map(|t| format::parse_chapters(&t))
                .unwrap_or_default(),
            cues: ep
                .transcript
                .as_ref()
                .and_then(|a| read_text(&a.path))
                .map(|t| format::parse_cues(&t))
                .unwrap_or_default(),
            view: EpisodeView::new(ep),
        };
        rendered.push((format!("/episodes/{}", ep.slug), render(&page)));
    }

    let by_path = rendered
        .into_iter()
        .map(|(path, html)| {
            let prev = previous.and_then(|p| p.by_path.get(&path));
            let enc = Encoded::new(HTML_TYPE, html.into_bytes(), prev);
            (path, enc)
        })
        .collect();
    let error_page = |heading: &str, message: &str, prev: Option<&Encoded>| {
        let page = ErrorPage {
            head: Head::new(heading.to_owned(), message, &public, catalog),
            heading,
            message,
            feeds: public.iter().map(|f| card(f)).collect(),
        };
        Encoded::new(HTML_TYPE, render(&page).into_bytes(), prev)
    };
    Pages {
        by_path,
        not_found: error_page(
            "Page not found",
            "There is no page at this address. It may have moved, or the link may be mistyped.",
            previous.map(|p| &p.not_found),
        ),
        error: error_page(
            "Something went wrong",
            "The server could not answer this request. Please try again in a moment.",
            previous.map(|p| &p.error),
        ),
    }
}

/// Templates only fail on a failing `Display`, which these views do not have.
fn render(t: &impl Template) -> String {
    t.render().expect("templates render from plain strings")
}

/// Transcripts and chapters are optional extras: a file that vanished or is not UTF-8 is left out
/// of the page rather than failing the catalog.
fn read_text(path: &std::path::Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "left out of the episode page");
            None
        }
    }
}
