//! The catalog's file parsers: `episode.toml`, `feeds/<id>.toml`, `notes.md`, `chapters.json`
//! and transcripts (WebVTT, SRT), through the real loader and the pages' cue and chapter readers.
//!
//! Input: a first line naming the file (`episode.toml`, `feed.toml`, `notes.md`,
//! `chapters.json`, `transcript.vtt` or `transcript.srt`; anything else means `episode.toml` and
//! the whole input is its content), then the file's bytes. The file replaces its counterpart in a
//! one-episode, one-feed catalog, which is loaded (`TempCatalog::load_quick`: the loader's own
//! feed loading and episode check, without the episode threads that stall `catalog::load`): it
//! must load or give its problems, never panic, and a catalog that loads serves only files
//! inside its folders.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rollcall::fuzzing::{CatalogFile, TempCatalog};
use rollcall::site::format::{parse_chapters, parse_cues};

struct Harness {
    catalog: TempCatalog,
    roots: [PathBuf; 2],
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let catalog = rollcall_fuzz::temp_catalog();
    let canonical = |p: &std::path::Path| p.canonicalize().expect("the catalog exists");
    let roots = [
        canonical(&catalog.source().episodes_dir),
        canonical(&catalog.source().feeds_dir),
    ];
    Harness { catalog, roots }
});

fn file_named(name: &str) -> Option<CatalogFile> {
    Some(match name {
        "episode.toml" => CatalogFile::EpisodeToml,
        "feed.toml" => CatalogFile::FeedToml,
        "notes.md" => CatalogFile::Notes,
        "chapters.json" => CatalogFile::Chapters,
        "transcript.vtt" => CatalogFile::TranscriptVtt,
        "transcript.srt" => CatalogFile::TranscriptSrt,
        _ => return None,
    })
}

fuzz_target!(|data: &[u8]| {
    let h = &*HARNESS;
    let (file, content) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => match std::str::from_utf8(&data[..i]).ok().and_then(file_named) {
            Some(f) => (f, &data[i + 1..]),
            None => (CatalogFile::EpisodeToml, data),
        },
        None => (CatalogFile::EpisodeToml, data),
    };

    // The pages read transcripts and chapters themselves.
    let text = String::from_utf8_lossy(content);
    for cue in parse_cues(&text) {
        assert!(!cue.text.is_empty(), "an empty cue");
        assert_eq!(
            cue.text.split_whitespace().collect::<Vec<_>>().join(" "),
            cue.text,
            "cue text is not collapsed"
        );
        if let Some(s) = &cue.speaker {
            assert!(!s.is_empty() && s.trim() == s, "speaker {s:?}");
        }
        let _ = cue.clock();
    }
    for chapter in parse_chapters(&text) {
        let _ = chapter.clock();
    }

    h.catalog.write(&[(file, content)]);
    match h.catalog.load_quick() {
        Ok(catalog) => {
            for asset in catalog.assets() {
                assert!(
                    h.roots.iter().any(|r| asset.path.starts_with(r)),
                    "{} is served from outside the catalog",
                    asset.path.display()
                );
            }
            assert_eq!(catalog.feeds.len(), 1);
            assert_eq!(catalog.episodes.len() + catalog.withheld.len(), 1);
        }
        Err(problems) => {
            assert!(!problems.0.is_empty(), "an error without problems");
            for p in &problems.0 {
                assert!(
                    !p.file.is_empty() && !p.what.is_empty() && !p.fix.is_empty(),
                    "a problem that does not say where, what or how to fix it: {p:?}"
                );
            }
            let _ = problems.to_string();
        }
    }
});
