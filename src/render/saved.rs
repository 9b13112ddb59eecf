//! Rendered feed items saved across starts, so a restart renders and compresses only what
//! changed while the server was down.
//!
//! Rendering a large catalog's items and deflating each after the one before it (see
//! [`super::gzip`]) is most of a start's work after loading: about 4 s of CPU at 100,000
//! episodes. Both depend only on the episode as loaded and on `public_url`, so the server saves
//! every item it rendered to `items.cache` in `state_dir` after a start, and the next start takes
//! an item from there when its key matches.
//!
//! The key is a SHA-256 of this build, `public_url` and every field of the loaded episode:
//! titles, notes, guests, resources, and each file's path, size, time and content hash (see
//! [`crate::catalog::codec`], which also defines the file's checks). A changed episode has a new
//! key and is rendered again; an item no episode asks for is dropped when the file is next
//! written.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;

use crate::catalog::codec::{self, put_bytes, CacheFileError, Damaged, Reader, Sink};
use crate::catalog::Episode;

/// The file's first line; a new layout gets a new number.
const KIND: &[u8] = b"rollcall items 1\n";
/// At most this many compressed variants per item are saved (the fragment keeps up to four).
const MAX_DEFLATED: usize = 4;
/// The smallest record: key, hash, an empty XML and no variants.
const MIN_RECORD: usize = 32 + 32 + 8 + 1;

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

impl Saved {
    /// The items saved at `path`. A missing file is an empty cache; an unusable one is an
    /// error, which the caller logs and then treats as empty.
    pub fn load(path: &Path) -> Result<Saved, CacheFileError> {
        match codec::read_checked(path, KIND)? {
            None => Ok(Saved::default()),
            Some(mut r) => Ok(Saved::parse(&mut r)?),
        }
    }

    fn parse(r: &mut Reader) -> Result<Saved, Damaged> {
        let count = r.count(MIN_RECORD)?;
        let mut items = HashMap::with_capacity_and_hasher(count, Default::default());
        for _ in 0..count {
            let key = r.array()?;
            let hash = r.array()?;
            let xml = r.bytes()?;
            let n = r.u8()? as usize;
            if n > MAX_DEFLATED {
                return Err(Damaged("an item has too many variants"));
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
        if !r.is_done() {
            return Err(Damaged("it has bytes after its last item"));
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

/// Writes `items` (key, XML, hash, variants) to `path`.
pub fn save<'a>(
    path: &Path,
    items: impl ExactSizeIterator<Item = ([u8; 32], &'a [u8], [u8; 32], Variants)>,
) -> std::io::Result<()> {
    codec::write_checked(path, KIND, |out| {
        out.put(&(items.len() as u64).to_le_bytes());
        for (key, xml, hash, deflated) in items {
            out.put(&key);
            out.put(&hash);
            put_bytes(out, xml);
            let deflated = &deflated[deflated.len().saturating_sub(MAX_DEFLATED)..];
            out.put(&[deflated.len() as u8]);
            for (before, z) in deflated {
                out.put(before);
                put_bytes(out, z);
            }
        }
    })
}

/// The key of `episode`'s item rendered with `public_url` by this build.
pub fn key(public_url: &str, episode: &Episode) -> [u8; 32] {
    codec::key(&(public_url, episode))
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

    #[test]
    fn saved_items_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.cache");
        let items = sample();
        save(
            &path,
            items
                .iter()
                .map(|(k, x, h, d)| (*k, &x[..], *h, d.clone()))
                .collect::<Vec<_>>()
                .into_iter(),
        )
        .unwrap();
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
        assert_eq!(Saved::load(&dir.path().join("none")).unwrap().len(), 0);
    }
}
