//! The website: a home page of themes, paged theme pages per public feed, a page per episode, and
//! styled error pages, rendered from askama templates in `templates/`.
//!
//! This module turns catalog values into view values and renders one page at a time; [`Pages`]
//! (in `pages.rs`) decides which pages exist in a snapshot and renders each the first time it is
//! asked for, then serves it from memory like a feed. Only public feeds, and episodes in at least
//! one public feed, get pages. Absolute URLs come from `public_url`, never from a request. The CSS
//! and script in `static/` are compiled in and served under a content-versioned URL.

pub mod admin;
pub mod format;
mod pages;

use std::sync::LazyLock;

use askama::Template;

use crate::catalog::{Catalog, Episode, Feed, Guest, Resource};
use crate::render::notes::show_notes_html;
use crate::render::Encoded;
use format::{Chapter, Cue, Subscribe};
pub use pages::{Lookup, PageRef, Pages, ThemeQuery};

pub const HTML_TYPE: &str = "text/html; charset=utf-8";

/// Episodes per theme page; page 1 shows the newest.
pub const THEME_PAGE_SIZE: usize = 50;

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
        (
            "admin.js",
            "text/javascript; charset=utf-8",
            include_str!("../../static/admin.js"),
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
    /// This page's number, from 1, and how many there are.
    page: usize,
    pages: usize,
    /// Positions (from 1) of the first and last episode shown, of `total`.
    range: (usize, usize),
    total: usize,
    /// Links to the neighbouring pages, if any.
    newer: Option<String>,
    older: Option<String>,
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

/// The home page: every public feed as a card.
fn render_home(catalog: &Catalog, public: &[&Feed]) -> String {
    render(&HomePage {
        head: Head::new(
            "Podcasts".to_owned(),
            "Every podcast theme, with episodes to listen to, download or subscribe to.",
            public,
            catalog,
        ),
        feeds: public.iter().map(|f| card(f)).collect(),
    })
}

/// A styled error page listing the public feeds.
fn render_error(catalog: &Catalog, public: &[&Feed], heading: &str, message: &str) -> String {
    render(&ErrorPage {
        head: Head::new(heading.to_owned(), message, public, catalog),
        heading,
        message,
        feeds: public.iter().map(|f| card(f)).collect(),
    })
}

/// Page `page` (from 1) of a theme: its subscribe controls and [`THEME_PAGE_SIZE`] episodes.
/// The caller checks that the page exists.
fn render_theme(catalog: &Catalog, feed: &Feed, page: usize) -> String {
    let url = feed_url(catalog, feed);
    let total = feed.episodes.len();
    let pages = page_count(total);
    let first = (page - 1) * THEME_PAGE_SIZE;
    let on_page = &feed.episodes[first.min(total)..(first + THEME_PAGE_SIZE).min(total)];
    let base = format!("/feeds/{}", feed.id);
    let title = if page == 1 {
        feed.title.clone()
    } else {
        format!("{}, page {page} of {pages}", feed.title)
    };
    render(&ThemePage {
        head: Head::new(title, &feed.description, &[feed], catalog),
        card: card(feed),
        qr: format::qr_svg(&url, &format!("QR code of the feed URL {url}")),
        subscribe: Subscribe::new(&url),
        episodes: on_page
            .iter()
            .map(|&i| EpisodeView::new(&catalog.episodes[i]))
            .collect(),
        page,
        pages,
        range: (first + 1, first + on_page.len()),
        total,
        newer: match page {
            1 => None,
            2 => Some(base.clone()),
            n => Some(format!("{base}?page={}", n - 1)),
        },
        older: (page < pages).then(|| format!("{base}?page={}", page + 1)),
    })
}

/// How many pages a theme with `episodes` episodes has; an empty theme still has its first page.
pub fn page_count(episodes: usize) -> usize {
    episodes.div_ceil(THEME_PAGE_SIZE).max(1)
}

/// An episode's page. `feeds` are the public feeds carrying it. Reads its transcript and chapters
/// files, so it runs off the async threads.
fn render_episode(catalog: &Catalog, ep: &Episode, feeds: &[&Feed]) -> String {
    render(&EpisodePage {
        head: Head::new(ep.title.clone(), &ep.summary, feeds, catalog),
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
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_count_rounds_up_and_keeps_one_page_for_an_empty_theme() {
        assert_eq!(page_count(0), 1);
        assert_eq!(page_count(1), 1);
        assert_eq!(page_count(THEME_PAGE_SIZE), 1);
        assert_eq!(page_count(THEME_PAGE_SIZE + 1), 2);
        assert_eq!(page_count(2 * THEME_PAGE_SIZE), 2);
        assert_eq!(page_count(2 * THEME_PAGE_SIZE + 1), 3);
    }
}
