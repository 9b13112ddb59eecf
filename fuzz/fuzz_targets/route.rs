//! Request routing: `Route::parse` over any path, public or personal (`/p/<token>/…`).
//!
//! Input: the request path, as UTF-8. Every route must name exactly what its path says: a
//! personal route's token is one non-empty segment, and the rest of its path routes publicly to
//! the same resource.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollcall::http::route::{Resource, Route};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let route = Route::parse(path);
    let _ = route.kind();
    assert_eq!(
        route.methods().is_none(),
        route == Route::Unknown,
        "{path:?}: {route:?}"
    );
    match route {
        Route::Health => assert_eq!(path, "/healthz"),
        Route::Ready => assert_eq!(path, "/readyz"),
        Route::Metrics => assert_eq!(path, "/metrics"),
        Route::Admin => assert!(path == "/admin" || path.starts_with("/admin/"), "{path:?}"),
        Route::Public(resource) => check(path, resource),
        Route::Personal { token, resource } => {
            assert!(!token.is_empty(), "{path:?}: empty token");
            assert!(
                !token.contains('/'),
                "{path:?}: token {token:?} holds a '/'"
            );
            let rest = path
                .strip_prefix("/p/")
                .and_then(|p| p.strip_prefix(token))
                .unwrap_or_else(|| panic!("{path:?}: token {token:?} is not its second segment"));
            assert!(rest.starts_with('/') && rest.len() > 1, "{path:?}");
            assert_eq!(
                Route::parse(rest),
                Route::Public(resource),
                "{path:?}: the personal resource differs from the public one"
            );
            assert_eq!(route.kind(), Route::Public(resource).kind());
            check(rest, resource);
        }
        Route::Unknown => {}
    }
});

/// A single, non-empty path segment.
fn segment(what: &str, s: &str, path: &str) {
    assert!(
        !s.is_empty() && !s.contains('/'),
        "{path:?}: {what} {s:?} is not one segment"
    );
}

/// `resource` is what `path` names.
fn check(path: &str, resource: Resource) {
    match resource {
        Resource::Home => assert_eq!(path, "/"),
        Resource::Opml => assert_eq!(path, "/feeds.opml"),
        Resource::Search => assert_eq!(path, "/search"),
        Resource::Feed { id } => {
            assert!(!id.contains('/'), "{path:?}: feed id {id:?}");
            assert_eq!(path, format!("/feeds/{id}.xml"));
        }
        Resource::Theme { id } => {
            segment("theme id", id, path);
            assert!(!id.ends_with(".xml"), "{path:?}");
            assert_eq!(path, format!("/feeds/{id}"));
        }
        Resource::Episode { slug } => {
            segment("slug", slug, path);
            assert_eq!(path, format!("/episodes/{slug}"));
        }
        Resource::Static { name } => {
            segment("static name", name, path);
            assert_eq!(path, format!("/static/{name}"));
        }
        Resource::Media { path: p } => {
            assert_eq!(p, path);
            assert!(p.starts_with("/media/"), "{path:?}");
        }
        Resource::Artwork { path: p } => {
            assert_eq!(p, path);
            assert!(p.starts_with("/artwork/"), "{path:?}");
        }
        Resource::File { path: p } => {
            assert_eq!(p, path);
            assert!(p.starts_with("/files/"), "{path:?}");
        }
    }
}
