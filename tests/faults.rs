//! Fault injection against the real binary and real file systems: `kill -9` during uploads and
//! adds, a full disk during an upload (a small tmpfs the test mounts), the catalog folder turning
//! read-only, the SQLite file locked by another process, damaged, or on a full disk. Each time the
//! server keeps serving what it can and says what is wrong; after a restart nothing that was
//! committed is lost and nothing half-written is visible.
//!
//! Mounting needs root (CAP_SYS_ADMIN), as `bash .ci/run` has; the tests say so if it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{eventually, Demo, Running};

/// A tmpfs mounted at `dir` (created empty), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Moves the demo's `episodes/` onto a tmpfs of `size`.
fn episodes_on_tmpfs(demo: &Demo, size: &str) -> Tmpfs {
    let episodes = demo.path("episodes");
    let aside = demo.path("episodes.orig");
    std::fs::rename(&episodes, &aside).unwrap();
    let fs = Tmpfs::mount(&episodes, size);
    common::copy_dir(&aside, &episodes);
    fs
}

/// An admin's API token, made with the real CLI.
fn admin_token(demo: &Demo) -> String {
    demo.add_user("chief", "admin", "chief password 1");
    demo.api_token("chief")
}

/// An MP3 of about `secs` seconds at 128 kbit/s: 16 kB a second.
fn mp3(path: &Path, secs: u32) {
    common::tone_mp3_at(path, f64::from(secs), 128);
}

/// `curl` adding an episode through the API; `rate` limits the upload speed.
fn add_episode(base: &str, token: &str, title: &str, audio: &Path, rate: Option<&str>) -> Command {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg("-F")
        .arg(format!(
            "metadata={{\"title\":\"{title}\",\"published\":\"2016-07-01\",\"feeds\":[\"defusing-difficult-encounters\"]}}"
        ))
        .arg("-F")
        .arg(format!("audio=@{}", audio.display()));
    if let Some(r) = rate {
        c.args(["--limit-rate", r]);
    }
    c.arg(format!("{base}/admin/api/episodes"));
    c
}

/// (body, status) of a finished curl from [`add_episode`].
fn outcome(out: &std::process::Output) -> (String, u16) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (body.to_owned(), code.trim().parse().unwrap_or(0))
}

/// Every entry of `episodes/`, names only, sorted: dot-folders included.
fn entries(demo: &Demo) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(demo.path("episodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn feed_text(base: &str) -> String {
    let path = "/feeds/defusing-difficult-encounters.xml";
    let url = format!("{base}{path}");
    let out = Command::new("curl").args(["-s", &url]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_ok(demo: &Demo) {
    let out = demo.run(&["check".as_ref()]);
    assert!(
        out.status.success(),
        "the catalog must check clean after the crash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kill_9_during_uploads_and_adds_loses_nothing_committed_and_shows_nothing_half_written() {
    let demo = Demo::new();
    let token = admin_token(&demo);
    let audio = demo.path("upload.mp3");
    mp3(&audio, 90); // about 1.4 MB
    let mut committed: Vec<String> = Vec::new();
    let mut lost_in_flight = 0;
    // Kill at increasing points: early in the upload, late in it, and around the commit.
    let delays_ms = [
        150, 400, 700, 1000, 1300, 1400, 1450, 1500, 1550, 1650, 1800, 2600,
    ];
    for (i, delay) in delays_ms.iter().enumerate() {
        let server = Running::start(&demo);
        let title = format!("Crash test {i}");
        let curl = add_episode(&server.base, &token, &title, &audio, Some("1000k"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        drop(server); // SIGKILL, then wait
        let out = curl.wait_with_output().unwrap();
        let (body, status) = outcome(&out);
        if status == 201 {
            committed.push(title.clone());
        } else {
            assert!(
                status == 0 || body.is_empty() || status >= 500,
                "cut-off upload answered {status}: {body}"
            );
            lost_in_flight += 1;
        }
        // Restart: the crash left no staging folder behind, the catalog checks, and every
        // episode whose add was acknowledged is in the feed with all its bytes.
        let server = Running::start(&demo);
        let left: Vec<String> = entries(&demo)
            .into_iter()
            .filter(|e| e.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "staging left after restart: {left:?}");
        check_ok(&demo);
        let feed = feed_text(&server.base);
        for t in &committed {
            assert!(
                feed.contains(&format!("<title>{t}</title>")),
                "{t} was lost"
            );
        }
        let catalog = demo.load().unwrap();
        for ep in &catalog.episodes {
            if ep.title.starts_with("Crash test") {
                assert_eq!(
                    ep.audio.size,
                    std::fs::metadata(&audio).unwrap().len(),
                    "{}: its audio is whole",
                    ep.title
                );
            }
        }
        drop(server);
    }
    // Both outcomes happened: some adds were cut off, and acknowledged ones survived.
    assert!(lost_in_flight > 0, "no kill landed during an upload");
    assert!(!committed.is_empty(), "no add finished before its kill");
    eprintln!(
        "{} adds acknowledged and kept, {lost_in_flight} cut off",
        committed.len()
    );
}

#[test]
fn a_full_disk_during_an_upload_is_refused_by_name_and_changes_nothing() {
    let demo = Demo::new();
    let token = admin_token(&demo);
    let _fs = episodes_on_tmpfs(&demo, "4m");
    let audio = demo.path("big.mp3");
    mp3(&audio, 400); // about 6.4 MB: more than the disk has left
    let before = entries(&demo);
    let server = Running::start(&demo);
    let feed_before = feed_text(&server.base);
    let out = add_episode(&server.base, &token, "Too big for the disk", &audio, None)
        .output()
        .unwrap();
    let (body, status) = outcome(&out);
    assert_eq!(status, 507, "{body}");
    assert!(body.contains("No space left on device"), "{body}");
    assert!(
        body.contains("the disk holding episodes_dir is full; nothing was changed"),
        "{body}"
    );
    // The server keeps serving, and the partial upload is gone.
    assert_eq!(feed_text(&server.base), feed_before);
    assert_eq!(entries(&demo), before);
    // Once there is room, the same add works.
    let small = demo.path("small.mp3");
    mp3(&small, 20);
    let out = add_episode(&server.base, &token, "Fits", &small, None)
        .output()
        .unwrap();
    assert_eq!(outcome(&out).1, 201, "{}", outcome(&out).0);
    assert!(feed_text(&server.base).contains("<title>Fits</title>"));
}

#[test]
fn a_read_only_catalog_keeps_serving_and_refuses_writes_by_name() {
    let demo = Demo::new();
    let token = admin_token(&demo);
    let fs = episodes_on_tmpfs(&demo, "16m");
    let server = Running::start(&demo);
    let feed = feed_text(&server.base);
    fs.remount("ro");
    let audio = demo.path("a.mp3");
    mp3(&audio, 10);
    let out = add_episode(&server.base, &token, "Read only", &audio, None)
        .output()
        .unwrap();
    let (body, status) = outcome(&out);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("episodes_dir cannot be written"), "{body}");
    // Everything already there still serves, media included.
    assert_eq!(feed_text(&server.base), feed);
    let media = feed
        .split("<enclosure url=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &media])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    fs.remount("rw");
    let out = add_episode(&server.base, &token, "Writable again", &audio, None)
        .output()
        .unwrap();
    assert_eq!(outcome(&out).1, 201, "{}", outcome(&out).0);
}

/// `python3` holding an exclusive lock on the database until its stdin closes.
fn lock_database(db: &Path) -> std::process::Child {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n\
             c.execute('COMMIT')\n",
        )
        .arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    assert_eq!(line.trim(), "locked");
    child
}

fn downloads(demo: &Demo) -> u64 {
    let out = demo.run(&["stats".as_ref(), "--json".as_ref()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["downloads"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

fn ready(base: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", &format!("{base}/readyz")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// Downloads the feed's first enclosure whole, as a podcast app would.
fn download_audio(feed: &str) {
    let media = feed
        .split("<enclosure url=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-A",
            "AntennaPod/3.4.0",
            "-w",
            "%{http_code}",
            &media,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn a_locked_database_delays_measurement_without_losing_it() {
    let demo = Demo::new();
    let server = Running::start(&demo);
    let feed = feed_text(&server.base);
    let db = demo.path(".rollcall/rollcall.db");
    let mut lock = lock_database(&db);
    // Listeners keep being served while the database is locked.
    download_audio(&feed);
    assert!(
        eventually(30, || ready(&server.base).0 == 503),
        "readyz reports the failing writes"
    );
    let (_, why) = ready(&server.base);
    assert!(
        why.contains("measurement: the last write of events to the database failed"),
        "{why}"
    );
    assert!(feed_text(&server.base).contains("<enclosure"));
    drop(lock.stdin.take());
    lock.wait().unwrap();
    assert!(
        eventually(30, || ready(&server.base).0 == 200),
        "ready again once unlocked"
    );
    drop(server.stop());
    assert_eq!(
        downloads(&demo),
        1,
        "the download made while locked was kept"
    );
}

#[test]
fn a_full_disk_under_the_database_is_reported_and_recovers() {
    let demo = Demo::new();
    let state = demo.path("state");
    let fs = Tmpfs::mount(&state, "2m");
    let server = Running::start_with(&demo, &format!("state_dir = \"{}\"\n", state.display()));
    let feed = feed_text(&server.base);
    // Fill the disk.
    let filler = state.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "count=100"])
        .arg(format!("of={}", filler.display()))
        .output();
    for _ in 0..3 {
        download_audio(&feed);
    }
    assert!(
        eventually(30, || ready(&server.base).0 == 503),
        "readyz reports the full disk"
    );
    // Serving goes on.
    assert!(feed_text(&server.base).contains("<enclosure"));
    std::fs::remove_file(&filler).unwrap();
    assert!(
        eventually(30, || ready(&server.base).0 == 200),
        "ready again with space"
    );
    drop(server.stop());
    assert_eq!(
        downloads(&demo),
        1,
        "the downloads made while full were kept (one listener)"
    );
    drop(fs);
}

#[test]
fn a_damaged_database_stops_the_start_with_the_file_named_and_is_left_as_it_was() {
    let demo = Demo::new();
    demo.add_user("chief", "admin", "chief password 1");
    let db = demo.path(".rollcall/rollcall.db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[4096..8192] {
        *b = 0xde;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = demo.run(&[
        "serve".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}: the database is damaged (", db.display())),
        "{err}"
    );
    assert!(err.contains("restore the file from a backup"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the damaged file is not touched"
    );
    // The CLI says the same.
    let out = demo.run(&["user".as_ref(), "list".as_ref()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the database is damaged"));
}
