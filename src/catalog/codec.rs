//! A compact binary form of the loaded catalog's types, for the caches a start reads from
//! `state_dir` instead of doing the work again (the parsed episodes here, the rendered feed items
//! in `render`), and for the keys those caches are looked up by.
//!
//! [`Encode`] writes a value unambiguously (strings and lists with their lengths, options with a
//! tag) into a [`Sink`]: a file's buffer, or a hash for a key. The catalog types destructure
//! every field, so a field added to them does not compile until it is encoded, and so until it
//! is part of every key. [`Decode`] reads the same form back and refuses anything else.
//!
//! A cache file is the file's kind (its first line), this build's identity, the records, and a
//! CRC-32 of all of it ([`write_checked`], [`read_checked`]). A file from another build is
//! ignored (the program that wrote it may have parsed or rendered differently); one that is
//! short or fails its CRC is ignored as damaged. Either way the start does the work itself and
//! writes the file again; a cache never fails a start. Files are written to a temporary file and
//! renamed, so a crash while writing leaves the old one. The CRC guards against damage, not
//! against someone who can write to `state_dir`, who could change the database as well.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};

use super::{Asset, Episode, EpisodeType, Guest, Resource};

/// Where encoded bytes go.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

pub trait Encode {
    fn encode(&self, out: &mut impl Sink);
}

pub trait Decode: Sized {
    fn decode(r: &mut Reader) -> Result<Self, Damaged>;
}

/// Where a cache file stopped making sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged(pub &'static str);

/// Reads encoded values from a buffer; byte strings are slices of it, not copies.
pub struct Reader {
    bytes: Bytes,
    at: usize,
}

impl Reader {
    pub fn new(bytes: Bytes) -> Reader {
        Reader { bytes, at: 0 }
    }

    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<Bytes, Damaged> {
        if self.remaining() < n {
            return Err(Damaged("it ends inside a record"));
        }
        let b = self.bytes.slice(self.at..self.at + n);
        self.at += n;
        Ok(b)
    }

    pub fn array(&mut self) -> Result<[u8; 32], Damaged> {
        Ok(self.take(32)?[..].try_into().expect("32 bytes"))
    }

    pub fn u8(&mut self) -> Result<u8, Damaged> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, Damaged> {
        Ok(u64::from_le_bytes(
            self.take(8)?[..].try_into().expect("8 bytes"),
        ))
    }

    /// A length-prefixed byte string, as [`put_bytes`] writes it.
    pub fn bytes(&mut self) -> Result<Bytes, Damaged> {
        let len = usize::try_from(self.u64()?).map_err(|_| Damaged("a length is too large"))?;
        self.take(len)
    }

    /// A count of records to follow, each at least `min_size` bytes: bounded by what is left,
    /// so a damaged count cannot make the caller reserve memory for it.
    pub fn count(&mut self, min_size: usize) -> Result<usize, Damaged> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() / min_size.max(1) => Ok(n),
            _ => Err(Damaged("a count is larger than the file")),
        }
    }
}

/// Writes a length-prefixed byte string.
pub fn put_bytes(out: &mut impl Sink, bytes: &[u8]) {
    out.put(&(bytes.len() as u64).to_le_bytes());
    out.put(bytes);
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, out: &mut impl Sink) {
        (**self).encode(out);
    }
}

impl Encode for str {
    fn encode(&self, out: &mut impl Sink) {
        put_bytes(out, self.as_bytes());
    }
}

impl Encode for String {
    fn encode(&self, out: &mut impl Sink) {
        self.as_str().encode(out);
    }
}

impl Decode for String {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        let b = r.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| Damaged("a string is not UTF-8"))
    }
}

impl Encode for u64 {
    fn encode(&self, out: &mut impl Sink) {
        out.put(&self.to_le_bytes());
    }
}

impl Decode for u64 {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        r.u64()
    }
}

impl Encode for bool {
    fn encode(&self, out: &mut impl Sink) {
        out.put(&[u8::from(*self)]);
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Damaged("a flag is neither 0 nor 1")),
        }
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut impl Sink) {
        match self {
            None => out.put(&[0]),
            Some(v) => {
                out.put(&[1]);
                v.encode(out);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(r)?)),
            _ => Err(Damaged("an option's tag is neither 0 nor 1")),
        }
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, out: &mut impl Sink) {
        (self.len() as u64).encode(out);
        for v in self {
            v.encode(out);
        }
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut impl Sink) {
        self.as_slice().encode(out);
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        let n = r.count(1)?;
        (0..n).map(|_| T::decode(r)).collect()
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut impl Sink) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        Ok((A::decode(r)?, B::decode(r)?))
    }
}

impl Encode for Duration {
    fn encode(&self, out: &mut impl Sink) {
        self.as_secs().encode(out);
        u64::from(self.subsec_nanos()).encode(out);
    }
}

impl Decode for Duration {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        let secs = r.u64()?;
        let nanos = u32::try_from(r.u64()?)
            .ok()
            .filter(|&n| n < 1_000_000_000)
            .ok_or(Damaged("a duration's nanoseconds are out of range"))?;
        Ok(Duration::new(secs, nanos))
    }
}

impl Encode for SystemTime {
    fn encode(&self, out: &mut impl Sink) {
        match self.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => {
                out.put(&[0]);
                d.encode(out);
            }
            Err(e) => {
                out.put(&[1]);
                e.duration().encode(out);
            }
        }
    }
}

impl Decode for SystemTime {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        let tag = r.u8()?;
        let d = Duration::decode(r)?;
        let t = match tag {
            0 => SystemTime::UNIX_EPOCH.checked_add(d),
            1 => SystemTime::UNIX_EPOCH.checked_sub(d),
            _ => None,
        };
        t.ok_or(Damaged("a time is out of range"))
    }
}

impl Encode for PathBuf {
    fn encode(&self, out: &mut impl Sink) {
        put_bytes(out, self.as_os_str().as_encoded_bytes());
    }
}

impl Decode for PathBuf {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        // Paths are written by this program on this platform, where a path is any bytes.
        use std::os::unix::ffi::OsStringExt;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(
            r.bytes()?.to_vec(),
        )))
    }
}

impl Encode for DateTime<FixedOffset> {
    fn encode(&self, out: &mut impl Sink) {
        // The instant and the offset: the feed writes the date in its own offset.
        (self.timestamp() as u64).encode(out);
        u64::from(self.timestamp_subsec_nanos()).encode(out);
        (i64::from(self.offset().local_minus_utc()) as u64).encode(out);
    }
}

impl Decode for DateTime<FixedOffset> {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        let secs = r.u64()? as i64;
        let nanos = u32::try_from(r.u64()?).ok();
        let offset = i32::try_from(r.u64()? as i64)
            .ok()
            .and_then(FixedOffset::east_opt);
        nanos
            .zip(offset)
            .and_then(|(nanos, offset)| {
                DateTime::from_timestamp(secs, nanos).map(|t| t.with_timezone(&offset))
            })
            .ok_or(Damaged("a date is out of range"))
    }
}

impl Encode for EpisodeType {
    fn encode(&self, out: &mut impl Sink) {
        self.as_str().encode(out);
    }
}

impl Decode for EpisodeType {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        match &*r.bytes()? {
            b"full" => Ok(EpisodeType::Full),
            b"trailer" => Ok(EpisodeType::Trailer),
            b"bonus" => Ok(EpisodeType::Bonus),
            _ => Err(Damaged("an episode type is unknown")),
        }
    }
}

impl Encode for Guest {
    fn encode(&self, out: &mut impl Sink) {
        let Guest {
            name,
            role,
            affiliation,
            link,
            image,
        } = self;
        name.encode(out);
        role.encode(out);
        affiliation.encode(out);
        link.encode(out);
        image.encode(out);
    }
}

impl Decode for Guest {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        Ok(Guest {
            name: Decode::decode(r)?,
            role: Decode::decode(r)?,
            affiliation: Decode::decode(r)?,
            link: Decode::decode(r)?,
            image: Decode::decode(r)?,
        })
    }
}

impl Encode for Resource {
    fn encode(&self, out: &mut impl Sink) {
        let Resource { title, url, note } = self;
        title.encode(out);
        url.encode(out);
        note.encode(out);
    }
}

impl Decode for Resource {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        Ok(Resource {
            title: Decode::decode(r)?,
            url: Decode::decode(r)?,
            note: Decode::decode(r)?,
        })
    }
}

impl Encode for Asset {
    fn encode(&self, out: &mut impl Sink) {
        let Asset {
            path,
            url_path,
            file_name,
            size,
            modified,
            etag,
            mime,
        } = self;
        path.encode(out);
        url_path.encode(out);
        file_name.encode(out);
        size.encode(out);
        modified.encode(out);
        etag.encode(out);
        mime.encode(out);
    }
}

impl Decode for Asset {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        Ok(Asset {
            path: Decode::decode(r)?,
            url_path: Decode::decode(r)?,
            file_name: Decode::decode(r)?,
            size: Decode::decode(r)?,
            modified: Decode::decode(r)?,
            etag: Decode::decode(r)?,
            mime: Decode::decode(r)?,
        })
    }
}

impl Encode for Episode {
    fn encode(&self, out: &mut impl Sink) {
        let Episode {
            slug,
            guid,
            title,
            published,
            summary,
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
            transcript,
            chapters,
            image,
        } = self;
        slug.encode(out);
        guid.encode(out);
        title.encode(out);
        published.encode(out);
        summary.encode(out);
        notes_markdown.encode(out);
        guests.encode(out);
        resources.encode(out);
        feeds.encode(out);
        explicit.encode(out);
        unpublished.encode(out);
        episode_type.encode(out);
        season.encode(out);
        number.encode(out);
        audio.encode(out);
        duration.encode(out);
        transcript.encode(out);
        chapters.encode(out);
        image.encode(out);
    }
}

impl Decode for Episode {
    fn decode(r: &mut Reader) -> Result<Self, Damaged> {
        // Fields in the order `encode` writes them (struct expressions evaluate in order).
        Ok(Episode {
            slug: Decode::decode(r)?,
            guid: Decode::decode(r)?,
            title: Decode::decode(r)?,
            published: Decode::decode(r)?,
            summary: Decode::decode(r)?,
            notes_markdown: Decode::decode(r)?,
            guests: Decode::decode(r)?,
            resources: Decode::decode(r)?,
            feeds: Decode::decode(r)?,
            explicit: Decode::decode(r)?,
            unpublished: Decode::decode(r)?,
            episode_type: Decode::decode(r)?,
            season: Decode::decode(r)?,
            number: Decode::decode(r)?,
            audio: Decode::decode(r)?,
            duration: Decode::decode(r)?,
            transcript: Decode::decode(r)?,
            chapters: Decode::decode(r)?,
            image: Decode::decode(r)?,
        })
    }
}

/// This build: the version, and the executable's size and modification time when they can be
/// read (a rebuilt binary gets new ones). Without them, a random value: nothing saved by another
/// process is used.
pub fn build_id() -> &'static [u8] {
    static ID: OnceLock<Vec<u8>> = OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::env::current_exe()
            .and_then(std::fs::metadata)
            .and_then(|m| Ok((m.len(), m.modified()?)));
        let mut id = format!("rollcall {}\n", env!("CARGO_PKG_VERSION")).into_bytes();
        match exe {
            Ok((len, modified)) => {
                let since = modified
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                id.extend_from_slice(format!("{len} {}\n", since.as_nanos()).as_bytes());
            }
            Err(_) => {
                let mut noise = [0u8; 16];
                getrandom::fill(&mut noise).expect("random source");
                id.extend_from_slice(&noise);
            }
        }
        id
    })
}

/// How a start used a cache file: for its log line, and to decide whether to write it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reuse {
    /// Records the file held.
    pub saved: usize,
    /// Of those, the ones used.
    pub taken: usize,
    /// Records made afresh (rendered, or parsed) because nothing saved matched.
    pub made: usize,
}

impl Reuse {
    /// Whether the file no longer says exactly what is in memory.
    pub fn needs_saving(&self) -> bool {
        self.made > 0 || self.taken < self.saved
    }
}

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheFileError {
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("is not a Rollcall cache of this kind")]
    Kind,
    #[error("was written by another build of Rollcall; it will be written again")]
    OtherBuild,
    #[error("is damaged ({}); it will be written again", .0 .0)]
    Damaged(Damaged),
}

impl From<Damaged> for CacheFileError {
    fn from(d: Damaged) -> Self {
        CacheFileError::Damaged(d)
    }
}

impl CacheFileError {
    /// Another build's file is expected after an upgrade; the rest deserve a warning.
    pub fn is_expected(&self) -> bool {
        matches!(self, CacheFileError::OtherBuild)
    }
}

/// The records of the cache file at `path` of kind `kind` (its first line) written by this
/// build, checked. `None`: there is no file.
pub fn read_checked(path: &Path, kind: &[u8]) -> Result<Option<Reader>, CacheFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => Bytes::from(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    parse_checked(bytes, kind, build_id()).map(Some)
}

fn parse_checked(bytes: Bytes, kind: &[u8], build: &[u8]) -> Result<Reader, CacheFileError> {
    if !bytes.starts_with(kind) {
        return Err(CacheFileError::Kind);
    }
    if bytes.len() < kind.len() + 4 {
        return Err(Damaged("it is too short").into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(Damaged("its checksum does not match").into());
    }
    let mut r = Reader::new(bytes.slice(kind.len()..body.len()));
    if r.bytes()? != build {
        return Err(CacheFileError::OtherBuild);
    }
    Ok(r)
}

/// Writes a cache file of kind `kind`: `records` fills the buffer after the header, and the
/// file goes to a temporary name (this process's) in the same folder, then is renamed.
pub fn write_checked(
    path: &Path,
    kind: &[u8],
    records: impl FnOnce(&mut Vec<u8>),
) -> std::io::Result<()> {
    let mut buf = Vec::from(kind);
    put_bytes(&mut buf, build_id());
    records(&mut buf);
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    // Two servers sharing a `state_dir` (a mistake, but a possible one) each write their own
    // temporary file, and the last rename wins whole.
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    remove_abandoned(path);
    let result = (|| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&buf)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes temporary files of `path` left by processes that are gone (a server stopped while it
/// wrote its caches): at 100,000 episodes each is hundreds of MB. A file whose process still
/// runs is left alone.
fn remove_abandoned(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stem = format!("{name}.tmp.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&stem))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The key of a value for this build: SHA-256 of the build's identity and the value's encoding.
pub fn key(value: &impl Encode) -> [u8; 32] {
    let mut h = Sha256::new();
    put_bytes(&mut h, build_id());
    value.encode(&mut h);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> super::super::Catalog {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let source = super::super::Source {
            episodes_dir: root.join("episodes"),
            feeds_dir: root.join("feeds"),
            public_url: "http://a".into(),
            measure_cache: None,
            items_cache: None,
            episodes_cache: None,
            site: Default::default(),
        };
        super::super::load(&source, &super::super::MeasureCache::default()).unwrap()
    }

    #[test]
    fn every_demo_episode_decodes_to_itself() {
        let catalog = demo();
        for ep in &catalog.episodes {
            let mut buf = Vec::new();
            ep.encode(&mut buf);
            let mut r = Reader::new(Bytes::from(buf));
            assert_eq!(Episode::decode(&mut r).unwrap(), **ep);
            assert!(r.is_done());
        }
    }

    #[test]
    fn the_key_changes_with_any_field() {
        let ep = &*demo().episodes[0];
        let k = |e: &Episode| key(&("http://a", e));
        assert_eq!(k(ep), k(ep));
        assert_ne!(key(&("http://a", ep)), key(&("http://b", ep)));
        let mut changed = ep.clone();
        changed.title.push('!');
        assert_ne!(k(ep), k(&changed));
        let mut changed = ep.clone();
        changed.audio.etag.push('x');
        assert_ne!(k(ep), k(&changed));
        // The same instant in another offset is written differently, so it is another key.
        let mut changed = ep.clone();
        changed.published = ep
            .published
            .with_timezone(&FixedOffset::east_opt(3600).unwrap());
        assert_eq!(changed.published, ep.published);
        assert_ne!(k(ep), k(&changed));
        // Text moved from one field to the next is another key.
        let (mut a, mut b) = (ep.clone(), ep.clone());
        (a.title, a.summary) = ("ab".into(), "c".into());
        (b.title, b.summary) = ("a".into(), "bc".into());
        assert_ne!(k(&a), k(&b));
    }

    #[test]
    fn a_checked_file_refuses_any_damage_and_other_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cache");
        write_checked(&path, b"rollcall test 1\n", |out| {
            "hello".encode(out);
            7u64.encode(out);
        })
        .unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temporary file was renamed");
        // A temporary file of a process that is gone is removed by the next write; one of a
        // running process (pid 1 always runs) or of another file is not.
        let gone = dir.path().join("x.cache.tmp.4294967295");
        let live = dir.path().join("x.cache.tmp.1");
        let other = dir.path().join("y.cache.tmp.4294967295");
        for f in [&gone, &live, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        write_checked(&path, b"rollcall test 1\n", |out| {
            "hello".encode(out);
            7u64.encode(out);
        })
        .unwrap();
        assert!(!gone.exists(), "an abandoned temporary file was kept");
        assert!(live.exists() && other.exists());
        let mut r = read_checked(&path, b"rollcall test 1\n").unwrap().unwrap();
        assert_eq!(String::decode(&mut r).unwrap(), "hello");
        assert_eq!(r.u64().unwrap(), 7);
        assert!(r.is_done());
        assert!(read_checked(&dir.path().join("none"), b"rollcall test 1\n")
            .unwrap()
            .is_none());
        assert!(matches!(
            read_checked(&path, b"rollcall other 1\n"),
            Err(CacheFileError::Kind)
        ));
        let good = std::fs::read(&path).unwrap();
        let kind = b"rollcall test 1\n";
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert!(
                parse_checked(Bytes::from(bad), kind, build_id()).is_err(),
                "flip at {i}"
            );
            assert!(
                parse_checked(Bytes::copy_from_slice(&good[..i]), kind, build_id()).is_err(),
                "cut at {i}"
            );
        }
        assert!(matches!(
            parse_checked(Bytes::from(good), kind, b"another build"),
            Err(CacheFileError::OtherBuild)
        ));
    }
}
