//! The HTTP layer: routing, responses and the server loop. Only this module uses hyper and axum.
//!
//! A request passes one edge layer (the access log, which counts the bytes actually sent, the
//! `Host` check and the error-page step), and then one handler: feeds, the OPML list and the website's pages come
//! rendered from the current [`Snapshot`]; media is looked up by its exact URL path in the
//! snapshot, passes an access decision, is decided by [`crate::media::decide`], and is streamed
//! from disk. Errors have plain-text bodies; a browser (one that accepts `text/html`) gets the
//! site's styled 404 or 500 page instead. Page handlers answer a missing page in HTML always.

mod feeds;
mod log;
mod media;
pub mod server;

/// See [`log::install_sink`] and [`log::flush`].
pub use log::{flush as flush_access_log, install_sink as install_access_log};

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
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n")
}

async fn not_found() -> Response {
    Error::NotFound.into_response()
}

/// Every request passes here once, in one layer because each middleware layer costs a boxed future
/// per request: the access-log record starts, a request without `Host` gets 400 (RFC 9112 3.2),
/// and a plain-text 404 or 500 becomes the site's styled page when the client reads HTML (feed
/// readers and download tools, which do not ask for HTML, keep the short plain body).
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = log::Started::new(&req);
    let response = if req.headers().contains_key(header::HOST) {
        let wants_html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let response = next.run(req).await;
        if wants_html {
            styled_error(&state, response)
        } else {
            response
        }
    } else {
        Error::MissingHost.into_response()
    };
    log::counted(response, started)
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
        StatusCode::NOT_FOUND => feeds::error_page(&pages.not_found, status),
        StatusCode::INTERNAL_SERVER_ERROR => feeds::error_page(&pages.error, status),
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
