//! The admin HTTP API and the `rollcall` admin commands, against a real server on a temporary
//! copy of the demo catalog: adding, editing, replacing audio, unpublishing and scheduling
//! episodes, every kind of bad input (refused by field, catalog unchanged byte for byte), the
//! 413 that comes before `100 Continue`, two adds of one slug at once, and a truncated upload.
//! Multipart requests are sent with curl, a real client.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{eventually, get, path_of, tone_mp3, Demo, Server, PUBLIC_URL};

/// Every file under `episodes/` and `feeds/` (dot-folders included) with its bytes.
fn catalog_bytes(demo: &Demo) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.insert(rel + "/", Vec::new());
                walk(&path, root, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    for d in ["episodes", "feeds"] {
        walk(&demo.path(d), demo.root(), &mut out);
    }
    out
}

fn assert_unchanged(demo: &Demo, before: &BTreeMap<String, Vec<u8>>, what: &str) {
    let after = catalog_bytes(demo);
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        added.is_empty() && removed.is_empty() && changed.is_empty(),
        "{what}: catalog changed: added {added:?}, removed {removed:?}, changed {changed:?}"
    );
}

/// Creates an admin and returns an API token for it, through the real CLI.
fn admin_token(demo: &Demo, name: &str) -> String {
    add_user(demo, name, "admin", "correct horse battery");
    demo.api_token(name)
}

fn add_user(demo: &Demo, name: &str, role: &str, password: &str) {
    demo.add_user(name, role, password);
}

/// Runs curl against the server; returns (status, body).
fn curl(server: &Server, args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed (bash .ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let _ = server;
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn post_episode(server: &Server, token: &str, metadata: &str, audio: &Path) -> (u16, String) {
    curl(
        server,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-F",
            &format!("metadata={metadata}"),
            "-F",
            &format!("audio=@{}", audio.display()),
            &url(server, "/admin/api/episodes"),
        ],
    )
}

fn feed(server: &Server, id: &str) -> String {
    String::from_utf8(get(server.addr, &format!("/feeds/{id}.xml"), &[]).body).unwrap()
}

const THEME: &str = "defusing-difficult-encounters";

#[test]
fn api_adds_an_episode_that_appears_in_its_feed_with_the_measured_duration() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 7.0);
    let server = Server::start(&demo);
    let metadata = r#"{"title":"Officer Wellness","published":"2016-07-05T09:00:00-04:00",
        "summary":"Staying well on the job.","guests":[{"name":"Ann Lee","role":"Lieutenant"}],
        "resources":[{"title":"VALOR","url":"https://www.valorforblue.org/","note":"Training"}],
        "feeds":["defusing-difficult-encounters"],"notes":"Notes with *emphasis*."}"#;
    let (status, body) = post_episode(&server, &token, metadata, &audio);
    assert_eq!(status, 201, "{body}");
    let ep = json(&body);
    assert_eq!(ep["slug"], "officer-wellness");
    assert_eq!(ep["duration_secs"], 7, "measured, never typed in");
    assert_eq!(ep["status"], "published");
    // Live when the response came back: no waiting for the watcher.
    let xml = feed(&server, THEME);
    assert!(xml.contains("<title>Officer Wellness</title>"), "{xml}");
    assert!(
        xml.contains("<itunes:duration>7</itunes:duration>"),
        "{xml}"
    );
    let media = path_of(ep["audio_url"].as_str().unwrap());
    let got = get(server.addr, &media, &[]);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, std::fs::read(&audio).unwrap());
    // An ordinary folder, with the notes as Markdown, and nothing left in staging.
    assert!(demo
        .path("episodes/officer-wellness/episode.toml")
        .is_file());
    assert_eq!(
        demo.read("episodes/officer-wellness/notes.md"),
        "Notes with *emphasis*."
    );
    assert!(demo.load().is_ok());
    let staging: Vec<_> = std::fs::read_dir(demo.path("episodes"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(staging.is_empty(), "staging left behind: {staging:?}");
    // The list shows it.
    let (status, body) = curl(
        &server,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            &url(&server, "/admin/api/episodes"),
        ],
    );
    assert_eq!(status, 200);
    assert!(json(&body)
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["slug"] == "officer-wellness"));
}

#[test]
fn api_adds_transcript_and_chapters_and_the_feed_links_them() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 3.0);
    let vtt = demo.path("t.vtt");
    std::fs::write(&vtt, "WEBVTT\n\n00:00.000 --> 00:02.000\nHello\n").unwrap();
    let chapters = demo.path("c.json");
    std::fs::write(
        &chapters,
        r#"{"version":"1.2.0","chapters":[{"startTime":0,"title":"Start"}]}"#,
    )
    .unwrap();
    let server = Server::start(&demo);
    let (status, body) = curl(
        &server,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-F",
            &format!("metadata={{\"title\":\"With Extras\",\"published\":\"2016-07-05\",\"feeds\":[\"{THEME}\"]}}"),
            "-F",
            &format!("audio=@{}", audio.display()),
            "-F",
            &format!("transcript=@{}", vtt.display()),
            "-F",
            &format!("chapters=@{}", chapters.display()),
            &url(&server, "/admin/api/episodes"),
        ],
    );
    assert_eq!(status, 201, "{body}");
    assert!(demo.path("episodes/with-extras/transcript.vtt").is_file());
    assert!(demo.path("episodes/with-extras/chapters.json").is_file());
    let xml = feed(&server, THEME);
    assert!(
        xml.contains("/media/with-extras/") && xml.contains("transcript.vtt"),
        "{xml}"
    );
    assert!(xml.contains("chapters.json"), "{xml}");
    // Broken chapters are refused by the loader's own rule, naming the file.
    let bad = demo.path("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let before = catalog_bytes(&demo);
    let (status, body) = curl(
        &server,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-F",
            "metadata={\"title\":\"Bad Chapters\",\"published\":\"2016-07-05\"}",
            "-F",
            &format!("audio=@{}", audio.display()),
            "-F",
            &format!("chapters=@{}", bad.display()),
            &url(&server, "/admin/api/episodes"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("chapters.json"), "{body}");
    assert_unchanged(&demo, &before, "bad chapters");
}

#[test]
fn bad_api_input_is_refused_by_field_and_changes_nothing() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 2.0);
    let html = demo.path("page.mp3");
    std::fs::write(&html, "<!DOCTYPE html><html><body>not audio</body></html>").unwrap();
    let server = Server::start(&demo);
    let before = catalog_bytes(&demo);
    let ok = r#"{"title":"T","published":"2016-07-05"}"#;
    let cases: Vec<(&str, String, &Path, u16, &str)> = vec![
        ("HTML renamed .mp3", ok.into(), &html, 415, "audio"),
        (
            "unknown field",
            r#"{"title":"T","published":"2016-07-05","duration":3}"#.into(),
            &audio,
            400,
            "metadata",
        ),
        (
            "bad date",
            r#"{"title":"T","published":"2016-13-01"}"#.into(),
            &audio,
            400,
            "published",
        ),
        (
            "relative resource URL",
            r#"{"title":"T","published":"2016-07-05","resources":[{"title":"x","url":"/x"}]}"#
                .into(),
            &audio,
            400,
            "resources[0].url",
        ),
        (
            "unknown feed",
            r#"{"title":"T","published":"2016-07-05","feeds":["nope"]}"#.into(),
            &audio,
            400,
            "feeds",
        ),
        (
            "slug taken",
            r#"{"title":"T","slug":"defining-de-escalation","published":"2016-07-05"}"#.into(),
            &audio,
            409,
            "slug",
        ),
        (
            "bad slug",
            r#"{"title":"T","slug":"../etc","published":"2016-07-05"}"#.into(),
            &audio,
            400,
            "slug",
        ),
        (
            "no title",
            r#"{"published":"2016-07-05"}"#.into(),
            &audio,
            400,
            "title",
        ),
        ("not JSON", "{title".into(), &audio, 400, "metadata"),
    ];
    for (what, metadata, file, status, field) in cases {
        let (got, body) = post_episode(&server, &token, &metadata, file);
        assert_eq!(got, status, "{what}: {body}");
        let e = json(&body);
        assert_eq!(e["field"], field, "{what}: {body}");
        assert!(!e["error"].as_str().unwrap().is_empty());
        assert_unchanged(&demo, &before, what);
    }
    // No audio part at all.
    let (got, body) = curl(
        &server,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-F",
            &format!("metadata={ok}"),
            &url(&server, "/admin/api/episodes"),
        ],
    );
    assert_eq!(
        (got, json(&body)["field"].clone()),
        (400, "audio".into()),
        "{body}"
    );
    // Not multipart.
    let (got, body) = curl(
        &server,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            ok,
            &url(&server, "/admin/api/episodes"),
        ],
    );
    assert_eq!(got, 415, "{body}");
    assert!(body.contains("Content-Type"), "{body}");
    // No token, a wrong one, and an officer's.
    let (got, body) = post_episode(&server, "", ok, &audio);
    assert_eq!(got, 401, "{body}");
    let (got, _) = post_episode(&server, &"0".repeat(64), ok, &audio);
    assert_eq!(got, 401);
    add_user(&demo, "patrol", "officer", "officer password 1");
    let officer = demo.run(&[
        "token".as_ref(),
        "create".as_ref(),
        "--user".as_ref(),
        "patrol".as_ref(),
    ]);
    let officer = String::from_utf8(officer.stdout).unwrap();
    let (got, body) = post_episode(&server, officer.trim(), ok, &audio);
    assert_eq!(got, 403, "{body}");
    // PATCH and DELETE of what does not exist.
    let (got, _) = curl(
        &server,
        &[
            "-X",
            "DELETE",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &url(&server, "/admin/api/episodes/nope"),
        ],
    );
    assert_eq!(got, 404);
    let (got, body) = curl(
        &server,
        &[
            "-X",
            "PATCH",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"slug":"renamed"}"#,
            &url(&server, "/admin/api/episodes/defining-de-escalation"),
        ],
    );
    assert_eq!(
        (got, json(&body)["field"].clone()),
        (400, "slug".into()),
        "{body}"
    );
    assert_unchanged(&demo, &before, "after every refusal");
    // The feeds still serve the last good catalog.
    assert!(feed(&server, THEME).contains("Defining De-Escalation"));
}

#[test]
fn an_oversized_upload_gets_413_before_100_continue() {
    let demo = Demo::new();
    std::fs::write(
        demo.path("config.toml"),
        format!("public_url = \"{PUBLIC_URL}\"\nmax_upload_bytes = 100000\n"),
    )
    .unwrap();
    let token = admin_token(&demo, "chief");
    let mut config = demo.config();
    config.admin.max_upload_bytes = 100_000;
    let server = Server::start_with(config);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /admin/api/episodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000000\r\n\
         Expect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.contains("max_upload_bytes"), "{text}");
}

#[test]
fn edits_keep_comments_and_order_and_new_audio_gets_a_new_url() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let server = Server::start(&demo);
    let slug = "defining-de-escalation";
    let file = format!("episodes/{slug}/episode.toml");
    let before = demo.read(&file);
    let (status, body) = curl(
        &server,
        &[
            "-X",
            "PATCH",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"title":"Defining De-Escalation (2nd edition)"}"#,
            &url(&server, &format!("/admin/api/episodes/{slug}")),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let after = demo.read(&file);
    // Only the title line differs; every comment and key stays where it was.
    let diff: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        diff,
        [(
            "title = \"Defining De-Escalation\"",
            "title = \"Defining De-Escalation (2nd edition)\""
        )]
    );
    assert_eq!(before.lines().count(), after.lines().count());
    assert!(feed(&server, THEME).contains("Defining De-Escalation (2nd edition)"));

    // Replacing the audio: a new measured duration and a new URL; the old URL is gone.
    let old_url = path_of(json(&body)["audio_url"].as_str().unwrap());
    let audio = demo.path("new.mp3");
    tone_mp3(&audio, 4.0);
    let (status, body) = curl(
        &server,
        &[
            "-X",
            "PATCH",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-F",
            &format!("audio=@{}", audio.display()),
            &url(&server, &format!("/admin/api/episodes/{slug}")),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let ep = json(&body);
    assert_eq!(ep["duration_secs"], 4);
    let new_url = path_of(ep["audio_url"].as_str().unwrap());
    assert_ne!(new_url, old_url);
    assert_eq!(get(server.addr, &old_url, &[]).status, 404);
    assert_eq!(
        get(server.addr, &new_url, &[]).body,
        std::fs::read(&audio).unwrap()
    );
    // The comments survive the audio replacement too.
    assert!(demo
        .read(&file)
        .contains("# The source page gives the date only"));
}

#[test]
fn an_edit_based_on_a_stale_version_is_a_409() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let server = Server::start(&demo);
    let auth = format!("Authorization: Bearer {token}");
    let one = url(&server, "/admin/api/episodes/defining-de-escalation");
    let (_, body) = curl(&server, &["-H", &auth, &one]);
    let seen = json(&body)["version"].as_str().unwrap().to_owned();
    let patch = |version: &str, title: &str| {
        curl(
            &server,
            &[
                "-X",
                "PATCH",
                "-H",
                &auth,
                "-H",
                &format!("If-Match: \"{version}\""),
                "-H",
                "Content-Type: application/json",
                "-d",
                &format!("{{\"title\":\"{title}\"}}"),
                &one,
            ],
        )
    };
    // The first editor saves; the second, still holding the version both saw, gets 409.
    let (status, body) = patch(&seen, "First");
    assert_eq!(status, 200, "{body}");
    let file = demo.read("episodes/defining-de-escalation/episode.toml");
    let (status, body) = patch(&seen, "Second");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("changed by someone else"), "{body}");
    assert_eq!(
        demo.read("episodes/defining-de-escalation/episode.toml"),
        file
    );
    let fresh = json(&body_of(&server, &auth, &one))["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, seen);
    assert_eq!(patch(&fresh, "Second").0, 200);
}

fn body_of(server: &Server, auth: &str, url: &str) -> String {
    curl(server, &["-H", auth, url]).1
}

#[test]
fn a_file_sent_twice_is_a_400_naming_it() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 2.0);
    let server = Server::start(&demo);
    let before = catalog_bytes(&demo);
    let (status, body) = curl(
        &server,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-F",
            r#"metadata={"title":"Twice","published":"2016-07-05"}"#,
            "-F",
            &format!("audio=@{}", audio.display()),
            "-F",
            &format!("audio=@{}", audio.display()),
            &url(&server, "/admin/api/episodes"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["field"], "audio");
    assert_unchanged(&demo, &before, "audio twice");
}

#[test]
fn unpublish_hides_everywhere_and_republish_restores() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let server = Server::start(&demo);
    let slug = "defining-de-escalation";
    let auth = format!("Authorization: Bearer {token}");
    let (_, body) = curl(
        &server,
        &[
            "-H",
            &auth,
            &url(&server, &format!("/admin/api/episodes/{slug}")),
        ],
    );
    let media = path_of(json(&body)["audio_url"].as_str().unwrap());
    let guid = json(&body)["guid"].clone();
    let (status, body) = curl(
        &server,
        &[
            "-X",
            "DELETE",
            "-H",
            &auth,
            &url(&server, &format!("/admin/api/episodes/{slug}")),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "unpublished");
    assert!(!feed(&server, THEME).contains("Defining De-Escalation"));
    assert_eq!(get(server.addr, &media, &[]).status, 404);
    assert_eq!(
        get(server.addr, &format!("/episodes/{slug}"), &[]).status,
        404
    );
    // The folder and its GUID are kept, marked in the file.
    let toml = demo.read(&format!("episodes/{slug}/episode.toml"));
    assert!(toml.contains("unpublished = true"), "{toml}");
    assert!(toml.contains(guid.as_str().unwrap()));
    let (status, body) = curl(
        &server,
        &[
            "-X",
            "PATCH",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"unpublished":false}"#,
            &url(&server, &format!("/admin/api/episodes/{slug}")),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert!(feed(&server, THEME).contains("Defining De-Escalation"));
    assert_eq!(get(server.addr, &media, &[]).status, 200);
    assert!(!demo
        .read(&format!("episodes/{slug}/episode.toml"))
        .contains("unpublished"));
}

#[test]
fn a_scheduled_episode_appears_at_its_time_without_a_restart() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 2.0);
    let server = Server::start(&demo);
    // Whole seconds, as the metadata states it.
    let at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 3, 0).unwrap();
    let metadata = format!(
        r#"{{"title":"Scheduled Briefing","published":"{}","feeds":["{THEME}"]}}"#,
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let (status, body) = post_episode(&server, &token, &metadata, &audio);
    assert_eq!(status, 201, "{body}");
    let ep = json(&body);
    assert_eq!(ep["status"], "scheduled");
    let media = path_of(ep["audio_url"].as_str().unwrap());
    assert!(!feed(&server, THEME).contains("Scheduled Briefing"));
    assert_eq!(get(server.addr, &media, &[]).status, 404);
    assert_eq!(
        get(server.addr, "/episodes/scheduled-briefing", &[]).status,
        404
    );
    assert!(
        eventually(20, || feed(&server, THEME).contains("Scheduled Briefing")),
        "released at its time"
    );
    assert!(chrono::Utc::now() >= at, "not before its time");
    assert_eq!(get(server.addr, &media, &[]).status, 200);
}

#[test]
fn two_adds_of_one_slug_at_once_give_one_episode_and_one_409() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let a = demo.path("a.mp3");
    let b = demo.path("b.mp3");
    tone_mp3(&a, 2.0);
    tone_mp3(&b, 3.0);
    let server = Server::start(&demo);
    let metadata = r#"{"title":"Same Slug","published":"2016-07-05"}"#;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let runs: Vec<_> = [&a, &b]
            .into_iter()
            .map(|f| {
                let (server, token) = (&server, &token);
                s.spawn(move || post_episode(server, token, metadata, f).0)
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [201, 409], "{statuses:?}");
    let catalog = demo.load().unwrap();
    assert_eq!(
        catalog
            .episodes
            .iter()
            .filter(|e| e.slug == "same-slug")
            .count(),
        1
    );
}

#[test]
fn a_truncated_upload_leaves_the_catalog_as_it_was() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let server = Server::start(&demo);
    let before = catalog_bytes(&demo);
    let body_start = "--b\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n\
         {\"title\":\"Cut Off\",\"published\":\"2016-07-05\"}\r\n--b\r\n\
         Content-Disposition: form-data; name=\"audio\"; filename=\"a.mp3\"\r\n\r\n";
    let mut s = TcpStream::connect(server.addr).unwrap();
    write!(
        s,
        "POST /admin/api/episodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000000\r\n\r\n{body_start}"
    )
    .unwrap();
    s.write_all(&vec![0xffu8; 300_000]).unwrap();
    // The staging folder exists while the upload runs...
    assert!(eventually(10, || staging_dirs(&demo) == 1));
    drop(s);
    // ...and is gone once the client has cut it off.
    assert!(eventually(10, || staging_dirs(&demo) == 0));
    assert_unchanged(&demo, &before, "truncated upload");
    assert!(demo.load().is_ok());
}

fn staging_dirs(demo: &Demo) -> usize {
    std::fs::read_dir(demo.path("episodes"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
        .count()
}

#[test]
fn kill_9_during_an_upload_leaves_the_catalog_as_it_was_and_restart_cleans_up() {
    let demo = Demo::new();
    let token = admin_token(&demo, "chief");
    let before = catalog_bytes(&demo);
    let spawn = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("--config")
            .arg(demo.path("config.toml"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let line = common::first_line(&mut child);
        let addr = line
            .trim()
            .trim_start_matches("listening on http://")
            .to_owned();
        (child, addr)
    };
    let (mut child, addr) = spawn();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /admin/api/episodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000000\r\n\r\n\
         --b\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n\
         {{\"title\":\"Killed\",\"published\":\"2016-07-05\"}}\r\n--b\r\n\
         Content-Disposition: form-data; name=\"audio\"; filename=\"a.mp3\"\r\n\r\n"
    )
    .unwrap();
    s.write_all(&vec![0xffu8; 300_000]).unwrap();
    assert!(eventually(10, || staging_dirs(&demo) == 1));
    child.kill().unwrap(); // SIGKILL: no cleanup runs.
    child.wait().unwrap();
    assert_eq!(staging_dirs(&demo), 1, "the crash left its staging folder");
    assert!(demo.load().is_ok(), "the loader skips it");
    let (mut child, _addr) = spawn();
    assert_eq!(staging_dirs(&demo), 0, "removed at start");
    child.kill().unwrap();
    child.wait().unwrap();
    let log = common::stderr_of(&mut child);
    assert!(log.contains("removed a staging folder"), "{log}");
    assert_unchanged(&demo, &before, "after kill -9 and restart");
}

#[test]
fn cli_adds_an_episode_with_the_server_running_and_refuses_bad_input() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 5.0);
    let notes = demo.path("notes.md");
    std::fs::write(&notes, "Why calm matters.\n\nMore.").unwrap();
    let before = catalog_bytes(&demo);
    let s = |v: &str| std::ffi::OsString::from(v);
    let base = [
        s("episode"),
        s("add"),
        s("--title"),
        s("Calm Under Pressure"),
        s("--date"),
        s("2016-07-06"),
        s("--guest"),
        s("Mark Sawa|Major (retired)|Travis County Sheriff's Office"),
        s("--resource"),
        s("ICAT|https://www.policeforum.org/|PERF"),
        s("--feed"),
        s(THEME),
        s("--notes"),
        notes.clone().into_os_string(),
    ];
    // Bad input first: each refused with its message, nothing changed.
    let fake = demo.path("fake.mp3");
    std::fs::write(&fake, "<html></html>").unwrap();
    for (extra, message) in [
        (vec![s("--audio"), fake.into_os_string()], "field 'audio'"),
        (
            vec![
                s("--audio"),
                audio.clone().into_os_string(),
                s("--feed"),
                s("nope"),
            ],
            "names feed \"nope\"",
        ),
        (
            vec![
                s("--audio"),
                audio.clone().into_os_string(),
                s("--slug"),
                s("defining-de-escalation"),
            ],
            "already exists",
        ),
    ] {
        let args: Vec<std::ffi::OsString> = base.iter().cloned().chain(extra).collect();
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let out = demo.run(&refs);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(message), "{message}: {err}");
        assert!(err.contains("nothing was added"), "{err}");
        assert_unchanged(&demo, &before, message);
    }
    let bad_date = demo.run(&[
        "episode".as_ref(),
        "add".as_ref(),
        "--title".as_ref(),
        "x".as_ref(),
        "--published".as_ref(),
        "2016-02-30".as_ref(),
        "--audio".as_ref(),
        audio.as_os_str(),
    ]);
    assert!(String::from_utf8_lossy(&bad_date.stderr).contains("field 'published'"));
    assert_unchanged(&demo, &before, "bad date");

    let args: Vec<std::ffi::OsString> = base
        .iter()
        .cloned()
        .chain([s("--audio"), audio.into_os_string()])
        .collect();
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = demo.run(&refs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("added calm-under-pressure"), "{stdout}");
    assert!(
        stdout.contains(&format!("{PUBLIC_URL}/feeds/{THEME}.xml")),
        "{stdout}"
    );
    // The running server's watcher picks it up, with the measured duration.
    assert!(eventually(20, || {
        let xml = feed(&server, THEME);
        xml.contains("Calm Under Pressure") && xml.contains("<itunes:duration>5</itunes:duration>")
    }));
}

#[test]
fn user_commands_list_and_remove_and_refuse_weak_passwords() {
    let demo = Demo::new();
    add_user(&demo, "chief", "admin", "correct horse battery");
    add_user(&demo, "patrol", "officer", "officer password 1");
    let list = demo.run(&["user".as_ref(), "list".as_ref()]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "chief\tadmin\npatrol\tofficer\n"
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("--config")
        .arg(demo.path("config.toml"))
        .args(["user", "add", "weak", "--role", "admin", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "short").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    let rm = demo.run(&["user".as_ref(), "remove".as_ref(), "patrol".as_ref()]);
    assert!(rm.status.success());
    let list = demo.run(&["user".as_ref(), "list".as_ref()]);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "chief\tadmin\n");
    // The database holds no password in the clear.
    let db = std::fs::read(demo.path(".rollcall/rollcall.db")).unwrap();
    assert!(!db
        .windows(b"correct horse battery".len())
        .any(|w| w == b"correct horse battery"));
}
