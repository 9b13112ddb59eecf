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
pub mod search;

use std::sync::LazyLock;

use askama::Template;

use crate::access::{self, Credentials, PageView};
use crate::catalog::{Catalog, DirectoryLink, Episode, Feed, Guest, Printable, Resource};
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
        (
            "favicon.svg",
            "image/svg+xml",
            include_str!("../../static/favicon.svg"),
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

/// Who a page is rendered for. Anonymous pages are rendered once per snapshot and shared;
/// a signed-in member's are rendered for them on each request.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub who: Credentials,
    /// The signed-in account's name.
    pub user: Option<&'a str>,
    /// The session's CSRF token, for the forms in the page (sign out, reset my link).
    pub csrf: &'a str,
    /// The start of this member's personal URLs, `{public_url}/p/<token>`.
    pub personal: Option<&'a str>,
}

impl Viewer<'_> {
    pub const ANONYMOUS: Viewer<'static> = Viewer {
        who: Credentials::Anonymous,
        user: None,
        csrf: "",
        personal: None,
    };
}

/// The site's name, programme and logo, in every page's header and footer.
struct Brand {
    title: String,
    programme: Option<String>,
    programme_url: Option<String>,
    logo: Option<String>,
}

/// What every page's `<head>` and header need.
struct Head {
    /// The page's own title; `<title>` adds the site's unless they are the same.
    title: String,
    brand: Brand,
    description: String,
    /// The page's language: its feed's `language` (`en-us`), or the first feed's on the home page.
    lang: String,
    favicon: &'static str,
    /// OpenGraph and Twitter-card values; set on pages anyone may see.
    og: Option<OpenGraph>,
    /// Feeds to announce with `<link rel="alternate">`: (title, absolute URL). Public feeds only:
    /// a members feed's URL is personal.
    alternates: Vec<(String, String)>,
    css: &'static str,
    js: &'static str,
    user: Option<String>,
    csrf: String,
}

impl Head {
    fn new(
        title: String,
        description: &str,
        feeds: &[&Feed],
        catalog: &Catalog,
        viewer: &Viewer,
    ) -> Head {
        Head {
            lang: feeds
                .first()
                .map(|f| f.language.clone())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "en".into()),
            favicon: static_url("favicon.svg"),
            og: None,
            title,
            brand: Brand {
                title: catalog.site.title.clone(),
                programme: catalog.site.programme.clone(),
                programme_url: catalog.site.programme_url.clone(),
                logo: catalog.site.logo.as_ref().map(|l| l.url_path.clone()),
            },
            description: description.to_owned(),
            alternates: feeds
                .iter()
                .filter(|f| access::is_public(f))
                .map(|f| (f.title.clone(), feed_url(catalog, f)))
                .collect(),
            css: static_url("site.css"),
            js: static_url("site.js"),
            user: viewer.user.map(str::to_owned),
            csrf: viewer.csrf.to_owned(),
        }
    }
}

/// What link previews show: OpenGraph (`og:`) and Twitter-card tags.
struct OpenGraph {
    kind: &'static str,
    url: String,
    image: Option<String>,
    /// A public episode's audio: absolute URL and type.
    audio: Option<(String, String)>,
}

impl Head {
    /// Adds link-preview tags for a page at `path`, for anyone who may see it: `image` and
    /// `audio` only when they are public files.
    fn with_og(
        mut self,
        catalog: &Catalog,
        kind: &'static str,
        path: &str,
        image: Option<&str>,
        audio: Option<(&str, &str)>,
    ) -> Head {
        self.og = Some(OpenGraph {
            kind,
            url: catalog.url(path),
            image: image.map(|p| catalog.url(p)),
            audio: audio.map(|(p, mime)| (catalog.url(p), mime.to_owned())),
        });
        self
    }
}

fn feed_url(catalog: &Catalog, feed: &Feed) -> String {
    catalog.url(&format!("/feeds/{}.xml", feed.id))
}

struct FeedCard<'a> {
    feed: &'a Feed,
    page: String,
    /// `None` where the viewer may not fetch it (a teaser's artwork is members media).
    artwork: Option<&'a str>,
    episode_count: usize,
    /// A members feed.
    members: bool,
}

struct EpisodeView<'a> {
    ep: &'a Episode,
    page: String,
    date_iso: String,
    date_text: String,
    duration_iso: String,
    duration_text: String,
    /// Whole seconds, for the player's time display before the audio has loaded.
    duration_secs: u64,
    /// The episode's own artwork, or its feed's; `None` where the viewer may not fetch it.
    artwork: Option<&'a str>,
    media: &'a str,
    download: String,
    guests: &'a [Guest],
    resources: &'a [Resource],
    /// The viewer may not play it: "Sign in to listen" instead of the player and download.
    locked: bool,
}

impl<'a> EpisodeView<'a> {
    /// `feed_artwork` is the artwork to show when the episode has none of its own.
    fn new(ep: &'a Episode, locked: bool, feed_artwork: Option<&'a str>) -> EpisodeView<'a> {
        EpisodeView {
            duration_secs: ep.duration_secs(),
            artwork: if locked {
                None
            } else {
                ep.image
                    .as_ref()
                    .map(|i| i.url_path.as_str())
                    .or(feed_artwork)
            },
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
            locked,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    head: Head,
    feeds: Vec<FeedCard<'a>>,
    /// The search box starts empty.
    query: &'a str,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage<'a> {
    head: Head,
    query: &'a str,
    /// Whether anything was asked.
    asked: bool,
    total: usize,
    results: Vec<SearchResult<'a>>,
}

struct SearchResult<'a> {
    view: EpisodeView<'a>,
    /// Where the words were found, for the reader: "title, guests".
    matched: String,
    /// The summary (or notes) around the first word, escaped, with `<mark>`s.
    snippet: String,
    /// Only members may listen.
    members: bool,
}

/// A printable file as the theme page shows it.
struct PrintableView<'a> {
    p: &'a Printable,
    /// "PDF, 12 KB".
    kind: String,
}

impl<'a> PrintableView<'a> {
    fn new(p: &'a Printable) -> PrintableView<'a> {
        let ext = p
            .file
            .file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_uppercase())
            .unwrap_or_else(|| "File".into());
        PrintableView {
            p,
            kind: format!("{ext}, {}", format::human_size(p.file.size)),
        }
    }
}

#[derive(Template)]
#[template(path = "theme.html")]
struct ThemePage<'a> {
    head: Head,
    card: FeedCard<'a>,
    /// The theme's "Resources Available".
    resources: &'a [Resource],
    /// Printable material; empty for a viewer who may not fetch it (a teaser).
    printables: Vec<PrintableView<'a>>,
    directories: &'a [DirectoryLink],
    /// The feed URL to subscribe with (a member's personal one for a members feed), or `None`
    /// for a teaser or a member without a personal URL.
    subscribe: Option<Subscribe>,
    qr: Option<String>,
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

fn card<'a>(feed: &'a Feed, viewer: &Viewer) -> FeedCard<'a> {
    let full = access::page_view(feed, viewer.who) == Some(PageView::Full);
    FeedCard {
        feed,
        page: format!("/feeds/{}", feed.id),
        artwork: full.then_some(feed.artwork.url_path.as_str()),
        episode_count: feed.episodes.len(),
        members: !access::is_public(feed),
    }
}

/// The feeds whose pages `viewer` sees, fully or as teasers, in catalog order.
pub fn page_feeds<'a>(catalog: &'a Catalog, viewer: &Viewer) -> Vec<&'a Feed> {
    let who = viewer.who;
    catalog
        .feeds
        .iter()
        .filter(|f| access::page_view(f, who).is_some())
        .collect()
}

/// The home page: every feed the viewer sees as a card.
fn render_home(catalog: &Catalog, viewer: &Viewer) -> String {
    let feeds = page_feeds(catalog, viewer);
    render(&HomePage {
        head: Head::new(
            catalog.site.title.clone(),
            "Every podcast theme, with episodes to listen to, download or subscribe to.",
            &feeds,
            catalog,
            viewer,
        )
        .with_og(
            catalog,
            "website",
            "/",
            feeds
                .iter()
                .find(|f| access::is_public(f))
                .map(|f| f.artwork.url_path.as_str()),
            None,
        ),
        feeds: feeds.iter().map(|f| card(f, viewer)).collect(),
        query: "",
    })
}

/// A styled error page listing the public feeds.
fn render_error(catalog: &Catalog, public: &[&Feed], heading: &str, message: &str) -> String {
    let viewer = Viewer::ANONYMOUS;
    render(&ErrorPage {
        head: Head::new(heading.to_owned(), message, public, catalog, &viewer),
        heading,
        message,
        feeds: public.iter().map(|f| card(f, &viewer)).collect(),
    })
}

/// A page rendered for a signed-in viewer, or `None` if the viewer has no such page.
pub fn render_for(catalog: &Catalog, page: &PageRef, viewer: &Viewer) -> Option<String> {
    match page {
        PageRef::Home => Some(render_home(catalog, viewer)),
        PageRef::Theme { id, page } => {
            let feed = catalog.feed(id)?;
            access::page_view(feed, viewer.who)?;
            (*page >= 1 && *page <= page_count(feed.episodes.len()))
                .then(|| render_theme(catalog, feed, *page, viewer))
        }
        PageRef::Episode { slug } => {
            let ep = catalog.episode(slug)?;
            let feeds: Vec<&Feed> = catalog
                .feeds_of(ep)
                .filter(|f| access::page_view(f, viewer.who).is_some())
                .collect();
            (!feeds.is_empty()).then(|| render_episode(catalog, ep, &feeds, viewer))
        }
    }
}

/// Page `page` (from 1) of a theme: its subscribe controls and [`THEME_PAGE_SIZE`] episodes.
/// The caller checks that the page exists.
fn render_theme(catalog: &Catalog, feed: &Feed, page: usize, viewer: &Viewer) -> String {
    let teaser = access::page_view(feed, viewer.who) != Some(PageView::Full);
    let url = if access::is_public(feed) {
        Some(feed_url(catalog, feed))
    } else if teaser {
        None
    } else {
        viewer
            .personal
            .map(|p| format!("{p}/feeds/{}.xml", feed.id))
    };
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
        head: Head::new(title, &feed.description, &[feed], catalog, viewer).with_og(
            catalog,
            "website",
            &format!("/feeds/{}", feed.id),
            access::is_public(feed).then_some(feed.artwork.url_path.as_str()),
            None,
        ),
        card: card(feed, viewer),
        resources: &feed.resources,
        printables: if teaser {
            Vec::new()
        } else {
            feed.printables.iter().map(PrintableView::new).collect()
        },
        directories: &feed.directories,
        qr: url
            .as_ref()
            .map(|u| format::qr_svg(u, &format!("QR code of the feed URL {u}"))),
        subscribe: url.as_deref().map(Subscribe::new),
        episodes: on_page
            .iter()
            .map(|&i| {
                let ep = &catalog.episodes[i];
                // A teaser shows no media at all, not even an episode public elsewhere.
                EpisodeView::new(ep, teaser, Some(&feed.artwork.url_path))
            })
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

/// An episode's page. `feeds` are the feeds carrying it whose pages the viewer sees. Reads its
/// transcript and chapters files, so it runs off the async threads; a locked episode (a teaser)
/// shows neither, nor any media URL.
fn render_episode(catalog: &Catalog, ep: &Episode, feeds: &[&Feed], viewer: &Viewer) -> String {
    let locked = !access::may_play(catalog, ep, viewer.who);
    let text_of = |a: &Option<crate::catalog::Asset>| {
        a.as_ref()
            .filter(|_| !locked)
            .and_then(|a| read_text(&a.path))
    };
    render(&EpisodePage {
        head: {
            // Previews carry the audio and artwork only where anyone may fetch them.
            let public = access::may_play(catalog, ep, Credentials::Anonymous);
            let image = ep
                .image
                .as_ref()
                .map(|i| i.url_path.as_str())
                .or(feeds.first().map(|f| f.artwork.url_path.as_str()));
            Head::new(ep.title.clone(), &ep.summary, feeds, catalog, viewer).with_og(
                catalog,
                "website",
                &format!("/episodes/{}", ep.slug),
                image.filter(|_| public),
                public.then_some((ep.audio.url_path.as_str(), ep.audio.mime.as_str())),
            )
        },
        themes: feeds
            .iter()
            .map(|f| (f.title.as_str(), format!("/feeds/{}", f.id)))
            .collect(),
        notes_html: show_notes_html(ep),
        chapters: text_of(&ep.chapters)
            .map(|t| format::parse_chapters(&t))
            .unwrap_or_default(),
        cues: text_of(&ep.transcript)
            .map(|t| format::parse_cues(&t))
            .unwrap_or_default(),
        view: EpisodeView::new(
            ep,
            locked,
            feeds.first().map(|f| f.artwork.url_path.as_str()),
        ),
    })
}

/// `/search?q=…` for `viewer`: the episodes whose pages they see that hold every word. Teasers
/// are found too (their pages are public), marked members-only.
pub fn render_search(
    catalog: &Catalog,
    index: &search::Index,
    query: &search::Query,
    viewer: &Viewer,
) -> String {
    let who = viewer.who;
    let hits = index.search(catalog, query, |i| {
        catalog
            .feeds_of(&catalog.episodes[i])
            .any(|f| access::page_view(f, who).is_some())
    });
    let results = hits
        .iter()
        .take(search::MAX_RESULTS)
        .map(|hit| {
            let ep = &*catalog.episodes[hit.episode];
            let locked = !access::may_play(catalog, ep, who);
            let artwork = catalog
                .feeds_of(ep)
                .find(|f| access::page_view(f, who) == Some(PageView::Full))
                .map(|f| f.artwork.url_path.as_str());
            let text = if hit.matched.contains(&"notes") && !hit.matched.contains(&"title") {
                // The words may be only in the notes: show the notes around them.
                format!(
                    "{} {}",
                    ep.summary,
                    search::markdown_text(&ep.notes_markdown)
                )
            } else {
                ep.summary.clone()
            };
            SearchResult {
                view: EpisodeView::new(ep, locked, artwork),
                matched: hit.matched.join(", "),
                snippet: search::snippet(&text, &query.words, 240),
                members: !catalog.feeds_of(ep).any(access::is_public),
            }
        })
        .collect();
    let feeds = page_feeds(catalog, viewer);
    let title = if query.text.is_empty() {
        "Search".to_owned()
    } else {
        format!("Search: {}", query.text)
    };
    render(&SearchPage {
        head: Head::new(
            title,
            "Search every episode's title, guests, notes and resources.",
            &feeds,
            catalog,
            viewer,
        ),
        query: &query.text,
        asked: !query.words.is_empty(),
        total: hits.len(),
        results,
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
