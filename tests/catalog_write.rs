//! Catalog writes through the library: an edit that finds the file changed since it began is
//! refused with a conflict and changes nothing; a committed add rolls back to nothing.

mod common;

use rollcall::catalog::write::{self, Attachments, Patch, Staging, WriteError};
use rollcall::catalog::{MeasureCache, Source};

use common::Demo;

#[test]
fn an_edit_of_a_file_changed_meanwhile_is_a_conflict_and_changes_nothing() {
    let demo = Demo::new();
    let source = Source::from(&demo.config());
    let cache = MeasureCache::default();
    let catalog = demo.load().unwrap();
    let slug = "defining-de-escalation";
    let staging = Staging::new(&source.episodes_dir).unwrap();
    let patch = Patch {
        title: Some("Mine".into()),
        ..Patch::default()
    };
    let prepared = write::prepare_edit(
        &source,
        &catalog,
        &cache,
        staging,
        slug,
        patch,
        Attachments::default(),
    )
    .unwrap();
    // Someone else saves the file between this edit's start and its commit.
    demo.edit(
        &format!("episodes/{slug}/episode.toml"),
        "title = \"Defining De-Escalation\"",
        "title = \"Theirs\"",
    );
    let theirs = demo.read(&format!("episodes/{slug}/episode.toml"));
    let e = prepared.commit(&cache).unwrap_err();
    assert!(matches!(e, WriteError::Conflict(_)), "{e}");
    assert!(e.to_string().contains("changed by someone else"), "{e}");
    assert_eq!(demo.read(&format!("episodes/{slug}/episode.toml")), theirs);
}

#[test]
fn a_committed_add_rolls_back_to_nothing_and_an_edit_to_the_old_folder() {
    let demo = Demo::new();
    let source = Source::from(&demo.config());
    let cache = MeasureCache::default();
    let catalog = demo.load().unwrap();
    let audio = demo.path("a.mp3");
    common::tone_mp3(&audio, 2.0);
    let staging = Staging::new(&source.episodes_dir).unwrap();
    let mut up = staging.upload("audio", u64::MAX).unwrap();
    up.write(&std::fs::read(&audio).unwrap()).unwrap();
    let files = Attachments {
        audio: Some(up.finish().unwrap()),
        ..Attachments::default()
    };
    let draft = write::Draft {
        slug: None,
        title: "Rolled Back".into(),
        published: write::parse_published("published", "2016-07-05").unwrap(),
        summary: "s".into(),
        guests: vec![],
        resources: vec![],
        feeds: vec![],
        notes: String::new(),
        explicit: false,
    };
    let prepared = write::prepare_add(&source, &catalog, &cache, staging, draft, files).unwrap();
    prepared.commit(&cache).unwrap();
    assert!(demo.path("episodes/rolled-back/episode.toml").is_file());
    prepared.roll_back().unwrap();
    assert!(!demo.path("episodes/rolled-back").exists());

    let slug = "defining-de-escalation";
    let before = demo.read(&format!("episodes/{slug}/episode.toml"));
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let audio = demo.path(&format!("episodes/{slug}/audio.mp3"));
    let audio_inode = inode(&audio);
    let staging = Staging::new(&source.episodes_dir).unwrap();
    let patch = Patch {
        summary: Some("New summary".into()),
        ..Patch::default()
    };
    let prepared = write::prepare_edit(
        &source,
        &catalog,
        &cache,
        staging,
        slug,
        patch,
        Attachments::default(),
    )
    .unwrap();
    prepared.commit(&cache).unwrap();
    assert!(demo
        .read(&format!("episodes/{slug}/episode.toml"))
        .contains("New summary"));
    // The edit linked the audio into the new folder: the same file, never copied or rewritten.
    assert_eq!(inode(&audio), audio_inode);
    prepared.roll_back().unwrap();
    assert_eq!(demo.read(&format!("episodes/{slug}/episode.toml")), before);
    assert_eq!(inode(&audio), audio_inode);
    assert!(demo.load().is_ok());
}
