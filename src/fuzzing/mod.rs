//! Harnesses for the cargo-fuzz targets in `fuzz/` (see `fuzz/README.md`); nothing else uses them.
//!
//! A target hands its input to one of these and asserts on what comes back: [`TempCatalog`] is a
//! minimal catalog on disk whose files a target rewrites before loading it; [`read_xml`] reads a
//! rendered feed back the way an XML 1.0 parser must, failing on anything ill-formed;
//! [`MultipartDrain`] reads a body with axum's own extractor; [`AdminServer`] is a running server
//! whose admin API a target sends requests to. They live in the library because the admin's
//! request parsing is reachable only through the server, and the catalog's file layout only
//! through its loader.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::catalog::{self, Catalog, MeasureCache, Problems, Source};

/// The only episode's slug in a [`TempCatalog`].
pub const SLUG: &str = "fuzz-episode";
/// The only feed's id in a [`TempCatalog`].
pub const FEED: &str = "fuzz-feed";
/// The public URL of a [`TempCatalog`].
pub const PUBLIC_URL: &str = "https://podcasts.example.org";

/// `episodes/fuzz-episode/episode.toml` as the catalog starts.
pub const EPISODE_TOML: &str = r#"guid = "0b5f6c3e-7d4a-4c1e-9a57-2f1d3c9e8b01"
title = "Fuzz episode"
published = 2016-06-30T09:00:00-04:00
summary = "One sentence."
feeds = ["fuzz-feed"]
"#;

/// `feeds/fuzz-feed.toml` as the catalog starts.
pub const FEED_TOML: &str = r#"title = "Fuzz feed"
description = "A feed for the fuzz targets."
author = "Rollcall"
language = "en-us"
category = "Government"
explicit = false
artwork = "fuzz-feed.jpg"
access = "public"
episodes = "tagged"

[owner]
name = "Rollcall"
email = "podcasts@example.org"
"#;

/// A catalog file a target may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFile {
    EpisodeToml,
    Notes,
    Chapters,
    TranscriptVtt,
    TranscriptSrt,
    FeedToml,
}

impl CatalogFile {
    pub const ALL: [CatalogFile; 6] = [
        CatalogFile::EpisodeToml,
        CatalogFile::Notes,
        CatalogFile::Chapters,
        CatalogFile::TranscriptVtt,
        CatalogFile::TranscriptSrt,
        CatalogFile::FeedToml,
    ];

    /// The path inside the catalog folder, which is also the name the catalog target's inputs
    /// start with.
    pub fn rel_path(self) -> String {
        match self {
            CatalogFile::EpisodeToml => format!("episodes/{SLUG}/episode.toml"),
            CatalogFile::Notes => format!("episodes/{SLUG}/notes.md"),
            CatalogFile::Chapters => format!("episodes/{SLUG}/chapters.json"),
            CatalogFile::TranscriptVtt => format!("episodes/{SLUG}/transcript.vtt"),
            CatalogFile::TranscriptSrt => format!("episodes/{SLUG}/transcript.srt"),
            CatalogFile::FeedToml => format!("feeds/{FEED}.toml"),
        }
    }

    /// What the file holds when the catalog starts; `None`: it does not exist.
    fn baseline(self) -> Option<&'static str> {
        match self {
            CatalogFile::EpisodeToml => Some(EPISODE_TOML),
            CatalogFile::FeedToml => Some(FEED_TOML),
            _ => None,
        }
    }
}

/// A folder under the system's temporary folder, removed when dropped.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rollcall-fuzz-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the temporary folder is writable");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-episode, one-feed catalog in a temporary folder: `episodes/fuzz-episode/` with the
/// given audio and [`EPISODE_TOML`], and `feeds/fuzz-feed.toml` ([`FEED_TOML`]) with the given
/// artwork. The audio and artwork are measured once; each load starts from those measurements
/// and an empty parse cache, so it sees exactly the files as written.
#[derive(Debug)]
pub struct TempCatalog {
    dir: Scratch,
    source: Source,
    /// The same feeds over an empty episodes folder, for [`TempCatalog::load_quick`].
    feeds_only: Source,
    /// The starting feed, loaded from `feeds_only`.
    starting_feeds: Catalog,
    measurements: PathBuf,
    /// Files changed by the last [`TempCatalog::write`], restored by the next.
    changed: Mutex<Vec<CatalogFile>>,
}

impl TempCatalog {
    /// Writes the catalog. `audio` must be a real MP3 and `artwork` a square JPEG of 1400 to
    /// 3000 pixels, so that the starting catalog loads.
    pub fn new(audio: &[u8], artwork: &[u8]) -> TempCatalog {
        let dir = Scratch::new("catalog");
        let root = dir.0.clone();
        for (rel, bytes) in [
            (format!("episodes/{SLUG}/audio.mp3"), audio),
            (format!("feeds/{FEED}.jpg"), artwork),
            (CatalogFile::EpisodeToml.rel_path(), EPISODE_TOML.as_bytes()),
            (CatalogFile::FeedToml.rel_path(), FEED_TOML.as_bytes()),
        ] {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().expect("a file has a folder"))
                .expect("the temporary folder is writable");
            std::fs::write(&path, bytes).expect("the temporary folder is writable");
        }
        let source = Source {
            episodes_dir: root.join("episodes"),
            feeds_dir: root.join("feeds"),
            public_url: PUBLIC_URL.to_owned(),
            measure_cache: None,
            items_cache: None,
            episodes_cache: None,
            site: catalog::SiteSource::default(),
        };
        let feeds_only = Source {
            episodes_dir: root.join("no-episodes"),
            ..source.clone()
        };
        std::fs::create_dir_all(&feeds_only.episodes_dir)
            .expect("the temporary folder is writable");
        let measurements = root.join("measurements.tsv");
        let cache = MeasureCache::default();
        if let Err(problems) = catalog::load(&source, &cache) {
            panic!("the starting catalog must load:\n{problems}");
        }
        cache
            .save(&measurements)
            .expect("the temporary folder is writable");
        let starting_feeds =
            catalog::load(&feeds_only, &cache).expect("the starting feed loads on its own");
        TempCatalog {
            dir,
            source,
            feeds_only,
            starting_feeds,
            measurements,
            changed: Mutex::new(Vec::new()),
        }
    }

    /// The catalog's folder (holding `episodes/` and `feeds/`).
    pub fn root(&self) -> &Path {
        &self.dir.0
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Replaces `files`, after putting back any file the previous call changed.
    pub fn write(&self, files: &[(CatalogFile, &[u8])]) {
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        for file in changed.drain(..) {
            let path = self.dir.0.join(file.rel_path());
            match file.baseline() {
                Some(text) => std::fs::write(&path, text).expect("the catalog is writable"),
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        for (file, bytes) in files {
            std::fs::write(self.dir.0.join(file.rel_path()), bytes)
                .expect("the catalog is writable");
            changed.push(*file);
        }
    }

    /// The measurements of the starting files, as a fresh cache.
    pub fn measure_cache(&self) -> MeasureCache {
        MeasureCache::load(&self.measurements)
    }

    /// Loads the catalog as it is on disk now, with [`catalog::load`].
    pub fn load(&self) -> Result<Catalog, Problems> {
        catalog::load(&self.source, &self.measure_cache())
    }

    /// Loads the catalog as [`TempCatalog::load`] does, from the loader's own parts, without its
    /// episode threads: [`catalog::load`] of the feeds over an empty episodes folder, then
    /// [`catalog::check_episode`] of the episode, which parses it with the same rules.
    ///
    /// Why: `catalog::load` waits for its episode threads in `report_progress`, which can miss
    /// the last thread's wake-up and then sleeps the rest of its 2-second progress interval (see
    /// fuzz/README.md). About one load in eight does, which leaves a fuzz target a few inputs a
    /// second. Differences from `load`: a feed that lists the episode by slug
    /// (`episodes = ["fuzz-episode"]`) is refused, as the feeds are loaded without it, and a
    /// problem in the feed file hides the episode's (the episode is then checked against the
    /// starting catalog's feeds, so its own problems are still found).
    pub fn load_quick(&self) -> Result<Catalog, Problems> {
        let cache = self.measure_cache();
        let mut problems = Vec::new();
        let mut catalog = match catalog::load(&self.feeds_only, &cache) {
            Ok(c) => c,
            Err(p) => {
                problems.extend(p.0);
                self.starting_feeds.clone()
            }
        };
        let ep = match catalog::check_episode(
            &self.source,
            &catalog,
            &self.source.episodes_dir,
            SLUG,
            &cache,
        ) {
            Ok(ep) => ep,
            Err(p) => {
                problems.extend(p.0);
                return Err(Problems(problems));
            }
        };
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        let ep = std::sync::Arc::new(ep);
        if ep.unpublished || ep.published > chrono::Utc::now().fixed_offset() {
            if !ep.unpublished {
                catalog.next_release = Some(ep.published);
            }
            catalog.withheld.push(ep);
            return Ok(catalog);
        }
        let carrying: Vec<String> = catalog.feeds_of(&ep).map(|f| f.id.clone()).collect();
        for feed in &mut catalog.feeds {
            if carrying.contains(&feed.id) {
                feed.episodes = vec![0];
            }
        }
        catalog.episodes.push(ep);
        Ok(catalog)
    }
}

/// `s` as a TOML string value, quotes included, encoded by toml_edit (which the catalog's own
/// `episode.toml` edits use), so every character survives a parse.
pub fn toml_string(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

mod admin;
mod xml;

pub use admin::*;
pub use xml::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_every_control_character() {
        let every: String = ('\u{0}'..='\u{1ff}')
            .chain(['\u{fffe}', '\u{10ffff}'])
            .collect();
        let cases = [
            "a\"b\\c\nd\te\u{0}f\u{7f}g\u{85}h]]>",
            "'''",
            "'",
            "\"\"\"",
            &every,
        ];
        for s in cases {
            let doc = format!("v = {}", toml_string(s));
            let table: toml::Table = doc.parse().unwrap();
            assert_eq!(table["v"].as_str(), Some(s), "{doc}");
        }
    }

    #[test]
    fn a_temp_catalog_loads_quickly_as_it_loads_fully_and_restores_its_files() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |rel: &str| std::fs::read(repo.join(rel)).unwrap();
        let c = TempCatalog::new(
            &read("episodes/defining-de-escalation/audio.mp3"),
            &read("feeds/spotlight-on-safety.jpg"),
        );
        let full = c.load().unwrap();
        assert_eq!(c.load_quick().unwrap(), full);
        assert_eq!(full.feeds[0].episodes, [0]);
        c.write(&[
            (CatalogFile::EpisodeToml, b"title = \"no guid\""),
            (CatalogFile::Chapters, b"{}"),
        ]);
        let problems = c.load_quick().unwrap_err().to_string();
        assert!(problems.contains("episode.toml: guid"), "{problems}");
        assert!(problems.contains("chapters.json: version"), "{problems}");
        c.write(&[(CatalogFile::FeedToml, b"title = 1")]);
        let problems = c.load_quick().unwrap_err().to_string();
        assert!(problems.contains("fuzz-feed.toml: title"), "{problems}");
        assert!(!problems.contains("episode.toml"), "{problems}");
        c.write(&[]);
        assert_eq!(c.load_quick().unwrap(), full);
        assert!(!c.root().join(CatalogFile::Chapters.rel_path()).exists());
    }

    #[test]
    fn read_xml_refuses_ill_formed_documents() {
        let ok = read_xml(b"<a x=\"1\"><b>t&amp;<![CDATA[<c>]]>\r\n</b><b/></a>").unwrap();
        assert_eq!(ok.all("a/b"), ["t&<c>\n", ""]);
        assert_eq!(ok.one("a@x"), Ok("1"));
        for bad in [
            "<a>\u{1}</a>",
            "<a><b></a>",
            "<a>&nope;</a>",
            "<a>&#1;</a>",
            "<a x=\"1\" x=\"2\"/>",
            "<p:a/>",
            "<a/><b/>",
        ] {
            assert!(read_xml(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
