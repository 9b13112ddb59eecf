//! The admin surface under `/admin`: web pages and forms for people ([`web`]), and a JSON API for
//! scripts ([`api`]). Unlike feeds and media, these routes take request bodies (forms, multipart
//! uploads) and are few and rarely used, so they use axum's `Router`.
//!
//! Who is asking is settled here, once per request:
//! - the web uses a server-side session: the `rollcall_session` cookie holds a random id whose
//!   hash is in the store; every form carries a CSRF token derived from that id;
//! - the API uses `Authorization: Bearer <token>`, a token made by `rollcall token create`.
//!
//! Both end in [`Credentials`], and [`access::may_administer`] decides. Failed sign-ins and bad
//! tokens are throttled per client address ([`Throttle`]). Every store call runs on the blocking
//! pool. Every change goes through [`Live::write`], so it is live when the response is sent, and
//! is written to the audit log.

mod api;
mod form;
mod stats;
mod web;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::throttle::Throttle;
use crate::access::personal::{TokenKey, Tokens};
use crate::access::{self, Account, Credentials, Secret};
use crate::catalog::write::{self, Attachments, Draft, Patch, Staging, WriteError};
use crate::config::AdminConfig;
use crate::snapshot::Live;
use crate::store::{Store, StoreError};

use super::context::RequestContext;

/// Everything the admin routes share. Cloning is cheap.
#[derive(Clone)]
struct Admin {
    live: Arc<Live>,
    store: Arc<Store>,
    config: AdminConfig,
    throttle: Arc<Throttle>,
    tokens: Arc<Tokens>,
    key: Arc<TokenKey>,
    /// Where delivery records go: the metrics, and the measurement thread's status.
    deliveries: Arc<crate::stats::Deliveries>,
}

/// The admin surface, ready to answer requests.
#[derive(Clone)]
pub struct AdminApp {
    router: Router,
}

impl AdminApp {
    pub fn new(
        shared: &super::Shared,
        config: AdminConfig,
        deliveries: Arc<crate::stats::Deliveries>,
    ) -> AdminApp {
        let admin = Admin {
            live: Arc::clone(&shared.live),
            store: Arc::clone(&shared.store),
            config,
            throttle: Arc::clone(&shared.throttle),
            tokens: Arc::clone(&shared.tokens),
            key: Arc::clone(&shared.key),
            deliveries,
        };
        AdminApp {
            router: router(admin),
        }
    }

    /// Answers one request under `/admin`. The response carries the credentials it proved (as
    /// an extension) for the delivery record.
    pub async fn handle(&self, mut req: Request, ctx: RequestContext) -> Response {
        use tower::ServiceExt;
        req.extensions_mut().insert(ctx);
        match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

fn router(admin: Admin) -> Router {
    let upload_limit = usize::try_from(admin.config.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    // Small forms (sign-in, sign-out, unpublish) are read whole, so their limit is small; only
    // the upload routes take large bodies, and those stream them to disk.
    Router::new()
        .merge(web::routes(upload_limit))
        .merge(api::routes(upload_limit))
        .merge(stats::routes())
        .layer(axum::extract::DefaultBodyLimit::max(SMALL_BODY))
        .with_state(admin)
}

/// The body limit of routes that take small forms or JSON.
const SMALL_BODY: usize = 64 * 1024;

/// Runs blocking work (the store, catalog writes) on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Password checks running at once: argon2id takes a core and 19 MiB each, so a flood of
/// sign-ins waits here instead of exhausting memory and the blocking pool.
fn password_checks() -> &'static tokio::sync::Semaphore {
    static CHECKS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    CHECKS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// Everything an admin request can fail with, mapped to a status in one place.
#[derive(Debug)]
pub enum AdminError {
    /// No credentials, or ones that are not valid.
    Unauthorized(&'static str),
    /// Valid credentials that may not do this, or a form without its CSRF token.
    Forbidden(String),
    NotFound,
    TooMany(Duration),
    BadRequest {
        field: String,
        message: String,
    },
    Unsupported(String),
    TooLarge {
        field: String,
        limit: u64,
    },
    Write(WriteError),
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        AdminError::Internal(e.to_string())
    }
}

impl From<WriteError> for AdminError {
    fn from(e: WriteError) -> AdminError {
        match e {
            WriteError::TooLarge { field, limit } => AdminError::TooLarge { field, limit },
            e => AdminError::Write(e),
        }
    }
}

/// A write that failed because of its disk, not the request: the status and what to do.
fn disk_problem(e: &std::io::Error) -> Option<(StatusCode, &'static str)> {
    use std::io::ErrorKind::*;
    match e.kind() {
        StorageFull | QuotaExceeded => Some((
            StatusCode::INSUFFICIENT_STORAGE,
            "the disk holding episodes_dir is full; nothing was changed: free space and send it again",
        )),
        ReadOnlyFilesystem | PermissionDenied => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "episodes_dir cannot be written; nothing was changed: make it writable and send it again",
        )),
        _ => None,
    }
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AdminError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AdminError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::Write(e) => match e {
                WriteError::Invalid(_) | WriteError::Rejected(_) => StatusCode::BAD_REQUEST,
                WriteError::NotAudio { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                WriteError::SlugTaken(_) | WriteError::Conflict(_) => StatusCode::CONFLICT,
                WriteError::NoSuchEpisode(_) => StatusCode::NOT_FOUND,
                WriteError::Duplicate(_) => StatusCode::BAD_REQUEST,
                WriteError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                WriteError::Io { source, .. } => {
                    disk_problem(source).map_or(StatusCode::INTERNAL_SERVER_ERROR, |(s, _)| s)
                }
            },
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a person or script sees.
    pub fn message(&self) -> String {
        match self {
            AdminError::Unauthorized(m) => (*m).to_owned(),
            AdminError::Forbidden(m) | AdminError::Unsupported(m) => m.clone(),
            AdminError::NotFound => "not found".into(),
            AdminError::TooMany(wait) => format!(
                "too many failed attempts from this address: wait {} seconds",
                wait.as_secs().max(1)
            ),
            AdminError::BadRequest { field, message } => format!("field '{field}': {message}"),
            AdminError::TooLarge { field, limit } => format!(
                "field '{field}': the upload is larger than max_upload_bytes ({limit} bytes): send a smaller file or raise max_upload_bytes"
            ),
            AdminError::Write(e) => {
                let text = e.to_string().trim_end().to_owned();
                match e {
                    WriteError::Io { source, .. } => match disk_problem(source) {
                        Some((_, advice)) => format!("{text}: {advice}"),
                        None => text,
                    },
                    _ => text,
                }
            }
            AdminError::Internal(_) => "internal error; the server log has the cause".into(),
        }
    }

    /// The field the error is about, when there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            AdminError::BadRequest { field, .. } | AdminError::TooLarge { field, .. } => {
                Some(field.clone())
            }
            AdminError::Write(
                WriteError::NotAudio { field, .. } | WriteError::Duplicate(field),
            ) => Some(field.clone()),
            AdminError::Write(WriteError::SlugTaken(_)) => Some("slug".into()),
            AdminError::Write(WriteError::Invalid(p) | WriteError::Rejected(p)) => {
                p.0.first().map(|p| p.field.clone())
            }
            _ => None,
        }
    }

    fn log(&self) {
        if let AdminError::Internal(cause) | AdminError::Write(WriteError::Io { what: cause, .. }) =
            self
        {
            tracing::error!(cause, "admin request failed");
        }
    }

    /// Headers every rendering of the error carries.
    fn decorate(&self, response: &mut Response) {
        if let AdminError::TooMany(wait) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, crate::http::retry_after(*wait));
        }
        if matches!(self, AdminError::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall\""),
            );
        }
    }

    /// As JSON: `{"error": "...", "field": "..."}`.
    pub fn into_json(self) -> Response {
        self.log();
        let body = serde_json::json!({ "error": self.message(), "field": self.field() });
        let mut r = (self.status(), axum::Json(body)).into_response();
        self.decorate(&mut r);
        r
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.into_json()
    }
}

/// Sets `Cache-Control: no-store`: admin pages and answers hold private state.
fn private(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

use super::session::{cookie, SESSION_COOKIE};

const SIGN_IN_COOKIE: &str = "rollcall_sign_in";

/// A `Set-Cookie` value: HttpOnly and SameSite=Lax always, Secure when `public_url` is https.
fn set_cookie(config: &AdminConfig, name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    ))
    .expect("cookie values are hex")
}

/// The account behind a request's session cookie, and the session's secret.
async fn session(
    admin: &Admin,
    headers: &HeaderMap,
) -> Result<Option<(Account, Secret)>, AdminError> {
    Ok(super::session::signed_in(&admin.store, headers).await?)
}

/// The account behind `Authorization: Bearer <token>`. Bad tokens count as failed attempts.
async fn bearer(admin: &Admin, headers: &HeaderMap, client: IpAddr) -> Result<Account, AdminError> {
    if let Some(wait) = admin.throttle.blocked_for(client) {
        return Err(AdminError::TooMany(wait));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        });
    let Some(given) = given else {
        return Err(AdminError::Unauthorized(
            "send an API token as 'Authorization: Bearer <token>' (rollcall token create --user NAME makes one)",
        ));
    };
    let account = match Secret::parse(given.trim()) {
        Some(token) => {
            let store = Arc::clone(&admin.store);
            let hash = token.hash();
            blocking(move || store.api_token(&hash)).await?
        }
        None => None,
    };
    match account {
        Some(a) => Ok(a),
        None => {
            if let Some(wait) = admin.throttle.attempt(client) {
                return Err(AdminError::TooMany(wait));
            }
            Err(AdminError::Unauthorized(
                "the API token in the Authorization header is not valid: create one with rollcall token create --user NAME",
            ))
        }
    }
}

/// Checks that `account` may administer.
fn require_admin(account: &Account) -> Result<(), AdminError> {
    if access::may_administer(Credentials::of(account)) {
        Ok(())
    } else {
        Err(AdminError::Forbidden(format!(
            "{} is an officer account; adding and editing episodes needs an admin account",
            account.name
        )))
    }
}

/// Records `action` on `subject` in the audit log; a failure is logged, never fatal.
async fn audit(admin: &Admin, actor: &Account, action: &str, subject: &str, client: IpAddr) {
    let (store, actor, action, subject) = (
        Arc::clone(&admin.store),
        actor.name.clone(),
        action.to_owned(),
        subject.to_owned(),
    );
    let origin = client.to_string();
    if let Err(e) = blocking(move || store.audit(&actor, &action, &subject, &origin)).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// Adds an episode as `who`, live before this returns, and audits it. Returns its slug. The
/// change and its audit entry are one blocking job, so a client that disconnects meanwhile
/// cannot leave a change unaudited.
async fn add_episode(
    admin: &Admin,
    who: &Account,
    client: IpAddr,
    staging: Staging,
    draft: Draft,
    files: Attachments,
) -> Result<String, AdminError> {
    let (live, store, actor) = (
        Arc::clone(&admin.live),
        Arc::clone(&admin.store),
        who.name.clone(),
    );
    let slug = blocking(move || {
        let prepared = live.write(|source, catalog, cache| {
            write::prepare_add(source, catalog, cache, staging, draft, files)
        })?;
        let slug = prepared.slug().to_owned();
        record(&store, &actor, "episode add", &slug, client);
        Ok::<_, WriteError>(slug)
    })
    .await?;
    Ok(slug)
}

/// A change to one episode.
struct Edit {
    slug: String,
    staging: Staging,
    patch: Patch,
    files: Attachments,
    /// What the audit log calls it.
    action: &'static str,
}

/// Changes an episode as `who`, live before this returns, and audits it (in the same job).
async fn edit_episode(
    admin: &Admin,
    who: &Account,
    client: IpAddr,
    edit: Edit,
) -> Result<(), AdminError> {
    let (live, store, actor) = (
        Arc::clone(&admin.live),
        Arc::clone(&admin.store),
        who.name.clone(),
    );
    blocking(move || {
        let Edit {
            slug,
            staging,
            patch,
            files,
            action,
        } = edit;
        live.write(|source, catalog, cache| {
            write::prepare_edit(source, catalog, cache, staging, &slug, patch, files)
        })?;
        record(&store, &actor, action, &slug, client);
        Ok::<_, WriteError>(())
    })
    .await?;
    Ok(())
}

/// Writes an audit entry from a blocking job; a failure is logged, never fatal.
pub(super) fn record(store: &Store, actor: &str, action: &str, subject: &str, client: IpAddr) {
    if let Err(e) = store.audit(actor, action, subject, &client.to_string()) {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// A fresh staging folder for a change.
async fn staging(admin: &Admin) -> Result<Staging, AdminError> {
    let dir = admin.live.source().episodes_dir.clone();
    Ok(blocking(move || Staging::new(&dir)).await?)
}

/// Opens a multipart body, or refuses the request's `Content-Type` with 415.
async fn multipart(req: Request) -> Result<axum::extract::Multipart, AdminError> {
    use axum::extract::FromRequest;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(AdminError::Unsupported(
            "header 'Content-Type': send multipart/form-data, with a metadata part (JSON) and an audio part".into(),
        ));
    }
    axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| {
            AdminError::Unsupported(format!(
                "header 'Content-Type': {e}: send multipart/form-data"
            ))
        })
}

/// A 413 for a request whose announced body exceeds the limit, decided before any of the body
/// is read, so a client that sent `Expect: 100-continue` never gets `100 Continue`.
fn refuse_oversized(headers: &HeaderMap, limit: u64) -> Result<(), AdminError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        // Room for the form fields around the file.
        Some(n) if n > limit.saturating_add(1 << 20) => Err(AdminError::TooLarge {
            field: "Content-Length".into(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// The request's context, which [`Admin::handle`] put in its extensions.
fn context(req: &Request) -> RequestContext {
    *req.extensions()
        .get::<RequestContext>()
        .expect("Admin::handle sets the context")
}

/// Marks a response with the credentials the request proved, for the delivery record.
fn proved(mut r: Response, who: Credentials) -> Response {
    r.extensions_mut().insert(who);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x_rollcall_session=a; rollcall_session=b; other=c"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("b"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let mut c = AdminConfig {
            max_upload_bytes: 1,
            session_ttl: Duration::from_secs(60),
            attempts_per_minute: std::num::NonZeroU32::new(5).unwrap(),
            secure_cookies: false,
            sharing_alert_addresses: 5,
            metrics_allow: Vec::new(),
        };
        let v = set_cookie(&c, SESSION_COOKIE, "ab", Duration::from_secs(60));
        assert_eq!(
            v.to_str().unwrap(),
            "rollcall_session=ab; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        c.secure_cookies = true;
        let v = set_cookie(&c, SESSION_COOKIE, "ab", Duration::from_secs(60));
        assert!(v.to_str().unwrap().ends_with("; Secure"));
    }
}
