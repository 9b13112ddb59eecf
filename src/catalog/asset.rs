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
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

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
pub const AUDIO_EXTENSIONS: &[&str] = &["mp3", "m4a", "m4b", "ogg", "oga", "opus"];

/// Caches [`FileFacts`] across catalog reloads, keyed by path, size and modification time.
#[derive(Debug, Default)]
pub struct MeasureCache {
    entries: Mutex<HashMap<PathBuf, FileFacts>>,
}

impl MeasureCache {
    /// Measures `path`, reusing an earlier result when the file's size and mtime are unchanged.
    pub fn measure(&self, path: &Path, audio: bool) -> Result<FileFacts, MeasureError> {
        let meta = std::fs::metadata(path)?;
        let (size, modified) = (meta.len(), meta.modified()?);
        if let Some(hit) = self.entries.lock().expect("cache lock").get(path) {
            if hit.size == size && hit.modified == modified && (hit.duration.is_some() || !audio) {
                return Ok(hit.clone());
            }
        }
        let facts = FileFacts {
            size,
            modified,
            sha256: sha256_file(path)?,
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
        Ok(facts)
    }
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
    fn podcast_app_mime_overrides() {
        assert_eq!(mime_for(Path::new("a.m4a")), "audio/mp4");
        assert_eq!(mime_for(Path::new("a.M4B")), "audio/mp4");
        assert_eq!(mime_for(Path::new("a.opus")), "audio/ogg");
        assert_eq!(mime_for(Path::new("a.mp3")), "audio/mpeg");
        assert_eq!(mime_for(Path::new("a.vtt")), "text/vtt");
        assert_eq!(mime_for(Path::new("a.jpg")), "image/jpeg");
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
