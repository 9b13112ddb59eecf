//! Writing the catalog: new episodes, metadata edits, replaced audio, unpublishing. Nothing
//! half-written is ever visible.
//!
//! Every change is built in a [`Staging`] folder, a dot-folder inside `episodes/` (the loader
//! skips dot-folders, and it is on the same file system, so the final rename is atomic):
//! 1. uploads stream into it ([`Upload`]), hashed as they are written;
//! 2. the episode folder is assembled there: a new one from a [`Draft`], or an edit from hard
//!    links to the current folder's files plus the changed ones (never written through a link);
//!    `episode.toml` is edited with toml_edit, so comments and key order survive;
//! 3. the folder is checked by the same loader `rollcall check` uses ([`super::check_episode`]);
//! 4. its files and the folder are synced, then [`Prepared::commit`] renames it into place
//!    (`RENAME_NOREPLACE` for a new episode, so two adds of one slug cannot both win;
//!    `RENAME_EXCHANGE` for an edit, which swaps old and new in one step) and syncs `episodes/`.
//!
//! Going live is the caller's part: it commits inside the live catalog's single writer, and calls
//! [`Prepared::roll_back`] if the whole catalog rejects the result.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use super::asset::{sniff_audio, MeasureCache};
use super::{check_episode, valid_slug, Catalog, Episode, Guest, Problem, Problems, Resource};
use super::{display_path, Source};

/// Why a change was not made. Nothing in the catalog was changed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The episode as submitted breaks catalog rules; each problem names its field.
    #[error("{0}")]
    Invalid(Problems),
    /// The uploaded file is not audio a podcast app plays.
    #[error("field '{field}': the file is not MP3, M4A/AAC, Ogg/Opus or FLAC audio ({reason}): upload one of those")]
    NotAudio { field: String, reason: String },
    #[error("episodes/{0}: an episode with this slug already exists: choose another slug")]
    SlugTaken(String),
    #[error("no episode has the slug {0:?}")]
    NoSuchEpisode(String),
    #[error("field '{0}': sent twice: send each file once")]
    Duplicate(String),
    #[error("field '{field}': the upload is larger than max_upload_bytes ({limit} bytes): send a smaller file or raise max_upload_bytes")]
    TooLarge { field: String, limit: u64 },
    #[error(
        "episodes/{0}: it was changed by someone else during this edit: load it again and retry"
    )]
    Conflict(String),
    /// The change was sound alone, but the catalog with it has problems; it was undone.
    #[error("the catalog would have problems with this change, so it was undone:\n{0}")]
    Rejected(Problems),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WriteError {
    let what = what.into();
    move |source| WriteError::Io { what, source }
}

/// A new episode's metadata, with the field names of `episode.toml`.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Derived from the title when absent.
    pub slug: Option<String>,
    pub title: String,
    pub published: DateTime<FixedOffset>,
    pub summary: String,
    pub guests: Vec<Guest>,
    pub resources: Vec<Resource>,
    pub feeds: Vec<String>,
    /// Show notes in Markdown (`notes.md`).
    pub notes: String,
    pub explicit: bool,
}

/// Changes to an episode; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub title: Option<String>,
    pub published: Option<DateTime<FixedOffset>>,
    pub summary: Option<String>,
    pub guests: Option<Vec<Guest>>,
    pub resources: Option<Vec<Resource>>,
    pub feeds: Option<Vec<String>>,
    pub notes: Option<String>,
    pub explicit: Option<bool>,
    pub unpublished: Option<bool>,
    /// The [`folder_version`] the editor saw; a different one is a conflict (409).
    pub expect_version: Option<String>,
}

/// Files that come with a change, already staged.
#[derive(Debug, Default)]
pub struct Attachments {
    pub audio: Option<Uploaded>,
    pub transcript: Option<Uploaded>,
    pub chapters: Option<Uploaded>,
}

/// A staged file and what was learned while writing it.
#[derive(Debug)]
pub struct Uploaded {
    pub field: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// A file being written into staging: constant memory, hashed as it goes, refused past `limit`.
pub struct Upload {
    field: String,
    path: PathBuf,
    file: std::io::BufWriter<File>,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl Upload {
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), WriteError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(WriteError::TooLarge {
                field: self.field.clone(),
                limit: self.limit,
            });
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .map_err(io(format!("field '{}': writing the upload", self.field)))
    }

    /// Flushes and syncs the file.
    pub fn finish(self) -> Result<Uploaded, WriteError> {
        let what = format!("field '{}': writing the upload", self.field);
        let file = self.file.into_inner().map_err(|e| WriteError::Io {
            what: what.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(what))?;
        let sha256 = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Uploaded {
            field: self.field,
            path: self.path,
            size: self.size,
            sha256,
        })
    }
}

/// Parses a release time as `published` accepts it: RFC 3339 (`2016-06-30T09:00:00-04:00`), or a
/// date alone (`2016-06-30`, midnight UTC). `field` names the input in the message.
pub fn parse_published(field: &str, text: &str) -> Result<DateTime<FixedOffset>, String> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text).ok().or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset())
    });
    if let Some(d) = parsed {
        if super::fields::PUBLISHED_YEARS.contains(&chrono::Datelike::year(&d)) {
            return Ok(d);
        }
        return Err(format!(
            "field '{field}': {}: write the release date, like 2016-06-30",
            super::fields::outside_published_years(text)
        ));
    }
    Err(format!(
        "field '{field}': {text:?} is not a date: write it like 2016-06-30T09:00:00-04:00, or 2016-06-30"
    ))
}

/// The first paragraph of Markdown show notes, on one line: a default summary.
pub fn summary_from_notes(notes: &str) -> String {
    notes
        .split("\n\n")
        .map(str::trim)
        .find(|p| !p.is_empty() && !p.starts_with('#'))
        .unwrap_or_default()
        .replace('\n', " ")
}

/// A guest from `Name|role|affiliation` (role and affiliation optional).
pub fn guest_from_spec(spec: &str) -> Result<Guest, String> {
    let mut parts = spec.split('|').map(str::trim);
    let name = parts.next().unwrap_or_default().to_owned();
    let opt = |p: Option<&str>| p.filter(|s| !s.is_empty()).map(str::to_owned);
    let (role, affiliation) = (opt(parts.next()), opt(parts.next()));
    if name.is_empty() || parts.next().is_some() {
        return Err(format!(
            "--guest {spec:?}: write it like \"Eric Pisconski|Sergeant|Seattle Police Department\""
        ));
    }
    Ok(Guest {
        name,
        role,
        affiliation,
        link: None,
        image: None,
    })
}

/// A resource from `Title|URL|note` (note optional).
pub fn resource_from_spec(spec: &str) -> Result<Resource, String> {
    let parts: Vec<&str> = spec.split('|').map(str::trim).collect();
    match parts.as_slice() {
        [title, url] | [title, url, _] if !title.is_empty() && !url.is_empty() => Ok(Resource {
            title: (*title).to_owned(),
            url: (*url).to_owned(),
            note: parts.get(2).filter(|n| !n.is_empty()).map(|n| (*n).to_owned()),
        }),
        _ => Err(format!(
            "--resource {spec:?}: write it like \"De-Escalation Report|https://www.policeforum.org/|PERF, 2012\""
        )),
    }
}

/// A private folder inside `episodes/` where a change is assembled. Removed when dropped, so a
/// failed change leaves nothing behind; one left by a crash is removed at the next start
/// ([`remove_leftovers`]).
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    episodes_dir: PathBuf,
    /// The folder, open and locked (`flock`) for as long as the change is in progress, so a
    /// starting server or CLI (even in another container) can tell it from a crashed one's.
    lock: File,
}

const STAGING_PREFIX: &str = ".staging-";

impl Staging {
    pub fn new(episodes_dir: &Path) -> Result<Staging, WriteError> {
        let mut rand = [0u8; 8];
        getrandom::fill(&mut rand).expect("random source");
        let tag: String = rand.iter().map(|b| format!("{b:02x}")).collect();
        // The process id lets a starting server tell a crashed writer's folder from a live one.
        let dir = episodes_dir.join(format!("{STAGING_PREFIX}{}-{tag}", std::process::id()));
        let what = format!(
            "{}: cannot create a staging folder; check that episodes_dir is writable",
            display_path(episodes_dir, "")
        );
        std::fs::create_dir(&dir).map_err(io(what.clone()))?;
        let lock = File::open(&dir).map_err(io(what.clone()))?;
        lock.lock().map_err(io(what))?;
        Ok(Staging {
            dir,
            episodes_dir: episodes_dir.to_owned(),
            lock,
        })
    }

    /// Keeps the folder instead of removing it, renamed `.recovery-…` so that no cleanup
    /// removes it either: called when a change could not be undone, so the previous version
    /// of an episode survives for a person to restore. Returns where it is.
    fn keep(&self) -> PathBuf {
        let name = self
            .dir
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .replacen(STAGING_PREFIX, ".recovery-", 1)
            })
            .unwrap_or_else(|| ".recovery".into());
        let kept = self.episodes_dir.join(name);
        match std::fs::rename(&self.dir, &kept) {
            Ok(()) => kept,
            Err(_) => self.dir.clone(),
        }
    }

    /// Starts writing an uploaded file for `field`.
    pub fn upload(&self, field: &str, limit: u64) -> Result<Upload, WriteError> {
        let path = self.dir.join(format!("incoming-{field}"));
        let file = match File::create_new(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(WriteError::Duplicate(field.to_owned()))
            }
            Err(e) => {
                return Err(io(format!(
                    "field '{field}': cannot create the staging file"
                ))(e))
            }
        };
        Ok(Upload {
            field: field.to_owned(),
            path,
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    fn folder(&self, slug: &str) -> PathBuf {
        self.dir.join(slug)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Removed while still locked, so no cleanup can mistake it for a crashed writer's.
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = self.lock.unlock();
    }
}

/// Removes staging folders that a crashed writer left in `episodes_dir`: those that no process
/// holds locked. Returns the folders removed.
pub fn remove_leftovers(episodes_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(episodes_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(STAGING_PREFIX) {
            continue;
        }
        let Ok(dir) = File::open(entry.path()) else {
            continue;
        };
        // A live writer holds the lock; a crashed one's lock went with its process.
        if dir.try_lock().is_ok() && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// What identifies the state of an episode folder: every file's name, inode, size and
/// modification time. Any write, rename or replacement in the folder changes it.
pub fn folder_version(folder: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut entries: Vec<(std::ffi::OsString, u64, u64, i64, i64)> = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let m = entry.path().symlink_metadata()?;
        entries.push((
            entry.file_name(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
        ));
    }
    entries.sort();
    let mut h = Sha256::new();
    for (name, ino, size, secs, nanos) in entries {
        h.update(name.as_encoded_bytes());
        h.update([0]);
        for n in [ino, size, secs as u64, nanos as u64] {
            h.update(n.to_le_bytes());
        }
    }
    Ok(h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A slug from a title: lowercase ASCII letters and digits, single hyphens, at most 60 bytes.
pub fn slug_from_title(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    slug.trim_end_matches('-').to_owned()
}

#[derive(Debug)]
enum Kind {
    New,
    /// An edit; the [`folder_version`] of the folder when the edit began.
    Edit {
        base: String,
    },
}

/// A change assembled, checked and synced in staging, ready to be renamed into place.
#[derive(Debug)]
pub struct Prepared {
    staging: Staging,
    kind: Kind,
    /// The episode as the loader read it from staging.
    pub episode: Episode,
}

impl Prepared {
    pub fn slug(&self) -> &str {
        &self.episode.slug
    }

    fn live_folder(&self) -> PathBuf {
        self.staging.episodes_dir.join(self.slug())
    }

    /// Puts the change in place in one rename and syncs `episodes/`. Call it as the catalog's
    /// one writer. `cache` learns that the measured files moved.
    pub fn commit(&self, cache: &MeasureCache) -> Result<(), WriteError> {
        let slug = self.slug().to_owned();
        let staged = self.staging.folder(&slug);
        let live = self.live_folder();
        let flags = match &self.kind {
            Kind::New => rustix::fs::RenameFlags::NOREPLACE,
            Kind::Edit { base } => {
                let now =
                    folder_version(&live).map_err(|_| WriteError::NoSuchEpisode(slug.clone()))?;
                if &now != base {
                    return Err(WriteError::Conflict(slug));
                }
                rustix::fs::RenameFlags::EXCHANGE
            }
        };
        match rustix::fs::renameat_with(rustix::fs::CWD, &staged, rustix::fs::CWD, &live, flags) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => return Err(WriteError::SlugTaken(slug)),
            Err(e) => {
                return Err(WriteError::Io {
                    what: format!("episodes/{slug}: moving the new version into place"),
                    source: e.into(),
                })
            }
        }
        // The rename happened: the change is in place whatever follows. A failed sync only
        // means it might not survive a power cut, which the log says.
        if let Err(e) = sync_dir(&self.staging.episodes_dir) {
            tracing::warn!(error = %e, slug, "cannot sync episodes_dir after a change; it may not survive a power cut");
        }
        cache.moved(&staged, &live);
        Ok(())
    }

    /// Undoes [`Prepared::commit`]: the previous version (or nothing, for a new episode) is back.
    pub fn roll_back(&self) -> Result<(), WriteError> {
        let slug = self.slug();
        let staged = self.staging.folder(slug);
        let live = self.live_folder();
        let flags = match self.kind {
            Kind::New => rustix::fs::RenameFlags::NOREPLACE,
            Kind::Edit { .. } => rustix::fs::RenameFlags::EXCHANGE,
        };
        if let Err(e) =
            rustix::fs::renameat_with(rustix::fs::CWD, &live, rustix::fs::CWD, &staged, flags)
        {
            // Keep whatever the staging folder holds (for an edit, the previous version).
            let kept = self.staging.keep();
            tracing::error!(slug, kept = %kept.display(), error = %e, "cannot undo a change; the previous version is kept there");
            return Err(WriteError::Io {
                what: format!(
                    "episodes/{slug}: putting the previous version back (it is kept in {})",
                    kept.display()
                ),
                source: e.into(),
            });
        }
        if let Err(e) = sync_dir(&self.staging.episodes_dir) {
            tracing::warn!(error = %e, slug, "cannot sync episodes_dir after undoing a change");
        }
        Ok(())
    }
}

/// Makes a change with no server running (the CLI): prepares it against the catalog on disk,
/// commits it, and loads the whole catalog again, undoing the change if that fails. A running
/// server's watcher picks the change up.
pub fn write_offline(
    source: &Source,
    cache: &MeasureCache,
    prepare: impl FnOnce(&Catalog) -> Result<Prepared, WriteError>,
) -> Result<(Prepared, Catalog), WriteError> {
    let catalog = super::load(source, cache).map_err(WriteError::Rejected)?;
    let prepared = prepare(&catalog)?;
    prepared.commit(cache)?;
    match super::load(source, cache) {
        Ok(catalog) => Ok((prepared, catalog)),
        Err(problems) => {
            prepared.roll_back()?;
            Err(WriteError::Rejected(problems))
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a new file (never through an existing link) and syncs it.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = File::create_new(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn problem(slug: &str, source: &Source, field: &str, what: String, fix: &str) -> WriteError {
    let file = display_path(&source.episodes_dir, &format!("{slug}/episode.toml"));
    WriteError::Invalid(Problems(vec![Problem::new(&file, field, what, fix)]))
}

/// Checks what the loader cannot see: values a form or the API can get wrong before any file
/// exists.
fn check_values(
    slug: &str,
    source: &Source,
    title: Option<&str>,
    resources: Option<&[Resource]>,
    guests: Option<&[Guest]>,
) -> Result<(), WriteError> {
    if title.is_some_and(|t| t.trim().is_empty()) {
        return Err(problem(
            slug,
            source,
            "title",
            "is empty".into(),
            "give the episode a title",
        ));
    }
    for (i, g) in guests.unwrap_or_default().iter().enumerate() {
        if g.name.trim().is_empty() {
            return Err(problem(
                slug,
                source,
                &format!("guests[{i}].name"),
                "is empty".into(),
                "give every guest a name, or remove the guest",
            ));
        }
    }
    for (i, r) in resources.unwrap_or_default().iter().enumerate() {
        let absolute = (r.url.starts_with("https://") || r.url.starts_with("http://"))
            && r.url.len() > "https://".len()
            && !r.url.contains(char::is_whitespace);
        if !absolute {
            return Err(problem(
                slug,
                source,
                &format!("resources[{i}].url"),
                format!("{:?} is not an absolute http or https URL", r.url),
                "write it like \"https://bja.ojp.gov/\"",
            ));
        }
        if r.title.trim().is_empty() {
            return Err(problem(
                slug,
                source,
                &format!("resources[{i}].title"),
                "is empty".into(),
                "give every resource a title, or remove it",
            ));
        }
    }
    Ok(())
}

fn datetime(d: &DateTime<FixedOffset>) -> toml_edit::Datetime {
    d.to_rfc3339()
        .parse()
        .expect("an RFC 3339 timestamp is a TOML datetime")
}

fn guests_table(guests: &[Guest]) -> ArrayOfTables {
    let mut aot = ArrayOfTables::new();
    for g in guests {
        let mut t = Table::new();
        t["name"] = value(&g.name);
        for (k, v) in [
            ("role", &g.role),
            ("affiliation", &g.affiliation),
            ("link", &g.link),
        ] {
            if let Some(v) = v {
                t[k] = value(v);
            }
        }
        aot.push(t);
    }
    aot
}

fn resources_table(resources: &[Resource]) -> ArrayOfTables {
    let mut aot = ArrayOfTables::new();
    for r in resources {
        let mut t = Table::new();
        t["title"] = value(&r.title);
        t["url"] = value(&r.url);
        if let Some(n) = &r.note {
            t["note"] = value(n);
        }
        aot.push(t);
    }
    aot
}

fn string_array(items: &[String]) -> Item {
    value(items.iter().map(String::as_str).collect::<Array>())
}

/// Sets an array of tables, or removes the key when the list is empty.
fn set_tables(doc: &mut DocumentMut, key: &str, aot: ArrayOfTables) {
    if aot.is_empty() {
        doc.remove(key);
    } else {
        doc[key] = Item::ArrayOfTables(aot);
    }
}

/// Moves staged uploads into the episode folder under their catalog names, and records what the
/// episode.toml must say about them. The audio's type is found by decoding it, not from its name.
fn place_attachments(
    slug: &str,
    folder: &Path,
    files: Attachments,
    doc: &mut DocumentMut,
    old_audio: Option<&Path>,
    cache: &MeasureCache,
) -> Result<(), WriteError> {
    if let Some(audio) = files.audio {
        let ext = sniff_audio(&audio.path).map_err(|e| WriteError::NotAudio {
            field: audio.field.clone(),
            reason: e.to_string(),
        })?;
        if let Some(old) = old_audio {
            let _ = std::fs::remove_file(old);
        }
        let name = format!("audio.{ext}");
        let dest = folder.join(&name);
        let _ = std::fs::remove_file(&dest);
        std::fs::rename(&audio.path, &dest)
            .map_err(io(format!("episodes/{slug}/{name}: placing the audio")))?;
        cache
            .seed_hash(&dest, &audio.sha256)
            .map_err(io(format!("episodes/{slug}/{name}")))?;
        doc["audio"] = value(name);
    }
    if let Some(t) = files.transcript {
        let mut head = [0u8; 16];
        let n = File::open(&t.path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        let head = &head[..n];
        let ext = if head.starts_with(b"WEBVTT") || head.starts_with(b"\xef\xbb\xbfWEBVTT") {
            "vtt"
        } else {
            "srt"
        };
        for old in ["transcript.vtt", "transcript.srt"] {
            let _ = std::fs::remove_file(folder.join(old));
        }
        std::fs::rename(&t.path, folder.join(format!("transcript.{ext}")))
            .map_err(io(format!("episodes/{slug}: placing the transcript")))?;
    }
    if let Some(c) = files.chapters {
        let dest = folder.join("chapters.json");
        let _ = std::fs::remove_file(&dest);
        std::fs::rename(&c.path, dest)
            .map_err(io(format!("episodes/{slug}: placing the chapters")))?;
    }
    Ok(())
}

/// Assembles a new episode in `staging`, checks it with the loader, and syncs it.
pub fn prepare_add(
    source: &Source,
    catalog: &Catalog,
    cache: &MeasureCache,
    staging: Staging,
    draft: Draft,
    files: Attachments,
) -> Result<Prepared, WriteError> {
    let slug = draft
        .slug
        .clone()
        .unwrap_or_else(|| slug_from_title(&draft.title));
    if !valid_slug(&slug) || slug.starts_with('.') {
        return Err(problem(
            &slug,
            source,
            "slug",
            format!("{slug:?} is not a valid slug"),
            "use lowercase letters, digits and single hyphens, like \"defining-de-escalation\"",
        ));
    }
    check_values(
        &slug,
        source,
        Some(&draft.title),
        Some(&draft.resources),
        Some(&draft.guests),
    )?;
    if catalog.any_episode(&slug).is_some() || source.episodes_dir.join(&slug).exists() {
        return Err(WriteError::SlugTaken(slug));
    }
    if files.audio.is_none() {
        return Err(problem(
            &slug,
            source,
            "audio",
            "no audio file was sent".into(),
            "attach the episode's audio (MP3, M4A/AAC, Ogg/Opus or FLAC)",
        ));
    }
    let folder = staging.folder(&slug);
    std::fs::create_dir(&folder).map_err(io(format!("episodes/{slug}: staging")))?;

    let mut doc = DocumentMut::new();
    doc["guid"] = value(uuid::Uuid::new_v4().to_string());
    doc["title"] = value(draft.title.trim());
    doc["published"] = value(datetime(&draft.published));
    doc["summary"] = value(draft.summary.trim());
    doc["feeds"] = string_array(&draft.feeds);
    if draft.explicit {
        doc["explicit"] = value(true);
    }
    place_attachments(&slug, &folder, files, &mut doc, None, cache)?;
    set_tables(&mut doc, "guests", guests_table(&draft.guests));
    set_tables(&mut doc, "resources", resources_table(&draft.resources));
    let header = "# Added with rollcall. See docs/catalog.md for every field.\n";
    let text = format!("{header}{doc}");
    write_file(&folder.join("episode.toml"), text.as_bytes())
        .map_err(io(format!("episodes/{slug}/episode.toml")))?;
    if !draft.notes.trim().is_empty() {
        write_file(&folder.join("notes.md"), draft.notes.as_bytes())
            .map_err(io(format!("episodes/{slug}/notes.md")))?;
    }
    finish_prepare(source, catalog, cache, staging, &slug, Kind::New)
}

/// Assembles an edit of `slug` in `staging` (hard links to the current files, plus what
/// changed), checks it with the loader, and syncs it.
pub fn prepare_edit(
    source: &Source,
    catalog: &Catalog,
    cache: &MeasureCache,
    staging: Staging,
    slug: &str,
    patch: Patch,
    files: Attachments,
) -> Result<Prepared, WriteError> {
    let current = catalog
        .any_episode(slug)
        .ok_or_else(|| WriteError::NoSuchEpisode(slug.to_owned()))?;
    check_values(
        slug,
        source,
        patch.title.as_deref(),
        patch.resources.as_deref(),
        patch.guests.as_deref(),
    )?;
    let live = source.episodes_dir.join(slug);
    let folder = staging.folder(slug);
    link_tree(&live, &folder).map_err(io(format!("episodes/{slug}: staging a copy")))?;
    // Read from the links, so the version and the text are of the same files: a change that
    // lands on the live folder after this is caught at commit.
    let base = folder_version(&folder).map_err(io(format!("episodes/{slug}: staging a copy")))?;
    if let Some(expected) = &patch.expect_version {
        if expected != &base {
            return Err(WriteError::Conflict(slug.to_owned()));
        }
    }
    let text = std::fs::read_to_string(folder.join("episode.toml"))
        .map_err(io(format!("episodes/{slug}/episode.toml")))?;
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        problem(
            slug,
            source,
            "(file)",
            format!("cannot be edited: {}", e.message()),
            "fix the file by hand first (rollcall check shows where)",
        )
    })?;
    if let Some(t) = &patch.title {
        doc["title"] = value(t.trim());
    }
    if let Some(p) = &patch.published {
        doc["published"] = value(datetime(p));
    }
    if let Some(s) = &patch.summary {
        doc["summary"] = value(s.trim());
    }
    if let Some(f) = &patch.feeds {
        doc["feeds"] = string_array(f);
    }
    if let Some(e) = patch.explicit {
        doc["explicit"] = value(e);
    }
    match patch.unpublished {
        Some(true) => doc["unpublished"] = value(true),
        Some(false) => {
            doc.remove("unpublished");
        }
        None => {}
    }
    if let Some(g) = &patch.guests {
        set_tables(&mut doc, "guests", guests_table(g));
    }
    if let Some(r) = &patch.resources {
        set_tables(&mut doc, "resources", resources_table(r));
    }
    // The audio the staged episode.toml names, else the one the loader found.
    let old_audio = doc
        .get("audio")
        .and_then(|v| v.as_str())
        .map(|name| folder.join(name))
        .or_else(|| current.audio.path.file_name().map(|name| folder.join(name)));
    place_attachments(slug, &folder, files, &mut doc, old_audio.as_deref(), cache)?;
    write_file(&folder.join("episode.toml"), doc.to_string().as_bytes())
        .map_err(io(format!("episodes/{slug}/episode.toml")))?;
    if let Some(n) = &patch.notes {
        write_file(&folder.join("notes.md"), n.as_bytes())
            .map_err(io(format!("episodes/{slug}/notes.md")))?;
    }
    finish_prepare(source, catalog, cache, staging, slug, Kind::Edit { base })
}

fn finish_prepare(
    source: &Source,
    catalog: &Catalog,
    cache: &MeasureCache,
    staging: Staging,
    slug: &str,
    kind: Kind,
) -> Result<Prepared, WriteError> {
    let episode =
        check_episode(source, catalog, &staging.dir, slug, cache).map_err(WriteError::Invalid)?;
    let folder = staging.folder(slug);
    sync_dir(&folder).map_err(io(format!("episodes/{slug}: syncing")))?;
    Ok(Prepared {
        staging,
        kind,
        episode,
    })
}

/// Recreates `from` at `to` with hard links to its files (and copies of its symlinks).
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            link_tree(&entry.path(), &dest)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, dest)?;
        } else {
            std::fs::hard_link(entry.path(), dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_years_stay_within_what_feeds_and_toml_can_write() {
        for bad in [
            "+10000-01-01",
            "-316-03-31",
            "1899-12-31",
            "0001-01-01T00:00:00Z",
        ] {
            let e = parse_published("published", bad).unwrap_err();
            assert!(e.contains("has a year outside 1900 to 9999"), "{bad}: {e}");
        }
        assert!(parse_published("published", "1900-01-01").is_ok());
        assert!(parse_published("published", "9999-12-31T23:59:59Z").is_ok());
    }

    #[test]
    fn published_takes_rfc3339_or_a_date() {
        assert_eq!(
            parse_published("published", "2016-06-30T09:00:00-04:00")
                .unwrap()
                .to_rfc3339(),
            "2016-06-30T09:00:00-04:00"
        );
        assert_eq!(
            parse_published("published", "2016-06-30")
                .unwrap()
                .to_rfc3339(),
            "2016-06-30T00:00:00+00:00"
        );
        let e = parse_published("published", "2016-13-01").unwrap_err();
        assert!(
            e.starts_with("field 'published': \"2016-13-01\" is not a date"),
            "{e}"
        );
    }

    #[test]
    fn guest_and_resource_specs() {
        let g = guest_from_spec("Mark Sawa|Major (ret.)").unwrap();
        assert_eq!(
            (g.name.as_str(), g.role.as_deref()),
            ("Mark Sawa", Some("Major (ret.)"))
        );
        assert!(guest_from_spec("|x").is_err());
        assert!(guest_from_spec("a|b|c|d").is_err());
        let r = resource_from_spec("PERF|https://www.policeforum.org/").unwrap();
        assert_eq!(r.url, "https://www.policeforum.org/");
        assert!(r.note.is_none());
        assert!(resource_from_spec("only a title").is_err());
    }

    #[test]
    fn slugs_come_from_titles() {
        assert_eq!(
            slug_from_title("Behavioral Response to Stress & Fear"),
            "behavioral-response-to-stress-fear"
        );
        assert_eq!(slug_from_title("  --Défi!  "), "d-fi");
        assert!(slug_from_title(&"a".repeat(200)).len() <= 60);
    }

    #[test]
    fn uploads_past_the_limit_are_refused_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path()).unwrap();
        let mut up = staging.upload("audio", 10).unwrap();
        up.write(b"12345").unwrap();
        let e = up.write(b"678901").unwrap_err().to_string();
        assert!(
            e.contains("field 'audio'") && e.contains("max_upload_bytes"),
            "{e}"
        );
        let staged = staging.dir.clone();
        drop(staging);
        assert!(!staged.exists(), "a dropped staging folder is removed");
    }

    #[test]
    fn uploads_are_hashed_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path()).unwrap();
        let mut up = staging.upload("audio", 100).unwrap();
        up.write(b"abc").unwrap();
        let done = up.finish().unwrap();
        assert_eq!(done.size, 3);
        assert_eq!(
            done.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(&done.path).unwrap(), b"abc");
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".staging-999999999-00");
        std::fs::create_dir(&dead).unwrap();
        let alive = Staging::new(dir.path()).unwrap();
        assert_eq!(remove_leftovers(dir.path()), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(
            alive.dir.exists(),
            "a locked staging folder is a writer at work"
        );
        let gone = alive.dir.clone();
        drop(alive);
        assert!(!gone.exists());
    }

    #[test]
    fn folder_versions_change_with_any_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let v1 = folder_version(dir.path()).unwrap();
        assert_eq!(v1, folder_version(dir.path()).unwrap());
        std::fs::write(dir.path().join("b.tmp"), "2").unwrap();
        std::fs::rename(dir.path().join("b.tmp"), dir.path().join("a")).unwrap();
        assert_ne!(v1, folder_version(dir.path()).unwrap());
    }
}
