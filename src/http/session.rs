//! Web sessions, as every part of the site reads them: the `rollcall_session` cookie holds a
//! random id whose SHA-256 the store keeps (see [`crate::access::secret`]). The admin signs people
//! in and out; the public site and members media only ask who a cookie belongs to.

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use crate::access::{Account, Secret};
use crate::store::{Store, StoreError};

pub const SESSION_COOKIE: &str = "rollcall_session";

/// The value of cookie `name`, if the request sent one.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries something shaped like a session cookie (no store lookup).
pub fn has_session(headers: &HeaderMap) -> bool {
    cookie(headers, SESSION_COOKIE)
        .and_then(Secret::parse)
        .is_some()
}

/// The account behind the request's session cookie, and the session's secret. The store is
/// asked on the blocking pool.
pub async fn signed_in(
    store: &Arc<Store>,
    headers: &HeaderMap,
) -> Result<Option<(Account, Secret)>, StoreError> {
    let Some(secret) = cookie(headers, SESSION_COOKIE).and_then(Secret::parse) else {
        return Ok(None);
    };
    let (store, hash) = (Arc::clone(store), secret.hash());
    let account = tokio::task::spawn_blocking(move || store.session(&hash))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    Ok(account.map(|a| (a, secret)))
}
