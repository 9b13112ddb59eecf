//! The admin website: sign-in and sign-out, the episode list with the audit log, the add and edit
//! forms, unpublish and republish, and the show-notes preview.
//!
//! A signed-in admin holds a session cookie; every form carries the session's CSRF token, which
//! is derived from the session id, so the server keeps nothing extra and a forged form from
//! another site cannot know it. The sign-in form itself is protected the same way by a short-lived
//! pre-session cookie. The upload form works as a plain HTML form; with JavaScript it uploads
//! with a progress bar and asks for JSON answers (`Accept: application/json`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Form, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::form;
use super::{
    audit, blocking, context, cookie, edit_episode, multipart, private, proved, refuse_oversized,
    session, set_cookie, staging, Admin, AdminError, Edit, SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::access::secret::constant_time_eq;
use crate::access::{self, Account, Credentials, Secret};
use crate::catalog::write::{self, Attachments, Patch};
use crate::render::notes::markdown_to_html;
use crate::site::admin as pages;

pub(super) fn routes(upload_limit: usize) -> Router<Admin> {
    let uploads = DefaultBodyLimit::max(upload_limit);
    Router::new()
        .route("/admin", get(home))
        .route("/admin/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/sign-in", get(sign_in_form).post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/reset-my-link", post(reset_my_link))
        .route("/admin/episodes/new", get(new_form))
        .route("/admin/episodes", post(add).layer(uploads))
        .route(
            "/admin/episodes/{slug}",
            get(edit_form).post(edit).layer(uploads),
        )
        .route("/admin/episodes/{slug}/unpublish", post(unpublish))
        .route("/admin/episodes/{slug}/republish", post(republish))
        .route("/admin/officers", get(officers))
        .route("/admin/officers/{name}/{action}", post(officer_action))
        .route("/admin/flags/{name}/{day}/dismiss", post(dismiss_flag))
        .route(
            "/admin/preview",
            post(preview).layer(DefaultBodyLimit::max(2 << 20)),
        )
}

/// A signed-in admin: the account and the session's CSRF token.
pub(super) struct SignedIn {
    pub account: Account,
    pub csrf: String,
}

fn csrf_of(session: &Secret) -> String {
    session.derive("csrf")
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// How a failed web request is answered: JSON for the upload script, otherwise a page.
pub(super) fn failure(e: AdminError, json: bool, signed_in: Option<&SignedIn>) -> Response {
    if json {
        return e.into_json();
    }
    let status = e.status();
    let retry = matches!(e, AdminError::TooMany(_)).then(|| e.message());
    let (user, csrf) = signed_in.map_or((None, ""), |s| {
        (Some(s.account.name.as_str()), s.csrf.as_str())
    });
    let mut r =
        private((status, Html(pages::message_page(user, csrf, &e.message()))).into_response());
    if let (Some(_), AdminError::TooMany(wait)) = (retry, &e) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, crate::http::retry_after(*wait));
    }
    r
}

/// The signed-in admin, or the response to send instead: a redirect to the sign-in page for
/// someone signed out, 403 for an officer.
pub(super) async fn signed_in(admin: &Admin, headers: &HeaderMap) -> Result<SignedIn, Response> {
    let json = wants_json(headers);
    match session(admin, headers).await {
        Ok(Some((account, secret))) => {
            if !access::may_administer(Credentials::of(&account)) {
                let e = AdminError::Forbidden(format!(
                    "{} is an officer account; the admin needs an admin account",
                    account.name
                ));
                return Err(failure(e, json, None));
            }
            Ok(SignedIn {
                csrf: csrf_of(&secret),
                account,
            })
        }
        Ok(None) if json => Err(AdminError::Unauthorized(
            "your session has ended: sign in again at /admin/sign-in",
        )
        .into_json()),
        Ok(None) => Err(Redirect::to("/admin/sign-in").into_response()),
        Err(e) => Err(failure(e, json, None)),
    }
}

pub(super) fn page(who: &SignedIn, html: String) -> Response {
    proved(
        private(Html(html).into_response()),
        Credentials::of(&who.account),
    )
}

async fn home(State(admin): State<Admin>, req: Request) -> Response {
    let who = match signed_in(&admin, req.headers()).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let notice = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("done="))
        .map(|s| s.replace('+', " "));
    let store = Arc::clone(&admin.store);
    let log = match blocking(move || store.audit_log(50)).await {
        Ok(log) => log,
        Err(e) => return failure(e.into(), false, Some(&who)),
    };
    let snapshot = admin.live.snapshot();
    let html = pages::home_page(
        &who.account.name,
        &who.csrf,
        &snapshot.catalog,
        &log,
        notice.as_deref(),
    );
    page(&who, html)
}

async fn sign_in_form(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    // A fresh pre-session secret for each form shown; its derived token goes in the form.
    let _ = &headers;
    let secret = Secret::generate();
    let html = pages::sign_in_page(&secret.derive("sign-in"), None);
    let mut r = private(Html(html).into_response());
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            &admin.config,
            SIGN_IN_COOKIE,
            secret.expose(),
            Duration::from_secs(3600),
        ),
    );
    r
}

#[derive(Deserialize)]
struct SignInForm {
    csrf: String,
    name: String,
    password: String,
}

async fn sign_in(State(admin): State<Admin>, req: Request) -> Response {
    let client = context(&req).client;
    if let Some(wait) = admin.throttle.blocked_for(client) {
        return failure(AdminError::TooMany(wait), false, None);
    }
    let expected = cookie(req.headers(), SIGN_IN_COOKIE)
        .and_then(Secret::parse)
        .map(|s| s.derive("sign-in"));
    let f = match Form::<SignInForm>::from_request(req, &()).await {
        Ok(Form(f)) => f,
        Err(e) => return failure(form_rejection(e), false, None),
    };
    if !expected.is_some_and(|e| constant_time_eq(&e, &f.csrf)) {
        return failure(
            AdminError::Forbidden(
                "the sign-in form's CSRF token is missing or stale: reload the sign-in page and try again"
                    .into(),
            ),
            false,
            None,
        );
    }
    // Counted before the password is checked, so parallel guesses cannot outrun the count.
    if let Some(wait) = admin.throttle.attempt(client) {
        return failure(AdminError::TooMany(wait), false, None);
    }
    let Ok(_check) = super::password_checks().acquire().await else {
        return failure(
            AdminError::Internal("password checks closed".into()),
            false,
            None,
        );
    };
    let store = Arc::clone(&admin.store);
    let name = f.name.clone();
    let checked = blocking(
        move || -> Result<Option<Account>, crate::store::StoreError> {
            let found = store.credentials(&name)?;
            let ok = access::verify_password(&f.password, found.as_ref().map(|(_, h)| h.as_str()));
            Ok(found.filter(|_| ok).map(|(a, _)| a))
        },
    )
    .await;
    let account = match checked {
        Ok(Some(a)) => a,
        Ok(None) => {
            let secret = Secret::generate();
            let html = pages::sign_in_page(
                &secret.derive("sign-in"),
                Some("That user name and password do not match an account."),
            );
            let mut r = private((StatusCode::UNAUTHORIZED, Html(html)).into_response());
            r.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(
                    &admin.config,
                    SIGN_IN_COOKIE,
                    secret.expose(),
                    Duration::from_secs(3600),
                ),
            );
            return r;
        }
        Err(e) => return failure(e.into(), false, None),
    };
    let secret = Secret::generate();
    let (store, hash, id, ttl) = (
        Arc::clone(&admin.store),
        secret.hash(),
        account.id,
        admin.config.session_ttl,
    );
    if let Err(e) = blocking(move || store.create_session(&hash, id, ttl)).await {
        return failure(e.into(), false, None);
    }
    audit(&admin, &account, "sign in", &account.name, client).await;
    // Admins go to the admin; officers to the site, where members feeds now show.
    let to = if access::may_administer(Credentials::of(&account)) {
        "/admin"
    } else {
        "/"
    };
    let mut r = private(Redirect::to(to).into_response());
    let headers = r.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(&admin.config, SESSION_COOKIE, secret.expose(), ttl),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(&admin.config, SIGN_IN_COOKIE, "", Duration::ZERO),
    );
    proved(r, Credentials::of(&account))
}

/// Why a small form could not be read: too large (413), or not the expected fields (400).
fn form_rejection(e: axum::extract::rejection::FormRejection) -> AdminError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AdminError::TooLarge {
            field: "(form)".into(),
            limit: super::SMALL_BODY as u64,
        }
    } else {
        AdminError::BadRequest {
            field: "(form)".into(),
            message: e.body_text(),
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Reads a small form and checks its CSRF token against the session.
async fn checked_form<T: serde::de::DeserializeOwned + AsRef<str>>(
    who: &SignedIn,
    req: Request,
) -> Result<T, AdminError> {
    let Form(f) = Form::<T>::from_request(req, &())
        .await
        .map_err(form_rejection)?;
    if !constant_time_eq(f.as_ref(), &who.csrf) {
        return Err(AdminError::Forbidden(
            "the form's CSRF token is missing or does not match this session: reload the page and submit again"
                .into(),
        ));
    }
    Ok(f)
}

/// The signed-in admin behind a POST of a form that holds only its CSRF token, checked, and the
/// client's address; or the response to send instead.
async fn admin_post(admin: &Admin, req: Request) -> Result<(SignedIn, std::net::IpAddr), Response> {
    let who = signed_in(admin, req.headers()).await?;
    let client = context(&req).client;
    match checked_form::<CsrfForm>(&who, req).await {
        Ok(_) => Ok((who, client)),
        Err(e) => Err(failure(e, false, Some(&who))),
    }
}

impl AsRef<str> for CsrfForm {
    fn as_ref(&self) -> &str {
        &self.csrf
    }
}

/// Any signed-in account, officer or admin, with the session's secret.
async fn member(admin: &Admin, headers: &HeaderMap) -> Option<(SignedIn, Secret)> {
    let (account, secret) = session(admin, headers).await.ok().flatten()?;
    let who = SignedIn {
        csrf: csrf_of(&secret),
        account,
    };
    Some((who, secret))
}

async fn sign_out(State(admin): State<Admin>, req: Request) -> Response {
    let client = context(&req).client;
    let Some((who, secret)) = member(&admin, req.headers()).await else {
        return Redirect::to("/admin/sign-in").into_response();
    };
    if let Err(e) = checked_form::<CsrfForm>(&who, req).await {
        return failure(e, false, Some(&who));
    }
    let (store, hash) = (Arc::clone(&admin.store), secret.hash());
    if let Err(e) = blocking(move || store.end_session(&hash)).await {
        return failure(e.into(), false, Some(&who));
    }
    audit(&admin, &who.account, "sign out", &who.account.name, client).await;
    let mut r = private(Redirect::to("/").into_response());
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&admin.config, SESSION_COOKIE, "", Duration::ZERO),
    );
    r
}

#[derive(Deserialize)]
struct ResetForm {
    csrf: String,
    /// The theme page to go back to.
    feed: Option<String>,
}

impl AsRef<str> for ResetForm {
    fn as_ref(&self) -> &str {
        &self.csrf
    }
}

/// "Reset my link": any signed-in account replaces its own personal token; the old URLs stop
/// working at the next request.
async fn reset_my_link(State(admin): State<Admin>, req: Request) -> Response {
    let client = context(&req).client;
    let Some((who, _)) = member(&admin, req.headers()).await else {
        return Redirect::to("/admin/sign-in").into_response();
    };
    let form = match checked_form::<ResetForm>(&who, req).await {
        Ok(f) => f,
        Err(e) => return failure(e, false, Some(&who)),
    };
    let (store, tokens, key, account) = (
        Arc::clone(&admin.store),
        Arc::clone(&admin.tokens),
        Arc::clone(&admin.key),
        who.account.clone(),
    );
    let done = blocking(move || -> Result<(), AdminError> {
        let t = crate::access::personal::issue(&store, &key, &account)?;
        tokens.reload(&store)?;
        let subject = format!("{} ({})", account.name, t.hash().fingerprint());
        super::record(&store, &account.name, "reset my link", &subject, client);
        Ok(())
    })
    .await;
    if let Err(e) = done {
        return failure(e, false, Some(&who));
    }
    let back = form
        .feed
        .filter(|f| crate::catalog::valid_slug(f))
        .map_or_else(|| "/".to_owned(), |f| format!("/feeds/{f}"));
    private(Redirect::to(&back).into_response())
}

async fn new_form(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let who = match signed_in(&admin, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let snapshot = admin.live.snapshot();
    let html = pages::episode_form(&who.account.name, &who.csrf, &snapshot.catalog, None, None);
    page(&who, html)
}

async fn edit_form(
    State(admin): State<Admin>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = match signed_in(&admin, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let snapshot = admin.live.snapshot();
    let Some(ep) = snapshot.catalog.any_episode(&slug) else {
        return failure(AdminError::NotFound, false, Some(&who));
    };
    // Sent back with the form, so saving over someone else's newer edit is a 409.
    let folder = admin.live.source().episodes_dir.join(&slug);
    let version = blocking(move || write::folder_version(&folder).unwrap_or_default()).await;
    let html = pages::episode_form(
        &who.account.name,
        &who.csrf,
        &snapshot.catalog,
        Some((ep, &version)),
        None,
    );
    page(&who, html)
}

/// The answer to a successful form: JSON with where to go for the script, a redirect otherwise.
fn done(who: &SignedIn, json: bool, notice: &str) -> Response {
    let location = format!("/admin?done={}", notice.replace(' ', "+"));
    let r = if json {
        private(Json(serde_json::json!({ "location": location })).into_response())
    } else {
        private(Redirect::to(&location).into_response())
    };
    proved(r, Credentials::of(&who.account))
}

async fn add(State(admin): State<Admin>, req: Request) -> Response {
    let json = wants_json(req.headers());
    let who = match signed_in(&admin, req.headers()).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let client = context(&req).client;
    let limit = admin.config.max_upload_bytes;
    let result = async {
        refuse_oversized(req.headers(), limit)?;
        let body = multipart(req).await?;
        let sub = form::read(body, staging(&admin).await?, limit, Some(&who.csrf)).await?;
        let draft = sub.form_metadata(false)?.into_draft()?;
        super::add_episode(&admin, &who.account, client, sub.staging, draft, sub.files).await
    }
    .await;
    match result {
        Ok(slug) => done(&who, json, &format!("added {slug}")),
        Err(e) => failure(e, json, Some(&who)),
    }
}

async fn edit(State(admin): State<Admin>, Path(slug): Path<String>, req: Request) -> Response {
    let json = wants_json(req.headers());
    let who = match signed_in(&admin, req.headers()).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let client = context(&req).client;
    let limit = admin.config.max_upload_bytes;
    let result = async {
        refuse_oversized(req.headers(), limit)?;
        let body = multipart(req).await?;
        let sub = form::read(body, staging(&admin).await?, limit, Some(&who.csrf)).await?;
        let mut patch = sub.form_metadata(true)?.into_patch()?;
        patch.expect_version = sub.value("version").filter(|v| !v.is_empty());
        let action = if sub.files.audio.is_some() {
            "episode replace audio"
        } else {
            "episode edit"
        };
        edit_episode(
            &admin,
            &who.account,
            client,
            Edit {
                slug: slug.clone(),
                staging: sub.staging,
                patch,
                files: sub.files,
                action,
            },
        )
        .await
    }
    .await;
    match result {
        Ok(()) => done(&who, json, &format!("saved {slug}")),
        Err(e) => failure(e, json, Some(&who)),
    }
}

async fn set_unpublished(admin: Admin, slug: String, req: Request, unpublished: bool) -> Response {
    let (who, client) = match admin_post(&admin, req).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let result = async {
        let patch = Patch {
            unpublished: Some(unpublished),
            ..Patch::default()
        };
        let action = if unpublished {
            "episode unpublish"
        } else {
            "episode republish"
        };
        let staging = staging(&admin).await?;
        edit_episode(
            &admin,
            &who.account,
            client,
            Edit {
                slug: slug.clone(),
                staging,
                patch,
                files: Attachments::default(),
                action,
            },
        )
        .await
    }
    .await;
    let verb = if unpublished {
        "unpublished"
    } else {
        "republished"
    };
    match result {
        Ok(()) => done(&who, false, &format!("{verb} {slug}")),
        Err(e) => failure(e, false, Some(&who)),
    }
}

async fn unpublish(State(admin): State<Admin>, Path(slug): Path<String>, req: Request) -> Response {
    set_unpublished(admin, slug, req, true).await
}

async fn republish(State(admin): State<Admin>, Path(slug): Path<String>, req: Request) -> Response {
    set_unpublished(admin, slug, req, false).await
}

#[derive(Deserialize)]
struct PreviewForm {
    csrf: String,
    notes: String,
}

impl AsRef<str> for PreviewForm {
    fn as_ref(&self) -> &str {
        &self.csrf
    }
}

/// The show notes as the site will show them (raw HTML escaped, unsafe links removed).
async fn preview(State(admin): State<Admin>, req: Request) -> Response {
    let who = match signed_in(&admin, req.headers()).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    match checked_form::<PreviewForm>(&who, req).await {
        Ok(f) => page(&who, markdown_to_html(&f.notes)),
        Err(e) => {
            let status = e.status();
            (status, e.message()).into_response()
        }
    }
}

async fn officers(State(admin): State<Admin>, req: Request) -> Response {
    let who = match signed_in(&admin, req.headers()).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let notice = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("done="))
        .map(|s| s.replace('+', " "));
    let store = Arc::clone(&admin.store);
    let since = (chrono::Utc::now().date_naive() - chrono::Days::new(6)).to_string();
    let data = blocking(move || {
        Ok::<_, crate::store::StoreError>((
            store.officers()?,
            store.usage(&since)?,
            store.sharing_flags()?,
        ))
    })
    .await;
    let (officers, usage, flags) = match data {
        Ok(d) => d,
        Err(e) => return failure(e.into(), false, Some(&who)),
    };
    let html = pages::officers_page(
        &who.account.name,
        &who.csrf,
        &officers,
        &usage,
        &flags,
        admin.config.sharing_alert_addresses,
        notice.as_deref(),
    );
    page(&who, html)
}

/// Regenerate or revoke an account's personal URL, or suspend or reinstate the account. The
/// token map is rebuilt before the answer, so the change holds from the next request on.
async fn officer_action(
    State(admin): State<Admin>,
    Path((name, action)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (who, client) = match admin_post(&admin, req).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (store, tokens, key, actor) = (
        Arc::clone(&admin.store),
        Arc::clone(&admin.tokens),
        Arc::clone(&admin.key),
        who.account.name.clone(),
    );
    let done = blocking(move || -> Result<Option<String>, AdminError> {
        let account = store
            .users()?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or(AdminError::NotFound)?;
        let (verb, detail) = match action.as_str() {
            "rotate" => {
                let t = crate::access::personal::issue(&store, &key, &account)?;
                ("regenerated the personal URL of", t.hash().fingerprint())
            }
            "revoke" => {
                store.revoke_feed_token(&name)?;
                ("revoked the personal URL of", String::new())
            }
            "suspend" => {
                store.set_suspended(&name, true)?;
                ("suspended", String::new())
            }
            "reinstate" => {
                store.set_suspended(&name, false)?;
                ("reinstated", String::new())
            }
            _ => return Ok(None),
        };
        tokens.reload(&store)?;
        let subject = if detail.is_empty() {
            name.clone()
        } else {
            format!("{name} ({detail})")
        };
        super::record(
            &store,
            &actor,
            &format!("officer {action}"),
            &subject,
            client,
        );
        Ok(Some(format!("{verb} {name}")))
    })
    .await;
    match done {
        Ok(Some(notice)) => {
            let location = format!("/admin/officers?done={}", notice.replace(' ', "+"));
            proved(
                private(Redirect::to(&location).into_response()),
                Credentials::of(&who.account),
            )
        }
        Ok(None) => failure(AdminError::NotFound, false, Some(&who)),
        Err(e) => failure(e, false, Some(&who)),
    }
}

async fn dismiss_flag(
    State(admin): State<Admin>,
    Path((name, day)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (who, client) = match admin_post(&admin, req).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (store, actor) = (Arc::clone(&admin.store), who.account.name.clone());
    let subject = format!("{name} {day}");
    let done = blocking(move || {
        let found = store.dismiss_flag(&name, &day)?;
        if found {
            super::record(&store, &actor, "sharing flag dismiss", &subject, client);
        }
        Ok::<_, crate::store::StoreError>(found)
    })
    .await;
    match done {
        Ok(true) => {
            private(Redirect::to("/admin/officers?done=dismissed+the+flag").into_response())
        }
        Ok(false) => failure(AdminError::NotFound, false, Some(&who)),
        Err(e) => failure(e.into(), false, Some(&who)),
    }
}
