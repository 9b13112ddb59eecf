//! Download reports for admins, and `/metrics` for monitoring.
//!
//! - `GET /admin/stats`: the report page, with charts; `?since=YYYY-MM-DD&episode=SLUG` filter.
//! - `GET /admin/stats.csv` and `GET /admin/stats.json`: the same figures, for a signed-in admin
//!   or with an admin's API token (`Authorization: Bearer …`), so scripts can fetch them.
//! - `GET /metrics`: Prometheus text format, for addresses in `metrics_allow` or with an admin's
//!   API token; anyone else gets 403.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::web::{failure, page, signed_in};
use super::{bearer, blocking, context, private, proved, require_admin, Admin, AdminError};
use crate::access::Credentials;
use crate::stats::report::Report;
use crate::store::StatsQuery;

pub(super) fn routes() -> Router<Admin> {
    Router::new()
        .route("/admin/stats", get(stats_page))
        .route("/admin/stats.csv", get(stats_csv))
        .route("/admin/stats.json", get(stats_json))
        .route("/metrics", get(metrics))
}

/// The filter in a report's query string, checked.
fn query(uri: &axum::http::Uri) -> Result<StatsQuery, AdminError> {
    let mut q = StatsQuery::default();
    for (k, v) in url_pairs(uri.query().unwrap_or("")) {
        match k.as_str() {
            "since" if v.is_empty() => {}
            "since" => {
                if chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").is_err() {
                    return Err(AdminError::BadRequest {
                        field: "since".into(),
                        message: format!("{v:?} is not a date: use YYYY-MM-DD"),
                    });
                }
                q.since = Some(v);
            }
            "episode" if v.is_empty() => {}
            "episode" => q.episode = Some(v),
            _ => {}
        }
    }
    Ok(q)
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{q}").parse().expect("a path and query"),
    )
    .map(|p| p.0)
    .unwrap_or_default()
}

/// The filter as a query string for links, `?since=…&episode=…`, or empty.
fn query_string(q: &StatsQuery) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &q.since {
        parts.push(format!("since={}", crate::site::format::percent_encode(s)));
    }
    if let Some(e) = &q.episode {
        parts.push(format!(
            "episode={}",
            crate::site::format::percent_encode(e)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

async fn report(admin: &Admin, q: StatsQuery) -> Result<Report, AdminError> {
    let store = Arc::clone(&admin.store);
    let query = q.clone();
    let counts = blocking(move || store.download_counts(&query)).await?;
    let snap = admin.live.snapshot();
    let mut report = Report::new(counts, &snap.catalog, q.since, q.episode);
    report.dropped = admin.deliveries.metrics.measurement().map(|s| s.dropped());
    Ok(report)
}

async fn stats_page(State(admin): State<Admin>, req: Request) -> Response {
    let who = match signed_in(&admin, req.headers()).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let q = match query(req.uri()) {
        Ok(q) => q,
        Err(e) => return failure(e, false, Some(&who)),
    };
    let links = query_string(&q);
    match report(&admin, q).await {
        Ok(r) => {
            let snap = admin.live.snapshot();
            let html = crate::site::admin::stats_page(
                &who.account.name,
                &who.csrf,
                &snap.catalog,
                &r,
                links,
            );
            page(&who, html)
        }
        Err(e) => failure(e, false, Some(&who)),
    }
}

/// An admin by session cookie, or else by API token.
async fn admin_of(
    admin: &Admin,
    headers: &axum::http::HeaderMap,
    client: std::net::IpAddr,
) -> Result<Credentials, Response> {
    // A session first; a script sending a token (and perhaps a stale cookie) uses the token.
    let token = headers.contains_key(header::AUTHORIZATION);
    if super::super::session::has_session(headers) {
        match signed_in(admin, headers).await {
            Ok(w) => return Ok(Credentials::of(&w.account)),
            Err(r) if !token => return Err(r),
            Err(_) => {}
        }
    }
    let account = bearer(admin, headers, client)
        .await
        .map_err(IntoResponse::into_response)?;
    require_admin(&account).map_err(IntoResponse::into_response)?;
    Ok(Credentials::of(&account))
}

async fn export(admin: Admin, req: Request, csv: bool) -> Response {
    let client = context(&req).client;
    let (parts, _) = req.into_parts();
    let who = match admin_of(&admin, &parts.headers, client).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let report = match query(&parts.uri) {
        Ok(q) => report(&admin, q).await,
        Err(e) => Err(e),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => return e.into_json(),
    };
    let mut r = if csv {
        let mut r = report.to_csv().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        r.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"rollcall-downloads.csv\""),
        );
        r
    } else {
        axum::Json(report).into_response()
    };
    r = private(r);
    proved(r, who)
}

async fn stats_csv(State(admin): State<Admin>, req: Request) -> Response {
    export(admin, req, true).await
}

async fn stats_json(State(admin): State<Admin>, req: Request) -> Response {
    export(admin, req, false).await
}

async fn metrics(State(admin): State<Admin>, req: Request) -> Response {
    let client = context(&req).client;
    let (req, _) = req.into_parts();
    let allowed = admin
        .config
        .metrics_allow
        .iter()
        .any(|net| net.contains(&client));
    let who = if allowed {
        Credentials::Anonymous
    } else if req.headers.contains_key(header::AUTHORIZATION) {
        match bearer(&admin, &req.headers, client).await {
            Ok(account) => match require_admin(&account) {
                Ok(()) => Credentials::of(&account),
                Err(e) => return e.into_json(),
            },
            Err(e) => return e.into_json(),
        }
    } else {
        return (
            StatusCode::FORBIDDEN,
            "metrics are readable from the addresses in metrics_allow, or with an admin's API token as 'Authorization: Bearer <token>'\n",
        )
            .into_response();
    };
    let mut r = admin.deliveries.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    proved(private(r), who)
}
