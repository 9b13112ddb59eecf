//! The admin HTTP API, for scripts: `Authorization: Bearer <token>`, JSON in and out.
//!
//! - `GET /admin/api/episodes`: every episode, scheduled and unpublished included;
//! - `POST /admin/api/episodes`: multipart with `metadata` (JSON) and `audio` (plus optional
//!   `transcript` and `chapters`); 201 with the episode;
//! - `GET|PATCH|DELETE /admin/api/episodes/<slug>`: one episode; PATCH takes JSON, or multipart
//!   with `metadata` and a replacement `audio`; DELETE unpublishes (the folder and GUID stay).
//!
//! Errors are `{"error": "...", "field": "..."}` with 400, 401, 403, 404, 409, 413, 415 or 429.

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::form::{self, metadata_from_json};
use super::{
    bearer, context, edit_episode, multipart, private, proved, refuse_oversized, require_admin,
    staging, Admin, AdminError, Edit,
};
use crate::access::Credentials;
use crate::catalog::write::{self, Attachments, Patch};
use crate::catalog::{Catalog, Episode};
use crate::site::admin::status;

pub(super) fn routes(upload_limit: usize) -> Router<Admin> {
    let uploads = DefaultBodyLimit::max(upload_limit);
    Router::new()
        .route("/admin/api/episodes", get(list).post(create).layer(uploads))
        .route(
            "/admin/api/episodes/{slug}",
            get(one).patch(update).layer(uploads).delete(unpublish),
        )
}

/// An episode as the API shows it.
fn episode_json(catalog: &Catalog, ep: &Episode) -> Value {
    let now = chrono::Utc::now().fixed_offset();
    json!({
        "slug": ep.slug,
        "guid": ep.guid,
        "title": ep.title,
        "published": ep.published.to_rfc3339(),
        "status": status(ep, now),
        "summary": ep.summary,
        "notes": ep.notes_markdown,
        "duration_secs": ep.duration_secs(),
        "size_bytes": ep.audio.size,
        "type": ep.audio.mime,
        "guests": ep.guests.iter().map(|g| json!({
            "name": g.name, "role": g.role, "affiliation": g.affiliation, "link": g.link,
        })).collect::<Vec<_>>(),
        "resources": ep.resources.iter().map(|r| json!({
            "title": r.title, "url": r.url, "note": r.note,
        })).collect::<Vec<_>>(),
        "feeds": ep.feeds,
        "feed_urls": catalog.feeds_of(ep)
            .map(|f| catalog.url(&format!("/feeds/{}.xml", f.id)))
            .collect::<Vec<_>>(),
        "page": catalog.url(&format!("/episodes/{}", ep.slug)),
        "audio_url": catalog.url(&ep.audio.url_path),
    })
}

/// Checks the bearer token and the admin role.
async fn authorize(
    admin: &Admin,
    headers: &axum::http::HeaderMap,
    client: std::net::IpAddr,
) -> Result<crate::access::Account, AdminError> {
    let account = bearer(admin, headers, client).await?;
    require_admin(&account)?;
    Ok(account)
}

fn reply(who: &crate::access::Account, status: StatusCode, body: Value) -> Response {
    proved(
        private((status, Json(body)).into_response()),
        Credentials::of(who),
    )
}

/// One episode as JSON, with its folder `version` (also sent as the `ETag`); a PATCH or DELETE
/// with `If-Match: <version>` is refused with 409 if the folder changed since.
async fn the_episode(admin: &Admin, slug: &str) -> Result<(Value, String), AdminError> {
    let snapshot = admin.live.snapshot();
    let ep = snapshot
        .catalog
        .any_episode(slug)
        .ok_or(AdminError::NotFound)?;
    let mut json = episode_json(&snapshot.catalog, ep);
    let folder = admin.live.source().episodes_dir.join(slug);
    let version = super::blocking(move || write::folder_version(&folder))
        .await
        .map_err(|e| AdminError::Internal(format!("episodes/{slug}: {e}")))?;
    json["version"] = Value::String(version.clone());
    Ok((json, version))
}

/// A reply with one episode, its version as the ETag.
fn episode_reply(
    who: &crate::access::Account,
    status: StatusCode,
    (json, version): (Value, String),
) -> Response {
    let mut r = reply(who, status, json);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The version an `If-Match` header names, if any.
fn if_match(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    Some(v.trim_matches('"').to_owned()).filter(|v| !v.is_empty() && v != "*")
}

async fn list(State(admin): State<Admin>, req: Request) -> Result<Response, AdminError> {
    let who = authorize(&admin, req.headers(), context(&req).client).await?;
    let snapshot = admin.live.snapshot();
    let all: Vec<Value> = snapshot
        .catalog
        .all_episodes()
        .into_iter()
        .map(|ep| episode_json(&snapshot.catalog, ep))
        .collect();
    Ok(reply(&who, StatusCode::OK, Value::Array(all)))
}

async fn one(
    State(admin): State<Admin>,
    Path(slug): Path<String>,
    req: Request,
) -> Result<Response, AdminError> {
    let who = authorize(&admin, req.headers(), context(&req).client).await?;
    Ok(episode_reply(
        &who,
        StatusCode::OK,
        the_episode(&admin, &slug).await?,
    ))
}

async fn create(State(admin): State<Admin>, req: Request) -> Result<Response, AdminError> {
    let who = authorize(&admin, req.headers(), context(&req).client).await?;
    let client = context(&req).client;
    let limit = admin.config.max_upload_bytes;
    refuse_oversized(req.headers(), limit)?;
    let body = multipart(req).await?;
    let sub = form::read(body, staging(&admin).await?, limit, None).await?;
    let draft = sub.metadata()?.into_draft()?;
    let slug = super::add_episode(&admin, &who, client, sub.staging, draft, sub.files).await?;
    let mut r = episode_reply(&who, StatusCode::CREATED, the_episode(&admin, &slug).await?);
    if let Ok(v) = HeaderValue::from_str(&format!("/admin/api/episodes/{slug}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn update(
    State(admin): State<Admin>,
    Path(slug): Path<String>,
    req: Request,
) -> Result<Response, AdminError> {
    let who = authorize(&admin, req.headers(), context(&req).client).await?;
    let client = context(&req).client;
    let limit = admin.config.max_upload_bytes;
    refuse_oversized(req.headers(), limit)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let expected = if_match(req.headers());
    let (mut patch, staging, files) = if content_type.starts_with("application/json") {
        let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    AdminError::TooLarge {
                        field: "(body)".into(),
                        limit: 1 << 20,
                    }
                } else {
                    AdminError::BadRequest {
                        field: "(body)".into(),
                        message: format!("the body could not be read: {e}"),
                    }
                }
            })?;
        let patch = metadata_from_json("(body)", &bytes)?.into_patch()?;
        (patch, staging(&admin).await?, Attachments::default())
    } else if content_type.starts_with("multipart/form-data") {
        let body = multipart(req).await?;
        let sub = form::read(body, staging(&admin).await?, limit, None).await?;
        let patch = match sub.metadata() {
            Ok(m) => m.into_patch()?,
            // A replacement audio file alone needs no metadata.
            Err(_) if sub.files.audio.is_some() && sub.text.is_empty() => Patch::default(),
            Err(e) => return Err(e),
        };
        (patch, sub.staging, sub.files)
    } else {
        return Err(AdminError::Unsupported(
            "header 'Content-Type': send application/json, or multipart/form-data with metadata and audio".into(),
        ));
    };
    patch.expect_version = expected;
    let action = if files.audio.is_some() {
        "episode replace audio"
    } else {
        "episode edit"
    };
    edit_episode(
        &admin,
        &who,
        client,
        Edit {
            slug: slug.clone(),
            staging,
            patch,
            files,
            action,
        },
    )
    .await?;
    Ok(episode_reply(
        &who,
        StatusCode::OK,
        the_episode(&admin, &slug).await?,
    ))
}

async fn unpublish(
    State(admin): State<Admin>,
    Path(slug): Path<String>,
    req: Request,
) -> Result<Response, AdminError> {
    let who = authorize(&admin, req.headers(), context(&req).client).await?;
    let client = context(&req).client;
    let patch = Patch {
        unpublished: Some(true),
        expect_version: if_match(req.headers()),
        ..Patch::default()
    };
    let staging = staging(&admin).await?;
    edit_episode(
        &admin,
        &who,
        client,
        Edit {
            slug: slug.clone(),
            staging,
            patch,
            files: Attachments::default(),
            action: "episode unpublish",
        },
    )
    .await?;
    Ok(episode_reply(
        &who,
        StatusCode::OK,
        the_episode(&admin, &slug).await?,
    ))
}
