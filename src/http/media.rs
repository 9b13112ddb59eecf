//! Media responses: turns a [`Decision`] into headers and a body streamed from disk.
//!
//! The file is opened and checked against the catalog's measurement before anything is decided, so a
//! file replaced on disk but not yet reloaded is never served under its old URL and validators. An
//! open file handle keeps streaming the bytes it started with even if the file is replaced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{future, stream, StreamExt};

use super::delivery::Sent;
use super::{rendered::conditions, AppState, Error, RequestContext};
use crate::access::{self, AccessDecision, Credentials};
use crate::catalog::Asset;
use crate::media::conditional::Validators;
use crate::media::range::ByteRange;
use crate::media::stream::FileStream;
use crate::media::zerocopy::Regions;
use crate::media::{decide, ContentRange, Decision, MediaRequest, Multipart};
use crate::snapshot::{MediaHeaders, Served};
use crate::stats::{Extent, Piece};

/// A media or artwork file by its URL path (`path`, without any personal prefix). The request is
/// read by reference: the HeaderMap and Uri extractors clone.
pub async fn media(
    state: &AppState,
    ctx: &RequestContext,
    path: &str,
    req: &Parts,
    zero_copy: Option<Arc<Regions>>,
) -> (Response, Option<Sent>) {
    let (uri, headers) = (&req.uri, &req.headers);
    let snap = state.live.snapshot();
    let Some(served) = snap.media.get(path) else {
        return (Error::NotFound.into_response(), None);
    };
    // Someone listening on the website: the session cookie authorizes members media, and says
    // who listened (an admin's own listening is never a download). Podcast apps send no cookie,
    // so their requests never ask the store.
    let mut signed_in = None;
    if ctx.credentials == Credentials::Anonymous && super::session::has_session(headers) {
        if let Ok(Some((account, _))) = super::session::signed_in(&state.store, headers).await {
            signed_in = Some(Credentials::of(&account));
        }
    }
    let credentials = signed_in.unwrap_or(ctx.credentials);
    if access::decide(served.access, credentials) == AccessDecision::Hide {
        return (Error::NotFound.into_response(), None);
    }
    let public = served.access == crate::catalog::Access::Public;
    // Printable material is always a download; anything else is on `?download=1`.
    let download = served.attachment
        || uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "download" || p == "download=1"));
    let mut sent = Sent {
        episode: served.episode.clone(),
        ..Sent::default()
    };
    let response = match serve(&state.files, served, download, headers, zero_copy).await {
        Ok((mut r, extent)) => {
            sent.audio = served.audio.clone();
            sent.extent = extent;
            sent.credentials = signed_in;
            // Web players and transcript viewers on other sites need CORS for public files.
            if public {
                r.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            r
        }
        Err(e) => e.into_response(),
    };
    (response, Some(sent))
}

async fn serve(
    files: &FileCache,
    served: &Served,
    download: bool,
    headers: &HeaderMap,
    zero_copy: Option<Arc<Regions>>,
) -> Result<(Response, Extent), Error> {
    let asset = &served.asset;
    let fixed = served.headers();
    let file = open_checked(files, asset).await?;
    let v = Validators {
        etag: &asset.etag,
        alternates: &[],
        last_modified: asset.modified,
    };
    let range = headers.get(header::RANGE).and_then(|r| r.to_str().ok());
    let decision = decide(
        &MediaRequest {
            range,
            conditions: conditions(headers),
        },
        &v,
        asset.size,
    );

    let mut h = HeaderMap::with_capacity(10);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, fixed.etag.clone());
    h.insert(header::LAST_MODIFIED, fixed.last_modified.clone());
    // The URL carries the content version, so the bytes behind it never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    let (status, body, extent): (StatusCode, Body, Extent) = match decision {
        Decision::NotModified => {
            return Ok((
                response(StatusCode::NOT_MODIFIED, h, Body::empty()),
                Extent::None,
            ))
        }
        Decision::PreconditionFailed => {
            return Ok((
                response(StatusCode::PRECONDITION_FAILED, h, Body::empty()),
                Extent::None,
            ))
        }
        Decision::Unsatisfiable => {
            h.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes */{}", asset.size)),
            );
            return Ok((
                response(StatusCode::RANGE_NOT_SATISFIABLE, h, Body::empty()),
                Extent::None,
            ));
        }
        Decision::Full => {
            entity_headers(&mut h, fixed, download, asset.size);
            let whole = ByteRange {
                first: 0,
                last: asset.size.saturating_sub(1),
            };
            let body = range_body(file, whole, asset.size, zero_copy);
            (StatusCode::OK, body, Extent::From(0))
        }
        Decision::Partial(r) => {
            entity_headers(&mut h, fixed, download, r.len());
            let mut buf = ContentRange::default();
            h.insert(header::CONTENT_RANGE, value(buf.write(r, asset.size)));
            let body = range_body(file, r, asset.size, zero_copy);
            (StatusCode::PARTIAL_CONTENT, body, Extent::From(r.first))
        }
        Decision::Multipart(ranges) => {
            let boundary = format!("rollcall-{}", asset.etag.trim_matches('"'));
            let m = Multipart::new(&ranges, asset.size, &asset.mime, boundary);
            entity_headers(&mut h, fixed, download, m.content_length);
            h.insert(header::CONTENT_TYPE, value(&m.content_type()));
            let extent = Extent::Parts(pieces(&m));
            let body = multipart_body(file, m);
            (StatusCode::PARTIAL_CONTENT, body, extent)
        }
    };
    Ok((response(status, h, body), extent))
}

/// Where each part's file bytes sit in a multipart body.
fn pieces(m: &Multipart) -> Arc<[Piece]> {
    let mut at = 0u64;
    m.parts
        .iter()
        .map(|(head, r)| {
            at += head.len() as u64;
            let piece = Piece {
                body_at: at,
                file_at: r.first,
                len: r.len(),
            };
            at += r.len();
            piece
        })
        .collect()
}

/// A response with exactly these headers (axum's tuple conversion would copy them one by one).
fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// Open files by URL path, so a popular episode is opened once rather than per request. Positional
/// reads share no file offset, so one handle serves any number of concurrent streams. The cache
/// (quick_cache: sharded, S3-FIFO eviction) holds up to [`FileCache::CAPACITY`] descriptors and
/// evicts the least useful one at a time, never everything at once; a lookup locks one shard.
pub struct FileCache {
    files: quick_cache::sync::Cache<String, Arc<Opened>>,
    /// Where `Opened::checked` counts from.
    epoch: std::time::Instant,
}

/// An open file, and when it was last found to be the file the catalog measured.
struct Opened {
    file: Arc<std::fs::File>,
    /// Milliseconds after the cache's epoch.
    checked: AtomicU64,
}

impl Default for FileCache {
    fn default() -> FileCache {
        FileCache {
            files: quick_cache::sync::Cache::new(FileCache::CAPACITY),
            epoch: std::time::Instant::now(),
        }
    }
}

impl FileCache {
    const CAPACITY: usize = 1024;
    /// A cached handle is checked against the catalog again once this long has passed.
    const RECHECK: Duration = Duration::from_millis(100);

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn get(&self, url_path: &str) -> Option<Arc<Opened>> {
        self.files.get(url_path)
    }

    fn put(&self, url_path: &str, file: Arc<std::fs::File>, now_ms: u64) {
        let opened = Opened {
            file,
            checked: AtomicU64::new(now_ms),
        };
        self.files.insert(url_path.to_owned(), Arc::new(opened));
    }

    fn forget(&self, url_path: &str) {
        self.files.remove(url_path);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.files.len()
    }
}

/// Confirms an open file is still the one the catalog measured. `fstat` on an open descriptor reads
/// the in-memory inode and never waits for the disk, so it runs on the async thread.
fn still_measured(file: &std::fs::File, asset: &Asset) -> Result<bool, Error> {
    let meta = file.metadata()?;
    Ok(meta.len() == asset.size && meta.modified().ok() == Some(asset.modified))
}

/// Returns an open handle to the asset's file, checked against the catalog's measurement. A cache
/// miss opens it on the blocking pool and checks it: a path opened again may be another file. A
/// cached handle keeps its inode, which only an in-place write can change (docs/catalog.md says to
/// rename a new file over the old one instead), so it is checked again once
/// [`FileCache::RECHECK`] has passed since its last check rather than on every request: the
/// `statx` was about 3% of the server's CPU per 64 KiB range. An in-place change is refused (503)
/// from the first request after that, until the reload it also causes gives the file a new URL.
async fn open_checked(cache: &FileCache, asset: &Asset) -> Result<Arc<std::fs::File>, Error> {
    open_checked_at(cache, asset, cache.now_ms()).await
}

async fn open_checked_at(
    cache: &FileCache,
    asset: &Asset,
    now_ms: u64,
) -> Result<Arc<std::fs::File>, Error> {
    if let Some(opened) = cache.get(&asset.url_path) {
        let checked = opened.checked.load(Ordering::Relaxed);
        if now_ms.saturating_sub(checked) < FileCache::RECHECK.as_millis() as u64 {
            return Ok(Arc::clone(&opened.file));
        }
        if still_measured(&opened.file, asset)? {
            opened.checked.store(now_ms, Ordering::Relaxed);
            return Ok(Arc::clone(&opened.file));
        }
        cache.forget(&asset.url_path);
        return Err(Error::Stale);
    }
    let path = asset.path.clone();
    let opened = tokio::task::spawn_blocking(move || std::fs::File::open(path))
        .await
        .map_err(std::io::Error::other)?;
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::Stale),
        Err(e) => return Err(e.into()),
    };
    if !still_measured(&file, asset)? {
        return Err(Error::Stale);
    }
    let file = Arc::new(file);
    cache.put(&asset.url_path, Arc::clone(&file), now_ms);
    Ok(file)
}

fn entity_headers(h: &mut HeaderMap, fixed: &MediaHeaders, download: bool, length: u64) {
    h.insert(header::CONTENT_TYPE, fixed.content_type.clone());
    h.insert(header::CONTENT_LENGTH, super::decimal(length));
    let disposition = if download {
        &fixed.attachment
    } else {
        &fixed.inline
    };
    h.insert(header::CONTENT_DISPOSITION, disposition.clone());
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values built from catalog ASCII")
}

fn range_body(
    file: Arc<std::fs::File>,
    r: ByteRange,
    size: u64,
    zero_copy: Option<Arc<Regions>>,
) -> Body {
    if size == 0 {
        return Body::empty();
    }
    Body::from_stream(FileStream::new(file, r.first, r.len()).zero_copy(zero_copy))
}

/// Streams each part's header and its bytes from the one open file, so every part comes from the
/// same version of the file.
fn multipart_body(file: Arc<std::fs::File>, m: Multipart) -> Body {
    let Multipart { parts, trailer, .. } = m;
    let parts = parts.into_iter().map(move |(head, r)| {
        stream::once(future::ready(Ok(Bytes::from(head)))).chain(FileStream::new(
            Arc::clone(&file),
            r.first,
            r.len(),
        ))
    });
    let tail = stream::once(future::ready(Ok(Bytes::from(trailer))));
    Body::from_stream(stream::iter(parts).flatten().chain(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_cache_evicts_one_at_a_time_not_everything() {
        let cache = FileCache::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        for i in 0..FileCache::CAPACITY + 100 {
            cache.put(&format!("/media/{i}"), Arc::clone(&file), 0);
            // A popular file keeps being asked for.
            assert!(
                cache.get("/media/0").is_some(),
                "the hot entry survived insert {i}"
            );
        }
        let held = cache.len();
        assert!(
            held > FileCache::CAPACITY / 2 && held <= FileCache::CAPACITY + 8,
            "held {held}: bounded, and never emptied"
        );
        cache.forget("/media/0");
        assert!(cache.get("/media/0").is_none());
    }

    fn asset_of(path: &std::path::Path) -> Asset {
        let meta = std::fs::metadata(path).unwrap();
        Asset {
            path: path.to_owned(),
            url_path: "/media/a/1/a.mp3".into(),
            file_name: "a.mp3".into(),
            size: meta.len(),
            modified: meta.modified().unwrap(),
            etag: "\"1\"".into(),
            mime: "audio/mpeg".into(),
        }
    }

    /// A file holding `content` in a fresh folder, measured, and the recheck interval in ms.
    fn measured_file(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, Asset, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mp3");
        std::fs::write(&path, content).unwrap();
        let asset = asset_of(&path);
        (dir, path, asset, FileCache::RECHECK.as_millis() as u64)
    }

    #[tokio::test]
    async fn a_cached_file_changed_in_place_is_refused_once_its_check_has_lapsed() {
        let cache = FileCache::default();
        let (_dir, path, asset, recheck) = measured_file(b"first");
        assert!(
            open_checked_at(&cache, &asset, 1000).await.is_ok(),
            "opened and cached"
        );
        // Changed in place: same inode, new length and time.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b" and more"))
            .unwrap();
        // Within the interval the handle's last check holds.
        let within = open_checked_at(&cache, &asset, 1000 + recheck - 1).await;
        assert!(within.is_ok());
        // Once it has passed, the file is checked again and refused, and forgotten.
        let after = open_checked_at(&cache, &asset, 1000 + recheck).await;
        assert!(matches!(after, Err(Error::Stale)), "{after:?}");
        assert!(cache.get(&asset.url_path).is_none());
        // Opened afresh, the changed file is still not the measured one.
        let again = open_checked_at(&cache, &asset, 1000 + recheck + 1).await;
        assert!(matches!(again, Err(Error::Stale)), "{again:?}");
        // The catalog's new measurement of it is served.
        let remeasured = asset_of(&path);
        assert!(open_checked_at(&cache, &remeasured, 1000 + recheck + 2)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_cached_file_that_still_matches_renews_its_check() {
        let cache = FileCache::default();
        let (_dir, _path, asset, recheck) = measured_file(b"audio");
        open_checked_at(&cache, &asset, 0).await.unwrap();
        open_checked_at(&cache, &asset, recheck + 5).await.unwrap();
        let checked = cache
            .get(&asset.url_path)
            .unwrap()
            .checked
            .load(Ordering::Relaxed);
        assert_eq!(
            checked,
            recheck + 5,
            "the check that passed is the one that holds"
        );
    }
}
