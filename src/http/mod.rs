//! The HTTP layer: routing, responses and the server loop. Only this module uses hyper and axum.
//!
//! A request flows through [`App::handle`]: it copies what its delivery record needs, works out
//! the [`RequestContext`] (client address, credentials), parses the path once into a [`Route`],
//! checks the route's methods, and runs one handler chosen by an exhaustive `match`. Feeds, the
//! OPML list and the website's pages come rendered from the current [`Snapshot`]; media is looked
//! up by its exact URL path in the snapshot, passes [`crate::access`], is decided by
//! [`crate::media::decide`], and is streamed from disk. HEAD is answered by running GET and
//! dropping the body, here and nowhere else. Errors have plain-text bodies; a browser (one that
//! accepts `text/html`) gets the site's styled 404 or 500 page instead. Every response ends in
//! one [`crate::stats::Delivery`] record (see [`delivery`]), which the access log and download
//! measurement read.
//!
//! [`Snapshot`]: crate::snapshot::Snapshot

pub mod admin;
mod context;
mod delivery;
mod log;
mod media;
mod rendered;
pub mod route;
pub mod server;
mod session;
mod throttle;
mod wire;

pub use log::{AccessLog, LogStyle};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::access::personal::{TokenKey, Tokens};
use crate::snapshot::Live;
use crate::stats::Deliveries;
use context::RequestContext;
use delivery::{Asker, Counted, Sent, Started};
use route::{Methods, Resource, Route};
use wire::Wire;

#[derive(Clone)]
pub struct AppState {
    pub live: Arc<Live>,
    /// Open media files, reused across requests.
    pub files: Arc<media::FileCache>,
    /// Accounts and sessions, for members who browse the site signed in.
    pub store: Arc<crate::store::Store>,
    /// Derives a signed-in member's personal URLs for the pages.
    pub key: Arc<TokenKey>,
}

/// The application: every route. Cloning is cheap.
///
/// Routing is a `match` on the parsed [`Route`] rather than a router: the handful of routes never
/// change, and a router's boxed, cloned services and middleware cost a measurable share of a small
/// response's time (see BENCHMARKS.md).
#[derive(Clone)]
pub struct App {
    state: AppState,
    deliveries: Arc<Deliveries>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    admin: admin::AdminApp,
    /// Guesses of secrets per address, shared with the admin.
    throttle: Arc<throttle::Throttle>,
    /// Valid personal-URL tokens.
    tokens: Arc<Tokens>,
    store: Arc<crate::store::Store>,
}

/// What the server's parts share: the live catalog, the store, the token map and its key, and
/// the throttle of guesses.
pub struct Shared {
    pub live: Arc<Live>,
    pub store: Arc<crate::store::Store>,
    pub tokens: Arc<Tokens>,
    pub key: Arc<TokenKey>,
    throttle: Arc<throttle::Throttle>,
}

impl Shared {
    pub fn new(
        live: Arc<Live>,
        store: Arc<crate::store::Store>,
        tokens: Arc<Tokens>,
        key: Arc<TokenKey>,
        attempts_per_minute: std::num::NonZeroU32,
    ) -> Shared {
        Shared {
            live,
            store,
            tokens,
            key,
            throttle: Arc::new(throttle::Throttle::new(attempts_per_minute)),
        }
    }
}

/// The connection a request arrived on.
#[derive(Clone)]
struct Connection {
    peer: SocketAddr,
    /// The socket's ledger.
    wire: Arc<Wire>,
}

/// Builds the application, ready to serve. Every response's delivery record goes to
/// `deliveries`; forwarding headers are believed only from `trusted_proxies`.
pub fn app(
    shared: &Shared,
    deliveries: Arc<Deliveries>,
    trusted_proxies: &[ipnet::IpNet],
    admin: crate::config::AdminConfig,
) -> App {
    App {
        state: AppState {
            live: Arc::clone(&shared.live),
            files: Arc::default(),
            store: Arc::clone(&shared.store),
            key: Arc::clone(&shared.key),
        },
        trusted_proxies: trusted_proxies.into(),
        admin: admin::AdminApp::new(shared, admin, Arc::clone(&deliveries)),
        deliveries,
        throttle: Arc::clone(&shared.throttle),
        tokens: Arc::clone(&shared.tokens),
        store: Arc::clone(&shared.store),
    }
}

impl App {
    /// Answers one request and arranges for its delivery record.
    /// The body stays hyper's own type until a route reads it (only the admin surface does):
    /// boxing it into axum's `Body` would cost an allocation per request.
    ///
    /// This is the future hyper keeps for each request, moved into the connection's state as a
    /// whole, so it takes the request already split and the connection by value: wrapped in
    /// another `async` block, or handed the request whole, each value would be held twice (a
    /// generator keeps its captures and arguments apart from its locals), and the future was
    /// 2,072 bytes that way.
    async fn handle(
        self: Arc<Self>,
        req: Parts,
        body: hyper::body::Incoming,
        conn: Connection,
    ) -> Result<axum::http::Response<Counted>, std::convert::Infallible> {
        let conn = &conn;
        if let Some(refusal) = oversized(&req.uri, &req.headers) {
            let started = Started::new(&req);
            let ctx = RequestContext::new(conn.peer, &req.headers, &self.trusted_proxies);
            let asker = Asker {
                route: crate::stats::RouteKind::Unknown,
                sent: None,
                client: ctx.client,
                credentials: ctx.credentials,
            };
            let response = refusal.into_response();
            return Ok(delivery::finish(
                response,
                started,
                asker,
                Arc::clone(&conn.wire),
                &self.deliveries,
            ));
        }
        let route = Route::parse(req.uri.path());
        let kind = route.kind();
        if let Route::Admin | Route::Metrics = route {
            // Boxed: the admin router's future is about 1.5 KB, and without the box every
            // request's future would be that much larger, moved into hyper's connection state
            // each time (memmove was about 2% of a 304's samples).
            let req = Request::from_parts(req, Body::new(body));
            return Ok(Box::pin(self.handle_admin(req, conn, kind)).await);
        }
        // Read-only routes take no body (it is kept, unread, until the answer is ready); the
        // parts are `Sync`, so handlers can borrow them.
        let _body = body;
        let started = Started::new(&req);
        let mut ctx = RequestContext::new(conn.peer, &req.headers, &self.trusted_proxies);
        // A personal URL's token is settled before routing: a valid one gives the request its
        // holder's credentials; any other answers exactly as a path that never existed.
        let refused = match route {
            Route::Personal { token, .. } => self.refuse_personal(token, &mut ctx).await,
            _ => None,
        };
        let (response, sent) = if req.headers.contains_key(header::HOST) {
            let wants_html = req
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            let (response, sent) = match refused {
                Some(r) => (r, None),
                None => self.route(route, &ctx, &req, conn).await,
            };
            if wants_html {
                (styled_error(&self.state, response), sent)
            } else {
                (response, sent)
            }
        } else {
            (Error::MissingHost.into_response(), None)
        };
        let response = if matches!(route, Route::Personal { .. }) {
            private_personal(response)
        } else {
            response
        };
        let asker = Asker {
            route: kind,
            sent,
            client: ctx.client,
            credentials: ctx.credentials,
        };
        Ok(delivery::finish(
            response,
            started,
            asker,
            Arc::clone(&conn.wire),
            &self.deliveries,
        ))
    }

    /// Sets in `ctx` the credentials a personal URL's token proves, or returns the response to
    /// send instead: 404 for any token that is not valid now (malformed, wrong, revoked,
    /// suspended: all the same), 429 once the address has guessed too often.
    async fn refuse_personal(&self, token: &str, ctx: &mut RequestContext) -> Option<Response> {
        if let Some(wait) = self.throttle.blocked_for(ctx.client) {
            return Some(too_many(wait));
        }
        let holder = match self.tokens.lookup(token) {
            Some(h) => Some(h),
            // Unknown to the map: perhaps issued by the CLI a moment ago; the store knows.
            None => {
                let (tokens, store, token) = (
                    Arc::clone(&self.tokens),
                    Arc::clone(&self.store),
                    token.to_owned(),
                );
                tokio::task::spawn_blocking(move || tokens.lookup_fresh(&store, &token))
                    .await
                    .ok()
                    .flatten()
            }
        };
        match holder {
            Some(holder) => {
                ctx.credentials = holder.credentials();
                None
            }
            None => Some(match self.throttle.attempt(ctx.client) {
                Some(wait) => too_many(wait),
                None => Error::NotFound.into_response(),
            }),
        }
    }

    /// Hands an `/admin` request, body and all, to the admin router.
    async fn handle_admin(
        &self,
        req: Request,
        conn: &Connection,
        kind: crate::stats::RouteKind,
    ) -> axum::http::Response<Counted> {
        let (parts, body) = req.into_parts();
        let started = Started::new(&parts);
        let ctx = RequestContext::new(conn.peer, &parts.headers, &self.trusted_proxies);
        let response = self
            .admin
            .handle(Request::from_parts(parts, body), ctx)
            .await;
        let credentials = response
            .extensions()
            .get::<crate::access::Credentials>()
            .copied()
            .unwrap_or(ctx.credentials);
        let asker = Asker {
            route: kind,
            sent: None,
            client: ctx.client,
            credentials,
        };
        delivery::finish(
            response,
            started,
            asker,
            Arc::clone(&conn.wire),
            &self.deliveries,
        )
    }

    /// Checks the method, then dispatches. HEAD runs GET's handler and drops the body. Also
    /// returns the episode a media response belongs to, for its record.
    async fn route(
        &self,
        route: Route<'_>,
        ctx: &RequestContext,
        req: &Parts,
        conn: &Connection,
    ) -> (Response, Option<Sent>) {
        let Some(methods) = route.methods() else {
            return (Error::NotFound.into_response(), None);
        };
        match (methods, &req.method) {
            (Methods::Read, &Method::GET) => self.dispatch(route, ctx, req, conn).await,
            (Methods::Read, &Method::HEAD) => {
                let (response, sent) = self.dispatch(route, ctx, req, conn).await;
                (without_body(response), sent)
            }
            _ => (method_not_allowed(methods), None),
        }
    }

    async fn dispatch(
        &self,
        route: Route<'_>,
        ctx: &RequestContext,
        req: &Parts,
        conn: &Connection,
    ) -> (Response, Option<Sent>) {
        let state = &self.state;
        let headers = &req.headers;
        let resource = match route {
            Route::Health => return (plain(StatusCode::OK, "ok\n"), None),
            Route::Ready => return (self.ready().await, None),
            // Taken by `handle_admin` before routing gets here.
            Route::Unknown | Route::Admin | Route::Metrics => {
                return (Error::NotFound.into_response(), None)
            }
            Route::Personal { token, resource } => {
                return self.personal(token, resource, ctx, req, conn).await;
            }
            Route::Public(resource) => resource,
        };
        // A signed-in member gets pages made for them: members feeds, players, their own URLs.
        if matches!(
            resource,
            Resource::Home | Resource::Theme { .. } | Resource::Episode { .. } | Resource::Search
        ) && session::has_session(headers)
        {
            if let Some(r) = rendered::member_page(state, resource, req.uri.query(), headers).await
            {
                return (r, None);
            }
        }
        let zero_copy = Some(&conn.wire.regions);
        let response = match resource {
            Resource::Home => rendered::home(state, headers).await,
            Resource::Opml => rendered::opml(state, headers, zero_copy),
            Resource::Feed { id } => rendered::feed(state, ctx, id, headers, zero_copy),
            Resource::Theme { id } => {
                rendered::theme(state, ctx, id, req.uri.query(), headers).await
            }
            Resource::Episode { slug } => rendered::episode(state, slug, headers).await,
            Resource::Static { name } => rendered::static_file(name, headers),
            Resource::Search => rendered::search(state, req.uri.query()).await,
            Resource::Media { path } | Resource::Artwork { path } | Resource::File { path } => {
                return media::media(state, ctx, path, req, zero_copy.cloned()).await;
            }
        };
        (response, None)
    }
}

/// Losses of measurement records this recent make the server not ready.
const RECENT_LOSS: std::time::Duration = std::time::Duration::from_secs(60);

impl App {
    /// `/readyz`: 200 `ready`, or 503 with one line per reason while something is wrong: the
    /// catalog's last reload failed or its watcher stopped, the store takes no writes, or
    /// measurement is losing records. `/healthz` stays the cheap liveness check.
    async fn ready(&self) -> Response {
        let mut reasons = self.state.live.problems();
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.check_writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => reasons.push(format!("store: cannot write to the database: {e}")),
            Err(_) => reasons.push("store: the writability check failed".into()),
        }
        if let Some(m) = self.deliveries.metrics.measurement() {
            use std::sync::atomic::Ordering::Relaxed;
            if m.failing.load(Relaxed) {
                reasons.push("measurement: the last write of events to the database failed; they wait in memory".into());
            }
            if m.lost_within(RECENT_LOSS) {
                reasons.push(format!(
                    "measurement: events were lost in the last minute (queue full or database unwritable; {} in all)",
                    m.dropped()
                ));
            }
        }
        let mut r = if reasons.is_empty() {
            plain(StatusCode::OK, "ready\n")
        } else {
            let mut text = reasons.join("\n");
            text.push('\n');
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response()
        };
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    /// What a personal URL serves, once its token proved `ctx`'s credentials: feeds (members
    /// feeds with the token in every media URL) and their media and artwork, through the same
    /// range, conditional and zero-copy path as public media. Everything under `/p/` is private.
    async fn personal(
        &self,
        token: &str,
        resource: Resource<'_>,
        ctx: &RequestContext,
        req: &Parts,
        conn: &Connection,
    ) -> (Response, Option<Sent>) {
        let zero_copy = Some(&conn.wire.regions);
        match resource {
            Resource::Feed { id } => {
                let r =
                    rendered::personal_feed(&self.state, ctx, token, id, &req.headers, zero_copy);
                (r, None)
            }
            Resource::Media { path } | Resource::Artwork { path } | Resource::File { path } => {
                media::media(&self.state, ctx, path, req, zero_copy.cloned()).await
            }
            _ => (Error::NotFound.into_response(), None),
        }
    }
}

/// Marks a response to a personal URL as private: never stored by a cache, and never giving
/// its URL (which holds the token) away as a `Referer`.
fn private_personal(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// 429 with `Retry-After`, in whole seconds.
fn too_many(wait: std::time::Duration) -> Response {
    let mut r = plain(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests with invalid credentials from this address: wait and try again\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, retry_after(wait));
    r
}

/// `Retry-After` for a client that must wait `wait`: whole seconds, at least one.
pub(super) fn retry_after(wait: std::time::Duration) -> HeaderValue {
    decimal(wait.as_secs().max(1))
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
            parts.headers.insert(header::CONTENT_LENGTH, decimal(n));
        }
    }
    Response::from_parts(parts, Body::empty())
}

fn method_not_allowed(methods: Methods) -> Response {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, methods.hint());
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods.allow()));
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

/// A refusal after which the connection closes: the client sent more than the server reads.
fn closing(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CONNECTION, HeaderValue::from_static("close")),
        ],
        body,
    )
        .into_response()
}

/// A `Content-Length` (or any decimal) header value in one allocation: `HeaderValue::from(u64)`
/// takes two (a buffer, then the shared handle `Bytes` makes of a vector with room to spare),
/// and every media response sets one.
pub(super) fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_bytes(itoa::Buffer::new().format(n).as_bytes()).expect("decimal digits")
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
    #[error("request target of {0} bytes")]
    UriTooLong(usize),
    #[error("request head of {0} bytes")]
    HeadTooLarge(usize),
}

/// The longest request target (path and query) served; longer ones get 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The largest request head (request line and headers) served; larger ones get 431. hyper's read
/// buffer (`server::MAX_BUF`) is larger, so these limits, not the buffer, answer first.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// 414 or 431 for a request whose target or head is over the limits.
fn oversized(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> Option<Error> {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(Error::UriTooLong(target));
    }
    // Each header line is `name: value\r\n`.
    let head = target
        + headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    (head > MAX_HEAD_BYTES).then_some(Error::HeadTooLarge(head))
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
            Error::UriTooLong(n) => closing(
                StatusCode::URI_TOO_LONG,
                format!("URI too long: the request target is {n} bytes; the limit is {MAX_URI_BYTES}\n"),
            ),
            Error::HeadTooLarge(n) => closing(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request header fields too large: the request line and headers are {n} bytes; the limit is {MAX_HEAD_BYTES}\n"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_header_values_match_the_standard_conversion() {
        for n in [0, 7, 65_536, 100_000_000, u64::MAX] {
            assert_eq!(super::decimal(n), axum::http::HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_and_never_zero() {
        use std::time::Duration;
        assert_eq!(super::retry_after(Duration::from_millis(300)), "1");
        assert_eq!(super::retry_after(Duration::from_millis(61_900)), "61");
    }
}
