//! A rendered text resource (a feed, the OPML list, a page, a static file) in every encoding the
//! server offers, with its validators formatted once.
//!
//! [`Encoded::new`] hashes the identity bytes for a strong ETag; [`Encoded::compress`] fills in the
//! gzip and brotli variants later, off the async threads. The http layer answers requests from it.

use std::fs::File;
use std::io::Write;
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
    /// The identity bytes in a sealed in-memory file, for resources of at least [`FILE_AT`]
    /// bytes: the http layer sends them with `sendfile` instead of copying every byte into the
    /// socket. Filled in by [`Encoded::compress`]. The compressed variants are not kept so: a
    /// 367 KB gzip feed cost 114–177 µs of server CPU per request with `sendfile` from a memfd
    /// against 45 µs copied from memory, at a third of the rate (BENCHMARKS.md, "CPU per
    /// request"); for the 21 MB identity feed `sendfile` is the cheaper of the two.
    file: OnceLock<Arc<File>>,
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
    pub fn file(&self) -> Option<&Arc<File>> {
        self.file.get()
    }

    /// Fills in the compressed variants, and for a large resource its in-memory file (CPU-heavy;
    /// run it off the async threads).
    pub fn compress(&self) {
        if self.identity.len() >= FILE_AT && self.file.get().is_none() {
            match in_memory_file(self.identity.parts()) {
                Ok(f) => {
                    let _ = self.file.set(Arc::new(f));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep a rendered resource in an in-memory file; it is sent by copying")
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

/// Resources at least this large are also kept as an in-memory file, for `sendfile`.
pub const FILE_AT: usize = 256 * 1024;

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
