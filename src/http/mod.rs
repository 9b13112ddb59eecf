//! The HTTP layer: routing, responses and the server loop. Only this module uses hyper and axum.
//!
//! A request passes the access log (which counts the bytes actually sent), the `Host` check, and
//! then one handler: feeds and the OPML list come pre-rendered from the current [`Snapshot`]; media
//! is looked up by its exact URL path in the snapshot, passes an access decision, is decided by
//! [`crate::media::decide`], and is streamed from disk.

mod feeds;
mod log;
mod media;
pub mod server;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::snapshot::Live;

#[derive(Clone)]
pub struct AppState {
    pub live: Arc<Live>,
}

/// Builds the application: every route and middleware, ready to serve.
pub fn app(live: Arc<Live>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/feeds.opml", get(feeds::opml))
        .route("/feeds/{file}", get(feeds::feed))
        .route("/media/{*path}", get(media::media))
        .route("/artwork/{*path}", get(media::media))
        .fallback(not_found)
        .layer(middleware::from_fn(require_host))
        .layer(middleware::from_fn(log::access_log))
        .with_state(AppState { live })
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n")
}

async fn not_found() -> Response {
    Error::NotFound.into_response()
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
