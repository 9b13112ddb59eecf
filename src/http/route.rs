//! Typed routes: the request path, parsed once.
//!
//! [`Route::parse`] turns a path into what it names, and the handler is chosen by one exhaustive
//! `match` on it (in `http::App::dispatch`). Each route says which methods it allows; HEAD is
//! derived from GET in one place. A personal URL, `/p/<token>/<resource>`, names the same
//! resources as the public paths, reached with the token's credentials.

use crate::stats::RouteKind;

/// A resource a path can name, publicly or under a personal token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `/`
    Home,
    /// `/feeds.opml`
    Opml,
    /// `/feeds/<id>.xml`
    Feed { id: &'a str },
    /// `/feeds/<id>`, the theme's page (`?page=N`).
    Theme { id: &'a str },
    /// `/episodes/<slug>`
    Episode { slug: &'a str },
    /// `/static/<name>`
    Static { name: &'a str },
    /// `/media/…`, looked up by its whole path.
    Media { path: &'a str },
    /// `/artwork/…`, looked up by its whole path.
    Artwork { path: &'a str },
    /// `/files/…`, a theme's printable material, looked up by its whole path.
    File { path: &'a str },
    /// `/search?q=…`, over the episodes whose pages the viewer sees.
    Search,
}

/// What a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/healthz`: alive.
    Health,
    /// `/readyz`: able to do its work (see `http::ready`).
    Ready,
    /// `/admin` and everything under it: the admin's own router takes these, with their bodies.
    Admin,
    /// `/metrics`, which the admin router answers too (it checks API tokens).
    Metrics,
    Public(Resource<'a>),
    /// `/p/<token>/<resource path>`
    Personal {
        token: &'a str,
        resource: Resource<'a>,
    },
    /// Nothing: answered 404.
    Unknown,
}

/// The methods a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    /// GET, and HEAD derived from it.
    Read,
    /// Whatever the admin router accepts; it answers 405 itself.
    Admin,
}

impl Methods {
    /// The `Allow` header value.
    pub fn allow(self) -> &'static str {
        match self {
            Methods::Read => "GET, HEAD",
            Methods::Admin => "GET, HEAD, POST, PATCH, DELETE",
        }
    }

    /// The message of a 405.
    pub fn hint(self) -> &'static str {
        match self {
            Methods::Read => "method not allowed: use GET or HEAD\n",
            Methods::Admin => "method not allowed here\n",
        }
    }
}

/// A single non-empty path segment, or `None`.
fn segment(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.contains('/')).then_some(s)
}

impl<'a> Resource<'a> {
    /// `path` starts with `/`.
    fn parse(path: &'a str) -> Option<Resource<'a>> {
        let rest = path.strip_prefix('/')?;
        let (first, tail) = match rest.split_once('/') {
            Some((first, tail)) => (first, Some(tail)),
            None => (rest, None),
        };
        Some(match (first, tail) {
            ("", None) => Resource::Home,
            ("feeds.opml", None) => Resource::Opml,
            ("feeds", Some(t)) => {
                let file = segment(t)?;
                match file.strip_suffix(".xml") {
                    Some(id) => Resource::Feed { id },
                    None => Resource::Theme { id: file },
                }
            }
            ("episodes", Some(t)) => Resource::Episode { slug: segment(t)? },
            ("static", Some(t)) => Resource::Static { name: segment(t)? },
            ("media", Some(_)) => Resource::Media { path },
            ("artwork", Some(_)) => Resource::Artwork { path },
            ("files", Some(_)) => Resource::File { path },
            ("search", None) => Resource::Search,
            _ => return None,
        })
    }

    fn kind(self) -> RouteKind {
        match self {
            Resource::Home => RouteKind::Home,
            Resource::Opml => RouteKind::Opml,
            Resource::Feed { .. } => RouteKind::Feed,
            Resource::Theme { .. } => RouteKind::Theme,
            Resource::Episode { .. } => RouteKind::Episode,
            Resource::Static { .. } => RouteKind::Static,
            Resource::Media { .. } => RouteKind::Media,
            Resource::Artwork { .. } => RouteKind::Artwork,
            Resource::File { .. } => RouteKind::File,
            Resource::Search => RouteKind::Search,
        }
    }
}

impl<'a> Route<'a> {
    pub fn parse(path: &'a str) -> Route<'a> {
        if path == "/healthz" {
            return Route::Health;
        }
        if path == "/readyz" {
            return Route::Ready;
        }
        if path == "/admin" || path.starts_with("/admin/") {
            return Route::Admin;
        }
        if path == "/metrics" {
            return Route::Metrics;
        }
        if let Some(rest) = path.strip_prefix("/p/") {
            let Some((token, tail)) = rest.split_once('/') else {
                return Route::Unknown;
            };
            let resource = match Resource::parse(&rest[token.len()..]) {
                Some(r) if !token.is_empty() && !tail.is_empty() => r,
                _ => return Route::Unknown,
            };
            return Route::Personal { token, resource };
        }
        Resource::parse(path).map_or(Route::Unknown, Route::Public)
    }

    /// The methods this route answers; `None` for a route that answers 404 to everything.
    pub fn methods(self) -> Option<Methods> {
        match self {
            Route::Health | Route::Ready | Route::Public(_) | Route::Personal { .. } => {
                Some(Methods::Read)
            }
            Route::Admin | Route::Metrics => Some(Methods::Admin),
            Route::Unknown => None,
        }
    }

    /// The record's name for this route. A personal URL records the resource it names.
    pub fn kind(self) -> RouteKind {
        match self {
            Route::Health | Route::Ready => RouteKind::Health,
            Route::Admin => RouteKind::Admin,
            Route::Metrics => RouteKind::Metrics,
            Route::Public(r) | Route::Personal { resource: r, .. } => r.kind(),
            Route::Unknown => RouteKind::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        use Resource::*;
        let cases = [
            ("/", Route::Public(Home)),
            ("/healthz", Route::Health),
            ("/readyz", Route::Ready),
            ("/admin", Route::Admin),
            ("/admin/api/episodes", Route::Admin),
            ("/feeds.opml", Route::Public(Opml)),
            ("/feeds/a.xml", Route::Public(Feed { id: "a" })),
            ("/feeds/a", Route::Public(Theme { id: "a" })),
            ("/episodes/x", Route::Public(Episode { slug: "x" })),
            (
                "/static/site.css",
                Route::Public(Static { name: "site.css" }),
            ),
            (
                "/media/x/1/x.mp3",
                Route::Public(Media {
                    path: "/media/x/1/x.mp3",
                }),
            ),
            (
                "/artwork/f/1/a.jpg",
                Route::Public(Artwork {
                    path: "/artwork/f/1/a.jpg",
                }),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(Route::parse(path), want, "{path}");
        }
    }

    #[test]
    fn paths_that_name_nothing() {
        for path in [
            "",
            "//",
            "/feeds",
            "/feeds/",
            "/feeds/a/b",
            "/episodes/",
            "/episodes/a/",
            "/static/a/b",
            "/healthz/",
            "/feeds.opml/x",
            "/media",
            "/nope",
            "/p/",
            "/p/tok",
            "/p/tok/",
            "/p//feeds/a.xml",
            "/p/tok/healthz",
            "/p/tok/p/tok/feeds/a.xml",
            "/administrator",
            "/p/tok/admin",
        ] {
            assert_eq!(Route::parse(path), Route::Unknown, "{path:?}");
            assert_eq!(Route::parse(path).methods(), None, "{path:?}");
        }
    }

    #[test]
    fn personal_paths_name_the_same_resources() {
        assert_eq!(
            Route::parse("/p/abc/feeds/a.xml"),
            Route::Personal {
                token: "abc",
                resource: Resource::Feed { id: "a" }
            }
        );
        assert_eq!(
            Route::parse("/p/abc/media/x/1/x.mp3"),
            Route::Personal {
                token: "abc",
                resource: Resource::Media {
                    path: "/media/x/1/x.mp3"
                }
            }
        );
        assert_eq!(
            Route::parse("/p/abc/media/x/1/x.mp3").kind(),
            RouteKind::Media
        );
    }
}
