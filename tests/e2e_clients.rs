//! End to end with real clients against the real binary: gPodder's `gpo` subscribes, downloads,
//! is interrupted mid-download and resumes with a Range request; ffmpeg seeks over HTTP.
//! Both need Debian packages that `bash .ci/run` installs (gpodder, ffmpeg).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, Demo, Running};

fn gpo(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("gpo")
        .args(args)
        .env("GPODDER_HOME", home)
        .env("GPODDER_DOWNLOAD_DIR", home.join("downloads"))
        .output()
        .expect("gpo must be installed: apt-get install gpodder (bash .ci/run does)")
}

fn find(dir: &Path, suffix: &str) -> Option<PathBuf> {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                return Some(p);
            }
        }
    }
    None
}

#[test]
fn gpodder_subscribes_downloads_and_resumes() {
    let demo = Demo::new();
    let big = demo.enlarge_audio("defining-de-escalation", 40);
    let small =
        std::fs::read(demo.path("episodes/behavioral-response-to-stress-and-fear/audio.mp3"))
            .unwrap();
    let server = Running::start(&demo);
    let feed = format!("{}/feeds/defusing-difficult-encounters.xml", server.base);
    let home = tempfile::tempdir().unwrap();

    let out = gpo(home.path(), &["subscribe", &feed]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(gpo(home.path(), &["episodes", "--guid"]).stdout).unwrap();
    assert!(
        listing.contains("e6be906a-3576-5e57-a8a6-6711becf9e96")
            && listing.contains("Defining De-Escalation"),
        "{listing}"
    );
    assert!(
        listing.contains("67b7b5e1-8d04-57aa-b995-afab2462d755"),
        "{listing}"
    );

    // Throttled download of the large episode, interrupted once part of it has arrived.
    gpo(home.path(), &["set", "limit.bandwidth.enabled", "True"]);
    gpo(home.path(), &["set", "limit.bandwidth.kbps", "1500"]);
    let mut dl = Command::new("gpo")
        .args(["download", &feed, "e6be906a-3576-5e57-a8a6-6711becf9e96"])
        .env("GPODDER_HOME", home.path())
        .env("GPODDER_DOWNLOAD_DIR", home.path().join("downloads"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial_seen = eventually(60, || {
        find(home.path(), ".partial").is_some_and(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() > 1_000_000)
                .unwrap_or(false)
        })
    });
    Command::new("kill")
        .args(["-INT", &dl.id().to_string()])
        .status()
        .unwrap();
    dl.wait().unwrap();
    assert!(partial_seen, "gpo never wrote a partial download");
    let partial =
        find(home.path(), ".partial").expect("the interrupted download left a .partial file");
    let partial_len = std::fs::metadata(&partial).unwrap().len() as usize;
    assert!(partial_len < big.len(), "the download was not interrupted");

    // Resume at full speed, then download everything else.
    gpo(home.path(), &["set", "limit.bandwidth.enabled", "False"]);
    let out = gpo(home.path(), &["resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gpo(home.path(), &["download"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = std::fs::read(find(home.path(), "defining-de-escalation.mp3").unwrap()).unwrap();
    assert!(
        got == big,
        "resumed download differs from the file ({} vs {} bytes)",
        got.len(),
        big.len()
    );
    let got_small =
        std::fs::read(find(home.path(), "behavioral-response-to-stress-and-fear.mp3").unwrap())
            .unwrap();
    assert!(got_small == small);

    let log = server.stop();
    let resumed = log
        .lines()
        .find(|l| {
            l.contains("/media/defining-de-escalation/")
                && l.contains("status=206")
                && l.contains("gPodder")
        })
        .unwrap_or_else(|| panic!("no 206 from gPodder's resume in the log:\n{log}"));
    assert!(
        resumed.contains(&format!("bytes={}", big.len() - partial_len)),
        "{resumed}"
    );
}

fn pcm(input: &str, seek: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args([
            "-v", "error", "-usetoc", "1", "-ss", seek, "-i", input, "-t", "2", "-f", "s16le",
            "-ac", "1", "-",
        ])
        .output()
        .expect("ffmpeg must be installed (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "ffmpeg on {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn ffmpeg_seeks_over_http_with_range_requests() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    let ep = catalog
        .episode("behavioral-response-to-stress-and-fear")
        .unwrap();
    let local = ep.audio.path.to_string_lossy().into_owned();
    let url_path = ep.audio.url_path.clone();
    let server = Running::start(&demo);
    let url = format!("{}{url_path}", server.base);

    let remote = pcm(&url, "20");
    let expected = pcm(&local, "20");
    assert!(!remote.is_empty());
    assert!(
        remote == expected,
        "seeking over HTTP decoded different audio than seeking the local file"
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = server.stop();
    let seek = log
        .lines()
        .filter(|l| l.contains(&url_path) && l.contains("Lavf"))
        .find(|l| l.contains("status=206") && !l.contains(&format!("length={}", ep.audio.size)))
        .unwrap_or_else(|| panic!("ffmpeg did not seek with a range request:\n{log}"));
    let bytes: u64 = seek
        .split("bytes=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        bytes < ep.audio.size,
        "the seek fetched the whole file: {seek}"
    );
}

/// The officer's journey with a real podcast app: the personal URL from `rollcall user token`,
/// subscribed and downloaded by gPodder; then the token is revoked and the next refresh and the
/// next media request both fail, while another officer's URL keeps working.
#[test]
fn gpodder_subscribes_with_a_personal_url_until_it_is_revoked() {
    let demo = Demo::new();
    let server = Running::start(&demo);
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("--config")
            .arg(demo.path("config.toml"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let feed_of = |out: &str| {
        out.lines()
            .find(|l| l.ends_with("/feeds/valor-members.xml"))
            .unwrap()
            .to_owned()
    };
    for name in ["patrol", "sergeant"] {
        run(
            &["user", "add", name, "--role", "officer", "--password-stdin"],
            Some("officer password 1"),
        );
    }
    let feed = feed_of(&run(&["user", "token", "patrol"], None));
    let other = feed_of(&run(&["user", "token", "sergeant"], None));
    let fetch = |url: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    // The server learns of tokens made by the CLI within about a second.
    assert!(eventually(10, || fetch(&feed) == "200"));

    let home = tempfile::tempdir().unwrap();
    let out = gpo(home.path(), &["subscribe", &feed]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(gpo(home.path(), &["episodes"]).stdout).unwrap();
    assert!(listing.contains("Roll-Call Briefing"), "{listing}");
    let out = gpo(home.path(), &["download"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let briefing = "episodes/roll-call-briefing-defusing-difficult-encounters/audio.mp3";
    let got = find(
        home.path(),
        "roll-call-briefing-defusing-difficult-encounters.mp3",
    )
    .expect("gPodder downloaded the members-only briefing");
    assert!(std::fs::read(got).unwrap() == std::fs::read(demo.path(briefing)).unwrap());
    let xml = Command::new("curl")
        .args(["-s", &feed])
        .output()
        .unwrap()
        .stdout;
    let xml = String::from_utf8(xml).unwrap();
    let at = xml.find("<enclosure url=\"").unwrap() + 16;
    let media = xml[at..at + xml[at..].find('"').unwrap()].to_owned();

    // Revoke: the admin rotates the token; the old URLs stop working.
    run(&["user", "token", "patrol", "--rotate"], None);
    assert!(eventually(10, || fetch(&feed) == "404"));
    assert_eq!(fetch(&media), "404");
    let before = String::from_utf8(gpo(home.path(), &["episodes"]).stdout).unwrap();
    let out = gpo(home.path(), &["update"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("[FAIL]"),
        "gPodder reports the refresh failed: {said}"
    );
    let after = String::from_utf8(gpo(home.path(), &["episodes"]).stdout).unwrap();
    assert_eq!(before, after, "a failed refresh changes nothing in the app");
    assert_eq!(fetch(&other), "200", "another officer is unaffected");
    let log = server.stop();
    assert!(log.contains("gPodder"), "{log}");
}
