//! End to end: real downloads through the real server (curl and gPodder) appear in
//! `rollcall stats --json` with the right counts, while the server runs and after it stops
//! (graceful shutdown stores everything), and no client address is ever stored.

mod common;

use std::process::Command;

use common::{eventually, Demo, Running};
use serde_json::Value;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed (bash .ci/run installs it)");
    String::from_utf8(out.stdout).unwrap()
}

fn stats(demo: &Demo, args: &[&str]) -> Value {
    let mut all = vec!["stats", "--json"];
    all.extend_from_slice(args);
    let args: Vec<&std::ffi::OsStr> = all.iter().map(std::ffi::OsStr::new).collect();
    let out = demo.run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn downloads_of(report: &Value, section: &str, key: &str, name: &str) -> u64 {
    report[section]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == name)
        .map_or(0, |r| r["downloads"].as_u64().unwrap())
}

fn requests_of(report: &Value, verdict: &str) -> u64 {
    report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["counted_as"] == verdict)
        .map_or(0, |r| r["requests"].as_u64().unwrap())
}

#[test]
fn real_downloads_appear_in_rollcall_stats_with_the_right_counts() {
    let demo = Demo::new();
    // About two minutes of audio, so one minute is a real threshold, not the whole file.
    let big = demo.enlarge_audio("defining-de-escalation", 4);
    let server = Running::start(&demo);
    let base = server.base.clone();
    let feed = fetch_text(&format!("{base}/feeds/spotlight-on-safety.xml"));
    let url = |slug: &str| {
        let at = feed
            .find(&format!("/media/{slug}/"))
            .unwrap_or_else(|| panic!("{slug} in the feed"));
        let start = feed[..at].rfind('"').unwrap() + 1;
        let end = at + feed[at..].find('"').unwrap();
        feed[start..end].to_owned()
    };
    let long = url("defining-de-escalation");
    let short = url("behavioral-response-to-stress-and-fear");

    // A whole download, then the same again: one download, one duplicate.
    let ua = |name: &str| format!("User-Agent: {name}");
    for _ in 0..2 {
        assert_eq!(curl(&["-H", &ua("AntennaPod/3.4.0"), &long]), "200");
    }
    // A seeking app: two ranges, the first below the minute, together past it.
    let overcast = ua("Overcast/3.0 (+http://overcast.fm/; iOS podcast app)");
    assert_eq!(curl(&["-H", &overcast, "-r", "0-99999", &long]), "206");
    assert_eq!(curl(&["-H", &overcast, "-r", "0-99999", &long]), "206");
    let most = (big.len() * 3 / 4).to_string();
    assert_eq!(
        curl(&["-H", &overcast, "-r", &format!("100000-{most}"), &long]),
        "206"
    );
    // A probe, a HEAD request and a bot: none count.
    assert_eq!(
        curl(&["-H", &ua("Pocket Casts"), "-r", "0-1", &long]),
        "206"
    );
    assert_eq!(curl(&["-H", &ua("Pocket Casts"), "-I", &long]), "200");
    assert_eq!(
        curl(&[
            "-H",
            &ua("Googlebot/2.1 (+http://www.google.com/bot.html)"),
            &long
        ]),
        "200"
    );
    // A file shorter than a minute, cut short by one byte: not a download.
    assert_eq!(
        curl(&["-H", &ua("AntennaPod/3.4.0"), "-r", "0-1000", &short]),
        "206"
    );

    // While the server runs, events reach the store within about a second.
    assert!(
        eventually(20, || {
            let r = stats(&demo, &[]);
            r["downloads"] == 2 && requests_of(&r, "bot") == 1
        }),
        "{}",
        stats(&demo, &[])
    );

    // An officer listens with gPodder through a personal URL.
    demo.add_user("patrol", "officer", "officer password 1");
    let token = demo.run(&["user".as_ref(), "token".as_ref(), "patrol".as_ref()]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let personal = String::from_utf8(token.stdout)
        .unwrap()
        .lines()
        .find(|l| l.ends_with("/feeds/valor-members.xml"))
        .unwrap()
        .to_owned();
    assert!(eventually(10, || curl(&[&personal]) == "200"));
    let home = tempfile::tempdir().unwrap();
    for args in [&["subscribe", personal.as_str()][..], &["download"]] {
        let out = Command::new("gpo")
            .args(args)
            .env("GPODDER_HOME", home.path())
            .env("GPODDER_DOWNLOAD_DIR", home.path().join("downloads"))
            .output()
            .expect("gpo must be installed: apt-get install gpodder (bash .ci/run does)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A graceful stop stores everything that was served.
    let log = server.stop();
    assert!(!log.contains("cannot store measurement"), "{log}");
    let r = stats(&demo, &[]);
    let briefing = "roll-call-briefing-defusing-difficult-encounters";
    // What gPodder downloaded through the officer's URL, per episode.
    let by_patrol = |slug: &str| -> u64 {
        r["officers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["officer"] == "patrol" && o["episode"] == slug)
            .map(|o| o["downloads"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(by_patrol(briefing), 1, "{r}");
    let long_slug = "defining-de-escalation";
    let short_slug = "behavioral-response-to-stress-and-fear";
    assert_eq!(
        downloads_of(&r, "episodes", "slug", long_slug),
        2 + by_patrol(long_slug),
        "{r}"
    );
    // The short file cut short by one byte is not a download; only gPodder's may be.
    assert_eq!(
        downloads_of(&r, "episodes", "slug", short_slug),
        by_patrol(short_slug),
        "{r}"
    );
    assert_eq!(downloads_of(&r, "apps", "name", "AntennaPod"), 1, "{r}");
    assert_eq!(downloads_of(&r, "apps", "name", "Overcast"), 1, "{r}");
    let gpodder = by_patrol(briefing) + by_patrol(long_slug) + by_patrol(short_slug);
    assert_eq!(downloads_of(&r, "apps", "name", "gPodder"), gpodder, "{r}");
    assert_eq!(r["downloads"].as_u64().unwrap(), 2 + gpodder, "{r}");
    let row = r["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["slug"] == briefing)
        .unwrap();
    assert_eq!(
        row["officers"], 1,
        "members-only episodes count officers: {r}"
    );
    for (verdict, n) in [("duplicate", 1), ("probe", 1), ("head", 1), ("bot", 1)] {
        assert_eq!(requests_of(&r, verdict), n, "{verdict}: {r}");
    }
    assert!(requests_of(&r, "partial") >= 3, "{r}");
    // The members feed carries every episode, so it counts every download.
    assert_eq!(
        downloads_of(&r, "feeds", "id", "valor-members"),
        2 + gpodder,
        "{r}"
    );

    // Filters.
    let one = stats(&demo, &["--episode", long_slug]);
    assert_eq!(one["downloads"].as_u64().unwrap(), 2 + by_patrol(long_slug));
    let later = stats(&demo, &["--since", "2999-01-01"]);
    assert_eq!(later["downloads"], 0);
    let bad = demo.run(&["stats".as_ref(), "--since".as_ref(), "yesterday".as_ref()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since \"yesterday\" is not a date"));

    // No client address is stored anywhere in the database.
    for file in ["rollcall.db", "rollcall.db-wal"] {
        if let Ok(bytes) = std::fs::read(demo.path(&format!(".rollcall/{file}"))) {
            assert!(
                !bytes.windows(9).any(|w| w == b"127.0.0.1"),
                "{file} holds a raw client address"
            );
        }
    }
}

/// A GET's body, with curl.
fn fetch_text(url: &str) -> String {
    let out = Command::new("curl").args(["-s", url]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}
