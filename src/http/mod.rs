//! The HTTP layer: routing, responses and the server loop. Only this module uses hyper and axum.
//!
//! A request passes the access log (which counts the bytes actually sent), the `Host` check, the
//! error-page step, and then one handler: feeds, the OPML list and the website's pages come
//! pre-rendered from the current [`Snapshot`]; media is looked up by its exact URL path in the
//! snapshot, passes an access decision, is decided by [`crate::media::decide`], and is streamed
//! from disk. Errors have plain-text bodies; a browser (one that accepts `text/html`) gets the
//! site's styled 404 or 500 page instead. Page handlers answer a missing page in HTML always.

mod feeds;
mod log;
mod media;
pub mod server;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::snapshot::Live;

#[derive(Clone)]
pub struct AppState {
    pub live: Arc<Live>,
    /// Open media files, reused across requests.
    pub files: Arc<media::FileCache>,
}

/// Builds the application: every route and middleware, ready to serve.
pub fn app(live: Arc<Live>) -> Router {
    let state = AppState {
        live,
        files: Arc::default(),
    };
    Router::new()
        .route("/", get(feeds::home))
        .route("/healthz", get(healthz))
        .route("/feeds.opml", get(feeds::opml))
        .route("/feeds/{file}", get(feeds::feed))
        .route("/episodes/{slug}", get(feeds::episode))
        .route("/static/{name}", get(feeds::static_file))
        .route("/media/{*path}", get(media::media))
        .route("/artwork/{*path}", get(media::media))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), html_errors))
        .layer(middleware::from_fn(require_host))
        .layer(middleware::from_fn(log::access_log))
        .with_state(state)
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n")
}

async fn not_found() -> Response {
    Error::NotFound.into_response()
}

/// Swaps a plain-text 404 or 500 for the site's styled page when the client reads HTML. Feed readers
/// and download tools, which do not ask for HTML, keep the short plain body.
async fn html_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let response = next.run(req).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !wants_html || !plain {
        return response;
    }
    let pages = &state.live.snapshot().pages;
    match status {
        StatusCode::NOT_FOUND => feeds::error_page(&pages.not_found, status),
        StatusCode::INTERNAL_SERVER_ERROR => feeds::error_page(&pages.error, status),
        _ => response,
    }
}

/// RFC 9112 3.2: a request without `Host` gets 400.
async fn require_host(req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::HOST) {
        return Error::MissingHost.into_response();
    }
    next.run(req).await
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
