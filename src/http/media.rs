//! Media responses: turns a [`Decision`] into headers and a body streamed from disk.
//!
//! The file is opened and checked against the catalog's measurement before anything is decided, so a
//! file replaced on disk but not yet reloaded is never served under its old URL and validators. An
//! open file handle keeps streaming the bytes it started with even if the file is replaced.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{future, stream, StreamExt};

use super::{feeds::conditions, AppState, Error};
use crate::access::{self, AccessDecision, Credentials};
use crate::catalog::Asset;
use crate::media::conditional::Validators;
use crate::media::range::ByteRange;
use crate::media::stream::FileStream;
use crate::media::{content_range, decide, Decision, MediaRequest, Multipart};

pub async fn media(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let snap = state.live.snapshot();
    let Some(served) = snap.media.get(uri.path()) else {
        return Error::NotFound.into_response();
    };
    if access::decide(served.access, Credentials::Anonymous) == AccessDecision::Hide {
        return Error::NotFound.into_response();
    }
    let download = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "download" || p == "download=1"));
    match serve(&served.asset, method == Method::HEAD, download, &headers).await {
        Ok(mut r) => {
            // Web players and transcript viewers on other sites need CORS for public files.
            r.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn serve(
    asset: &Asset,
    head: bool,
    download: bool,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    let file = open_checked(asset).await?;
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

    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&asset.etag).expect("hex etag"),
    );
    h.insert(header::LAST_MODIFIED, http_date(asset.modified));
    // The URL carries the content version, so the bytes behind it never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    let (status, body): (StatusCode, Body) = match decision {
        Decision::NotModified => return Ok((StatusCode::NOT_MODIFIED, h).into_response()),
        Decision::PreconditionFailed => {
            return Ok((StatusCode::PRECONDITION_FAILED, h).into_response())
        }
        Decision::Unsatisfiable => {
            h.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes */{}", asset.size)),
            );
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, h).into_response());
        }
        Decision::Full => {
            entity_headers(&mut h, asset, download, asset.size);
            let body = if head {
                Body::empty()
            } else {
                range_body(
                    file,
                    ByteRange {
                        first: 0,
                        last: asset.size.saturating_sub(1),
                    },
                    asset.size,
                )
            };
            (StatusCode::OK, body)
        }
        Decision::Partial(r) => {
            entity_headers(&mut h, asset, download, r.len());
            h.insert(header::CONTENT_RANGE, value(&content_range(r, asset.size)));
            let body = if head {
                Body::empty()
            } else {
                range_body(file, r, asset.size)
            };
            (StatusCode::PARTIAL_CONTENT, body)
        }
        Decision::Multipart(ranges) => {
            let boundary = format!("rollcall-{}", asset.etag.trim_matches('"'));
            let m = Multipart::new(&ranges, asset.size, &asset.mime, boundary);
            entity_headers(&mut h, asset, download, m.content_length);
            h.insert(header::CONTENT_TYPE, value(&m.content_type()));
            let body = if head {
                Body::empty()
            } else {
                multipart_body(file, m)
            };
            (StatusCode::PARTIAL_CONTENT, body)
        }
    };
    Ok((status, h, body).into_response())
}

/// Opens the file and confirms it is still the one the catalog measured, in one trip to the
/// blocking pool.
async fn open_checked(asset: &Asset) -> Result<Arc<std::fs::File>, Error> {
    let path = asset.path.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        Ok::<_, std::io::Error>((file, meta))
    })
    .await
    .map_err(std::io::Error::other)?;
    let (file, meta) = match opened {
        Ok(x) => x,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::Stale),
        Err(e) => return Err(e.into()),
    };
    if meta.len() != asset.size || meta.modified().ok() != Some(asset.modified) {
        return Err(Error::Stale);
    }
    Ok(Arc::new(file))
}

fn entity_headers(h: &mut HeaderMap, asset: &Asset, download: bool, length: u64) {
    h.insert(header::CONTENT_TYPE, value(&asset.mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let disposition = if download { "attachment" } else { "inline" };
    // Slugs are ASCII, so the plain filename parameter is exact.
    h.insert(
        header::CONTENT_DISPOSITION,
        value(&format!("{disposition}; filename=\"{}\"", asset.file_name)),
    );
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header values built from catalog ASCII")
}

fn http_date(t: SystemTime) -> HeaderValue {
    value(&httpdate::fmt_http_date(t))
}

fn range_body(file: Arc<std::fs::File>, r: ByteRange, size: u64) -> Body {
    if size == 0 {
        return Body::empty();
    }
    Body::from_stream(FileStream::new(file, r.first, r.len()))
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
