//! Who may see what. Every visibility decision in Rollcall asks this module: which feeds are
//! rendered and listed (feeds, OPML, the home page, theme and episode pages, the static export), and
//! whether a request may receive a file (media, artwork, transcripts, chapters).
//!
//! A request arrives with the [`Credentials`] it proved (the http layer works them out once per
//! request and passes them in its request context); the catalog says what each feed requires
//! ([`Access`]). A file needs what the least restricted feed that uses it needs: it is public if any
//! public feed carries it. Anything a request may not see is answered exactly like something that
//! does not exist, so its existence does not leak. Today every request is anonymous; accounts (#7)
//! and personal feed tokens (#8) add variants to [`Credentials`], and only this module changes.

use std::collections::HashMap;

use crate::catalog::{Access, Catalog, Episode, Feed};

/// What the request proved about its sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDecision {
    Allow,
    /// Answer 404, exactly as for a file that does not exist.
    Hide,
}

/// May `who` receive something that requires `required`?
pub fn decide(required: Access, who: Credentials) -> AccessDecision {
    match (required, who) {
        (Access::Public, _) => AccessDecision::Allow,
        (Access::Members, Credentials::Anonymous) => AccessDecision::Hide,
    }
}

/// May `who` see this feed (its XML, its theme pages, its place in OPML and on the home page)?
pub fn may_see_feed(feed: &Feed, who: Credentials) -> bool {
    decide(feed.access, who) == AccessDecision::Allow
}

/// Whether anyone at all may see this feed: it is listed publicly, and clients may index it.
pub fn is_public(feed: &Feed) -> bool {
    may_see_feed(feed, Credentials::Anonymous)
}

/// The feeds `who` may see, in catalog order.
pub fn visible_feeds(catalog: &Catalog, who: Credentials) -> impl Iterator<Item = &Feed> {
    catalog.feeds.iter().filter(move |f| may_see_feed(f, who))
}

/// Indexes (into [`Catalog::feeds`]) of the feeds `who` may see, in catalog order.
pub fn visible_feed_indexes(catalog: &Catalog, who: Credentials) -> Vec<usize> {
    (0..catalog.feeds.len())
        .filter(|&i| may_see_feed(&catalog.feeds[i], who))
        .collect()
}

/// What each file requires, by URL path: [`Access::Public`] if any public feed uses it (as its
/// artwork or through one of its episodes), otherwise [`Access::Members`]. A file no feed uses at
/// all is members-only, so nothing becomes public by accident.
pub fn file_requirements(catalog: &Catalog) -> HashMap<&str, Access> {
    let mut required: HashMap<&str, Access> = catalog
        .assets()
        .map(|a| (a.url_path.as_str(), Access::Members))
        .collect();
    for feed in catalog.feeds.iter().filter(|f| is_public(f)) {
        let episodes = catalog.feed_episodes(feed).flat_map(Episode::assets);
        for asset in std::iter::once(&feed.artwork).chain(episodes) {
            required.insert(asset.url_path.as_str(), Access::Public);
        }
    }
    required
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_sees_public_only() {
        assert_eq!(
            decide(Access::Public, Credentials::Anonymous),
            AccessDecision::Allow
        );
        assert_eq!(
            decide(Access::Members, Credentials::Anonymous),
            AccessDecision::Hide
        );
    }
}
