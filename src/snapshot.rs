//! A served snapshot of the catalog: everything a request needs, rendered once per catalog change.
//!
//! Feeds and the OPML list are rendered when the snapshot is built (feed items come from a cache
//! shared between snapshots, so only changed episodes are rendered again) and compressed (gzip and
//! brotli) on a background thread right after the snapshot goes live. Website pages other than the
//! home and error pages are rendered on their first request and then kept for the snapshot's life.
//! Either way a repeated request copies no bytes and runs no encoder. [`Live`] holds the current
//! snapshot, swaps in a new one when the catalog files change, and keeps the last good one when an
//! edit is invalid.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::HeaderValue;

use crate::access::{self, Credentials};
use crate::catalog::codec::{CacheFileError, Reuse};
use crate::catalog::write::{Prepared, WriteError};
use crate::catalog::{self, Access, Asset, Catalog, Changed, MeasureCache, Problems, Source};
use crate::render::personal::Template;
use crate::render::{opml, render_feed_with, Encoded, ItemCache};
use crate::site;

/// Servable files by URL path. Hashed with foldhash, seeded per process: built anew on every
/// reload for every file of the catalog, where SipHash was most of the cost; the keys come from
/// the catalog, and requests only look them up.
pub type MediaMap = HashMap<Arc<str>, Arc<Served>, foldhash::fast::RandomState>;

/// A rendered feed, and who may fetch it.
#[derive(Debug)]
pub struct ServedFeed {
    pub access: Access,
    pub encoded: Encoded,
}

/// A file the server may send, and who may fetch it.
#[derive(Debug, Clone)]
pub struct Served {
    pub asset: Asset,
    /// Public if any public feed uses the file, otherwise members only.
    pub access: Access,
    /// The episode it belongs to, if any.
    pub episode: Option<Arc<str>>,
    /// For an episode's audio: what download measurement needs.
    pub audio: Option<Arc<crate::stats::AudioFile>>,
    /// Always sent with `Content-Disposition: attachment` (a theme's printable material).
    pub attachment: bool,
    /// Its response header values, formatted on first use and kept for the snapshot's life.
    headers: OnceLock<Arc<MediaHeaders>>,
}

/// Header values of a media file that are the same on every response.
#[derive(Debug)]
pub struct MediaHeaders {
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    pub content_type: HeaderValue,
    /// `inline; filename="…"` and `attachment; filename="…"`.
    pub inline: HeaderValue,
    pub attachment: HeaderValue,
}

impl Served {
    pub fn new(asset: Asset, access: Access, episode: Option<Arc<str>>) -> Served {
        Served {
            attachment: asset.url_path.starts_with("/files/"),
            asset,
            access,
            episode,
            audio: None,
            headers: OnceLock::new(),
        }
    }

    pub fn headers(&self) -> &MediaHeaders {
        self.headers.get_or_init(|| {
            let a = &self.asset;
            let value = |s: &str| HeaderValue::from_str(s).expect("catalog values are ASCII");
            let names = disposition_names(&a.file_name);
            Arc::new(MediaHeaders {
                etag: value(&a.etag),
                last_modified: value(&httpdate::fmt_http_date(a.modified)),
                content_type: value(&a.mime),
                inline: value(&format!("inline; {names}")),
                attachment: value(&format!("attachment; {names}")),
            })
        })
    }
}

/// Audio is named after its slug (ASCII already); an episode image keeps its own file name, which
/// may hold anything, so everything but a plain visible ASCII character becomes `_`.
pub fn header_safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `filename` parameters of a `Content-Disposition`: an ASCII `filename` every client reads,
/// and, for a name that is not plain ASCII, the exact name as an RFC 8187 `filename*`, which
/// browsers prefer.
pub fn disposition_names(name: &str) -> String {
    let ascii = header_safe_name(name);
    if ascii == name {
        return format!("filename=\"{ascii}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        // RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" /
        // "_" / "`" / "|" / "~"; everything else is percent-encoded.
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Quiet time the watcher waits for after a file event before it reloads.
const SETTLE: Duration = Duration::from_millis(200);
/// The longest it waits for quiet: past this, it reloads while files are still changing.
const MAX_SETTLE: Duration = Duration::from_secs(2);

pub const RSS_TYPE: &str = "application/rss+xml; charset=utf-8";
pub const OPML_TYPE: &str = "text/x-opml; charset=utf-8";

#[derive(Debug)]
pub struct Snapshot {
    pub catalog: Catalog,
    /// Rendered feeds that anyone may see, by id.
    pub feeds: HashMap<String, ServedFeed>,
    pub opml: Encoded,
    /// Members feeds, as templates that personal URLs fill with their token, by id.
    pub personal: HashMap<String, Arc<Template>>,
    /// Every servable file by URL path. Requests resolve only through this map. Entries that
    /// did not change are shared with the previous snapshot, headers and all.
    pub media: MediaMap,
    /// Rendered feed items, shared with the next snapshot so a reload renders only changed items.
    items: Arc<ItemCache>,
    /// The website's pages: rendered on first request, then kept and served like the feeds.
    pub pages: site::Pages,
}

impl Snapshot {
    pub fn build(catalog: Catalog, previous: Option<&Snapshot>) -> Snapshot {
        let items = previous.map_or_else(Arc::default, |p| Arc::clone(&p.items));
        Snapshot::build_with(catalog, previous, items)
    }

    /// Like [`Snapshot::build`], with the rendered items to reuse given.
    pub fn build_with(
        catalog: Catalog,
        previous: Option<&Snapshot>,
        items: Arc<ItemCache>,
    ) -> Snapshot {
        let started = std::time::Instant::now();
        let mut feeds = HashMap::new();
        // Every servable file by URL path; requests resolve only through this map.
        let required = access::file_requirements(&catalog);
        // An unchanged file keeps the previous snapshot's entry: a reload of a large catalog
        // would otherwise copy every asset and format every file's headers again.
        // `audio`: the episode whose audio `asset` is.
        let served =
            |asset: &Asset, episode: Option<&Arc<str>>, audio: Option<&catalog::Episode>| {
                let needs = required[asset.url_path.as_str()];
                let kept = previous
                    .and_then(|p| p.media.get_key_value(asset.url_path.as_str()))
                    .filter(|(_, p)| {
                        p.asset == *asset
                            && p.access == needs
                            && p.episode.as_deref() == episode.map(|e| &**e)
                            && audio.is_none_or(|ep| p.audio.as_ref().is_some_and(|a| a.is_for(ep)))
                    });
                if let Some((key, prev)) = kept {
                    return (Arc::clone(key), Arc::clone(prev));
                }
                let mut s = Served::new(asset.clone(), needs, episode.cloned());
                s.audio = audio.map(|ep| Arc::new(crate::stats::AudioFile::of(ep)));
                (Arc::from(asset.url_path.as_str()), Arc::new(s))
            };
        let mut media = MediaMap::with_capacity_and_hasher(
            previous.map_or(0, |p| p.media.len()),
            Default::default(),
        );
        for ep in &catalog.episodes {
            let slug: Arc<str> = ep.slug.as_str().into();
            media.extend(ep.assets().map(|a| {
                let audio = (a.url_path == ep.audio.url_path).then_some(&**ep);
                served(a, Some(&slug), audio)
            }));
        }
        media.extend(
            catalog
                .feeds
                .iter()
                .flat_map(catalog::Feed::assets)
                .chain(catalog.site.logo.as_ref())
                .map(|a| served(a, None, None)),
        );
        drop(required);
        let media_ms = started.elapsed().as_millis() as u64;
        for feed in access::visible_feeds(&catalog, Credentials::Anonymous) {
            let prev = previous.and_then(|p| p.feeds.get(&feed.id));
            let rendered = render_feed_with(&catalog, feed, &items);
            let encoded = Encoded::with_hash(
                RSS_TYPE,
                rendered.xml,
                rendered.hash,
                prev.map(|p| &p.encoded),
            )
            .with_stitched_gzip(rendered.gzip);
            let served = ServedFeed {
                access: feed.access,
                encoded,
            };
            feeds.insert(feed.id.clone(), served);
        }
        let mut personal = HashMap::new();
        for feed in catalog.feeds.iter().filter(|f| !access::is_public(f)) {
            let rendered = render_feed_with(&catalog, feed, &items);
            let before = previous.and_then(|p| p.personal.get(&feed.id));
            let mut template = Template::new(
                &rendered.xml,
                &catalog.public_url,
                &format!("/feeds/{}.xml", feed.id),
                rendered.hash,
                before.map(|t| &**t),
            );
            if let Some(p) = previous
                .and_then(|p| p.personal.get(&feed.id))
                .filter(|p| p.hash == template.hash)
            {
                template.last_modified = p.last_modified;
            }
            personal.insert(feed.id.clone(), Arc::new(template));
        }
        let opml = Encoded::new(OPML_TYPE, opml(&catalog), previous.map(|p| &p.opml));
        // Small: its compressed variants are made now, so they exist when the snapshot goes live.
        opml.compress();
        let feeds_ms = started.elapsed().as_millis() as u64;
        let pages = site::Pages::build(&catalog, previous.map(|p| (&p.catalog, &p.pages)));
        tracing::debug!(
            media_ms,
            feeds_ms = feeds_ms - media_ms,
            pages_ms = started.elapsed().as_millis() as u64 - feeds_ms,
            "snapshot built"
        );
        items.retain_only(&catalog);
        Snapshot {
            catalog,
            feeds,
            opml,
            personal,
            media,
            items,
            pages,
        }
    }
}

impl Snapshot {
    /// Every rendered resource, for background compression.
    fn encoded(&self) -> impl Iterator<Item = &Encoded> {
        self.feeds
            .values()
            .map(|f| &f.encoded)
            .chain([&self.opml])
            .chain(self.pages.rendered())
    }

    /// Compresses whatever this snapshot does not already carry from the previous one.
    pub fn compress_all(&self) {
        for enc in self.encoded() {
            enc.compress();
        }
    }
}

/// Compresses a freshly published snapshot on its own thread.
fn compress_in_background(snapshot: Arc<Snapshot>) {
    let spawned = std::thread::Builder::new()
        .name("compress".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            snapshot.compress_all();
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "compressed variants ready"
            );
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the compression thread; serving uncompressed");
    }
}

/// Logs why a saved cache was not used: a file from another build is expected after an
/// upgrade; anything else deserves a warning.
fn cache_not_used(path: &std::path::Path, e: &CacheFileError, instead: &str) {
    if e.is_expected() {
        tracing::info!(path = %path.display(), reason = %e, "saved cache not used; {instead}");
    } else {
        tracing::warn!(path = %path.display(), error = %e, "saved cache not used; {instead}");
    }
}

/// Saves what the start parsed and rendered, for the next start, on its own thread, when the
/// saved files do not already say exactly that. Failing to is logged, never fatal: the next
/// start does the work again.
fn save_caches_in_background(live: &Arc<Live>) {
    let reuse = live.start;
    let episodes = live
        .source
        .episodes_cache
        .clone()
        .filter(|_| reuse.episodes.needs_saving());
    let items = live
        .source
        .items_cache
        .clone()
        .filter(|_| reuse.items.needs_saving());
    if episodes.is_none() && items.is_none() {
        return;
    }
    let live = Arc::clone(live);
    let first = live.snapshot();
    let spawned = std::thread::Builder::new()
        .name("save-caches".into())
        .spawn(move || {
            if let Some(path) = episodes {
                let t = std::time::Instant::now();
                let slugs = first.catalog.all_episodes();
                let r = live
                    .cache
                    .save_parsed(&path, slugs.iter().map(|e| e.slug.as_str()));
                log_saved(&path, "parsed episodes", r, t);
            }
            if let Some(path) = items {
                let t = std::time::Instant::now();
                log_saved(&path, "feed items", first.items.save(&path), t);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread that saves the start's caches");
    }
}

/// Logs how saving one of the start's caches went.
fn log_saved(
    path: &std::path::Path,
    what: &str,
    result: std::io::Result<usize>,
    started: std::time::Instant,
) {
    match result {
        Ok(n) => tracing::info!(
            path = %path.display(),
            records = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "{what} saved for the next start"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "cannot save {what} for the next start; check that state_dir is writable"
        ),
    }
}

/// Persists measurements; failing to is logged, never fatal (the next start measures again).
fn save_measurements(source: &Source, cache: &MeasureCache) {
    if let Some(path) = &source.measure_cache {
        if let Err(e) = cache.save(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the measurement cache; check that state_dir is writable");
        }
    }
}

/// A folder as the watcher may report paths under it: as configured, made absolute against the
/// working directory (as notify does with a relative path), and canonical.
fn watched_prefixes(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v = vec![dir.to_owned()];
    if dir.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            v.push(cwd.join(dir));
        }
    }
    if let Ok(real) = dir.canonicalize() {
        v.push(real);
    }
    v
}

/// The episode folders that file events touched. Events on feed files touch no episode (feeds are
/// always read again). An event on the episodes folder itself (it was moved or replaced), or on a
/// path under neither folder as configured, means checking everything.
fn changed_folders(
    episodes_dirs: &[PathBuf],
    feeds_dirs: &[PathBuf],
    paths: &[PathBuf],
) -> Changed {
    let mut slugs = std::collections::HashSet::new();
    for path in paths {
        let slug = episodes_dirs
            .iter()
            .find_map(|dir| path.strip_prefix(dir).ok())
            .map(|rest| rest.components().next());
        match slug {
            Some(Some(std::path::Component::Normal(name))) => {
                slugs.insert(name.to_string_lossy().into_owned());
            }
            None if feeds_dirs.iter().any(|dir| path.starts_with(dir)) => {}
            _ => return Changed::All,
        }
    }
    Changed::Only(slugs)
}

fn merge(a: Changed, b: Changed) -> Changed {
    match (a, b) {
        (Changed::Only(mut x), Changed::Only(y)) => {
            x.extend(y);
            Changed::Only(x)
        }
        _ => Changed::All,
    }
}

/// The current snapshot, reloaded when the catalog changes.
pub struct Live {
    current: ArcSwap<Snapshot>,
    source: Source,
    cache: MeasureCache,
    /// The one writer: held from reading the files until the new snapshot is stored, so reloads
    /// (the watcher's and [`Live::apply`]'s) happen one at a time, and a slower reload can never
    /// store an older catalog over a newer one.
    writer: Mutex<()>,
    /// What `/readyz` reports of the catalog.
    health: CatalogHealth,
    /// How the start used the caches the start before saved.
    start: StartReuse,
}

/// How a start used the caches the start before saved (see [`crate::catalog::codec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartReuse {
    /// Parsed episodes (`episodes.cache`).
    pub episodes: Reuse,
    /// Rendered feed items (`items.cache`).
    pub items: Reuse,
}

/// Whether the catalog is being kept up to date.
#[derive(Debug, Default)]
struct CatalogHealth {
    /// The watcher's last reload failed: its first problem and how many there were. Cleared by
    /// the next good reload.
    failed_reload: Mutex<Option<(String, usize)>>,
    /// The watcher thread is running.
    watching: AtomicBool,
}

/// Why [`Live::apply`] did not make a change live.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError<E: std::error::Error + 'static> {
    /// The change itself failed; the catalog was not reloaded.
    #[error(transparent)]
    Change(E),
    /// The change was written but the catalog it produced has problems; the last good catalog
    /// keeps serving.
    #[error("the catalog has problems after the change:\n{0}")]
    Rejected(Problems),
}

impl Live {
    /// Loads the catalog; fails with every problem if it is invalid.
    pub fn load(source: Source) -> Result<Arc<Live>, Problems> {
        let cache = source
            .measure_cache
            .as_deref()
            .map(MeasureCache::load)
            .unwrap_or_default();
        let started = std::time::Instant::now();
        // The saved items are read while the catalog loads: one is mostly copying, the other
        // mostly waiting on system calls.
        let (catalog, items) = std::thread::scope(|scope| {
            let items = scope.spawn(|| match source.items_cache.as_deref() {
                Some(path) => {
                    let (items, error) = ItemCache::with_saved(path);
                    if let Some(e) = error {
                        cache_not_used(path, &e, "rendering every feed item");
                    }
                    items
                }
                None => ItemCache::default(),
            });
            if let Some(path) = source.episodes_cache.as_deref() {
                if let Err(e) = cache.load_parsed(path) {
                    cache_not_used(path, &e, "reading every episode folder");
                }
            }
            let catalog = catalog::load(&source, &cache);
            (catalog, items.join().expect("reading saved items panicked"))
        });
        let catalog = catalog?;
        let load_ms = started.elapsed().as_millis() as u64;
        save_measurements(&source, &cache);
        let episodes = catalog.episodes.len();
        let first = Arc::new(Snapshot::build_with(catalog, None, Arc::new(items)));
        let reuse = StartReuse {
            episodes: cache.parse_reuse(),
            items: first.items.finish_first_render(),
        };
        tracing::info!(
            episodes,
            load_ms,
            render_ms = started.elapsed().as_millis() as u64 - load_ms,
            episodes_saved = reuse.episodes.saved,
            episodes_reused = reuse.episodes.taken,
            episodes_parsed = reuse.episodes.made,
            items_saved = reuse.items.saved,
            items_reused = reuse.items.taken,
            items_rendered = reuse.items.made,
            "catalog ready"
        );
        compress_in_background(Arc::clone(&first));
        let live = Arc::new(Live {
            current: ArcSwap::new(first),
            source,
            cache,
            writer: Mutex::new(()),
            health: CatalogHealth::default(),
            start: reuse,
        });
        save_caches_in_background(&live);
        Ok(live)
    }

    /// How the start used the caches the start before saved.
    pub fn start_reuse(&self) -> StartReuse {
        self.start
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Reloads now (blocking I/O); true if anything changed. On problems the current snapshot
    /// stays in place.
    pub fn reload(&self) -> Result<bool, Problems> {
        self.reload_changed(&Changed::All)
    }

    /// What keeps the catalog from being current, for `/readyz`: the watcher's last reload
    /// failed (the last good catalog is still served), or the watcher is not running.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let failed = self
            .health
            .failed_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((first, count)) = failed {
            out.push(format!(
                "catalog: the last reload found {count} problem(s), so the last good catalog is still served; the first: {first}"
            ));
        }
        if !self.health.watching.load(Ordering::Relaxed) {
            out.push("catalog: the file watcher is not running, so edits are not picked up; restart rollcall".into());
        }
        out
    }

    fn set_failed_reload(&self, failed: Option<(String, usize)>) {
        *self
            .health
            .failed_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = failed;
    }

    /// Runs `change` (which writes catalog files) and reloads, as the catalog's one writer, and
    /// returns once the result is live: a request that starts after this returns sees it.
    /// Blocking I/O; call it off the async threads.
    pub fn apply<T, E: std::error::Error + 'static>(
        &self,
        change: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, ApplyError<E>> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let out = change().map_err(ApplyError::Change)?;
        self.reload_locked(&Changed::All)
            .map_err(ApplyError::Rejected)?;
        Ok(out)
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn cache(&self) -> &MeasureCache {
        &self.cache
    }

    /// Makes a catalog change (see [`catalog::write`]) and returns once it is live: `prepare`
    /// assembles it against the current catalog, then it is committed and reloaded as the one
    /// writer. If the whole catalog rejects it, it is undone and the last good catalog stays.
    /// Blocking I/O; call it off the async threads.
    pub fn write(
        &self,
        prepare: impl FnOnce(&Source, &Catalog, &MeasureCache) -> Result<Prepared, WriteError>,
    ) -> Result<Prepared, WriteError> {
        let snapshot = self.snapshot();
        let prepared = prepare(&self.source, &snapshot.catalog, &self.cache)?;
        drop(snapshot);
        // Only this episode's folder changed, so the reload re-reads only it; anything else the
        // watcher has seen meanwhile it reloads itself.
        let changed = Changed::Only([prepared.slug().to_owned()].into_iter().collect());
        // Commit, reload and (if the catalog rejects it) undo in one hold of the writer lock, so
        // no other reload ever sees the rejected folder.
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        prepared.commit(&self.cache)?;
        match self.reload_locked(&changed) {
            Ok(_) => Ok(prepared),
            Err(problems) => {
                prepared.roll_back()?;
                if let Err(p) = self.reload_locked(&changed) {
                    tracing::error!(problems = %p, "the catalog has problems after undoing a rejected change");
                }
                Err(WriteError::Rejected(problems))
            }
        }
    }

    /// Like [`Live::reload`], trusting the parse cache for episode folders outside `changed`.
    fn reload_changed(&self, changed: &Changed) -> Result<bool, Problems> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_locked(changed)
    }

    /// A reload by the holder of `writer`.
    fn reload_locked(&self, changed: &Changed) -> Result<bool, Problems> {
        let started = std::time::Instant::now();
        let catalog = catalog::load_changed(&self.source, &self.cache, changed)?;
        tracing::debug!(
            load_ms = started.elapsed().as_millis() as u64,
            "catalog loaded"
        );
        let previous = self.current.load_full();
        if catalog == previous.catalog {
            save_measurements(&self.source, &self.cache);
            return Ok(false);
        }
        let next = Arc::new(Snapshot::build(catalog, Some(&previous)));
        self.current.store(Arc::clone(&next));
        // Live from here on. Saving measurements and freeing the previous snapshot (tens of
        // thousands of allocations in a large catalog) wait until after.
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "catalog reloaded"
        );
        compress_in_background(next);
        drop(previous);
        save_measurements(&self.source, &self.cache);
        Ok(true)
    }

    /// Watches the catalog folders and reloads about 200 ms after the last change. The watcher runs
    /// on its own thread, so catalog I/O never blocks the async runtime.
    pub fn watch(self: &Arc<Self>) -> notify::Result<()> {
        use notify::Watcher;
        let (tx, rx) = mpsc::channel::<Changed>();
        let events = tx.clone();
        let episodes_dirs = watched_prefixes(&self.source.episodes_dir);
        let feeds_dirs = watched_prefixes(&self.source.feeds_dir);
        // Reloads may trust unchanged folders only while every folder is watched; a failed watch
        // (the inotify limit) turns every reload into a full check.
        let scoped_ok = Arc::new(AtomicBool::new(true));
        let scoped = Arc::clone(&scoped_ok);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let changed = match event {
                    // Reading the catalog raises access events; only changes matter.
                    Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => return,
                    Ok(e) if !e.need_rescan() && scoped_ok.load(Ordering::Relaxed) => {
                        changed_folders(&episodes_dirs, &feeds_dirs, &e.paths)
                    }
                    // A lost or overflowing event queue: check everything.
                    _ => Changed::All,
                };
                let _ = events.send(changed);
            })?;
        let dirs: Vec<PathBuf> = vec![
            self.source.episodes_dir.clone(),
            self.source.feeds_dir.clone(),
        ];
        let live = Arc::clone(self);
        self.health.watching.store(true, Ordering::Relaxed);
        std::thread::Builder::new()
            .name("catalog-watch".into())
            .spawn(move || {
                // However the thread ends, readiness says so.
                struct Stopped(Arc<Live>);
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        self.0.health.watching.store(false, Ordering::Relaxed);
                        tracing::error!("the catalog watcher stopped; edits are no longer picked up");
                    }
                }
                let _stopped = Stopped(Arc::clone(&live));
                // A large catalog has one watched folder per episode; registering them takes a
                // while, so it happens here, after the server is ready. One reload afterwards
                // picks up anything edited in the meantime.
                for dir in &dirs {
                    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::Recursive) {
                        scoped.store(false, Ordering::Relaxed);
                        tracing::error!(dir = %dir.display(), error = %e, "live reload is off for this folder; restart to apply edits (on Linux, raise fs.inotify.max_user_watches)");
                    }
                }
                let _ = tx.send(Changed::All);
                let _watcher = watcher;
                // A release time whose reload failed; it waits for a file event instead of
                // retrying in a loop.
                let mut stuck = None;
                let mut retry: Option<Changed> = None;
                loop {
                    // Wait for a file event, or until the next scheduled episode is due: then
                    // a reload with nothing changed on disk releases it.
                    let due = live
                        .snapshot()
                        .catalog
                        .next_release
                        .filter(|d| Some(*d) != stuck);
                    let first = match due {
                        None => match rx.recv() {
                            Ok(c) => c,
                            Err(_) => break,
                        },
                        Some(at) => {
                            let wait = (at.to_utc() - chrono::Utc::now())
                                .to_std()
                                .unwrap_or_default()
                                + Duration::from_millis(5);
                            match rx.recv_timeout(wait) {
                                Ok(c) => c,
                                Err(mpsc::RecvTimeoutError::Timeout) => {
                                    Changed::Only(Default::default())
                                }
                                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                            }
                        }
                    };
                    // Let a burst of writes (an editor save, a git checkout) settle first, but
                    // not forever: a long copy into episodes/ would otherwise postpone every
                    // reload until it ends.
                    let mut changed = first;
                    let deadline = std::time::Instant::now() + MAX_SETTLE;
                    loop {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            tracing::debug!("files still changing; reloading anyway");
                            break;
                        }
                        match rx.recv_timeout(SETTLE.min(left)) {
                            Ok(more) => changed = merge(changed, more),
                            Err(_) => break,
                        }
                    }
                    // Folders a failed reload found broken are checked again every time, so
                    // the catalog counts as good only once they are fixed.
                    if let Some(failed) = retry.take() {
                        changed = merge(changed, failed);
                    }
                    match live.reload_changed(&changed) {
                        // (`reload_locked` logs the reload once it is live.)
                        Ok(true) => live.set_failed_reload(None),
                        Ok(false) => {
                            live.set_failed_reload(None);
                            tracing::debug!("catalog unchanged")
                        }
                        Err(problems) => {
                            retry = Some(changed);
                            live.set_failed_reload(Some((
                                problems.0.first().map(|p| p.to_string()).unwrap_or_default(),
                                problems.0.len(),
                            )));
                            stuck = due;
                            for p in &problems.0 {
                                tracing::error!("{p}");
                            }
                            tracing::error!(
                                count = problems.0.len(),
                                "catalog edit rejected; still serving the last good catalog"
                            );
                        }
                    }
                }
            })
            .expect("spawn watcher thread");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_made_safe_for_headers() {
        assert_eq!(
            header_safe_name("defining-de-escalation.mp3"),
            "defining-de-escalation.mp3"
        );
        assert_eq!(
            header_safe_name("cover \"art\"\\é\n.jpg"),
            "cover _art____.jpg"
        );
        assert!(axum::http::HeaderValue::from_str(&header_safe_name("ünïcødé\u{7}.png")).is_ok());
    }

    #[test]
    fn non_ascii_names_get_an_rfc_8187_filename_star() {
        assert_eq!(
            disposition_names("briefing.mp3"),
            "filename=\"briefing.mp3\""
        );
        assert_eq!(
            disposition_names("Café été.jpg"),
            "filename=\"Caf_ _t_.jpg\"; filename*=UTF-8''Caf%C3%A9%20%C3%A9t%C3%A9.jpg"
        );
        assert_eq!(
            disposition_names("a\"b.png"),
            "filename=\"a_b.png\"; filename*=UTF-8''a%22b.png"
        );
    }

    fn only(slugs: &[&str]) -> Changed {
        Changed::Only(slugs.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn file_events_name_the_episode_folders_they_touch() {
        let dirs = vec![PathBuf::from("/cat/episodes")];
        let feeds = vec![PathBuf::from("/cat/feeds")];
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            changed_folders(
                &dirs,
                &feeds,
                &[
                    p("/cat/episodes/a/episode.toml"),
                    p("/cat/episodes/b"),
                    p("/cat/episodes/a/notes.md"),
                ]
            ),
            only(&["a", "b"])
        );
        // Feed files name no episode.
        assert_eq!(
            changed_folders(&dirs, &feeds, &[p("/cat/feeds/x.toml")]),
            only(&[])
        );
        // The episodes folder itself (moved or swapped for another), a path that climbs out, or
        // one under neither folder as configured cannot be attributed: check everything.
        for odd in [
            "/cat/episodes",
            "/cat/episodes/../feeds/x.toml",
            "/elsewhere/episodes/a/episode.toml",
        ] {
            assert_eq!(
                changed_folders(&dirs, &feeds, &[p(odd)]),
                Changed::All,
                "{odd}"
            );
        }
    }

    #[test]
    fn merged_batches_keep_every_folder_and_all_wins() {
        assert_eq!(merge(only(&["a"]), only(&["b"])), only(&["a", "b"]));
        assert_eq!(merge(only(&["a"]), Changed::All), Changed::All);
        assert_eq!(merge(Changed::All, only(&["b"])), Changed::All);
    }
}
