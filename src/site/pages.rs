//! The pages of one snapshot, rendered when first asked for and then kept.
//!
//! [`Pages::build`] runs with the snapshot and does only cheap work: it renders the home and error
//! pages and makes an empty slot for every theme page and every episode page that may exist, keyed
//! by feed id and by slug, so a request finds its slot in O(1). A request [`Pages::lookup`]s its
//! page: `Ready` is served from memory; `Render` means the caller runs [`Pages::render`] off the
//! async threads (episode pages read transcript and chapters files), which renders, compresses and
//! stores the page for every later request of this snapshot; `Missing` is a 404.
//!
//! On a reload, an episode page whose episode and public feeds did not change is carried over as
//! it is. Every other slot remembers the page it replaces, so a page that renders to the same bytes
//! keeps its Last-Modified and compressed variants.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::{
    page_count, render_episode, render_error, render_home, render_theme, Viewer, HTML_TYPE,
};
use crate::access::{self, Credentials};
use crate::catalog::{Catalog, Feed};
use crate::render::Encoded;

/// A page a request can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRef {
    Home,
    /// A theme page by feed id and page number (from 1).
    Theme {
        id: String,
        page: usize,
    },
    Episode {
        slug: String,
    },
}

/// Where a requested page stands.
#[derive(Debug)]
pub enum Lookup<'a> {
    Ready(&'a Encoded),
    /// It exists but has not been rendered in this snapshot yet: call [`Pages::render`].
    Render,
    Missing,
}

/// The `?page=` part of a theme page's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeQuery {
    /// No `page` parameter: the first page, at its canonical URL.
    Canonical,
    /// `page=N`, N from 1, written without leading zeros.
    Page(usize),
    /// `page` is empty, zero, not a number, or given twice.
    Invalid,
}

impl ThemeQuery {
    /// Reads the raw query string. Other parameters (`utm_source` and the like) are ignored.
    pub fn parse(query: Option<&str>) -> ThemeQuery {
        let mut value = None;
        for pair in query.unwrap_or("").split('&') {
            let (name, v) = pair.split_once('=').unwrap_or((pair, ""));
            if name != "page" {
                continue;
            }
            if value.replace(v).is_some() {
                return ThemeQuery::Invalid;
            }
        }
        let Some(v) = value else {
            return ThemeQuery::Canonical;
        };
        if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
            return ThemeQuery::Invalid;
        }
        v.parse().map_or(ThemeQuery::Invalid, ThemeQuery::Page)
    }
}

/// One lazily rendered page.
#[derive(Default)]
struct Slot {
    page: OnceLock<Arc<Encoded>>,
    /// The page this slot replaces, from an earlier snapshot: reused if the new bytes are equal.
    previous: Option<Arc<Encoded>>,
}

impl Slot {
    /// A slot for a page that may have changed since `before`.
    fn after(before: Option<&Slot>) -> Slot {
        Slot {
            page: OnceLock::new(),
            previous: before.and_then(Slot::latest).cloned(),
        }
    }

    /// A slot holding an unchanged page from the previous snapshot.
    fn carried(page: Arc<Encoded>) -> Slot {
        Slot {
            page: OnceLock::from(page),
            previous: None,
        }
    }

    fn latest(&self) -> Option<&Arc<Encoded>> {
        self.page.get().or(self.previous.as_ref())
    }

    /// Renders, compresses and keeps the page, once; concurrent callers wait for the first.
    fn fill(&self, render: impl FnOnce() -> String) -> &Encoded {
        self.page.get_or_init(|| {
            let enc = Encoded::new(HTML_TYPE, render().into_bytes(), self.previous.as_deref());
            enc.compress();
            Arc::new(enc)
        })
    }
}

struct ThemeSlots {
    /// Index into [`Catalog::feeds`].
    feed: usize,
    /// Page N is `pages[N - 1]`.
    pages: Vec<Slot>,
}

struct EpisodeSlot {
    /// Index into [`Catalog::episodes`].
    episode: usize,
    /// The public feeds carrying it, as indexes into [`Catalog::feeds`].
    feeds: Vec<usize>,
    page: Slot,
}

/// The website's pages for one catalog. [`Pages::render`] must be given that same catalog; the
/// snapshot holds both.
pub struct Pages {
    pub home: Encoded,
    themes: HashMap<String, ThemeSlots>,
    episodes: HashMap<String, EpisodeSlot>,
    pub not_found: Encoded,
    pub error: Encoded,
    /// The search's folded text, made on the first search.
    pub search: super::search::Index,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("themes", &self.themes.len())
            .field("episodes", &self.episodes.len())
            .finish_non_exhaustive()
    }
}

impl Pages {
    /// Makes the slots for `catalog`'s pages; renders only the home and error pages. `previous` is
    /// the snapshot being replaced, whose unchanged pages are reused. Linear in the catalog's size.
    pub fn build(catalog: &Catalog, previous: Option<(&Catalog, &Pages)>) -> Pages {
        // Theme and episode pages: the public feeds', and the teasers of preview feeds.
        let public: Vec<usize> = (0..catalog.feeds.len())
            .filter(|&i| access::page_view(&catalog.feeds[i], Credentials::Anonymous).is_some())
            .collect();
        let public_feeds: Vec<&Feed> =
            access::visible_feeds(catalog, Credentials::Anonymous).collect();
        let old_pages = previous.map(|(_, p)| p);

        let themes = public
            .iter()
            .map(|&fi| {
                let feed = &catalog.feeds[fi];
                let before = old_pages.and_then(|p| p.themes.get(&feed.id));
                let pages = (0..page_count(feed.episodes.len()))
                    .map(|n| Slot::after(before.and_then(|t| t.pages.get(n))))
                    .collect();
                (feed.id.clone(), ThemeSlots { feed: fi, pages })
            })
            .collect();

        // Which public feeds carry each episode, by index: one pass over the feeds.
        let mut feeds_of: Vec<Vec<usize>> = vec![Vec::new(); catalog.episodes.len()];
        for &fi in &public {
            for &ei in &catalog.feeds[fi].episodes {
                feeds_of[ei].push(fi);
            }
        }
        let episodes = feeds_of
            .into_iter()
            .enumerate()
            .filter(|(_, feeds)| !feeds.is_empty())
            .map(|(ei, feeds)| {
                let slug = &catalog.episodes[ei].slug;
                let before = previous.and_then(|(c, p)| Some((c, p.episodes.get(slug)?)));
                let page = match before {
                    Some((old, slot)) => match slot.page.page.get() {
                        Some(page) if same_episode_page(old, slot, catalog, ei, &feeds) => {
                            Slot::carried(Arc::clone(page))
                        }
                        _ => Slot::after(Some(&slot.page)),
                    },
                    None => Slot::default(),
                };
                let slot = EpisodeSlot {
                    episode: ei,
                    feeds,
                    page,
                };
                (slug.clone(), slot)
            })
            .collect();

        // Small pages, compressed now so their variants exist when the snapshot goes live.
        let eager = |html: String, before: Option<&Encoded>| {
            let enc = Encoded::new(HTML_TYPE, html.into_bytes(), before);
            enc.compress();
            enc
        };
        Pages {
            home: eager(
                render_home(catalog, &Viewer::ANONYMOUS),
                old_pages.map(|p| &p.home),
            ),
            themes,
            episodes,
            not_found: eager(
                render_error(
                    catalog,
                    &public_feeds,
                    "Page not found",
                    "There is no page at this address. It may have moved, or the link may be mistyped.",
                ),
                old_pages.map(|p| &p.not_found),
            ),
            error: eager(
                render_error(
                    catalog,
                    &public_feeds,
                    "Something went wrong",
                    "The server could not answer this request. Please try again in a moment.",
                ),
                old_pages.map(|p| &p.error),
            ),
            search: Default::default(),
        }
    }

    /// Where `page` stands in this snapshot. O(1): one map lookup.
    pub fn lookup(&self, page: &PageRef) -> Lookup<'_> {
        let slot = match page {
            PageRef::Home => return Lookup::Ready(&self.home),
            PageRef::Theme { id, page } => self
                .themes
                .get(id)
                .and_then(|t| t.pages.get(page.checked_sub(1)?)),
            PageRef::Episode { slug } => self.episodes.get(slug).map(|e| &e.page),
        };
        match slot {
            None => Lookup::Missing,
            Some(s) => s.page.get().map_or(Lookup::Render, |p| Lookup::Ready(p)),
        }
    }

    /// Renders and compresses `page` if no one has yet, and returns it; `None` if there is no such
    /// page. Blocking: episode pages read files, and compression is CPU work.
    pub fn render(&self, catalog: &Catalog, page: &PageRef) -> Option<&Encoded> {
        match page {
            PageRef::Home => Some(&self.home),
            PageRef::Theme { id, page } => {
                let theme = self.themes.get(id)?;
                let slot = theme.pages.get(page.checked_sub(1)?)?;
                Some(slot.fill(|| {
                    render_theme(
                        catalog,
                        &catalog.feeds[theme.feed],
                        *page,
                        &Viewer::ANONYMOUS,
                    )
                }))
            }
            PageRef::Episode { slug } => {
                let e = self.episodes.get(slug)?;
                Some(e.page.fill(|| {
                    let feeds: Vec<&Feed> = e.feeds.iter().map(|&i| &catalog.feeds[i]).collect();
                    render_episode(
                        catalog,
                        &catalog.episodes[e.episode],
                        &feeds,
                        &Viewer::ANONYMOUS,
                    )
                }))
            }
        }
    }

    /// The eager pages and every page rendered so far, for background compression.
    pub fn rendered(&self) -> impl Iterator<Item = &Encoded> {
        let themes = self.themes.values().flat_map(|t| &t.pages);
        let episodes = self.episodes.values().map(|e| &e.page);
        [&self.home, &self.not_found, &self.error]
            .into_iter()
            .chain(
                themes
                    .chain(episodes)
                    .filter_map(|s| s.page.get().map(|p| &**p)),
            )
    }
}

/// Whether an episode page from the old snapshot has the bytes the new one would render: the page
/// shows the episode, the public feeds carrying it (id and title) and URLs under `public_url`.
fn same_episode_page(
    old: &Catalog,
    slot: &EpisodeSlot,
    new: &Catalog,
    episode: usize,
    feeds: &[usize],
) -> bool {
    old.public_url == new.public_url
        && old.site == new.site
        && old.episodes[slot.episode] == new.episodes[episode]
        && slot.feeds.len() == feeds.len()
        && slot.feeds.iter().zip(feeds).all(|(&a, &b)| {
            let (a, b) = (&old.feeds[a], &new.feeds[b]);
            // The page names its themes, speaks the first one's language and falls back on
            // its artwork.
            a.id == b.id
                && a.title == b.title
                && a.language == b.language
                && a.artwork.url_path == b.artwork.url_path
        })
}

#[cfg(test)]
mod tests {
    use super::ThemeQuery::{self, *};

    #[test]
    fn theme_query_without_page_is_canonical() {
        assert_eq!(ThemeQuery::parse(None), Canonical);
        assert_eq!(ThemeQuery::parse(Some("")), Canonical);
        assert_eq!(ThemeQuery::parse(Some("utm_source=qr")), Canonical);
        assert_eq!(ThemeQuery::parse(Some("pages=2")), Canonical);
    }

    #[test]
    fn theme_query_reads_page_numbers() {
        assert_eq!(ThemeQuery::parse(Some("page=1")), Page(1));
        assert_eq!(ThemeQuery::parse(Some("page=2")), Page(2));
        assert_eq!(ThemeQuery::parse(Some("utm_source=qr&page=200")), Page(200));
    }

    #[test]
    fn theme_query_rejects_bad_page_numbers() {
        for q in [
            "page",
            "page=",
            "page=0",
            "page=02",
            "page=-1",
            "page=+2",
            "page=two",
            "page=2.0",
            "page=2&page=3",
            "page=99999999999999999999999",
        ] {
            assert_eq!(ThemeQuery::parse(Some(q)), Invalid, "{q}");
        }
    }
}
