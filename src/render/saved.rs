//! Rendered feed items saved across starts, so a restart renders and compresses only what
//! changed while the server was down.
//!
//! Rendering a large catalog's items and deflating each after the one before it (see
//! [`super::gzip`]) is most of a start's work: about 4 s of CPU at 100,000 episodes. Both depend
//! only on the episode as loaded and on `public_url`, so the server saves every item it rendered
//! to `items.cache` in `state_dir` after a start, and the next start takes an item from there when
//! its key matches.
//!
//! The key is a SHA-256 of everything the item's bytes depend on: this build of the program (its
//! version and the executable's size and modification time, so a rebuilt binary that renders
//! differently never reuses an older one's bytes), `public_url`, and every field of the loaded
//! episode: titles, notes, guests, resources, and each file's path, size, time and content hash. A changed episode has a new key and is rendered again; an item no episode asks for is
//! dropped when the file is next written.
//!
//! The file is one sequence of records and a CRC-32 of all of it. A file that is short, has the
//! wrong header, or fails its CRC is ignored as a whole, with a warning that names it, and the start
//! renders everything; it never fails a start. It is written to a temporary file and renamed, so a
//! crash while writing leaves the old one. The CRC guards against damage, not against someone who
//! can write to `state_dir`, who could change the database as well.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::catalog::{Asset, Episode, EpisodeType, Guest, Resource};

/// First bytes of the file; a new layout gets a new number.
const MAGIC: &[u8] = b"rollcall items 1\n";
/// At most this many compressed variants per item are saved (the fragment keeps up to four).
const MAX_DEFLATED: usize = 4;

/// An item's deflated variants, each with the hash of the bytes it was compressed after.
pub type Variants = Vec<([u8; 32], Bytes)>;

/// What a start can take instead of rendering: items by key.
#[derive(Debug, Default)]
pub struct Saved {
    items: HashMap<[u8; 32], SavedItem, foldhash::fast::RandomState>,
}

/// One saved item: its XML, that XML's SHA-256, and its deflated variants by predecessor hash.
#[derive(Debug, Clone)]
pub struct SavedItem {
    pub xml: Bytes,
    pub hash: [u8; 32],
    pub deflated: Variants,
}

/// Why a saved file was not used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("is not a Rollcall item cache of this version")]
    Header,
    #[error("is damaged ({0}); it will be written again")]
    Damaged(&'static str),
}

impl Saved {
    /// The items saved at `path`. A missing file is an empty cache; a damaged one is an error,
    /// which the caller logs and then treats as empty.
    pub fn load(path: &Path) -> Result<Saved, LoadError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => Bytes::from(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
            Err(e) => return Err(e.into()),
        };
        Saved::parse(bytes)
    }

    fn parse(bytes: Bytes) -> Result<Saved, LoadError> {
        if !bytes.starts_with(MAGIC) {
            return Err(LoadError::Header);
        }
        if bytes.len() < MAGIC.len() + 8 + 4 {
            return Err(LoadError::Damaged("too short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(LoadError::Damaged("its checksum does not match"));
        }
        let mut r = Reader {
            bytes: bytes.slice(MAGIC.len()..body.len()),
            at: 0,
        };
        let count = r.u64()?;
        let mut items = HashMap::with_capacity_and_hasher(
            usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(r.bytes.len() / 72),
            foldhash::fast::RandomState::default(),
        );
        for _ in 0..count {
            let key = r.array()?;
            let hash = r.array()?;
            let xml = r.bytes()?;
            let n = r.u8()? as usize;
            if n > MAX_DEFLATED {
                return Err(LoadError::Damaged("an item has too many variants"));
            }
            let mut deflated = Vec::with_capacity(n);
            for _ in 0..n {
                let before = r.array()?;
                deflated.push((before, r.bytes()?));
            }
            items.insert(
                key,
                SavedItem {
                    xml,
                    hash,
                    deflated,
                },
            );
        }
        if r.at != r.bytes.len() {
            return Err(LoadError::Damaged("it has bytes after its last item"));
        }
        Ok(Saved { items })
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<&SavedItem> {
        self.items.get(key)
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }
}

/// Writes `items` (key and item) to `path`, through a temporary file in the same folder.
pub fn save<'a>(
    path: &Path,
    items: impl ExactSizeIterator<Item = ([u8; 32], &'a [u8], [u8; 32], Variants)>,
) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut out = CrcWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
        };
        out.write_all(MAGIC)?;
        out.write_all(&(items.len() as u64).to_le_bytes())?;
        for (key, xml, hash, deflated) in items {
            out.write_all(&key)?;
            out.write_all(&hash)?;
            write_bytes(&mut out, xml)?;
            let deflated = &deflated[deflated.len().saturating_sub(MAX_DEFLATED)..];
            out.write_all(&[deflated.len() as u8])?;
            for (before, z) in deflated {
                out.write_all(before)?;
                write_bytes(&mut out, z)?;
            }
        }
        let crc = out.crc.clone().finalize();
        let mut file = out.inner.into_inner().map_err(|e| e.into_error())?;
        file.write_all(&crc.to_le_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The temporary file, named for this process: two servers sharing a `state_dir` (a mistake,
/// but a possible one) each write their own, and the last rename wins whole.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

fn write_bytes(out: &mut impl std::io::Write, b: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(b.len()).map_err(|_| std::io::Error::other("an item over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(b)
}

/// The key of `episode`'s item rendered with `public_url` by this build.
pub fn key(public_url: &str, episode: &Episode) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(build_id());
    public_url.feed(&mut h);
    episode.feed(&mut h);
    h.finalize().into()
}

/// Writes a value into the key's hash unambiguously: strings and lists with their lengths,
/// options with a tag. The catalog types destructure every field, so a field added to them does
/// not compile until it is part of the key.
trait Feed {
    fn feed(&self, h: &mut Sha256);
}

impl Feed for str {
    fn feed(&self, h: &mut Sha256) {
        (self.len() as u64).feed(h);
        h.update(self);
    }
}

impl Feed for String {
    fn feed(&self, h: &mut Sha256) {
        self.as_str().feed(h);
    }
}

impl Feed for u64 {
    fn feed(&self, h: &mut Sha256) {
        h.update(self.to_le_bytes());
    }
}

impl Feed for bool {
    fn feed(&self, h: &mut Sha256) {
        h.update([u8::from(*self)]);
    }
}

impl<T: Feed> Feed for Option<T> {
    fn feed(&self, h: &mut Sha256) {
        match self {
            None => h.update([0]),
            Some(v) => {
                h.update([1]);
                v.feed(h);
            }
        }
    }
}

impl<T: Feed> Feed for [T] {
    fn feed(&self, h: &mut Sha256) {
        (self.len() as u64).feed(h);
        for v in self {
            v.feed(h);
        }
    }
}

impl<T: Feed> Feed for Vec<T> {
    fn feed(&self, h: &mut Sha256) {
        self.as_slice().feed(h);
    }
}

impl Feed for std::time::Duration {
    fn feed(&self, h: &mut Sha256) {
        self.as_secs().feed(h);
        u64::from(self.subsec_nanos()).feed(h);
    }
}

impl Feed for std::time::SystemTime {
    fn feed(&self, h: &mut Sha256) {
        match self.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => {
                h.update([0]);
                d.feed(h);
            }
            Err(e) => {
                h.update([1]);
                e.duration().feed(h);
            }
        }
    }
}

impl Feed for PathBuf {
    fn feed(&self, h: &mut Sha256) {
        let bytes = self.as_os_str().as_encoded_bytes();
        (bytes.len() as u64).feed(h);
        h.update(bytes);
    }
}

impl Feed for chrono::DateTime<chrono::FixedOffset> {
    fn feed(&self, h: &mut Sha256) {
        // The instant and the offset: the feed writes the date in its own offset.
        (self.timestamp() as u64).feed(h);
        u64::from(self.timestamp_subsec_nanos()).feed(h);
        (i64::from(self.offset().local_minus_utc()) as u64).feed(h);
    }
}

impl Feed for EpisodeType {
    fn feed(&self, h: &mut Sha256) {
        self.as_str().feed(h);
    }
}

impl Feed for Guest {
    fn feed(&self, h: &mut Sha256) {
        let Guest {
            name,
            role,
            affiliation,
            link,
            image,
        } = self;
        name.feed(h);
        role.feed(h);
        affiliation.feed(h);
        link.feed(h);
        image.feed(h);
    }
}

impl Feed for Resource {
    fn feed(&self, h: &mut Sha256) {
        let Resource { title, url, note } = self;
        title.feed(h);
        url.feed(h);
        note.feed(h);
    }
}

impl Feed for Asset {
    fn feed(&self, h: &mut Sha256) {
        let Asset {
            path,
            url_path,
            file_name,
            size,
            modified,
            etag,
            mime,
        } = self;
        path.feed(h);
        url_path.feed(h);
        file_name.feed(h);
        size.feed(h);
        modified.feed(h);
        etag.feed(h);
        mime.feed(h);
    }
}

impl Feed for Episode {
    fn feed(&self, h: &mut Sha256) {
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
        slug.feed(h);
        guid.feed(h);
        title.feed(h);
        published.feed(h);
        summary.feed(h);
        notes_markdown.feed(h);
        guests.feed(h);
        resources.feed(h);
        feeds.feed(h);
        explicit.feed(h);
        unpublished.feed(h);
        episode_type.feed(h);
        season.feed(h);
        number.feed(h);
        audio.feed(h);
        duration.feed(h);
        transcript.feed(h);
        chapters.feed(h);
        image.feed(h);
    }
}

/// This build: the version, and the executable's size and modification time when they can be
/// read (a rebuilt binary gets new ones). Without them, a random value: nothing saved by another
/// process is used.
fn build_id() -> &'static [u8] {
    static ID: OnceLock<Vec<u8>> = OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::env::current_exe()
            .and_then(std::fs::metadata)
            .and_then(|m| Ok((m.len(), m.modified()?)));
        let mut id = format!("rollcall {}\n", env!("CARGO_PKG_VERSION")).into_bytes();
        match exe {
            Ok((len, modified)) => {
                let since = modified
                    .duration_since(std::time::UNIX_EPOCH)
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

struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: std::io::Write> std::io::Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Reader {
    bytes: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, LoadError> {
        if self.bytes.len() - self.at < n {
            return Err(LoadError::Damaged("it ends inside an item"));
        }
        let b = self.bytes.slice(self.at..self.at + n);
        self.at += n;
        Ok(b)
    }
    fn array(&mut self) -> Result<[u8; 32], LoadError> {
        Ok(self.take(32)?[..].try_into().expect("32 bytes"))
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(
            self.take(8)?[..].try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<Bytes, LoadError> {
        let len = u32::from_le_bytes(self.take(4)?[..].try_into().expect("4 bytes"));
        self.take(len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Record = ([u8; 32], Vec<u8>, [u8; 32], Variants);

    fn sample() -> Vec<Record> {
        vec![
            ([1; 32], b"<item>one</item>".to_vec(), [2; 32], vec![]),
            (
                [3; 32],
                b"<item>two</item>".to_vec(),
                [4; 32],
                vec![
                    ([5; 32], Bytes::from_static(b"z1")),
                    ([6; 32], Bytes::new()),
                ],
            ),
        ]
    }

    fn write(path: &Path) {
        let items = sample();
        save(
            path,
            items
                .iter()
                .map(|(k, x, h, d)| (*k, &x[..], *h, d.clone()))
                .collect::<Vec<_>>()
                .into_iter(),
        )
        .unwrap();
    }

    #[test]
    fn saved_items_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.cache");
        write(&path);
        assert!(!tmp_path(&path).exists(), "the temporary file was renamed");
        let saved = Saved::load(&path).unwrap();
        assert_eq!(saved.len(), 2);
        let two = saved.get(&[3; 32]).unwrap();
        assert_eq!(&two.xml[..], b"<item>two</item>");
        assert_eq!(two.hash, [4; 32]);
        assert_eq!(two.deflated.len(), 2);
        assert_eq!(
            (two.deflated[0].0, &two.deflated[0].1[..]),
            ([5; 32], &b"z1"[..])
        );
        assert!(saved.get(&[2; 32]).is_none());
    }

    #[test]
    fn a_missing_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Saved::load(&dir.path().join("items.cache")).unwrap().len(),
            0
        );
    }

    #[test]
    fn any_damage_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.cache");
        write(&path);
        let good = std::fs::read(&path).unwrap();
        // Every single flipped byte and every truncation is caught.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert!(Saved::parse(Bytes::from(bad)).is_err(), "flip at {i}");
            assert!(
                Saved::parse(Bytes::copy_from_slice(&good[..i])).is_err(),
                "cut at {i}"
            );
        }
        let mut other = good.clone();
        other[MAGIC.len() - 2] = b'9';
        assert!(matches!(
            Saved::parse(Bytes::from(other)),
            Err(LoadError::Header)
        ));
    }

    #[test]
    fn the_key_changes_with_the_public_url_and_any_field() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let source = crate::catalog::Source {
            episodes_dir: root.join("episodes"),
            feeds_dir: root.join("feeds"),
            public_url: "http://a".into(),
            measure_cache: None,
            items_cache: None,
            site: Default::default(),
        };
        let catalog =
            crate::catalog::load(&source, &crate::catalog::MeasureCache::default()).unwrap();
        let ep = &*catalog.episodes[0];
        assert_eq!(key("http://a", ep), key("http://a", ep));
        assert_ne!(key("http://a", ep), key("http://b", ep));
        let mut changed = ep.clone();
        changed.title.push('!');
        assert_ne!(key("http://a", ep), key("http://a", &changed));
        let mut changed = ep.clone();
        changed.audio.etag.push('x');
        assert_ne!(key("http://a", ep), key("http://a", &changed));
        // The same instant in another offset is written differently, so it is another key.
        let mut changed = ep.clone();
        changed.published = ep
            .published
            .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
        assert_eq!(changed.published, ep.published);
        assert_ne!(key("http://a", ep), key("http://a", &changed));
        // Text moved from one field to the next is another key.
        let mut a = ep.clone();
        let mut b = ep.clone();
        (a.title, a.summary) = ("ab".into(), "c".into());
        (b.title, b.summary) = ("a".into(), "bc".into());
        assert_ne!(key("http://a", &a), key("http://a", &b));
    }
}
