//! Feeds and the OPML list: pre-rendered, pre-compressed bytes with strong validators.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{AppState, Error};
use crate::media::conditional::{self, Conditions, Precondition, Validators};
use crate::snapshot::Encoded;

pub async fn feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let snap = state.live.snapshot();
    match file.strip_suffix(".xml").and_then(|id| snap.feeds.get(id)) {
        Some(enc) => respond(enc, &headers),
        None => Error::NotFound.into_response(),
    }
}

pub async fn opml(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(&state.live.snapshot().opml, &headers)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Coding {
    Identity,
    Gzip,
    Br,
}

/// Picks br, then gzip, then identity, honouring `q=0` exclusions.
fn negotiate(accept: Option<&str>) -> Coding {
    let Some(accept) = accept else {
        return Coding::Identity;
    };
    let mut gzip = false;
    let mut br = false;
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
            "br" => br = ok,
            "gzip" | "x-gzip" => gzip = ok,
            "*" => {
                br |= ok;
                gzip |= ok;
            }
            _ => {}
        }
    }
    if br {
        Coding::Br
    } else if gzip {
        Coding::Gzip
    } else {
        Coding::Identity
    }
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

fn respond(enc: &Encoded, headers: &HeaderMap) -> Response {
    let coding = negotiate(header_str(headers, header::ACCEPT_ENCODING));
    let (body, etag, encoding): (&Bytes, &str, Option<&'static str>) = match coding {
        Coding::Br => (&enc.br, &enc.etag_br, Some("br")),
        Coding::Gzip => (&enc.gzip, &enc.etag_gzip, Some("gzip")),
        Coding::Identity => (&enc.identity, &enc.etag, None),
    };
    let alternates = [
        enc.etag.as_str(),
        enc.etag_gzip.as_str(),
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
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex etag"));
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(enc.last_modified)).expect("http date"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    if status != StatusCode::OK {
        return (status, h).into_response();
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type),
    );
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    (status, h, body.clone()).into_response()
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
    }
}
