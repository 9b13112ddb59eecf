//! The catalog: a typed model of episodes and feeds, loaded from `episodes/` and `feeds/`.
//!
//! Loading reads every `episodes/<slug>/episode.toml` and `feeds/<id>.toml`, measures the files they
//! name (see [`asset`]), cross-checks feeds against episodes, and either returns a complete
//! [`Catalog`] or every [`Problem`] found. A catalog with any problem is never returned, so a server
//! that reloads keeps serving its last good catalog.

pub mod asset;
pub mod codec;
mod episode;
mod feed;
mod fields;
pub mod write;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

pub use asset::{Asset, MeasureCache};
pub use fields::strip_controls;

use crate::config::Config;

/// One thing wrong with the catalog, printed as `file: field: what is wrong: what to do`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub field: String,
    pub what: String,
    pub fix: String,
}

impl Problem {
    pub fn new(
        file: &str,
        field: impl Into<String>,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.to_owned(),
            field: field.into(),
            what: what.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}",
            self.file, self.field, self.what, self.fix
        )
    }
}

/// Every problem found while loading, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub name: String,
    /// Rank or job, such as "Sergeant".
    pub role: Option<String>,
    pub affiliation: Option<String>,
    pub link: Option<String>,
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub title: String,
    pub url: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeType {
    Full,
    Trailer,
    Bonus,
}

impl EpisodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeType::Full => "full",
            EpisodeType::Trailer => "trailer",
            EpisodeType::Bonus => "bonus",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub slug: String,
    pub guid: String,
    pub title: String,
    pub published: DateTime<FixedOffset>,
    pub summary: String,
    /// Show notes as written in `notes.md`.
    pub notes_markdown: String,
    pub guests: Vec<Guest>,
    pub resources: Vec<Resource>,
    /// Feed ids named in `episode.toml`.
    pub feeds: Vec<String>,
    pub explicit: bool,
    /// `unpublished = true`: kept (folder, GUID and all) but served nowhere until republished.
    pub unpublished: bool,
    pub episode_type: EpisodeType,
    pub season: Option<u64>,
    pub number: Option<u64>,
    pub audio: Asset,
    /// Measured from the audio.
    pub duration: Duration,
    pub transcript: Option<Asset>,
    pub chapters: Option<Asset>,
    pub image: Option<Asset>,
}

impl Episode {
    /// Every file the episode serves: audio, then transcript, chapters and image when present.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        [
            Some(&self.audio),
            self.transcript.as_ref(),
            self.chapters.as_ref(),
            self.image.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// Duration in whole seconds, rounded to the nearest.
    pub fn duration_secs(&self) -> u64 {
        self.duration.as_secs_f64().round() as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Members,
}

/// Which episodes a feed carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every episode in the catalog.
    All,
    /// Episodes whose `feeds` list names this feed.
    Tagged,
    /// These slugs, plus tagged episodes.
    Listed(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub id: String,
    pub title: String,
    pub description: String,
    pub author: String,
    pub owner: Owner,
    pub language: String,
    pub category: String,
    pub subcategory: Option<String>,
    pub explicit: bool,
    pub artwork: Asset,
    /// The website link; defaults to the feed's theme page.
    pub link: Option<String>,
    pub access: Access,
    /// A members feed whose theme and episode pages are public as a teaser (no media).
    pub preview: bool,
    pub selection: Selection,
    /// `podcast:guid`; defaults to UUIDv5 of the feed URL.
    pub guid: Option<String>,
    pub locked: bool,
    pub copyright: Option<String>,
    pub serial: bool,
    /// The theme's own "Resources Available": links beside its podcasts.
    pub resources: Vec<Resource>,
    /// Printable material, such as posters: downloaded as attachments, shown with a thumbnail.
    pub printables: Vec<Printable>,
    /// The show's listings in podcast directories, in the order of [`DIRECTORIES`].
    pub directories: Vec<DirectoryLink>,
    /// Indexes into [`Catalog::episodes`], newest first.
    pub episodes: Vec<usize>,
}

/// A file a theme offers to print or keep, such as a poster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printable {
    pub title: String,
    pub caption: Option<String>,
    /// Served at `/files/<feed>/<version>/<name>`, always as an attachment.
    pub file: Asset,
    /// A JPEG or PNG preview, served with the feed's artwork.
    pub thumbnail: Option<Asset>,
}

/// The podcast directories a feed may link to: (key in the feed file, name shown).
pub const DIRECTORIES: &[(&str, &str)] = &[
    ("apple", "Apple Podcasts"),
    ("spotify", "Spotify"),
    ("youtube", "YouTube Music"),
    ("amazon", "Amazon Music"),
    ("pocket_casts", "Pocket Casts"),
    ("overcast", "Overcast"),
    ("podcast_addict", "Podcast Addict"),
    ("castbox", "Castbox"),
    ("podcast_index", "Podcast Index"),
    ("fountain", "Fountain"),
    ("iheart", "iHeartRadio"),
    ("deezer", "Deezer"),
];

/// A show's page in one podcast directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryLink {
    /// The directory's name, from [`DIRECTORIES`].
    pub name: &'static str,
    pub url: String,
}

/// The website's own identity, from `[site]` in config.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The site's name in every page's header and title. Default: "Podcasts".
    pub title: String,
    /// The programme that publishes the podcasts, shown beside the title and in the footer.
    pub programme: Option<String>,
    pub programme_url: Option<String>,
    /// The programme's logo, served at `/artwork/_site/<version>/<name>`, public.
    pub logo: Option<Asset>,
}

impl Default for Site {
    fn default() -> Site {
        Site {
            title: "Podcasts".into(),
            programme: None,
            programme_url: None,
            logo: None,
        }
    }
}

/// A loaded, validated catalog. Episodes are newest first (ties by slug), feeds sorted by id.
///
/// `episodes` holds only what is released: published, and dated at or before the moment the
/// catalog was loaded. Scheduled and unpublished episodes are in `withheld`, which only the admin
/// surface reads; nothing else (feeds, pages, media) can reach them.
///
/// Episodes are shared (`Arc`) between successive catalogs, the parse cache and the rendered feed
/// items, so a reload of a large catalog copies pointers, and comparing an unchanged episode with
/// its previous self is a pointer comparison (`Arc`'s `PartialEq` checks identity first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub public_url: String,
    pub site: Site,
    pub episodes: Vec<Arc<Episode>>,
    pub feeds: Vec<Feed>,
    /// Scheduled (dated in the future) and unpublished episodes, newest first.
    pub withheld: Vec<Arc<Episode>>,
    /// When the next scheduled episode is due, if any: the catalog must be loaded again then.
    pub next_release: Option<DateTime<FixedOffset>>,
}

impl Catalog {
    /// Every episode, released or withheld, newest first: what an admin sees.
    pub fn all_episodes(&self) -> Vec<&Arc<Episode>> {
        let mut all: Vec<&Arc<Episode>> = self.episodes.iter().chain(&self.withheld).collect();
        all.sort_by(|a, b| {
            b.published
                .cmp(&a.published)
                .then_with(|| a.slug.cmp(&b.slug))
        });
        all
    }

    /// The feeds that carry (or, once it is released, will carry) an episode.
    pub fn feeds_of<'a>(&'a self, ep: &'a Episode) -> impl Iterator<Item = &'a Feed> + 'a {
        let members_only = only_members_name(&self.feeds, ep);
        self.feeds
            .iter()
            .filter(move |f| f.carries(ep, members_only))
    }

    /// Any episode by slug, released or withheld.
    pub fn any_episode(&self, slug: &str) -> Option<&Arc<Episode>> {
        self.episodes
            .iter()
            .chain(&self.withheld)
            .find(|e| e.slug == slug)
    }

    /// Every file the catalog serves: each episode's files, then each feed's files (artwork,
    /// then printables and their thumbnails), then the site's logo.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.episodes
            .iter()
            .flat_map(|e| e.assets())
            .chain(self.feeds.iter().flat_map(Feed::assets))
            .chain(self.site.logo.as_ref())
    }

    pub fn episode(&self, slug: &str) -> Option<&Episode> {
        self.episodes.iter().find(|e| e.slug == slug).map(|e| &**e)
    }

    pub fn feed(&self, id: &str) -> Option<&Feed> {
        self.feeds.iter().find(|f| f.id == id)
    }

    pub fn feed_episodes<'a>(&'a self, feed: &'a Feed) -> impl Iterator<Item = &'a Episode> + 'a {
        feed.episodes.iter().map(|&i| &*self.episodes[i])
    }

    /// Absolute URL of a path on this site.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url, path)
    }
}

/// Where a catalog lives and how its files are named in messages.
#[derive(Debug, Clone)]
pub struct Source {
    pub episodes_dir: PathBuf,
    pub feeds_dir: PathBuf,
    pub public_url: String,
    /// Where measurements persist between runs; `None` keeps them in memory only.
    pub measure_cache: Option<PathBuf>,
    /// Where rendered feed items persist between starts; `None` renders everything at each start.
    pub items_cache: Option<PathBuf>,
    /// Where parsed episodes persist between starts; `None` parses every folder at each start.
    pub episodes_cache: Option<PathBuf>,
    /// The site's title, programme and logo file (`[site]` in config.toml).
    pub site: SiteSource,
}

/// `[site]` as configured: the logo is still a path, measured when the catalog loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteSource {
    pub title: Option<String>,
    pub programme: Option<String>,
    pub programme_url: Option<String>,
    pub logo: Option<PathBuf>,
}

impl From<&Config> for Source {
    fn from(c: &Config) -> Source {
        Source {
            episodes_dir: c.episodes_dir.clone(),
            feeds_dir: c.feeds_dir.clone(),
            public_url: c.public_url.clone(),
            measure_cache: Some(c.state_dir.join("measurements.tsv")),
            items_cache: Some(c.state_dir.join("items.cache")),
            episodes_cache: Some(c.state_dir.join("episodes.cache")),
            site: c.site.clone(),
        }
    }
}

/// Names a file the way messages show it: `episodes/<slug>/episode.toml`.
fn display_path(dir: &Path, rest: &str) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if rest.is_empty() {
        name
    } else {
        format!("{name}/{rest}")
    }
}

/// A slug or feed id: lowercase letters, digits and single hyphens, so it is safe in URLs and paths.
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Which episode folders may have changed since the cache last saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Any of them: every cached episode is checked against its files' size and mtime.
    All,
    /// Only these folders (by slug), as reported by the file watcher. Other cached episodes are
    /// reused without touching the disk, unless they read files outside their own folder.
    Only(std::collections::HashSet<String>),
}

/// Loads and validates the whole catalog.
pub fn load(source: &Source, cache: &MeasureCache) -> Result<Catalog, Problems> {
    load_changed(source, cache, &Changed::All)
}

/// Loads and validates the whole catalog, trusting the parse cache for folders outside `changed`.
pub fn load_changed(
    source: &Source,
    cache: &MeasureCache,
    changed: &Changed,
) -> Result<Catalog, Problems> {
    let mut problems = Vec::new();
    let episodes_root = canonical_dir(&source.episodes_dir, "episodes_dir", &mut problems);
    let feeds_root = canonical_dir(&source.feeds_dir, "feeds_dir", &mut problems);
    let (Some(episodes_root), Some(feeds_root)) = (episodes_root, feeds_root) else {
        return Err(Problems(problems));
    };

    let slugs = episode_folders(&episodes_root, &source.episodes_dir, &mut problems);
    let ctx = episode::Ctx {
        root: &episodes_root,
        display_root: &source.episodes_dir,
        cache,
        changed,
        listing: None,
    };
    let mut episodes = load_episodes(&ctx, &slugs, &mut problems);
    episodes.sort_by(|a, b| {
        b.published
            .cmp(&a.published)
            .then_with(|| a.slug.cmp(&b.slug))
    });

    let mut feeds = Vec::new();
    // Ids of every feed file, valid or not, so a broken feed does not also fail its episodes.
    let mut feed_ids = Vec::new();
    for entry in sorted_entries(&feeds_root, &source.feeds_dir, &mut problems) {
        if entry.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        if let Some(stem) = entry.file_stem() {
            feed_ids.push(stem.to_string_lossy().into_owned());
        }
        let ctx = feed::Ctx {
            root: &feeds_root,
            display_root: &source.feeds_dir,
            cache,
        };
        if let Some(f) = feed::load(&ctx, &entry, &mut problems) {
            feeds.push(f);
        }
    }
    feeds.sort_by(|a, b| a.id.cmp(&b.id));

    // Every episode is checked, released or not, so a scheduled one cannot break the catalog
    // on the day it is released.
    cross_check(source, &feed_ids, &episodes, &mut feeds, &mut problems);
    let site = site(&source.site, cache, &mut problems);

    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    let now = chrono::Utc::now().fixed_offset();
    let (released, withheld): (Vec<_>, Vec<_>) = episodes
        .into_iter()
        .partition(|e| !e.unpublished && e.published <= now);
    let next_release = withheld
        .iter()
        .filter(|e| !e.unpublished)
        .map(|e| e.published)
        .min();
    link_feeds(&released, &mut feeds);
    Ok(Catalog {
        public_url: source.public_url.clone(),
        site,
        episodes: released,
        feeds,
        withheld,
        next_release,
    })
}

/// Checks one episode folder, `root/<slug>`, with the same rules as [`load`], naming files as if
/// the folder were already in `source.episodes_dir`; also checks that the feeds it names exist
/// in `catalog`. Used on staged folders before they are renamed into place.
pub fn check_episode(
    source: &Source,
    catalog: &Catalog,
    root: &Path,
    slug: &str,
    cache: &MeasureCache,
) -> Result<Episode, Problems> {
    let mut problems = Vec::new();
    let root = root.canonicalize().map_err(|e| {
        Problems(vec![Problem::new(
            &root.display().to_string(),
            "(folder)",
            format!("cannot be read: {e}"),
            "check that episodes_dir is writable",
        )])
    })?;
    let ctx = episode::Ctx {
        root: &root,
        display_root: &source.episodes_dir,
        cache,
        changed: &Changed::All,
        listing: None,
    };
    let ep = episode::check(&ctx, slug, &mut problems);
    if let Some(ep) = &ep {
        let file = display_path(&source.episodes_dir, &format!("{slug}/episode.toml"));
        for name in &ep.feeds {
            if catalog.feed(name).is_none() {
                let ids: Vec<&str> = catalog.feeds.iter().map(|f| f.id.as_str()).collect();
                problems.push(Problem::new(
                    &file,
                    "feeds",
                    format!("names feed {name:?}, which has no feeds/{name}.toml"),
                    format!("use one of: {}", ids.join(", ")),
                ));
            }
        }
    }
    match ep {
        Some(ep) if problems.is_empty() => Ok(ep),
        _ => Err(Problems(problems)),
    }
}

/// Loads episode folders on every core. Episodes are independent, and a large catalog spends its
/// startup reading and parsing them. Problems keep folder order, so output stays deterministic.
fn load_episodes(
    ctx: &episode::Ctx,
    slugs: &[String],
    problems: &mut Vec<Problem>,
) -> Vec<Arc<Episode>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per_thread = slugs.len().div_ceil(threads).max(64);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(Vec<Arc<Episode>>, Vec<Problem>)> = std::thread::scope(|scope| {
        let (done, finished) = (&done, &finished);
        let main = std::thread::current();
        let workers: Vec<_> = slugs
            .chunks(per_thread)
            .map(|chunk| {
                let main = main.clone();
                scope.spawn(move || {
                    let mut found = Vec::with_capacity(chunk.len());
                    let mut problems = Vec::new();
                    for slug in chunk {
                        if let Some(ep) = episode::load(ctx, slug, &mut problems) {
                            found.push(ep);
                        }
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    // The progress reporter waits for this, not for a clock: counted before the
                    // wake-up, so the reporter cannot see the wake-up and miss the count.
                    finished.fetch_add(1, std::sync::atomic::Ordering::Release);
                    main.unpark();
                    (found, problems)
                })
            })
            .collect();
        report_progress(workers.len(), finished, done, slugs.len());
        workers
            .into_iter()
            .map(|w| w.join().expect("episode loader panicked"))
            .collect()
    });
    let mut episodes = Vec::with_capacity(slugs.len());
    for (found, mut p) in results {
        episodes.extend(found);
        problems.append(&mut p);
    }
    episodes
}

/// How often a long load says how far it is.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// While `workers` load `total` episodes, logs every [`PROGRESS_EVERY`] how many are done and
/// about how long the rest will take, so a cold start that measures thousands of files (hashing
/// each) shows it is working. Quiet for loads that finish sooner.
/// `finished` counts the workers done; each adds to it, then unparks this thread. (Waiting on
/// `JoinHandle::is_finished` instead lost wake-ups: a worker unparks before its thread ends, so
/// the check could still see it running and park for a whole reporting period.)
fn report_progress(
    workers: usize,
    finished: &std::sync::atomic::AtomicUsize,
    done: &std::sync::atomic::AtomicUsize,
    total: usize,
) {
    let started = std::time::Instant::now();
    let mut next = PROGRESS_EVERY;
    while finished.load(std::sync::atomic::Ordering::Acquire) < workers {
        // Woken by each worker as it finishes, so a short load is not held up here.
        std::thread::park_timeout(next.saturating_sub(started.elapsed()));
        if started.elapsed() < next {
            continue;
        }
        next += PROGRESS_EVERY;
        let n = done.load(std::sync::atomic::Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let left = if n > 0 {
            format!("{:.0}", elapsed / n as f64 * (total - n.min(total)) as f64)
        } else {
            "?".into()
        };
        tracing::info!(
            episodes = n,
            of = total,
            percent = n * 100 / total.max(1),
            seconds_left = %left,
            "loading the catalog: reading and measuring episode folders"
        );
    }
}

/// The site's identity, with its logo measured. The logo may live anywhere readable: it is named
/// in config.toml, not written by catalog authors.
fn site(source: &SiteSource, cache: &MeasureCache, problems: &mut Vec<Problem>) -> Site {
    let mut site = Site::default();
    if let Some(t) = source
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        site.title = strip_controls(t);
    }
    site.programme = source.programme.as_deref().map(strip_controls);
    site.programme_url = source.programme_url.clone();
    let Some(path) = &source.logo else {
        return site;
    };
    let shown = path.display().to_string();
    let fix = "name a PNG or JPEG file in site.logo, relative to config.toml";
    let problem = |what: String| Problem::new("config.toml", "site.logo", what, fix);
    let mime = asset::mime_for(path);
    if mime != "image/png" && mime != "image/jpeg" {
        problems.push(problem(format!("{shown:?} is not a PNG or JPEG file")));
        return site;
    }
    if let Err(e) = imagesize::size(path) {
        problems.push(problem(format!(
            "{shown:?} cannot be read as an image ({e})"
        )));
        return site;
    }
    match cache.measure(path, false) {
        Ok(facts) => {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = if mime == "image/png" { "png" } else { "jpg" };
            site.logo = Some(Asset {
                url_path: format!("/artwork/_site/{}/logo.{ext}", facts.version()),
                file_name,
                mime,
                path: path.clone(),
                size: facts.size,
                modified: facts.modified,
                etag: facts.etag(),
            });
        }
        Err(e) => problems.push(problem(format!("{shown:?}: {e}"))),
    }
    site
}

/// Links feeds to episodes and reports unknown names and duplicate GUIDs.
fn cross_check(
    source: &Source,
    feed_ids: &[String],
    episodes: &[Arc<Episode>],
    feeds: &mut [Feed],
    problems: &mut Vec<Problem>,
) {
    let episode_file =
        |slug: &str| display_path(&source.episodes_dir, &format!("{slug}/episode.toml"));
    for ep in episodes.iter() {
        for name in &ep.feeds {
            if !feed_ids.contains(name) {
                problems.push(Problem::new(
                    &episode_file(&ep.slug),
                    "feeds",
                    format!("names feed {name:?}, which has no feeds/{name}.toml"),
                    format!("use one of: {}", feed_ids.join(", ")),
                ));
            }
        }
    }
    let mut guids: HashMap<&str, &str> = HashMap::with_capacity(episodes.len());
    for ep in episodes.iter() {
        if let Some(first) = guids.insert(&ep.guid, &ep.slug) {
            problems.push(Problem::new(
                &episode_file(&ep.slug),
                "guid",
                format!("{:?} is already the guid of episode {first:?}", ep.guid),
                "give each episode its own guid and never change it once published",
            ));
        }
    }
    for feed in feeds.iter_mut() {
        let file = display_path(&source.feeds_dir, &format!("{}.toml", feed.id));
        let listed: &[String] = match &feed.selection {
            Selection::Listed(slugs) => slugs,
            _ => &[],
        };
        for slug in listed {
            if !episodes.iter().any(|e| &e.slug == slug) {
                problems.push(Problem::new(
                    &file,
                    "episodes",
                    format!("names episode {slug:?}, which has no episodes/{slug}/episode.toml"),
                    "fix the slug or remove it from the list",
                ));
            }
        }
    }
}

/// Whether `ep` is members-only: some feed names it, and every feed that does is a members feed.
fn only_members_name(feeds: &[Feed], ep: &Episode) -> bool {
    let mut naming = feeds.iter().filter(|f| f.names(ep)).peekable();
    naming.peek().is_some() && naming.all(|f| f.access == Access::Members)
}

impl Feed {
    /// Every file the feed itself serves: artwork, then each printable and its thumbnail.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        std::iter::once(&self.artwork).chain(
            self.printables
                .iter()
                .flat_map(|p| std::iter::once(&p.file).chain(p.thumbnail.as_ref())),
        )
    }

    /// Whether this feed names `ep`: by the episode's `feeds` tag or in its own list.
    pub fn names(&self, ep: &Episode) -> bool {
        ep.feeds.contains(&self.id)
            || matches!(&self.selection, Selection::Listed(slugs) if slugs.contains(&ep.slug))
    }

    /// Whether this feed carries `ep`, given whether `ep` is members-only.
    fn carries(&self, ep: &Episode, members_only: bool) -> bool {
        let all = self.selection == Selection::All;
        (all && !(self.access == Access::Public && members_only)) || self.names(ep)
    }
}

/// Sets each feed's episodes (indexes into the released `episodes`). An episode that only
/// members feeds name (by tag or list) is members-only: a public feed with `episodes = "all"`
/// leaves it out.
fn link_feeds(episodes: &[Arc<Episode>], feeds: &mut [Feed]) {
    let members_only: Vec<bool> = episodes
        .iter()
        .map(|e| only_members_name(feeds, e))
        .collect();
    for feed in feeds.iter_mut() {
        feed.episodes = episodes
            .iter()
            .enumerate()
            .filter(|(i, e)| feed.carries(e, members_only[*i]))
            .map(|(i, _)| i)
            .collect();
    }
}

fn canonical_dir(dir: &Path, field: &str, problems: &mut Vec<Problem>) -> Option<PathBuf> {
    match dir.canonicalize() {
        Ok(p) if p.is_dir() => Some(p),
        _ => {
            problems.push(Problem::new(
                &dir.display().to_string(),
                field,
                "is not a readable folder",
                format!("create it, or set {field} in config.toml"),
            ));
            None
        }
    }
}

/// Names of the episode folders, sorted. Uses the directory entries' types, so listing a large
/// catalog costs no `stat` per folder (only symlinks and file systems without types are checked).
fn episode_folders(dir: &Path, display: &Path, problems: &mut Vec<Problem>) -> Vec<String> {
    let Some(rd) = read_folder(dir, display, problems) else {
        return Vec::new();
    };
    let mut slugs: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            !name.as_encoded_bytes().starts_with(b".")
                && match entry.file_type() {
                    Ok(t) if t.is_dir() => true,
                    Ok(t) if t.is_file() => false,
                    _ => entry.path().is_dir(),
                }
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    slugs.sort_unstable();
    slugs
}

fn sorted_entries(dir: &Path, display: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let Some(rd) = read_folder(dir, display, problems) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    v
}

/// Opens a catalog folder for listing, or records why it cannot be listed.
fn read_folder(
    dir: &Path,
    display: &Path,
    problems: &mut Vec<Problem>,
) -> Option<std::fs::ReadDir> {
    std::fs::read_dir(dir)
        .map_err(|e| {
            problems.push(Problem::new(
                &display_path(display, ""),
                "(folder)",
                format!("cannot be listed: {e}"),
                "check its permissions",
            ))
        })
        .ok()
}

/// Resolves a file named in a catalog file, refusing anything outside `root` (including via symlinks).
fn resolve_inside(root: &Path, base: &Path, name: &str) -> Result<PathBuf, String> {
    if name.is_empty()
        || name.contains('\\')
        || name.contains('\0')
        || Path::new(name).is_absolute()
    {
        return Err(format!(
            "{name:?} must be a plain file name inside the catalog"
        ));
    }
    let joined = base.join(name);
    let real = joined
        .canonicalize()
        .map_err(|_| format!("{name:?} does not exist"))?;
    if !real.starts_with(root) {
        return Err(format!("{name:?} points outside the catalog folder"));
    }
    if !real.is_file() {
        return Err(format!("{name:?} is not a file"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    /// What `f` logs, as text.
    fn logs_of(f: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = out.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn a_quick_load_never_waits_for_the_progress_report() {
        // The fuzzer found loads of the demo stalling a whole reporting period: a worker's
        // wake-up came before its thread ended, and the reporter parked again. A stalled load
        // logs a progress line, so the event shows it, with no timing asserted.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let source = Source::from(&Config::for_root(root, "http://127.0.0.1:8080"));
        let cache = MeasureCache::default();
        let text = logs_of(|| {
            for _ in 0..40 {
                load(&source, &cache).expect("the demo catalog loads");
            }
        });
        assert!(!text.contains("loading the catalog"), "{text}");
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_long_load_reports_its_progress() {
        let done = std::sync::atomic::AtomicUsize::new(0);
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let text = logs_of(|| {
            std::thread::scope(|scope| {
                let (done, finished) = (&done, &finished);
                let main = std::thread::current();
                scope.spawn(move || {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Longer than one reporting period, then the rest.
                    std::thread::sleep(PROGRESS_EVERY + std::time::Duration::from_millis(300));
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    finished.fetch_add(1, std::sync::atomic::Ordering::Release);
                    main.unpark();
                });
                report_progress(1, finished, done, 4);
            });
        });
        assert!(text.contains("loading the catalog"), "{text}");
        assert!(text.contains("episodes=1 of=4 percent=25"), "{text}");
        assert!(text.contains("seconds_left="), "{text}");
    }
}
