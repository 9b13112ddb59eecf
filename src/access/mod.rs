//! Who may see what. Every visibility decision in Rollcall asks this module: which feeds are
//! rendered and listed (feeds, OPML, the home page, theme and episode pages, the static export), and
//! whether a request may receive a file (media, artwork, transcripts, chapters).
//!
//! A request arrives with the [`Credentials`] it proved (the http layer works them out once per
//! request and passes them in its request context); the catalog says what each feed requires
//! ([`Access`]). A file needs what the least restricted feed that uses it needs: it is public if any
//! public feed carries it. Anything a request may not see is answered exactly like something that
//! does not exist, so its existence does not leak.
//!
//! Accounts have a [`Role`]; a request proves one with a session cookie or an API token, both
//! [`Secret`]s that only the server hands out and only their hashes are stored ([`secret`]).
//! Passwords are hashed with argon2id.

pub mod personal;
pub mod secret;

use std::collections::HashMap;

use crate::catalog::{Access, Catalog, Episode, Feed};

pub use secret::{hash_password, verify_password, Secret, SecretHash};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Adds and edits episodes, sees every feed.
    Admin,
    /// Listens to members feeds.
    Officer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Officer => "officer",
        }
    }

    /// Parses `admin` or `officer`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "officer" => Some(Role::Officer),
            _ => None,
        }
    }
}

/// An account, as the store keeps it (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

/// What the request proved about its sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    /// A signed-in account (session cookie or API token).
    Account { id: i64, role: Role },
    /// A personal feed URL's token (`/p/<token>/…`), with the first bytes of the token's hash:
    /// a fingerprint that logs and records may show instead of the token.
    Personal {
        id: i64,
        role: Role,
        fingerprint: [u8; 4],
    },
}

impl Credentials {
    pub fn of(account: &Account) -> Credentials {
        Credentials::Account {
            id: account.id,
            role: account.role,
        }
    }
}

/// May `who` add, edit and unpublish episodes, and read the audit log?
pub fn may_administer(who: Credentials) -> bool {
    matches!(
        who,
        Credentials::Account {
            role: Role::Admin,
            ..
        }
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDecision {
    Allow,
    /// Answer 404, exactly as for a file that does not exist.
    Hide,
}

/// Why an account cannot be created as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("user name {0:?} is not allowed: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    BadName(String),
    #[error("the password is too short: use at least {MIN_PASSWORD} characters")]
    ShortPassword,
}

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;

/// Checks a new account's name and password; returns the password's argon2id hash.
pub fn new_account(name: &str, password: &str) -> Result<String, AccountError> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !name_ok {
        return Err(AccountError::BadName(name.to_owned()));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::ShortPassword);
    }
    Ok(hash_password(password))
}

/// May `who` receive something that requires `required`?
pub fn decide(required: Access, who: Credentials) -> AccessDecision {
    match (required, who) {
        (Access::Public, _) => AccessDecision::Allow,
        (Access::Members, Credentials::Anonymous) => AccessDecision::Hide,
        (Access::Members, Credentials::Account { .. } | Credentials::Personal { .. }) => {
            AccessDecision::Allow
        }
    }
}

/// May `who` see this feed (its XML, its theme pages, its place in OPML and on the home page)?
pub fn may_see_feed(feed: &Feed, who: Credentials) -> bool {
    decide(feed.access, who) == AccessDecision::Allow
}

/// How a feed's website pages appear to someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageView {
    /// Everything: players, downloads, the feed URL.
    Full,
    /// A members feed in preview mode, to someone who may not see it: titles, dates, guests,
    /// notes and resources, but no media, no feed URL and "Sign in to listen".
    Teaser,
}

/// How `feed`'s pages appear to `who`, if at all.
pub fn page_view(feed: &Feed, who: Credentials) -> Option<PageView> {
    if may_see_feed(feed, who) {
        Some(PageView::Full)
    } else if feed.preview {
        Some(PageView::Teaser)
    } else {
        None
    }
}

/// Whether `who` may play `ep`: some feed it may see carries it.
pub fn may_play(catalog: &Catalog, ep: &Episode, who: Credentials) -> bool {
    catalog.feeds_of(ep).any(|f| may_see_feed(f, who))
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
pub fn file_requirements(catalog: &Catalog) -> HashMap<&str, Access, foldhash::fast::RandomState> {
    let mut required: HashMap<&str, Access, _> = catalog
        .assets()
        .map(|a| (a.url_path.as_str(), Access::Members))
        .collect();
    for feed in catalog.feeds.iter().filter(|f| is_public(f)) {
        let episodes = catalog.feed_episodes(feed).flat_map(Episode::assets);
        for asset in feed.assets().chain(episodes) {
            required.insert(asset.url_path.as_str(), Access::Public);
        }
    }
    // The site's own logo is on every page, signed in or not.
    if let Some(logo) = &catalog.site.logo {
        required.insert(logo.url_path.as_str(), Access::Public);
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

    #[test]
    fn only_admins_administer() {
        assert!(may_administer(Credentials::Account {
            id: 1,
            role: Role::Admin
        }));
        assert!(!may_administer(Credentials::Account {
            id: 2,
            role: Role::Officer
        }));
        assert!(!may_administer(Credentials::Anonymous));
    }
}
