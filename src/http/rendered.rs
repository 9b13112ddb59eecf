//! Rendered resources: feeds, the OPML list, the website's pages and its static files. Each is an
//! [`Encoded`] from the current snapshot (pages are rendered on their first request, on the
//! blocking pool) or compiled in, answered by [`respond`] with strong validators and the client's
//! preferred compression.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppState, Error, RequestContext};
use crate::access::{self, AccessDecision};
use crate::catalog;
use crate::media::conditional::{self, Conditions, Precondition, Validators};
use crate::media::stream::FileStream;
use crate::media::zerocopy::Regions;
use crate::render::Encoded;
use crate::site::{self, Lookup, PageRef, ThemeQuery};
use crate::snapshot::{ServedFeed, Snapshot};

/// Feed `id`, if the request may see it (the same decision as for media, from what the snapshot
/// recorded the feed requires).
fn visible<'a>(snap: &'a Snapshot, ctx: &RequestContext, id: &str) -> Option<&'a ServedFeed> {
    snap.feeds
        .get(id)
        .filter(|f| access::decide(f.access, ctx.credentials) == AccessDecision::Allow)
}

/// `/feeds/<id>.xml`.
pub fn feed(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    headers: &HeaderMap,
    zero_copy: Option<&Arc<Regions>>,
) -> Response {
    let snap = state.live.snapshot();
    match visible(&snap, ctx, id) {
        Some(feed) => respond_with(&feed.encoded, headers, zero_copy),
        None => Error::NotFound.into_response(),
    }
}

/// `/p/<token>/feeds/<id>.xml`: a members feed with the officer's token in every media URL, or
/// a public feed as it is. Its ETag joins the template's hash and the token's fingerprint, so a
/// poll that finds nothing new costs a map lookup and a comparison.
pub fn personal_feed(
    state: &AppState,
    ctx: &RequestContext,
    token: &str,
    id: &str,
    headers: &HeaderMap,
    zero_copy: Option<&Arc<Regions>>,
) -> Response {
    let snap = state.live.snapshot();
    let Some(template) = snap.personal.get(id) else {
        return feed(state, ctx, id, headers, zero_copy);
    };
    if access::decide(catalog::Access::Members, ctx.credentials) != AccessDecision::Allow {
        return Error::NotFound.into_response();
    }
    let access::Credentials::Personal { fingerprint, .. } = ctx.credentials else {
        return Error::NotFound.into_response();
    };
    // `"<template hash>-<fingerprint>-gzip"`, written in place: `etag` is all but the `-gzip`.
    let mut text = [0u8; PERSONAL_ETAG_GZIP_LEN];
    personal_etag(&mut text, &template.hash, fingerprint);
    let mut plain = [0u8; PERSONAL_ETAG_LEN];
    plain[..PERSONAL_ETAG_LEN - 1].copy_from_slice(&text[..PERSONAL_ETAG_LEN - 1]);
    plain[PERSONAL_ETAG_LEN - 1] = b'"';
    let etag_gzip = std::str::from_utf8(&text).expect("quotes, hex digits and hyphens");
    let etag = std::str::from_utf8(&plain).expect("quotes, hex digits and hyphens");
    // The gzip variant is there from the start: only the prefix is compressed per request.
    let gzip = accepted(header_str(headers, header::ACCEPT_ENCODING)).1;
    let alternates = [etag, etag_gzip];
    let v = Validators {
        etag: if gzip { etag_gzip } else { etag },
        alternates: &alternates,
        last_modified: template.last_modified,
    };
    let status = match conditional::evaluate(&conditions(headers), &v, true) {
        Precondition::Proceed => StatusCode::OK,
        Precondition::NotModified => StatusCode::NOT_MODIFIED,
        Precondition::Failed => StatusCode::PRECONDITION_FAILED,
    };
    let mut response = if status == StatusCode::OK {
        // Filled as it goes out (the text a quarter MiB at a time; the gzip as the template's own
        // runs with the prefix's fragment between them), with the exact length announced.
        let prefix = bytes::Bytes::from(format!("/p/{token}"));
        let (body, len) = if gzip {
            let (chunks, len) = template.gzip_chunks(prefix);
            let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
            (Body::from_stream(stream), len)
        } else {
            let len = template.len_with(prefix.len());
            let chunks = template.chunks(prefix, 256 * 1024);
            let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
            (Body::from_stream(stream), len)
        };
        let mut r = Response::new(body);
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, super::decimal(len as u64));
        if gzip {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    } else {
        Response::new(Body::empty())
    };
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(v.etag).expect("hex digits"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::LAST_MODIFIED,
        template.last_modified_value().clone(),
    );
    if status == StatusCode::OK {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::snapshot::RSS_TYPE),
        );
    }
    response
}

/// `"` + 16 hex digits of the template's hash + `-` + 8 of the token's fingerprint + `"`.
const PERSONAL_ETAG_LEN: usize = 1 + 16 + 1 + 8 + 1;
/// The same with `-gzip` before the closing quote.
const PERSONAL_ETAG_GZIP_LEN: usize = PERSONAL_ETAG_LEN + 5;

/// Writes a personal feed's gzip ETag into `out`.
fn personal_etag(out: &mut [u8; PERSONAL_ETAG_GZIP_LEN], hash: &str, fingerprint: [u8; 4]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out[0] = b'"';
    out[1..17].copy_from_slice(&hash.as_bytes()[..16]);
    out[17] = b'-';
    for (i, b) in fingerprint.iter().enumerate() {
        out[18 + 2 * i] = HEX[usize::from(b >> 4)];
        out[19 + 2 * i] = HEX[usize::from(b & 15)];
    }
    out[26..].copy_from_slice(b"-gzip\"");
}

/// `/feeds/<id>`: the theme's page; `?page=N` pages through its episodes.
pub async fn theme(
    state: &AppState,
    ctx: &RequestContext,
    file: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let snap = state.live.snapshot();
    // A theme page shows to whoever may see its feed, and as a teaser for a preview feed.
    let shown = snap
        .catalog
        .feed(file)
        .is_some_and(|f| access::page_view(f, ctx.credentials).is_some());
    if !shown {
        let page = PageRef::Theme {
            id: file.to_owned(),
            page: 0,
        };
        return not_found(&snap, &page);
    }
    let file = file.to_owned();
    match ThemeQuery::parse(query) {
        ThemeQuery::Canonical => page(snap, PageRef::Theme { id: file, page: 1 }, headers).await,
        ThemeQuery::Page(1) => {
            let first = PageRef::Theme {
                id: file.clone(),
                page: 1,
            };
            if matches!(snap.pages.lookup(&first), Lookup::Missing) {
                return not_found(&snap, &first);
            }
            // One URL per page: the first page lives without `?page`.
            let location =
                HeaderValue::from_str(&format!("/feeds/{file}")).expect("feed ids are slugs");
            (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
        ThemeQuery::Page(n) => page(snap, PageRef::Theme { id: file, page: n }, headers).await,
        ThemeQuery::Invalid => not_found(&snap, &PageRef::Theme { id: file, page: 0 }),
    }
}

pub async fn home(state: &AppState, headers: &HeaderMap) -> Response {
    page(state.live.snapshot(), PageRef::Home, headers).await
}

pub async fn episode(state: &AppState, slug: &str, headers: &HeaderMap) -> Response {
    let slug = slug.to_owned();
    page(state.live.snapshot(), PageRef::Episode { slug }, headers).await
}

/// A page made for the signed-in member behind the request's session cookie (members feeds,
/// players, their personal feed URL), or `None` if the cookie names no live session, so the
/// shared anonymous page is served instead. Rendered on the blocking pool; never cached.
pub async fn member_page(
    state: &AppState,
    resource: super::route::Resource<'_>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Response> {
    use super::route::Resource;
    let (account, secret) = super::session::signed_in(&state.store, headers)
        .await
        .ok()
        .flatten()?;
    let page = match resource {
        Resource::Search => {
            let q = site::search::Query::from_query_string(query);
            return Some(searched(state, q, Some((account, secret))).await);
        }
        Resource::Home => PageRef::Home,
        Resource::Theme { id } => match ThemeQuery::parse(query) {
            ThemeQuery::Canonical => PageRef::Theme {
                id: id.to_owned(),
                page: 1,
            },
            ThemeQuery::Page(n) => PageRef::Theme {
                id: id.to_owned(),
                page: n,
            },
            ThemeQuery::Invalid => return None,
        },
        Resource::Episode { slug } => PageRef::Episode {
            slug: slug.to_owned(),
        },
        _ => return None,
    };
    let (snap, store, key) = (
        state.live.snapshot(),
        Arc::clone(&state.store),
        Arc::clone(&state.key),
    );
    let rendered = tokio::task::spawn_blocking(move || {
        // A member's personal URL, made on their first visit if they have none yet.
        let token = match crate::access::personal::current(&store, &key, &account) {
            Ok(Some(t)) => Some(t),
            Ok(None) => crate::access::personal::issue(&store, &key, &account).ok(),
            Err(_) => None,
        };
        let personal = token.map(|t| format!("{}/p/{}", snap.catalog.public_url, t.expose()));
        let csrf = secret.derive("csrf");
        let viewer = site::Viewer {
            who: crate::access::Credentials::of(&account),
            user: Some(&account.name),
            csrf: &csrf,
            personal: personal.as_deref(),
        };
        site::render_for(&snap.catalog, &page, &viewer)
    })
    .await
    .ok()?;
    let Some(html) = rendered else {
        let snap = state.live.snapshot();
        return Some(error_page(&snap.pages.not_found, StatusCode::NOT_FOUND));
    };
    Some(per_viewer(html, "private, no-store"))
}

/// An HTML page made for whoever asked: never shared by a cache, and varying with the cookie.
fn per_viewer(html: String, cache_control: &'static str) -> Response {
    let mut r = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(site::HTML_TYPE),
        )],
        html,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(header::VARY, HeaderValue::from_static("Cookie"));
    r
}

/// `/search?q=…` for anyone not signed in (a member's search goes through [`member_page`]).
pub async fn search(state: &AppState, query: Option<&str>) -> Response {
    searched(state, site::search::Query::from_query_string(query), None).await
}

/// Search results, rendered for each request on the blocking pool and never stored by a cache:
/// they depend on who asks.
async fn searched(
    state: &AppState,
    query: site::search::Query,
    member: Option<(crate::access::Account, crate::access::Secret)>,
) -> Response {
    let snap = state.live.snapshot();
    let rendered = tokio::task::spawn_blocking(move || {
        let csrf = member.as_ref().map(|(_, s)| s.derive("csrf"));
        let viewer = match &member {
            Some((account, _)) => site::Viewer {
                who: crate::access::Credentials::of(account),
                user: Some(&account.name),
                csrf: csrf.as_deref().unwrap_or(""),
                personal: None,
            },
            None => site::Viewer::ANONYMOUS,
        };
        site::render_search(&snap.catalog, &snap.pages.search, &query, &viewer)
    })
    .await;
    let Ok(html) = rendered else {
        let snap = state.live.snapshot();
        return error_page(&snap.pages.error, StatusCode::INTERNAL_SERVER_ERROR);
    };
    // A member's results may be revalidated by their own browser, never stored for others.
    per_viewer(html, "private, no-cache")
}

/// A page from the snapshot. A page not rendered yet is rendered and compressed on the blocking
/// pool (episode pages read files), kept in the snapshot, and then served like any other.
async fn page(snap: Arc<Snapshot>, key: PageRef, headers: &HeaderMap) -> Response {
    match snap.pages.lookup(&key) {
        Lookup::Ready(enc) => return respond(enc, headers),
        Lookup::Missing => return not_found(&snap, &key),
        Lookup::Render => {}
    }
    let (s, k) = (Arc::clone(&snap), key.clone());
    let rendered = tokio::task::spawn_blocking(move || s.pages.render(&s.catalog, &k).is_some());
    match rendered.await {
        Ok(true) => match snap.pages.lookup(&key) {
            Lookup::Ready(enc) => respond(enc, headers),
            _ => unreachable!("a rendered page is kept"),
        },
        Ok(false) => not_found(&snap, &key),
        Err(e) => {
            tracing::error!(error = %e, page = ?key, "rendering a page failed");
            error_page(&snap.pages.error, StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// A missing page whose id could exist gets the site's 404 page; anything else (`..`, encoded
/// slashes) gets the short plain 404, or the styled one if the client reads HTML.
fn not_found(snap: &Snapshot, key: &PageRef) -> Response {
    let id = match key {
        PageRef::Home => "",
        PageRef::Theme { id, .. } => id,
        PageRef::Episode { slug } => slug,
    };
    if catalog::valid_slug(id) {
        error_page(&snap.pages.not_found, StatusCode::NOT_FOUND)
    } else {
        Error::NotFound.into_response()
    }
}

/// A styled error page. Not cached, so a page that appears later is seen at once.
pub(super) fn error_page(enc: &Encoded, status: StatusCode) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(enc.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::new(enc.identity.body()),
    )
        .into_response()
}

/// CSS and script. Pages link them with `?v=<hash>`, so any cached copy under that URL is current.
pub fn static_file(name: &str, headers: &HeaderMap) -> Response {
    let Some(file) = site::static_file(name) else {
        return Error::NotFound.into_response();
    };
    let mut r = respond(&file.encoded, headers);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    r
}

pub fn opml(state: &AppState, headers: &HeaderMap, zero_copy: Option<&Arc<Regions>>) -> Response {
    respond_with(&state.live.snapshot().opml, headers, zero_copy)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Coding {
    Identity,
    Gzip,
    Br,
}

/// Picks br, then gzip, then identity, honouring `q=0` exclusions.
fn negotiate(accept: Option<&str>) -> Coding {
    match accepted(accept) {
        (true, _) => Coding::Br,
        (false, true) => Coding::Gzip,
        _ => Coding::Identity,
    }
}

/// Whether `Accept-Encoding` allows brotli, and gzip. A coding named on its own wins over `*`,
/// whatever the order, so `br;q=0, *` allows gzip and not brotli (RFC 9110 12.5.3).
fn accepted(accept: Option<&str>) -> (bool, bool) {
    let Some(accept) = accept else {
        return (false, false);
    };
    let (mut gzip, mut br, mut any) = (None, None, None);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        let ok = q > 0.0;
        match name.as_str() {
            "br" => br = Some(ok),
            "gzip" | "x-gzip" => gzip = Some(ok),
            "*" => any = Some(ok),
            _ => {}
        }
    }
    let any = any.unwrap_or(false);
    (br.unwrap_or(any), gzip.unwrap_or(any))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn conditions(headers: &HeaderMap) -> Conditions<'_> {
    Conditions {
        if_match: header_str(headers, header::IF_MATCH),
        if_unmodified_since: header_str(headers, header::IF_UNMODIFIED_SINCE),
        if_none_match: header_str(headers, header::IF_NONE_MATCH),
        if_modified_since: header_str(headers, header::IF_MODIFIED_SINCE),
        if_range: header_str(headers, header::IF_RANGE),
    }
}

pub(super) fn respond(enc: &Encoded, headers: &HeaderMap) -> Response {
    respond_with(enc, headers, None)
}

/// Like [`respond`]; with a connection that can send files (`zero_copy`), a large resource's
/// identity bytes go out with `sendfile` from its kept file (see [`crate::render::KeptFile`]).
pub(super) fn respond_with(
    enc: &Encoded,
    headers: &HeaderMap,
    zero_copy: Option<&Arc<Regions>>,
) -> Response {
    let coding = negotiate(header_str(headers, header::ACCEPT_ENCODING));
    // A variant still being compressed after a reload falls back to the stitched gzip (feeds),
    // then to identity.
    let gzip_ok = accepted(header_str(headers, header::ACCEPT_ENCODING)).1;
    // The variant, and the kept file holding the same bytes where there is one.
    let (compressed, etag, encoding, etag_value, file) = match coding {
        Coding::Br if enc.br().is_some() => (
            enc.br(),
            &enc.etag_br,
            Some("br"),
            &enc.headers.etag_br,
            None,
        ),
        _ if gzip_ok && enc.gzip().is_some() => (
            enc.gzip(),
            &enc.etag_gzip,
            Some("gzip"),
            &enc.headers.etag_gzip,
            None,
        ),
        _ if gzip_ok && enc.stitched().is_some() => (
            enc.stitched(),
            &enc.etag_stitched,
            Some("gzip"),
            &enc.headers.etag_stitched,
            None,
        ),
        _ => (None, &enc.etag, None, &enc.headers.etag, enc.file()),
    };
    let alternates = [
        enc.etag.as_str(),
        enc.etag_gzip.as_str(),
        enc.etag_stitched.as_str(),
        enc.etag_br.as_str(),
    ];
    let v = Validators {
        etag,
        alternates: &alternates,
        last_modified: enc.last_modified,
    };
    let status = match conditional::evaluate(&conditions(headers), &v, true) {
        Precondition::Proceed => StatusCode::OK,
        Precondition::NotModified => StatusCode::NOT_MODIFIED,
        Precondition::Failed => StatusCode::PRECONDITION_FAILED,
    };
    // Header values are formatted once per resource, not per request.
    let mut response = if status == StatusCode::OK {
        let len = compressed.map_or(enc.identity.len(), bytes::Bytes::len) as u64;
        match (file, zero_copy, compressed) {
            (Some(file), Some(regions), _) => {
                let stream = FileStream::new(Arc::clone(&file.file), 0, len);
                // A file on a filesystem may have lost pages to eviction: each chunk is probed.
                let stream = if file.in_memory {
                    stream.resident()
                } else {
                    stream
                };
                let stream = stream.zero_copy(Some(Arc::clone(regions)));
                let mut r = Response::new(Body::from_stream(stream));
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, super::decimal(len));
                r
            }
            (_, _, Some(bytes)) => Response::new(Body::from(bytes.clone())),
            _ => Response::new(Body::new(enc.identity.body())),
        }
    } else {
        Response::new(Body::empty())
    };
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.reserve(6);
    h.insert(header::ETAG, etag_value.clone());
    h.insert(header::LAST_MODIFIED, enc.headers.last_modified.clone());
    // A signed-in member gets another page at the same URL.
    let vary = if enc.content_type == site::HTML_TYPE {
        "Accept-Encoding, Cookie"
    } else {
        "Accept-Encoding"
    };
    h.insert(header::VARY, HeaderValue::from_static(vary));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    if status == StatusCode::OK {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(enc.content_type),
        );
        if let Some(e) = encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Coding::Identity);
        assert_eq!(negotiate(Some("gzip")), Coding::Gzip);
        assert_eq!(negotiate(Some("gzip, deflate, br")), Coding::Br);
        assert_eq!(negotiate(Some("br;q=0, gzip")), Coding::Gzip);
        assert_eq!(negotiate(Some("GZIP;q=0.5")), Coding::Gzip);
        assert_eq!(negotiate(Some("identity")), Coding::Identity);
        assert_eq!(negotiate(Some("*")), Coding::Br);
        assert_eq!(negotiate(Some("gzip;q=0")), Coding::Identity);
        // A coding named on its own wins over `*`, before or after it.
        assert_eq!(negotiate(Some("br;q=0, *")), Coding::Gzip);
        assert_eq!(negotiate(Some("*, br;q=0")), Coding::Gzip);
        assert_eq!(negotiate(Some("*;q=0, gzip")), Coding::Gzip);
        assert_eq!(negotiate(Some("br;q=0, gzip;q=0, *")), Coding::Identity);
    }

    #[test]
    fn personal_etags_join_the_template_hash_and_the_fingerprint() {
        let mut out = [0u8; PERSONAL_ETAG_GZIP_LEN];
        personal_etag(
            &mut out,
            "0123456789abcdef0123456789abcdef",
            [0x00, 0x9f, 0xa0, 0xff],
        );
        assert_eq!(&out, b"\"0123456789abcdef-009fa0ff-gzip\"");
        assert_eq!(
            out[..PERSONAL_ETAG_LEN - 1],
            b"\"0123456789abcdef-009fa0ff"[..]
        );
    }
}
