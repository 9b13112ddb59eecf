//! Facts about the files a catalog serves: size, type, content version and, for audio, duration.
//!
//! Every fact is measured from the file itself, never taken from the author. The content version is the
//! start of the file's SHA-256, so it is the same on every machine and every checkout, and it changes
//! exactly when the bytes change. It goes into the public URL and the strong ETag, so a replaced file
//! gets a new URL and an old URL can never serve new bytes.
//!
//! Measuring reads the whole file, so results are cached by path, size and modification time;
//! reloading an unchanged catalog measures nothing again.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::codec::{self, CacheFileError, Damaged, Decode, Encode, Reuse, Sink};
use super::Episode;

/// One file the server can send, as measured when the catalog was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Absolute path on disk, inside the catalog.
    pub path: PathBuf,
    /// The URL path it is served at, for example `/media/<slug>/<version>/<slug>.mp3`.
    pub url_path: String,
    /// The file name used in `Content-Disposition` for downloads.
    pub file_name: String,
    pub size: u64,
    pub modified: SystemTime,
    /// Strong entity tag, quoted: `"<32 hex digits of SHA-256>"`.
    pub etag: String,
    pub mime: String,
}

/// What measuring a file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    pub modified: SystemTime,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// For audio: the measured duration.
    pub duration: Option<Duration>,
}

impl FileFacts {
    /// Short content version used in URLs.
    pub fn version(&self) -> &str {
        &self.sha256[..12]
    }

    pub fn etag(&self) -> String {
        format!("\"{}\"", &self.sha256[..32])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a readable audio file ({0})")]
    Audio(String),
    #[error("the audio has no track")]
    NoTrack,
}

/// The MIME type for a file name. Podcast apps need `audio/mp4` for AAC in MP4 and `audio/ogg` for Opus,
/// which differ from mime_guess's answers.
pub fn mime_for(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "m4a" | "m4b" => "audio/mp4".into(),
        "opus" | "ogg" | "oga" => "audio/ogg".into(),
        "mp3" => "audio/mpeg".into(),
        "flac" => "audio/flac".into(),
        "vtt" => "text/vtt".into(),
        "srt" => "application/x-subrip".into(),
        "json" => "application/json".into(),
        _ => mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_owned(),
    }
}

/// Audio file extensions the catalog accepts.
pub const AUDIO_EXTENSIONS: &[&str] = &["mp3", "m4a", "m4b", "ogg", "oga", "opus", "flac"];

/// Caches [`FileFacts`] across catalog reloads and restarts, keyed by path, size and modification
/// time. Without it every start would hash and scan every audio file again.
///
/// It also remembers each parsed episode with the size and mtime of every file it was built from
/// (and its folder's mtime, which changes when files are added or removed), so a reload re-reads
/// only the episodes that changed. That part lives in memory only.
#[derive(Debug, Default)]
pub struct MeasureCache {
    entries: Mutex<HashMap<PathBuf, FileFacts>>,
    dirty: std::sync::atomic::AtomicBool,
    parsed: Mutex<HashMap<String, Parsed>>,
    /// Parsed episodes read from the file an earlier start saved, and since then, how many
    /// parses were reused and how many made.
    parsed_loaded: AtomicUsize,
    parsed_reused: AtomicUsize,
    parsed_made: AtomicUsize,
}

/// The parsed-episodes file's first line; a new layout gets a new number.
const PARSED_KIND: &[u8] = b"rollcall episodes 1\n";
/// No saved episode takes fewer bytes: a slug, its inputs, a flag and the episode's own fields.
const PARSED_MIN_RECORD: usize = 64;

/// A parsed episode and the stamps of the files it was built from.
/// The bool says whether every input is a regular file directly in the episode folder (no
/// symlinks), so that the watcher's events on the folder cover all of them.
type Parsed = (Arc<Inputs>, Arc<Episode>, bool);

/// Size and modification time of a file, to notice changes without reading it.
type Stamp = (u64, SystemTime);

/// The size `inputs` (from [`MeasureCache::stamp_folder`]) stamped for `path`, if its `stat`
/// succeeded.
pub(super) fn stamped_size(inputs: &Inputs, path: &Path) -> Option<u64> {
    inputs
        .iter()
        .find(|(p, _)| p == path)
        .and_then(|(_, s)| s.map(|(len, _)| len))
}

/// Reads a text file whose size a `stat` just gave, with one `read` instead of the `fstat`,
/// `read` and end-of-file probe of [`std::fs::read_to_string`] (a large catalog's start is made
/// of these calls). Bytes written after the `stat` are left for the next reload, which sees the
/// changed stamp; a file that shrank is read to its end.
pub(super) fn read_stamped(path: &Path, size: u64) -> std::io::Result<String> {
    use std::io::Read;
    let Some(size) = usize::try_from(size).ok().filter(|&n| n <= 1 << 24) else {
        return std::fs::read_to_string(path);
    };
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; size];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    String::from_utf8(buf).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Stamps of an episode's inputs, starting with its folder.
pub(super) type Inputs = Vec<(PathBuf, Option<Stamp>)>;

impl MeasureCache {
    /// Reads a cache saved by [`MeasureCache::save`]. A missing or unreadable file gives an empty
    /// cache, and a malformed line is skipped: the worst outcome is measuring again.
    pub fn load(path: &Path) -> MeasureCache {
        let cache = MeasureCache::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return cache;
        };
        let mut entries = cache.entries.lock().expect("cache lock");
        for line in text.lines() {
            if let Some((path, facts)) = parse_line(line) {
                entries.insert(path, facts);
            }
        }
        drop(entries);
        cache
    }

    /// Writes the cache atomically (temporary file, then rename) if anything was measured since the
    /// last save.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let mut out =
            String::from("# rollcall measurements v1: path size mtime_ns sha256 duration_ns\n");
        {
            let entries = self.entries.lock().expect("cache lock");
            let mut paths: Vec<&PathBuf> = entries.keys().collect();
            paths.sort();
            for p in paths {
                let f = &entries[p];
                let Some(path) = p.to_str().filter(|s| !s.contains(['\t', '\n'])) else {
                    continue;
                };
                let mtime = f
                    .modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let duration = f
                    .duration
                    .map_or("-".to_owned(), |d| d.as_nanos().to_string());
                out.push_str(&format!(
                    "{path}\t{}\t{mtime}\t{}\t{duration}\n",
                    f.size, f.sha256
                ));
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tsv.tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, path)
    }

    /// Measures `path`, reusing an earlier result when the file's size and mtime are unchanged.
    pub fn measure(&self, path: &Path, audio: bool) -> Result<FileFacts, MeasureError> {
        let meta = std::fs::metadata(path)?;
        let (size, modified) = (meta.len(), meta.modified()?);
        let mut known_hash = None;
        if let Some(hit) = self.entries.lock().expect("cache lock").get(path) {
            if hit.size == size && hit.modified == modified {
                if hit.duration.is_some() || !audio {
                    return Ok(hit.clone());
                }
                // Hashed already (while it was uploaded): only the duration is missing.
                known_hash = Some(hit.sha256.clone());
            }
        }
        let sha256 = match known_hash {
            Some(h) => h,
            None => sha256_file(path)?,
        };
        let facts = FileFacts {
            size,
            modified,
            sha256,
            duration: if audio {
                Some(measure_duration(path)?)
            } else {
                None
            },
        };
        self.entries
            .lock()
            .expect("cache lock")
            .insert(path.to_owned(), facts.clone());
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(facts)
    }
}

impl MeasureCache {
    /// Records the SHA-256 of a file that was hashed as it was written, so measuring it reads
    /// it only for its duration.
    pub fn seed_hash(&self, path: &Path, sha256: &str) -> std::io::Result<()> {
        let meta = std::fs::metadata(path)?;
        let facts = FileFacts {
            size: meta.len(),
            modified: meta.modified()?,
            sha256: sha256.to_owned(),
            duration: None,
        };
        self.entries
            .lock()
            .expect("cache lock")
            .insert(path.to_owned(), facts);
        Ok(())
    }

    /// Carries the measurements of every file under `from` over to the same name under `to`,
    /// after the folder was renamed (a rename keeps size and mtime).
    pub fn moved(&self, from: &Path, to: &Path) {
        let mut entries = self.entries.lock().expect("cache lock");
        let under: Vec<PathBuf> = entries
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for old in under {
            if let (Some(facts), Ok(rest)) = (entries.remove(&old), old.strip_prefix(from)) {
                entries.insert(to.join(rest), facts);
            }
        }
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The episode parsed earlier from `folder`, if none of its inputs changed since. With
    /// `trusted` (the file watcher saw no change in the folder) an episode whose inputs all live
    /// in its folder is returned without checking them.
    pub(super) fn parsed_episode(
        &self,
        slug: &str,
        folder: &Path,
        trusted: bool,
    ) -> Option<Arc<Episode>> {
        // Stat outside the lock: the loader threads look up episodes concurrently.
        let (inputs, ep, contained) = self.parsed.lock().expect("cache lock").get(slug)?.clone();
        let same_folder = inputs.first().is_some_and(|(p, _)| p == folder);
        let unchanged = same_folder
            && ((trusted && contained) || inputs.iter().all(|(path, was)| stamp(path) == *was));
        if unchanged {
            self.parsed_reused.fetch_add(1, Ordering::Relaxed);
        }
        unchanged.then_some(ep)
    }

    /// Reads the episodes an earlier start parsed (see [`MeasureCache::save_parsed`]) into the
    /// parse cache, so this start reads and parses again only the folders whose files changed:
    /// each of the others costs a `stat` per file. A missing file reads nothing; an unusable
    /// one is an error (the caller logs it) and reads nothing.
    pub fn load_parsed(&self, path: &Path) -> Result<usize, CacheFileError> {
        let Some(mut r) = codec::read_checked(path, PARSED_KIND)? else {
            return Ok(0);
        };
        let count = r.count(PARSED_MIN_RECORD)?;
        let mut parsed = HashMap::with_capacity(count);
        for _ in 0..count {
            let slug = String::decode(&mut r)?;
            let inputs = Inputs::decode(&mut r)?;
            let contained = bool::decode(&mut r)?;
            let ep = Episode::decode(&mut r)?;
            parsed.insert(slug, (Arc::new(inputs), Arc::new(ep), contained));
        }
        if !r.is_done() {
            return Err(Damaged("it has bytes after its last episode").into());
        }
        let n = parsed.len();
        self.parsed.lock().expect("cache lock").extend(parsed);
        self.parsed_loaded.store(n, Ordering::Relaxed);
        Ok(n)
    }

    /// How the parse cache was used since it was made: episodes read from the saved file, and
    /// parses reused and made.
    pub fn parse_reuse(&self) -> Reuse {
        Reuse {
            saved: self.parsed_loaded.load(Ordering::Relaxed),
            taken: self.parsed_reused.load(Ordering::Relaxed),
            made: self.parsed_made.load(Ordering::Relaxed),
        }
    }

    /// Writes the parsed episodes of `slugs` to `path`, for the next start.
    pub fn save_parsed<'a>(
        &self,
        path: &Path,
        slugs: impl Iterator<Item = &'a str>,
    ) -> std::io::Result<usize> {
        let entries: Vec<(String, Parsed)> = {
            let parsed = self.parsed.lock().expect("cache lock");
            slugs
                .filter_map(|s| parsed.get(s).map(|p| (s.to_owned(), p.clone())))
                .collect()
        };
        codec::write_checked(path, PARSED_KIND, |out| {
            out.put(&(entries.len() as u64).to_le_bytes());
            for (slug, (inputs, ep, contained)) in &entries {
                slug.encode(out);
                inputs.encode(out);
                contained.encode(out);
                ep.encode(out);
            }
        })?;
        Ok(entries.len())
    }

    /// Stamps the folder, `episode.toml` and `notes.md`; call before parsing.
    pub(super) fn stamp_folder(&self, folder: &Path) -> Inputs {
        [
            folder.to_owned(),
            folder.join("episode.toml"),
            folder.join("notes.md"),
        ]
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
    }

    /// Remembers a successfully parsed episode with the stamps of its inputs: `inputs` from
    /// [`MeasureCache::stamp_folder`], plus the files it names.
    /// `contained`: every input is a regular file directly in the folder (see [`Parsed`]).
    pub(super) fn remember_episode(
        &self,
        slug: &str,
        mut inputs: Inputs,
        ep: &Arc<Episode>,
        contained: bool,
    ) {
        // Measuring a file stats it, and its facts are that stat's size and mtime (a cached
        // measurement is used only when they match): the stamp needs no second `stat`.
        for a in ep.assets() {
            inputs.push((a.path.clone(), Some((a.size, a.modified))));
        }
        self.parsed_made.fetch_add(1, Ordering::Relaxed);
        self.parsed.lock().expect("cache lock").insert(
            slug.to_owned(),
            (Arc::new(inputs), Arc::clone(ep), contained),
        );
    }
}

fn parse_line(line: &str) -> Option<(PathBuf, FileFacts)> {
    let mut parts = line.split('\t');
    let path = PathBuf::from(parts.next()?);
    let size = parts.next()?.parse().ok()?;
    let mtime: u64 = parts.next()?.parse().ok()?;
    let sha256 = parts.next()?.to_owned();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let duration = match parts.next()? {
        "-" => None,
        n => Some(Duration::from_nanos(n.parse().ok()?)),
    };
    let facts = FileFacts {
        size,
        modified: std::time::UNIX_EPOCH + Duration::from_nanos(mtime),
        sha256,
        duration,
    };
    Some((path, facts))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// What kind of audio a file holds, judged by decoding its headers rather than trusting its
/// name: the file extension it should have (`mp3`, `m4a`, `ogg`, `opus` or `flac`).
pub fn sniff_audio(path: &Path) -> Result<&'static str, MeasureError> {
    use symphonia::core::codecs;
    let file = std::fs::File::open(path)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| MeasureError::Audio(e.to_string()))?;
    let track = probed.format.default_track().ok_or(MeasureError::NoTrack)?;
    match track.codec_params.codec {
        codecs::CODEC_TYPE_MP3 => Ok("mp3"),
        codecs::CODEC_TYPE_AAC | codecs::CODEC_TYPE_ALAC => Ok("m4a"),
        codecs::CODEC_TYPE_OPUS => Ok("opus"),
        codecs::CODEC_TYPE_VORBIS => Ok("ogg"),
        codecs::CODEC_TYPE_FLAC => Ok("flac"),
        other => Err(MeasureError::Audio(format!(
            "codec {other} is not one podcast apps play"
        ))),
    }
}

/// Measures the playing time of an audio file.
///
/// MP4 files state their duration exactly in the movie header, so that is used. For MP3 and Ogg the
/// headers can lie or be missing (VBR without a Xing header), so every packet is counted instead.
pub fn measure_duration(path: &Path) -> Result<Duration, MeasureError> {
    let file = std::fs::File::open(path)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    hint.with_extension(&ext);
    let audio_err = |e: SymphoniaError| MeasureError::Audio(e.to_string());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(audio_err)?;
    let mut reader = probed.format;
    let track = reader.default_track().ok_or(MeasureError::NoTrack)?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let to_duration = |frames: u64| -> Result<Duration, MeasureError> {
        if let Some(tb) = params.time_base {
            let t = tb.calc_time(frames);
            Ok(Duration::from_secs(t.seconds) + Duration::from_secs_f64(t.frac))
        } else if let Some(rate) = params.sample_rate.filter(|r| *r > 0) {
            Ok(Duration::from_secs_f64(frames as f64 / f64::from(rate)))
        } else {
            Err(MeasureError::Audio("no sample rate or time base".into()))
        }
    };
    if matches!(ext.as_str(), "m4a" | "m4b" | "mp4") {
        if let Some(frames) = params.n_frames {
            return to_duration(frames);
        }
    }
    let mut total = 0u64;
    let mut packets = 0u64;
    loop {
        match reader.next_packet() {
            Ok(packet) if packet.track_id() == track_id => {
                total += packet.dur;
                packets += 1;
            }
            Ok(_) => {}
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(audio_err(e)),
        }
    }
    if packets == 0 {
        return Err(MeasureError::Audio("no audio packets found".into()));
    }
    to_duration(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_reads_take_the_stamped_size_and_survive_a_shrink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("episode.toml");
        std::fs::write(&path, "title = \"Défusing\"\n").unwrap();
        let (size, _) = stamp(&path).unwrap();
        assert_eq!(read_stamped(&path, size).unwrap(), "title = \"Défusing\"\n");
        // Grown after the stamp: the stamped bytes now, the rest on the reload the stamp causes.
        std::fs::write(&path, "title = \"Défusing\"\nsummary = \"x\"\n").unwrap();
        assert_eq!(read_stamped(&path, size).unwrap(), "title = \"Défusing\"\n");
        assert_ne!(stamp(&path).map(|s| s.0), Some(size));
        // Shrunk after the stamp: read to its end, not padded.
        std::fs::write(&path, "a").unwrap();
        assert_eq!(read_stamped(&path, size).unwrap(), "a");
        // Not UTF-8: the same error kind as std's reader.
        std::fs::write(&path, [0xffu8, 0xfe]).unwrap();
        let err = read_stamped(&path, 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn podcast_app_mime_overrides() {
        assert_eq!(mime_for(Path::new("a.m4a")), "audio/mp4");
        assert_eq!(mime_for(Path::new("a.M4B")), "audio/mp4");
        assert_eq!(mime_for(Path::new("a.opus")), "audio/ogg");
        assert_eq!(mime_for(Path::new("a.mp3")), "audio/mpeg");
        assert_eq!(mime_for(Path::new("a.vtt")), "text/vtt");
        assert_eq!(mime_for(Path::new("a.jpg")), "image/jpeg");
    }

    #[test]
    fn the_cache_survives_a_restart_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, b"{}").unwrap();
        let store = dir.path().join("state/measurements.tsv");
        let first = MeasureCache::default();
        let facts = first.measure(&file, false).unwrap();
        first.save(&store).unwrap();
        let again = MeasureCache::load(&store);
        assert_eq!(again.entries.lock().unwrap().get(&file), Some(&facts));
        // A changed file is measured again, not served from the cache.
        std::fs::write(&file, b"{\"changed\": true}").unwrap();
        let changed = again.measure(&file, false).unwrap();
        assert_ne!(changed.sha256, facts.sha256);
        // A corrupt cache file is ignored, not fatal.
        std::fs::write(&store, "garbage\tline\n").unwrap();
        assert!(MeasureCache::load(&store)
            .entries
            .lock()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn garbage_is_not_audio() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mp3");
        std::fs::write(&p, b"this is not an mp3 file at all").unwrap();
        assert!(matches!(
            measure_duration(&p),
            Err(MeasureError::Audio(_)) | Err(MeasureError::NoTrack)
        ));
    }
}
