//! The HTTP layer: routing, responses and the server loop. Only this module uses hyper and axum.
//!
//! A request passes one edge step (the access log, which counts the bytes actually sent, the
//! `Host` check and the error-page step), and then one handler, chosen by a `match` on the path: feeds, the OPML list and the website's pages come
//! rendered from the current [`Snapshot`]; media is looked up by its exact URL path in the
//! snapshot, passes an access decision, is decided by [`crate::media::decide`], and is streamed
//! from disk. Errors have plain-text bodies; a browser (one that accepts `text/html`) gets the
//! site's styled 404 or 500 page instead. Page handlers answer a missing page in HTML always.

mod log;
mod media;
mod rendered;
pub mod server;

/// See [`log::install_sink`] and [`log::flush`].
pub use log::{flush as flush_access_log, install_sink as install_access_log};

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::media::zerocopy::Regions;
use crate::snapshot::Live;

#[derive(Clone)]
pub struct AppState {
    pub live: Arc<Live>,
    /// Open media files, reused across requests.
    pub files: Arc<media::FileCache>,
}

/// The application: every route, behind the edge step. Cloning is cheap.
///
/// Routing is a `match` on the path's first segment rather than a router: the handful of routes
/// never change, and a router's boxed, cloned services and middleware cost a measurable share of a
/// small response's time (see BENCHMARKS.md).
#[derive(Clone)]
pub struct App {
    state: AppState,
}

/// Builds the application, ready to serve.
pub fn app(live: Arc<Live>) -> App {
    App {
        state: AppState {
            live,
            files: Arc::default(),
        },
    }
}

impl App {
    /// Answers one request: the edge step (access log, `Host` check, styled errors), then a route.
    /// `regions` is the connection's zero-copy queue when it can send files with `sendfile` (see
    /// [`crate::media::zerocopy`]); media is then sent from the page cache.
    pub async fn handle(
        &self,
        req: Request,
        regions: Option<&Arc<Regions>>,
    ) -> axum::http::Response<log::Counted> {
        let started = log::Started::new(&req);
        let response = if req.headers().contains_key(header::HOST) {
            let wants_html = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            let response = self.route(req, regions).await;
            if wants_html {
                styled_error(&self.state, response)
            } else {
                response
            }
        } else {
            Error::MissingHost.into_response()
        };
        log::counted(response, started)
    }

    async fn route(&self, req: Request, regions: Option<&Arc<Regions>>) -> Response {
        let state = &self.state;
        let headers = req.headers();
        let Some(path) = req.uri().path().strip_prefix('/') else {
            return Error::NotFound.into_response();
        };
        let (first, rest) = match path.split_once('/') {
            Some((first, rest)) => (first, Some(rest)),
            None => (path, None),
        };
        // A single segment after the prefix; `None` for nested or empty ones.
        let segment = rest.filter(|r| !r.is_empty() && !r.contains('/'));
        let known = match (first, rest) {
            ("" | "healthz" | "feeds.opml", None) => true,
            ("feeds" | "episodes" | "static", Some(_)) => segment.is_some(),
            ("media" | "artwork", Some(_)) => true,
            _ => false,
        };
        if !known {
            return Error::NotFound.into_response();
        }
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return method_not_allowed(),
        };
        let response = match (first, rest) {
            ("", None) => rendered::home(state, headers).await,
            ("healthz", None) => plain(StatusCode::OK, "ok\n"),
            ("feeds.opml", None) => rendered::opml(state, headers),
            ("feeds", Some(_)) if segment.is_some() => {
                let file = segment.expect("checked");
                rendered::feed(state, file, req.uri().query(), headers).await
            }
            ("episodes", Some(_)) if segment.is_some() => {
                rendered::episode(state, segment.expect("checked"), headers).await
            }
            ("static", Some(_)) if segment.is_some() => {
                rendered::static_file(segment.expect("checked"), headers)
            }
            ("media" | "artwork", Some(_)) => media::media(state, req, regions.cloned()).await,
            _ => Error::NotFound.into_response(),
        };
        if head {
            without_body(response)
        } else {
            response
        }
    }
}

/// A HEAD response: the GET response's headers, with Content-Length from the body it would have
/// sent, and no body.
fn without_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // 304 and 204 responses have no body to describe (RFC 9110 8.6).
    let has_body = !matches!(
        parts.status,
        StatusCode::NOT_MODIFIED | StatusCode::NO_CONTENT
    ) && !parts.status.is_informational();
    if has_body && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = http_body::Body::size_hint(&body).exact() {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    Response::from_parts(parts, Body::empty())
}

fn method_not_allowed() -> Response {
    let mut r = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: use GET or HEAD\n",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

fn styled_error(state: &AppState, response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !plain {
        return response;
    }
    let pages = &state.live.snapshot().pages;
    match status {
        StatusCode::NOT_FOUND => rendered::error_page(&pages.not_found, status),
        StatusCode::INTERNAL_SERVER_ERROR => rendered::error_page(&pages.error, status),
        _ => response,
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Every error a handler can return, mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("request has no Host header")]
    MissingHost,
    #[error("the file changed on disk since the catalog was loaded")]
    Stale,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::NotFound => plain(StatusCode::NOT_FOUND, "not found\n"),
            Error::MissingHost => plain(
                StatusCode::BAD_REQUEST,
                "bad request: the Host header is required\n",
            ),
            Error::Stale => {
                let mut r = plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this file is being replaced; fetch the feed again for its new URL\n",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                r
            }
            Error::Io(e) => {
                tracing::error!(error = %e, "I/O error while serving");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            }
        }
    }
}
