//! Download reports: the store's counts joined with the catalog (titles, feeds, which episodes
//! are members-only), as one [`Report`] that `/admin/stats`, its CSV and JSON exports and
//! `rollcall stats` all show.

use serde::Serialize;

use crate::access::{self, Credentials};
use crate::catalog::Catalog;
use crate::store::Counts;

/// The method, as every report states it.
pub const METHOD: &str = "IAB Tech Lab Podcast Measurement Technical Guidelines v2.3: one download per listener (address hash + user agent + episode) per first-touch rolling 24-hour window, once the bytes delivered to that listener cover the ID3 tag plus one minute of audio; see docs/measurement.md";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub method: &'static str,
    /// The first UTC day counted, if limited.
    pub since: Option<String>,
    /// The one episode counted, if limited.
    pub episode: Option<String>,
    pub downloads: u64,
    pub episodes: Vec<EpisodeRow>,
    pub days: Vec<Row>,
    pub apps: Vec<Row>,
    pub devices: Vec<Row>,
    pub feeds: Vec<FeedRow>,
    /// Downloads through accounts (personal URLs, or signed in on the site), per officer and
    /// episode.
    pub officers: Vec<OfficerRow>,
    /// Every media request, by what it counted as (`download`, `partial`, `probe`, `bot`, …).
    pub requests: Vec<VerdictRow>,
    /// Media records the server lost before they were stored (queue full or store unwritable),
    /// since it started; absent when the report was not made by the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub downloads: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EpisodeRow {
    pub slug: String,
    pub title: String,
    pub downloads: u64,
    /// For members-only episodes: distinct officers among the downloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officers: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeedRow {
    pub id: String,
    pub title: String,
    pub access: &'static str,
    /// The downloads of the episodes the feed carries now (an episode in two feeds counts in
    /// both).
    pub downloads: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OfficerRow {
    pub officer: String,
    pub episode: String,
    pub downloads: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VerdictRow {
    pub counted_as: String,
    pub requests: u64,
    pub bytes: u64,
}

fn rows(pairs: Vec<(String, u64)>) -> Vec<Row> {
    pairs
        .into_iter()
        .map(|(name, downloads)| Row { name, downloads })
        .collect()
}

impl Report {
    pub fn new(
        counts: Counts,
        catalog: &Catalog,
        since: Option<String>,
        episode: Option<String>,
    ) -> Report {
        let members_only = |slug: &str| {
            catalog
                .episode(slug)
                .is_some_and(|ep| !access::may_play(catalog, ep, Credentials::Anonymous))
        };
        let episodes: Vec<EpisodeRow> = counts
            .by_episode
            .iter()
            .map(|(slug, downloads, officers)| EpisodeRow {
                slug: slug.clone(),
                title: catalog.episode(slug).map_or_else(
                    || format!("{slug} (no longer in the catalog)"),
                    |e| e.title.clone(),
                ),
                downloads: *downloads,
                officers: members_only(slug).then_some(*officers),
            })
            .collect();
        let feeds = catalog
            .feeds
            .iter()
            .map(|f| FeedRow {
                id: f.id.clone(),
                title: f.title.clone(),
                access: if access::is_public(f) {
                    "public"
                } else {
                    "members"
                },
                downloads: catalog
                    .feed_episodes(f)
                    .filter_map(|ep| episodes.iter().find(|r| r.slug == ep.slug))
                    .map(|r| r.downloads)
                    .sum(),
            })
            .collect();
        Report {
            method: METHOD,
            since,
            episode,
            downloads: counts.total,
            episodes,
            days: rows(counts.by_day),
            apps: rows(counts.by_app),
            devices: rows(counts.by_device),
            feeds,
            officers: counts
                .by_officer
                .into_iter()
                .map(|(officer, episode, downloads)| OfficerRow {
                    officer,
                    episode,
                    downloads,
                })
                .collect(),
            requests: counts
                .verdicts
                .into_iter()
                .map(|(counted_as, requests, bytes)| VerdictRow {
                    counted_as,
                    requests,
                    bytes,
                })
                .collect(),
            dropped: None,
        }
    }

    /// The same figures as CSV: one row per figure, `section,name,downloads,officers`, so one
    /// file holds every breakdown and loads into any spreadsheet.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("section,name,downloads,officers,requests,bytes\n");
        let mut line = |section: &str,
                        name: &str,
                        downloads: String,
                        officers: String,
                        requests: String,
                        bytes: String| {
            out.push_str(&format!(
                "{section},{},{downloads},{officers},{requests},{bytes}\n",
                csv_field(name)
            ));
        };
        let n = |v: u64| v.to_string();
        line(
            "total",
            "downloads",
            n(self.downloads),
            String::new(),
            String::new(),
            String::new(),
        );
        for e in &self.episodes {
            line(
                "episode",
                &e.slug,
                n(e.downloads),
                e.officers.map(n).unwrap_or_default(),
                String::new(),
                String::new(),
            );
        }
        for r in &self.days {
            line(
                "day",
                &r.name,
                n(r.downloads),
                String::new(),
                String::new(),
                String::new(),
            );
        }
        for r in &self.apps {
            line(
                "app",
                &r.name,
                n(r.downloads),
                String::new(),
                String::new(),
                String::new(),
            );
        }
        for r in &self.devices {
            line(
                "device",
                &r.name,
                n(r.downloads),
                String::new(),
                String::new(),
                String::new(),
            );
        }
        for f in &self.feeds {
            line(
                "feed",
                &f.id,
                n(f.downloads),
                String::new(),
                String::new(),
                String::new(),
            );
        }
        for o in &self.officers {
            line(
                "officer",
                &format!("{} / {}", o.officer, o.episode),
                n(o.downloads),
                String::new(),
                String::new(),
                String::new(),
            );
        }
        for v in &self.requests {
            line(
                "requests",
                &v.counted_as,
                String::new(),
                String::new(),
                n(v.requests),
                n(v.bytes),
            );
        }
        out
    }
}

/// A CSV field, quoted when it must be, and never read as a formula by a spreadsheet.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("\t=1"), "'\t=1");
    }
}
