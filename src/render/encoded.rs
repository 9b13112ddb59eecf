//! A rendered text resource (a feed, the OPML list, a page, a static file) in every encoding the
//! server offers, with its validators formatted once.
//!
//! [`Encoded::new`] hashes the identity bytes for a strong ETag; [`Encoded::compress`] fills in the
//! gzip and brotli variants later, off the async threads. The http layer answers requests from it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::rope::Rope;

/// A rendered text resource in every encoding the server offers.
///
/// The identity bytes exist from the start; the gzip and brotli variants are filled in by
/// [`Encoded::compress`], which [`Live`] runs on a background thread after publishing a snapshot, so
/// a reload goes live without waiting for the encoders. Until then clients get the identity bytes,
/// which every client accepts. Unchanged resources take their compressed bytes from the previous
/// snapshot and are never compressed twice.
#[derive(Debug)]
pub struct Encoded {
    pub content_type: &'static str,
    pub identity: Rope,
    gzip: OnceLock<Bytes>,
    /// A gzip stitched from pieces compressed earlier, there from the start and served until
    /// the background job's whole-feed gzip (smaller) is ready. Its own ETag, since its bytes
    /// differ from the whole-feed gzip's.
    stitched: Option<Bytes>,
    br: OnceLock<Bytes>,
    /// The identity bytes in a file of their own, for resources of at least [`FILE_AT`]
    /// bytes: the http layer sends them with `sendfile` instead of copying every byte into the
    /// socket. Filled in by [`Encoded::compress`]. The compressed variants are not kept so: a
    /// 367 KB gzip feed cost 114–177 µs of server CPU per request with `sendfile` from a memfd
    /// against 45 µs copied from memory, at a third of the rate (BENCHMARKS.md, "CPU per
    /// request"); for the 21 MB identity feed `sendfile` is the cheaper of the two.
    file: OnceLock<KeptFile>,
    /// Strong ETag of the identity bytes; the compressed variants append `-gzip` / `-br`.
    pub etag: String,
    pub etag_gzip: String,
    pub etag_stitched: String,
    pub etag_br: String,
    /// When these bytes were first served by this process.
    pub last_modified: SystemTime,
    /// The validators as response header values, formatted once.
    pub headers: ValidatorHeaders,
}

#[derive(Debug)]
pub struct ValidatorHeaders {
    pub etag: HeaderValue,
    pub etag_gzip: HeaderValue,
    pub etag_stitched: HeaderValue,
    pub etag_br: HeaderValue,
    pub last_modified: HeaderValue,
}

impl Encoded {
    /// Wraps rendered bytes and derives validators. `previous` keeps Last-Modified, and the
    /// compressed variants, when a reload produces identical bytes.
    pub fn new(content_type: &'static str, bytes: Vec<u8>, previous: Option<&Encoded>) -> Encoded {
        let hash: String = Sha256::digest(&bytes)
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Encoded::with_hash(content_type, bytes, hash, previous)
    }

    /// Like [`Encoded::new`], with the content hash (32 hex digits) already known.
    pub fn with_hash(
        content_type: &'static str,
        bytes: impl Into<Rope>,
        hash: String,
        previous: Option<&Encoded>,
    ) -> Encoded {
        let etag = format!("\"{hash}\"");
        let same = previous.filter(|p| p.etag == etag);
        let etag_gzip = format!("\"{hash}-gzip\"");
        let etag_stitched = format!("\"{hash}-gzs\"");
        let etag_br = format!("\"{hash}-br\"");
        let last_modified = same.map_or_else(now_seconds, |p| p.last_modified);
        let value = |s: &str| HeaderValue::from_str(s).expect("hex digits and quotes");
        Encoded {
            content_type,
            identity: bytes.into(),
            gzip: carry(same.map(|p| &p.gzip)),
            stitched: None,
            br: carry(same.map(|p| &p.br)),
            file: carry(same.map(|p| &p.file)),
            headers: ValidatorHeaders {
                etag: value(&etag),
                etag_gzip: value(&etag_gzip),
                etag_stitched: value(&etag_stitched),
                etag_br: value(&etag_br),
                last_modified: value(&httpdate::fmt_http_date(last_modified)),
            },
            etag_gzip,
            etag_stitched,
            etag_br,
            etag,
            last_modified,
        }
    }

    /// Gives a gzip variant now, stitched from pieces compressed earlier; it is served until
    /// the whole-resource gzip exists (carried from the previous snapshot, or compressed in the
    /// background).
    pub fn with_stitched_gzip(mut self, gzip: Bytes) -> Encoded {
        self.stitched = Some(gzip);
        self
    }

    /// The stitched gzip, if the resource has one.
    pub fn stitched(&self) -> Option<&Bytes> {
        self.stitched.as_ref()
    }

    /// The gzip variant, once compressed.
    pub fn gzip(&self) -> Option<&Bytes> {
        self.gzip.get()
    }

    /// The brotli variant, once compressed.
    pub fn br(&self) -> Option<&Bytes> {
        self.br.get()
    }

    /// The identity bytes as a file, once written (see [`Encoded::compress`]).
    pub fn file(&self) -> Option<&KeptFile> {
        self.file.get()
    }

    /// Fills in the compressed variants, and for a large resource its in-memory file (CPU-heavy;
    /// run it off the async threads).
    pub fn compress(&self) {
        if self.identity.len() >= FILE_AT && self.file.get().is_none() {
            match KeptFile::write(self.identity.parts(), SPOOL.get().map(PathBuf::as_path)) {
                Ok(f) => {
                    let _ = self.file.set(f);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep a rendered resource in a file; it is sent by copying")
                }
            }
        }
        self.gzip.get_or_init(|| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            for part in self.identity.parts() {
                enc.write_all(part).expect("in-memory gzip");
            }
            Bytes::from(enc.finish().expect("in-memory gzip"))
        });
        self.br.get_or_init(|| {
            let mut out = Vec::new();
            {
                let mut enc = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
                for part in self.identity.parts() {
                    enc.write_all(part).expect("in-memory brotli");
                }
            }
            Bytes::from(out)
        });
    }
}

/// What a resource with the same bytes already had in `cell`, or an empty cell.
fn carry<T: Clone>(cell: Option<&OnceLock<T>>) -> OnceLock<T> {
    cell.and_then(OnceLock::get)
        .cloned()
        .map_or_else(OnceLock::new, OnceLock::from)
}

/// Resources at least this large are also kept as a file, for `sendfile`.
pub const FILE_AT: usize = 256 * 1024;

/// Where rendered resources are kept as files: set once, by the server at its start, to its
/// `state_dir`.
static SPOOL: OnceLock<PathBuf> = OnceLock::new();

/// Keeps large rendered resources in unnamed files in `dir` from now on (the first call wins;
/// one server runs per process). Without it, or where `dir` cannot hold such files, they go to
/// memory files instead.
pub fn spool_in(dir: PathBuf) {
    let _ = SPOOL.set(dir);
}

/// Writes go to a kept file this many bytes at a time, aligned: the page cache gives a regular
/// file folios as large as the writes that fill it, and `sendfile` then looks up one folio per
/// 2 MiB instead of one page per 4 KiB. A 21 MB feed written 4 KB at a time, as its items are
/// rendered, cost `filemap_get_read_batch` 14% of the server's samples while sending it; written
/// in 2 MiB pieces, 1.2%, as for nginx's file (BENCHMARKS.md, "What was tried").
const WRITE_AT_ONCE: usize = 2 << 20;

/// The identity bytes of a large rendered resource, in a file of their own. Cloning shares the
/// file.
#[derive(Debug, Clone)]
pub struct KeptFile {
    pub file: Arc<File>,
    /// A memory file (shared memory, never evicted), not one on a filesystem, whose pages the
    /// kernel may evict and must then read back.
    pub in_memory: bool,
}

impl KeptFile {
    /// Writes `parts` in order to an unnamed file (`O_TMPFILE`) in `dir`: no other process can
    /// open it, nothing here writes to it again, and it is gone when the last handle closes.
    /// Where `dir` is `None` or cannot hold one (a missing folder, a filesystem without
    /// `O_TMPFILE`), to a sealed memfd. Shared memory comes in 4 KiB pages on systems without
    /// transparent huge pages for it (the default), so a regular file is the cheaper to send.
    fn write(parts: &[Bytes], dir: Option<&Path>) -> std::io::Result<KeptFile> {
        if let Some(dir) = dir {
            match unnamed_file(parts, dir) {
                Ok(file) => {
                    return Ok(KeptFile {
                        file: Arc::new(file),
                        in_memory: false,
                    })
                }
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot keep a rendered resource in state_dir; keeping it in memory")
                }
            }
        }
        Ok(KeptFile {
            file: Arc::new(in_memory_file(parts)?),
            in_memory: true,
        })
    }
}

fn unnamed_file(parts: &[Bytes], dir: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut file = File::from(fd);
    // Whole, aligned pieces of WRITE_AT_ONCE bytes, split across parts where needed.
    let mut piece = Vec::with_capacity(WRITE_AT_ONCE);
    for part in parts {
        let mut rest = &part[..];
        while !rest.is_empty() {
            let n = rest.len().min(WRITE_AT_ONCE - piece.len());
            piece.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if piece.len() == WRITE_AT_ONCE {
                file.write_all(&piece)?;
                piece.clear();
            }
        }
    }
    file.write_all(&piece)?;
    Ok(file)
}

/// A sealed memfd holding `parts` in order: nothing can change or resize it once written, so a
/// region of it stays valid for as long as anyone holds it.
fn in_memory_file(parts: &[Bytes]) -> std::io::Result<File> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        "rollcall-rendered",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut f = File::from(fd);
    for part in parts {
        f.write_all(part)?;
    }
    rustix::fs::fcntl_add_seals(
        &f,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )?;
    Ok(f)
}

/// HTTP dates have whole seconds; a Last-Modified with a fraction would never equal a client's date.
pub(super) fn now_seconds() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    fn parts() -> Vec<Bytes> {
        // Odd-sized parts, so pieces split them: more than two pieces in all.
        (0..1500u32)
            .map(|i| Bytes::from(format!("<item>{i:05}</item>").repeat(200 + i as usize % 7)))
            .collect()
    }

    fn contents(kept: &KeptFile) -> Vec<u8> {
        let mut f = &*kept.file;
        f.rewind().unwrap();
        let mut out = Vec::new();
        f.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_kept_file_in_a_folder_is_unnamed_and_holds_the_parts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let parts = parts();
        let kept = KeptFile::write(&parts, Some(dir.path())).unwrap();
        assert!(!kept.in_memory, "the folder takes unnamed files");
        assert!(parts.iter().map(Bytes::len).sum::<usize>() > 2 * WRITE_AT_ONCE);
        assert_eq!(contents(&kept), parts.concat());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing in the folder has a name"
        );
    }

    #[test]
    fn without_a_usable_folder_a_kept_file_is_in_memory_and_sealed() {
        let parts = parts();
        let missing = std::path::Path::new("/nonexistent/rollcall-spool");
        for dir in [None, Some(missing)] {
            let kept = KeptFile::write(&parts, dir).unwrap();
            assert!(kept.in_memory);
            assert_eq!(contents(&kept), parts.concat());
            assert!(
                (&*kept.file).write_all(b"x").is_err(),
                "a sealed memfd takes no writes"
            );
        }
    }
}
