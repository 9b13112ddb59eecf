//! Loads one episode folder: `episode.toml`, `notes.md`, the audio, and optional transcript,
//! chapters and image. Every fact about a file is measured; the declared duration is only checked.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use toml::Table;

use super::asset::{mime_for, read_stamped, stamped_size, Inputs, MeasureCache, AUDIO_EXTENSIONS};
use super::fields::{strip_controls, Fields};
use super::{
    display_path, resolve_inside, valid_slug, Asset, Episode, EpisodeType, Guest, Problem, Resource,
};

pub(super) struct Ctx<'a> {
    /// Canonical episodes folder; files must resolve inside it.
    pub root: &'a Path,
    /// The folder as configured, for messages.
    pub display_root: &'a Path,
    pub cache: &'a MeasureCache,
    pub changed: &'a super::Changed,
    /// The episode folder's entries, while parsing it.
    pub listing: Option<&'a Listing>,
}

/// Largest difference allowed between a declared and a measured duration.
const DURATION_TOLERANCE: Duration = Duration::from_secs(2);

/// Loads an episode folder, reusing the previous parse when none of its files changed.
pub(super) fn load(ctx: &Ctx, slug: &str, problems: &mut Vec<Problem>) -> Option<Arc<Episode>> {
    let folder = ctx.root.join(slug);
    let trusted = match ctx.changed {
        super::Changed::All => false,
        super::Changed::Only(slugs) => !slugs.contains(slug),
    };
    if let Some(ep) = ctx.cache.parsed_episode(slug, &folder, trusted) {
        return Some(ep);
    }
    // Stamp before reading, so an edit made while parsing is noticed on the next reload.
    let before = ctx.cache.stamp_folder(&folder);
    let (ep, contained) = parse(ctx, slug, Some(&before), problems)?;
    let ep = Arc::new(ep);
    ctx.cache.remember_episode(slug, before, &ep, contained);
    Some(ep)
}

/// Parses a folder without consulting or filling the parse cache (it is a staged copy, about
/// to be renamed); measurements still go through the cache.
pub(super) fn check(ctx: &Ctx, slug: &str, problems: &mut Vec<Problem>) -> Option<Episode> {
    parse(ctx, slug, None, problems).map(|(ep, _)| ep)
}

/// Reads `name` in `folder`, with the size from `stamps` when they have it (see
/// [`read_stamped`]). Without a size (not stamped, or the `stat` failed) it is read the usual
/// way, which reports the real error.
fn read_input(folder: &Path, name: &str, stamps: Option<&Inputs>) -> std::io::Result<String> {
    let path = folder.join(name);
    match stamps.and_then(|s| stamped_size(s, &path)) {
        Some(size) => read_stamped(&path, size),
        None => std::fs::read_to_string(&path),
    }
}

/// The episode, and whether every file it was read from is a regular file directly in its folder.
/// `stamps`, taken just before, give the sizes of `episode.toml` and `notes.md`.
fn parse(
    ctx: &Ctx,
    slug: &str,
    stamps: Option<&Inputs>,
    problems: &mut Vec<Problem>,
) -> Option<(Episode, bool)> {
    let folder = ctx.root.join(slug);
    let file = display_path(ctx.display_root, &format!("{slug}/episode.toml"));
    if !valid_slug(slug) {
        problems.push(Problem::new(
            &display_path(ctx.display_root, slug),
            "(folder name)",
            format!("{slug:?} is not a valid slug"),
            "rename the folder using lowercase letters, digits and single hyphens",
        ));
        return None;
    }
    let text = match read_input(&folder, "episode.toml", stamps) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::new(
                &file,
                "(file)",
                format!("cannot be read: {e}"),
                "create it as described in docs/catalog.md",
            ));
            return None;
        }
    };
    let table: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            problems.push(toml_syntax_problem(&file, &text, &e));
            return None;
        }
    };
    let before = problems.len();
    let mut f = Fields::new(&file, &table, String::new(), problems);
    let guid = f.req_plain("guid", &format!("\"{}\"", suggest_guid(slug)));
    let title = f.req_text("title", "\"Defining De-Escalation\"");
    let published = f.req_datetime("published");
    let summary = f.req_text("summary", "\"One or two sentences.\"");
    let feeds = f.opt_str_list("feeds").unwrap_or_default();
    let explicit = f.opt_bool("explicit").unwrap_or(false);
    let unpublished = f.opt_bool("unpublished").unwrap_or(false);
    let episode_type = match f.opt_str("type").as_deref() {
        None | Some("full") => EpisodeType::Full,
        Some("trailer") => EpisodeType::Trailer,
        Some("bonus") => EpisodeType::Bonus,
        Some(other) => {
            f.problem(
                "type",
                format!("{other:?} is not an episode type"),
                "use \"full\", \"trailer\" or \"bonus\"",
            );
            EpisodeType::Full
        }
    };
    let season = f.opt_uint("season");
    let number = f.opt_uint("number");
    let declared = declared_duration(&mut f);
    let audio_name = f.opt_str("audio");
    let image_name = f.opt_str("image");
    let guests = guests(&mut f);
    let resources = resources(&mut f);
    f.finish(&["guests", "resources"]);

    let notes_markdown = match read_input(&folder, "notes.md", stamps) {
        Ok(t) => strip_controls(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            problems.push(Problem::new(
                &display_path(ctx.display_root, &format!("{slug}/notes.md")),
                "(file)",
                format!("cannot be read: {e}"),
                "fix its permissions or encoding (UTF-8)",
            ));
            String::new()
        }
    };

    let listing = Listing::read(&folder);
    let ctx = &Ctx {
        listing: Some(&listing),
        ..*ctx
    };
    let audio_name = audio_name.or_else(|| find_audio(&listing));
    let audio = match audio_name {
        None => {
            problems.push(Problem::new(
                &file,
                "audio",
                "no audio file found in the episode folder",
                format!(
                    "add an audio file ({}) and name it with audio = \"file.mp3\"",
                    AUDIO_EXTENSIONS.join(", ")
                ),
            ));
            None
        }
        Some(name) => asset(ctx, slug, &file, "audio", &name, true, problems),
    };
    let transcript = ["transcript.vtt", "transcript.srt"]
        .iter()
        .find(|n| listing.exists(&folder, n))
        .and_then(|n| asset(ctx, slug, &file, "transcript", n, false, problems));
    let chapters = if listing.exists(&folder, "chapters.json") {
        check_chapters(&folder.join("chapters.json"), ctx, slug, problems);
        asset(
            ctx,
            slug,
            &file,
            "chapters",
            "chapters.json",
            false,
            problems,
        )
    } else {
        None
    };
    let image = image_name.and_then(|n| asset(ctx, slug, &file, "image", &n, false, problems));

    let (audio, duration) = match audio {
        Some((a, d)) => (a, d?),
        None => return None,
    };
    if let Some(declared) = declared {
        let diff = declared.abs_diff(duration);
        if diff > DURATION_TOLERANCE {
            problems.push(Problem::new(
                &file,
                "duration",
                format!(
                    "declares {} but the audio measures {}",
                    clock(declared),
                    clock(duration)
                ),
                "remove duration (it is measured from the audio) or fix it",
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    let ep = Episode {
        slug: slug.to_owned(),
        guid: guid?,
        title: title?,
        published: published?,
        summary: summary?,
        notes_markdown,
        guests,
        resources,
        feeds,
        explicit,
        unpublished,
        episode_type,
        season,
        number,
        audio,
        duration,
        transcript: transcript.map(|(a, _)| a),
        chapters: chapters.map(|(a, _)| a),
        image: image.map(|(a, _)| a),
    };
    let in_folder = |name: &str| listing.is_plain_file(name);
    let contained = in_folder("episode.toml")
        && (in_folder("notes.md") || !listing.has("notes.md"))
        && ep.assets().all(|a| {
            a.path.parent() == Some(folder.as_path())
                && a.path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(in_folder)
        });
    Some((ep, contained))
}

/// `H:MM:SS`-style text for messages, with the exact seconds.
fn clock(d: Duration) -> String {
    let s = d.as_secs_f64();
    let whole = s.round() as u64;
    format!(
        "{}:{:02}:{:02} ({s:.1} s)",
        whole / 3600,
        whole / 60 % 60,
        whole % 60
    )
}

fn suggest_guid(slug: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("rollcall:episode:{slug}").as_bytes(),
    )
    .to_string()
}

pub(super) fn toml_syntax_problem(file: &str, text: &str, e: &toml::de::Error) -> Problem {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(1);
    Problem::new(
        file,
        format!("line {line}"),
        format!("is not valid TOML ({})", e.message().trim()),
        "fix the syntax; see docs/catalog.md for an example",
    )
}

/// `duration` as whole seconds or as `"MM:SS"` / `"H:MM:SS"`.
fn declared_duration(f: &mut Fields) -> Option<Duration> {
    let fix =
        "write duration = 960 or duration = \"16:00\", or remove it: it is measured from the audio";
    match f.raw("duration")? {
        toml::Value::Integer(i) if *i >= 0 => Some(Duration::from_secs(*i as u64)),
        toml::Value::String(s) => {
            let parsed = parse_clock(s);
            if parsed.is_none() {
                f.problem("duration", format!("{s:?} is not a duration"), fix);
            }
            parsed
        }
        other => {
            f.problem("duration", format!("{other} is not a duration"), fix);
            None
        }
    }
}

/// Parses `SS`, `MM:SS` or `H:MM:SS`.
fn parse_clock(s: &str) -> Option<Duration> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut secs = 0u64;
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 6 {
            return None;
        }
        let n: u64 = p.parse().ok()?;
        if i > 0 && n >= 60 {
            return None;
        }
        secs = secs * 60 + n;
    }
    Some(Duration::from_secs(secs))
}

fn find_audio(listing: &Listing) -> Option<String> {
    let mut names: Vec<&String> = listing
        .entries
        .iter()
        .map(|(name, _)| name)
        .filter(|n| {
            Path::new(n)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    names.sort();
    names.first().map(|n| (*n).clone())
}

/// An episode folder's entries, read once per parse: finding the audio, checking for optional
/// files and resolving plain file names need no further system calls (a large catalog spends its
/// start in them).
pub(super) struct Listing {
    /// Name, and whether it is a regular file (not a symlink) in a folder that is not a symlink.
    entries: Vec<(String, bool)>,
}

impl Listing {
    fn read(folder: &Path) -> Listing {
        let real_folder = std::fs::symlink_metadata(folder).is_ok_and(|m| m.is_dir());
        let entries = std::fs::read_dir(folder)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| {
                        let plain = real_folder && e.file_type().is_ok_and(|t| t.is_file());
                        (e.file_name().to_string_lossy().into_owned(), plain)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Listing { entries }
    }

    /// Whether `name` exists (following symlinks, like [`Path::exists`]).
    fn exists(&self, folder: &Path, name: &str) -> bool {
        self.entries
            .iter()
            .any(|(n, plain)| n == name && (*plain || folder.join(name).exists()))
    }

    /// Whether the folder has an entry called `name`, of any type.
    fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// `name` is a regular file directly in the folder, so its path needs no resolving.
    fn is_plain_file(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, plain)| n == name && *plain)
    }
}

fn guests(f: &mut Fields) -> Vec<Guest> {
    let tables = f.tables("guests");
    let mut out = Vec::new();
    for (i, t) in tables.into_iter().enumerate() {
        let mut g = Fields::new(f.file, t, format!("guests[{i}]."), f.problems);
        let name = g.req_text("name", "\"Eric Pisconski\"");
        let role = g.opt_str("role").map(strip_controls);
        let affiliation = g.opt_str("affiliation").map(strip_controls);
        let link = g.opt_str("link");
        let image = g.opt_str("image");
        for (key, url) in [("link", &link), ("image", &image)] {
            if let Some(u) = url {
                if !is_http_url(u) {
                    g.problem(
                        key,
                        format!("{u:?} is not an http(s) URL"),
                        "write a full URL starting with https://",
                    );
                }
            }
        }
        g.finish(&[]);
        if let Some(name) = name {
            out.push(Guest {
                name,
                role,
                affiliation,
                link,
                image,
            });
        }
    }
    out
}

pub(super) fn resources(f: &mut Fields) -> Vec<Resource> {
    let tables = f.tables("resources");
    let mut out = Vec::new();
    for (i, t) in tables.into_iter().enumerate() {
        let mut r = Fields::new(f.file, t, format!("resources[{i}]."), f.problems);
        let title = r.req_text("title", "\"ICAT Training Guide\"");
        let url = r.req_str("url", "\"https://www.policeforum.org/\"");
        let note = r.opt_str("note").map(strip_controls);
        if let Some(u) = &url {
            if !is_http_url(u) {
                r.problem(
                    "url",
                    format!("{u:?} is not an http(s) URL"),
                    "write a full URL starting with https://",
                );
            }
        }
        r.finish(&[]);
        if let (Some(title), Some(url)) = (title, url) {
            out.push(Resource { title, url, note });
        }
    }
    out
}

pub(super) fn is_http_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() > 8
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Measures a file named by `field` and builds its [`Asset`]. Returns the measured duration for audio.
fn asset(
    ctx: &Ctx,
    slug: &str,
    file: &str,
    field: &str,
    name: &str,
    audio: bool,
    problems: &mut Vec<Problem>,
) -> Option<(Asset, Option<Duration>)> {
    let folder = ctx.root.join(slug);
    let plain = ctx.listing.is_some_and(|l| l.is_plain_file(name));
    let resolved = if plain {
        Ok(folder.join(name))
    } else {
        resolve_inside(ctx.root, &folder, name)
    };
    let path = match resolved {
        Ok(p) => p,
        Err(what) => {
            problems.push(Problem::new(
                file,
                field,
                what,
                "put the file in the episode folder and name it here",
            ));
            return None;
        }
    };
    if audio {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !AUDIO_EXTENSIONS.contains(&ext.as_str()) {
            problems.push(Problem::new(
                file,
                field,
                format!("{name:?} is not a supported audio type"),
                format!("use one of: {}", AUDIO_EXTENSIONS.join(", ")),
            ));
            return None;
        }
    }
    let facts = match ctx.cache.measure(&path, audio) {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem::new(
                &display_path(ctx.display_root, &format!("{slug}/{name}")),
                field,
                e.to_string(),
                if audio {
                    "re-encode it as MP3 or M4A (for example with ffmpeg)"
                } else {
                    "check the file"
                },
            ));
            return None;
        }
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let file_name = match field {
        "audio" => format!("{slug}.{ext}"),
        _ => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let url_path = format!("/media/{slug}/{}/{file_name}", facts.version());
    Some((
        Asset {
            mime: mime_for(&path),
            path,
            url_path,
            file_name,
            size: facts.size,
            modified: facts.modified,
            etag: facts.etag(),
        },
        facts.duration,
    ))
}

/// Chapters follow the Podcast Namespace JSON chapters format: `{"version": "1.2.0", "chapters": [...]}`
/// with a numeric `startTime` on each chapter.
fn check_chapters(path: &Path, ctx: &Ctx, slug: &str, problems: &mut Vec<Problem>) {
    let file = display_path(ctx.display_root, &format!("{slug}/chapters.json"));
    let fix = "see the Podcast Namespace JSON chapters format in docs/catalog.md";
    let value: serde_json::Value = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::new(
                &file,
                "(file)",
                format!("is not valid JSON ({e})"),
                fix,
            ));
            return;
        }
    };
    if value.get("version").and_then(|v| v.as_str()).is_none() {
        problems.push(Problem::new(
            &file,
            "version",
            "is missing",
            "add \"version\": \"1.2.0\"",
        ));
    }
    match value.get("chapters").and_then(|c| c.as_array()) {
        None => problems.push(Problem::new(
            &file,
            "chapters",
            "is missing or not a list",
            fix,
        )),
        Some(list) => {
            for (i, ch) in list.iter().enumerate() {
                if ch.get("startTime").and_then(|t| t.as_f64()).is_none() {
                    problems.push(Problem::new(
                        &file,
                        format!("chapters[{i}].startTime"),
                        "is missing or not a number of seconds",
                        "add \"startTime\": 0",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_durations_parse() {
        assert_eq!(parse_clock("960"), Some(Duration::from_secs(960)));
        assert_eq!(parse_clock("16:00"), Some(Duration::from_secs(960)));
        assert_eq!(parse_clock("1:02:03"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_clock("1:60"), None);
        assert_eq!(parse_clock("a:b"), None);
        assert_eq!(parse_clock("1:2:3:4"), None);
        assert_eq!(parse_clock(""), None);
    }

    #[test]
    fn http_urls_only() {
        assert!(is_http_url("https://www.theiacp.org/"));
        assert!(!is_http_url("javascript:alert(1)"));
        assert!(!is_http_url("https://a b"));
    }
}
