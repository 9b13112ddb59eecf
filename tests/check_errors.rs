//! Every kind of catalog error, with the exact message `rollcall check` prints and its exit status.
//! Each case edits a temporary copy of the demo catalog.

mod common;

use common::Demo;

const EP: &str = "episodes/defining-de-escalation/episode.toml";
const FEED: &str = "feeds/defusing-difficult-encounters.toml";

fn check(demo: &Demo) -> (i32, String, String) {
    let out = demo.run(&["check".as_ref()]);
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Asserts that loading reports exactly `want`, and that `rollcall check` prints it and exits 1.
fn assert_problems(demo: &Demo, want: &[&str]) {
    assert_eq!(demo.problems(), want);
    let (code, _, stderr) = check(demo);
    assert_eq!(code, 1, "rollcall check must exit 1 on problems");
    for line in want {
        assert!(stderr.contains(line), "stderr lacks {line:?}:\n{stderr}");
    }
    assert!(
        stderr.contains(&format!("{} problem(s) found", want.len())),
        "{stderr}"
    );
}

#[test]
fn the_demo_catalog_is_clean() {
    let demo = Demo::new();
    let (code, stdout, stderr) = check(&demo);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "ok: 3 episodes, 3 feeds\n");
}

#[test]
fn missing_required_field() {
    let demo = Demo::new();
    demo.edit(EP, "title = \"Defining De-Escalation\"\n", "");
    assert_problems(&demo, &["episodes/defining-de-escalation/episode.toml: title: is missing: add title = \"Defining De-Escalation\""]);
}

#[test]
fn wrong_type_and_unknown_field_are_both_reported() {
    let demo = Demo::new();
    demo.edit(
        EP,
        "feeds = [",
        "explicit = \"no\"\ntitel = \"x\"\nfeeds = [",
    );
    assert_problems(&demo, &[
        "episodes/defining-de-escalation/episode.toml: explicit: expected true or false, found string: write explicit as true or false",
        "episodes/defining-de-escalation/episode.toml: titel: is not a known field: remove it or use one of: audio, duration, explicit, feeds, guests, guid, image, number, published, resources, season, summary, title, type, unpublished",
    ]);
}

#[test]
fn date_without_time_zone() {
    let demo = Demo::new();
    demo.edit(
        EP,
        "published = 2016-06-30T09:00:00-04:00",
        "published = 2016-06-30T09:00:00",
    );
    assert_problems(&demo, &["episodes/defining-de-escalation/episode.toml: published: \"2016-06-30T09:00:00\" is not a date and time with a time zone: write it like published = 2016-06-30T09:00:00-04:00"]);
}

#[test]
fn toml_syntax_error_names_the_line() {
    let demo = Demo::new();
    demo.edit(
        EP,
        "title = \"Defining De-Escalation\"",
        "title = \"Defining De-Escalation",
    );
    let got = demo.problems();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "episodes/defining-de-escalation/episode.toml: line 3: is not valid TOML ("
        ),
        "{}",
        got[0]
    );
    assert!(
        got[0].ends_with("): fix the syntax; see docs/catalog.md for an example"),
        "{}",
        got[0]
    );
    assert_eq!(check(&demo).0, 1);
}

#[test]
fn declared_duration_that_disagrees_names_both_values() {
    let demo = Demo::new();
    demo.edit(EP, "feeds = [", "duration = \"15:00\"\nfeeds = [");
    assert_problems(&demo, &["episodes/defining-de-escalation/episode.toml: duration: declares 0:15:00 (900.0 s) but the audio measures 0:00:30 (29.6 s): remove duration (it is measured from the audio) or fix it"]);
    // Within 2 seconds is accepted.
    demo.edit(EP, "duration = \"15:00\"", "duration = 30");
    assert!(demo.load().is_ok());
}

#[test]
fn missing_audio() {
    let demo = Demo::new();
    std::fs::remove_file(demo.path("episodes/defining-de-escalation/audio.mp3")).unwrap();
    assert_problems(&demo, &["episodes/defining-de-escalation/episode.toml: audio: no audio file found in the episode folder: add an audio file (mp3, m4a, m4b, ogg, oga, opus, flac) and name it with audio = \"file.mp3\""]);
}

#[test]
fn audio_that_is_not_audio() {
    let demo = Demo::new();
    demo.write(
        "episodes/defining-de-escalation/audio.mp3",
        "<html>not audio</html>",
    );
    let got = demo.problems();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "episodes/defining-de-escalation/audio.mp3: audio: not a readable audio file ("
        ),
        "{}",
        got[0]
    );
    assert!(
        got[0].ends_with("): re-encode it as MP3 or M4A (for example with ffmpeg)"),
        "{}",
        got[0]
    );
}

#[test]
fn audio_symlink_outside_the_catalog_is_refused() {
    let demo = Demo::new();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("secret.mp3");
    std::fs::copy(
        demo.path("episodes/defining-de-escalation/audio.mp3"),
        &target,
    )
    .unwrap();
    std::fs::remove_file(demo.path("episodes/defining-de-escalation/audio.mp3")).unwrap();
    std::os::unix::fs::symlink(
        &target,
        demo.path("episodes/defining-de-escalation/audio.mp3"),
    )
    .unwrap();
    assert_problems(&demo, &["episodes/defining-de-escalation/episode.toml: audio: \"audio.mp3\" points outside the catalog folder: put the file in the episode folder and name it here"]);
}

#[test]
fn unknown_feed_and_duplicate_guid() {
    let demo = Demo::new();
    demo.edit(
        EP,
        "feeds = [\"defusing-difficult-encounters\"]",
        "feeds = [\"defusing\"]",
    );
    demo.edit(
        EP,
        "e6be906a-3576-5e57-a8a6-6711becf9e96",
        "67b7b5e1-8d04-57aa-b995-afab2462d755",
    );
    assert_problems(&demo, &[
        "episodes/defining-de-escalation/episode.toml: feeds: names feed \"defusing\", which has no feeds/defusing.toml: use one of: defusing-difficult-encounters, spotlight-on-safety, valor-members",
        "episodes/defining-de-escalation/episode.toml: guid: \"67b7b5e1-8d04-57aa-b995-afab2462d755\" is already the guid of episode \"behavioral-response-to-stress-and-fear\": give each episode its own guid and never change it once published",
    ]);
}

#[test]
fn bad_resource_and_guest() {
    let demo = Demo::new();
    demo.edit(
        EP,
        "url = \"https://www.theiacp.org/\"",
        "url = \"javascript:alert(1)\"",
    );
    demo.edit(EP, "name = \"Eric Pisconski\"\n", "");
    assert_problems(&demo, &[
        "episodes/defining-de-escalation/episode.toml: guests[0].name: is missing: add name = \"Eric Pisconski\"",
        "episodes/defining-de-escalation/episode.toml: resources[1].url: \"javascript:alert(1)\" is not an http(s) URL: write a full URL starting with https://",
    ]);
}

#[test]
fn bad_slug_folder() {
    let demo = Demo::new();
    std::fs::rename(
        demo.path("episodes/defining-de-escalation"),
        demo.path("episodes/Defining De-Escalation"),
    )
    .unwrap();
    assert_problems(&demo, &["episodes/Defining De-Escalation: (folder name): \"Defining De-Escalation\" is not a valid slug: rename the folder using lowercase letters, digits and single hyphens"]);
}

#[test]
fn invalid_chapters() {
    let demo = Demo::new();
    demo.write(
        "episodes/defining-de-escalation/chapters.json",
        r#"{"chapters":[{"title":"x"}]}"#,
    );
    assert_problems(&demo, &[
        "episodes/defining-de-escalation/chapters.json: version: is missing: add \"version\": \"1.2.0\"",
        "episodes/defining-de-escalation/chapters.json: chapters[0].startTime: is missing or not a number of seconds: add \"startTime\": 0",
    ]);
}

#[test]
fn feed_category_owner_language_and_artwork() {
    let demo = Demo::new();
    demo.edit(
        FEED,
        "category = \"Government\"",
        "category = \"Government\"\nsubcategory = \"Police\"",
    );
    demo.edit(FEED, "language = \"en-us\"", "language = \"english\"");
    demo.edit(
        FEED,
        "email = \"podcasts@example.org\"",
        "email = \"nobody\"",
    );
    assert_problems(&demo, &[
        "feeds/defusing-difficult-encounters.toml: language: \"english\" is not a language code: use an ISO 639 code such as \"en\" or \"en-us\"",
        "feeds/defusing-difficult-encounters.toml: subcategory: \"Police\" is not a subcategory of Government: Government has no subcategories: remove subcategory",
        "feeds/defusing-difficult-encounters.toml: owner.email: \"nobody\" is not an email address: write it like \"podcasts@example.org\"",
    ]);
}

#[test]
fn unknown_category_and_small_artwork() {
    let demo = Demo::new();
    demo.edit(FEED, "category = \"Government\"", "category = \"Police\"");
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=blue:s=600x600",
        "-frames:v",
        "1",
        demo.path("feeds/defusing-difficult-encounters.jpg")
            .to_str()
            .unwrap(),
    ]);
    assert_problems(&demo, &[
        "feeds/defusing-difficult-encounters.toml: category: \"Police\" is not an Apple Podcasts category: use one of: Arts, Business, Comedy, Education, Fiction, Government, History, Health & Fitness, Kids & Family, Leisure, Music, News, Religion & Spirituality, Science, Society & Culture, Sports, Technology, True Crime, TV & Film",
        "feeds/defusing-difficult-encounters.toml: artwork: \"defusing-difficult-encounters.jpg\" is 600x600 pixels: use a square JPEG or PNG of 1400 to 3000 pixels in the feeds folder",
    ]);
}

#[test]
fn missing_owner_and_unknown_listed_episode() {
    let demo = Demo::new();
    demo.edit(
        FEED,
        "[owner]\nname = \"VALOR Initiative (demo)\"\nemail = \"podcasts@example.org\"\n",
        "",
    );
    demo.edit(
        FEED,
        "episodes = \"tagged\"",
        "episodes = [\"no-such-episode\"]",
    );
    assert_problems(&demo, &["feeds/defusing-difficult-encounters.toml: owner: is missing: add an [owner] table with name and email (Apple requires it)"]);
    let demo = Demo::new();
    demo.edit(
        FEED,
        "episodes = \"tagged\"",
        "episodes = [\"no-such-episode\"]",
    );
    assert_problems(&demo, &["feeds/defusing-difficult-encounters.toml: episodes: names episode \"no-such-episode\", which has no episodes/no-such-episode/episode.toml: fix the slug or remove it from the list"]);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let demo = Demo::new();
    demo.edit(EP, "title = \"Defining De-Escalation\"\n", "");
    demo.edit(
        "episodes/behavioral-response-to-stress-and-fear/episode.toml",
        "summary = ",
        "sumary = ",
    );
    demo.edit(FEED, "author = \"BJA VALOR Initiative\"\n", "");
    let got = demo.problems();
    assert_eq!(got.len(), 4, "{got:#?}");
    let (code, _, stderr) = check(&demo);
    assert_eq!(code, 1);
    assert!(stderr.ends_with("4 problem(s) found\n"), "{stderr}");
}

#[test]
fn bad_config_names_the_key() {
    let demo = Demo::new();
    demo.write("config.toml", "public_ulr = \"https://x.example.org\"\n");
    let (code, _, stderr) = check(&demo);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("config.toml: line 1, column 1: unknown field `public_ulr`"),
        "{stderr}"
    );
}

#[test]
fn check_and_failed_build_change_nothing() {
    let demo = Demo::new();
    demo.edit(EP, "title = \"Defining De-Escalation\"\n", "");
    let before = snapshot(demo.root());
    assert_eq!(check(&demo).0, 1);
    // A failed build writes nothing and leaves an earlier export as it was.
    let out = demo.path("public");
    std::fs::create_dir_all(out.join("feeds")).unwrap();
    std::fs::write(out.join("feeds/old.xml"), "earlier export").unwrap();
    let out_before = snapshot(&out);
    let status = demo.run(&["build".as_ref(), "--out".as_ref(), out.as_os_str()]);
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stderr).contains("nothing was written"));
    assert_eq!(snapshot(&out), out_before);
    std::fs::remove_dir_all(&out).unwrap();
    assert_eq!(snapshot(demo.root()), before);
}

fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                v.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn identifiers_with_control_characters_and_texts_that_are_only_controls_are_refused() {
    // Found by the `render` fuzz target: a GUID or owner email carrying a control character
    // reached the feed as it was, and the feed was no longer XML.
    let demo = Demo::new();
    demo.edit(
        EP,
        "guid = \"e6be906a-3576-5e57-a8a6-6711becf9e96\"",
        "guid = \"e6be906a\\u0001\"",
    );
    demo.edit(
        FEED,
        "email = \"podcasts@example.org\"",
        "email = \"pod\\u0007casts@example.org\"",
    );
    demo.edit(
        EP,
        "title = \"Defining De-Escalation\"",
        "title = \"\\u0001\\u0002\"",
    );
    assert_problems(
        &demo,
        &[
            "episodes/defining-de-escalation/episode.toml: guid: contains the control character U+0001, which XML forbids: remove it: write it like guid = \"e6be906a-3576-5e57-a8a6-6711becf9e96\"",
            "episodes/defining-de-escalation/episode.toml: title: is empty once its control characters are removed: write it like title = \"Defining De-Escalation\"",
            "feeds/defusing-difficult-encounters.toml: owner.email: contains the control character U+0007, which XML forbids: remove it: write it like email = \"podcasts@example.org\"",
        ],
    );
}
