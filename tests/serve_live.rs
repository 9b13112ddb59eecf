//! Live catalog: edits apply without a restart, invalid edits keep the last good catalog, replaced
//! audio gets a new URL while the old one never serves the new bytes, and a stream in flight keeps
//! the file it started with.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{eventually, get, path_of, Demo, Server};

const FEED: &str = "/feeds/defusing-difficult-encounters.xml";
const EP: &str = "episodes/defining-de-escalation/episode.toml";

fn feed_text(server: &Server) -> String {
    String::from_utf8(get(server.addr, FEED, &[]).body).unwrap()
}

fn enclosure_paths(xml: &str) -> Vec<String> {
    let ch = rss::Channel::read_from(xml.as_bytes()).unwrap();
    ch.items
        .iter()
        .map(|i| path_of(&i.enclosure.as_ref().unwrap().url))
        .collect()
}

/// A download of an enlarged episode audio, started and 64 KiB in.
struct Download {
    server: Server,
    /// The whole file as it was when the download started.
    big: Vec<u8>,
    audio: std::path::PathBuf,
    stream: TcpStream,
    /// What has been read so far: the head and the start of the body.
    got: Vec<u8>,
}

fn start_large_download(demo: &Demo) -> Download {
    let big = demo.enlarge_audio("defining-de-escalation", 120);
    let audio = demo.path("episodes/defining-de-escalation/audio.mp3");
    let server = Server::start(demo);
    let path = enclosure_paths(&feed_text(&server))[1].clone();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = vec![0u8; 64 * 1024];
    stream.read_exact(&mut got).unwrap();
    Download {
        server,
        big,
        audio,
        stream,
        got,
    }
}

/// Replaces a file the way editors and deploy tools do: write aside, then rename over it.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn edits_apply_and_invalid_edits_keep_the_last_good_catalog() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let before = get(server.addr, FEED, &[]);
    assert!(feed_text(&server).contains("<title>Defining De-Escalation</title>"));

    demo.edit(
        EP,
        "title = \"Defining De-Escalation\"",
        "title = \"Defining De-Escalation (revised)\"",
    );
    assert!(
        eventually(5, || feed_text(&server)
            .contains("<title>Defining De-Escalation (revised)</title>")),
        "the edit did not reach the feed"
    );
    let after = get(server.addr, FEED, &[]);
    assert_ne!(
        after.header("etag"),
        before.header("etag"),
        "a changed feed gets a new ETag"
    );
    assert_eq!(
        get(
            server.addr,
            FEED,
            &[("If-None-Match", before.header("etag").unwrap())]
        )
        .status,
        200
    );

    // Break the catalog: the server keeps serving the last good one.
    demo.edit(
        EP,
        "published = 2016-06-30T09:00:00-04:00",
        "published = \"yesterday\"",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let still = get(server.addr, FEED, &[]);
    assert_eq!(still.status, 200);
    assert_eq!(
        still.body, after.body,
        "an invalid edit must not change what is served"
    );

    // Fix it again: the next good edit applies.
    demo.edit(
        EP,
        "published = \"yesterday\"",
        "published = 2016-06-30T09:00:00-04:00",
    );
    demo.edit(EP, "(revised)", "(second revision)");
    assert!(eventually(5, || feed_text(&server).contains("(second revision)")));

    // A new episode appears in the feed.
    common::copy_dir(
        &demo.path("episodes/defining-de-escalation"),
        &demo.path("episodes/new-briefing"),
    );
    let toml = demo
        .read("episodes/new-briefing/episode.toml")
        .replace(
            "e6be906a-3576-5e57-a8a6-6711becf9e96",
            "0a8e2f5c-0000-5000-8000-000000000001",
        )
        .replace("2016-06-30T09:00:00-04:00", "2016-07-15T09:00:00-04:00");
    demo.write("episodes/new-briefing/episode.toml", &toml);
    assert!(eventually(5, || enclosure_paths(&feed_text(&server)).len() == 3));
    assert!(
        enclosure_paths(&feed_text(&server))[0].starts_with("/media/new-briefing/"),
        "newest first"
    );
}

#[test]
fn replaced_audio_gets_a_new_url_and_the_old_url_never_serves_new_bytes() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let old_xml = feed_text(&server);
    let old_path = enclosure_paths(&old_xml)[1].clone();
    assert!(old_path.starts_with("/media/defining-de-escalation/"));
    let audio = demo.path("episodes/defining-de-escalation/audio.mp3");
    let old_bytes = std::fs::read(&audio).unwrap();
    let old = get(server.addr, &old_path, &[]);
    assert_eq!(old.body, old_bytes);
    let old_etag = old.header("etag").unwrap().to_owned();
    // A client downloaded the first half.
    let half = old_bytes.len() / 2;

    // Replace the audio with different, valid audio.
    let new_bytes =
        std::fs::read(demo.path("episodes/behavioral-response-to-stress-and-fear/audio.mp3"))
            .unwrap();
    assert_ne!(new_bytes, old_bytes);
    replace(&audio, &new_bytes);

    assert!(
        eventually(5, || enclosure_paths(&feed_text(&server))[1] != old_path),
        "enclosure URL must change"
    );
    let new_path = enclosure_paths(&feed_text(&server))[1].clone();
    let new_xml = feed_text(&server);
    assert!(
        new_xml.contains(&format!("length=\"{}\"", new_bytes.len())),
        "enclosure length follows the new file"
    );

    // The old URL never serves the new bytes, with or without a range.
    for headers in [vec![], vec![("Range", format!("bytes={half}-"))]] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(server.addr, &old_path, &h);
        assert_eq!(r.status, 404, "old URL after replacement");
        assert!(!r
            .body
            .windows(64)
            .any(|w| new_bytes.windows(64).next() == Some(w)));
    }
    // Resuming on the new URL with the old validator gets the whole new file, never a stitched mix.
    let resumed = get(
        server.addr,
        &new_path,
        &[
            ("Range", &format!("bytes={half}-")),
            ("If-Range", &old_etag),
        ],
    );
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.body, new_bytes);
    assert_ne!(resumed.header("etag").unwrap(), old_etag);
}

#[test]
fn a_stream_in_flight_keeps_its_file() {
    let demo = Demo::new();
    let Download {
        server: _server,
        big,
        audio,
        stream: mut s,
        got: mut first,
    } = start_large_download(&demo);
    // Replace the file mid-stream; the open handle keeps the old inode.
    let other =
        std::fs::read(demo.path("episodes/behavioral-response-to-stress-and-fear/audio.mp3"))
            .unwrap();
    replace(&audio, &other);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    first.extend_from_slice(&rest);
    let resp = common::parse_response(&first, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), big.len());
    assert!(resp.body == big, "the stream switched files mid-response");
}

/// Media goes out with sendfile from the open file. A file cut short in place (same inode) while a
/// client downloads it ends that response early, so the client sees an incomplete download, and
/// the server keeps serving: no crash, as a memory-mapped file would give. (Bytes past the cut that
/// were already queued in socket buffers refer to the file's pages and may arrive zeroed, as with
/// any sendfile server; replacing a file by rename, as docs/catalog.md says, never does this.)
#[test]
fn a_file_truncated_mid_stream_ends_the_response_and_the_server_survives() {
    let demo = Demo::new();
    let Download {
        server,
        big,
        audio,
        stream: mut s,
        mut got,
    } = start_large_download(&demo);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&audio)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest); // ends with EOF or a reset; either is fine
    got.extend_from_slice(&rest);
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &got[head_end..];
    assert!(
        body.len() < big.len(),
        "the response claimed {} bytes the file no longer has",
        big.len()
    );
    let kept = body.len().min(100_000);
    assert!(
        body[..kept] == big[..kept],
        "the bytes before the cut are the file's own"
    );
    assert_eq!(get(server.addr, "/healthz", &[]).status, 200);
}

/// A reload re-reads only the episode folders the watcher saw change, but an episode whose
/// `episode.toml` is a symlink to a file elsewhere is always checked: an edit to the link's target
/// raises no event in the episode's own folder.
#[test]
fn an_edit_through_a_symlinked_episode_file_is_seen() {
    let demo = Demo::new();
    let shared = demo.path("episodes/.shared");
    std::fs::create_dir_all(&shared).unwrap();
    let real = shared.join("defining.toml");
    std::fs::rename(demo.path(EP), &real).unwrap();
    std::os::unix::fs::symlink(&real, demo.path(EP)).unwrap();
    let server = Server::start(&demo);
    assert!(feed_text(&server).contains("<title>Defining De-Escalation</title>"));
    // An ordinary edit first, so the watcher is running and its first full check is done.
    demo.edit(
        "episodes/behavioral-response-to-stress-and-fear/episode.toml",
        "title = \"Behavioral Response to Stress and Fear\"",
        "title = \"Behavioral Response, Edited\"",
    );
    assert!(eventually(10, || feed_text(&server)
        .contains("<title>Behavioral Response, Edited</title>")));
    let text = std::fs::read_to_string(&real).unwrap().replace(
        "title = \"Defining De-Escalation\"",
        "title = \"Defining De-Escalation, Revised\"",
    );
    std::fs::write(&real, text).unwrap();
    assert!(
        eventually(10, || feed_text(&server)
            .contains("<title>Defining De-Escalation, Revised</title>")),
        "the edit behind the symlink never reached the feed"
    );
}

/// Two writers edit the catalog at once, each through `Live::apply`; every write is live when its
/// call returns, and no reload ever stores an older catalog over a newer one (which a reload
/// that read the files before another writer's edit, but stored after it, would do).
#[test]
fn concurrent_writes_each_see_their_own_edit_when_they_return() {
    let demo = Demo::new();
    let source = rollcall::catalog::Source::from(&demo.config());
    let live = rollcall::snapshot::Live::load(source).unwrap();
    let slugs: [&'static str; 2] = [
        "behavioral-response-to-stress-and-fear",
        "defining-de-escalation",
    ];
    let writers: Vec<_> = slugs
        .iter()
        .enumerate()
        .map(|(w, &slug)| {
            let live = std::sync::Arc::clone(&live);
            let file = demo.path(&format!("episodes/{slug}/episode.toml"));
            std::thread::spawn(move || {
                let original = std::fs::read_to_string(&file).unwrap();
                let first_title = original
                    .lines()
                    .find(|l| l.starts_with("title = "))
                    .unwrap()
                    .to_owned();
                for i in 0..15 {
                    let title = format!("Edit {w}-{i}");
                    let text = original.replacen(&first_title, &format!("title = \"{title}\""), 1);
                    live.apply(|| std::fs::write(&file, &text)).unwrap();
                    let snap = live.snapshot();
                    assert_eq!(
                        snap.catalog.episode(slug).unwrap().title,
                        title,
                        "writer {w}: its own edit {i} is not live when apply returned"
                    );
                }
            })
        })
        .collect();
    // Meanwhile every snapshot must be at least as new as the one before, for both episodes.
    let edit = |title: &str| -> i64 {
        title
            .strip_prefix("Edit ")
            .and_then(|t| t.split_once('-'))
            .map_or(-1, |(_, i)| i.parse().unwrap())
    };
    let mut seen = [-1i64; 2];
    while writers.iter().any(|w| !w.is_finished()) {
        let snap = live.snapshot();
        for (k, slug) in slugs.iter().enumerate() {
            let now = edit(&snap.catalog.episode(slug).unwrap().title);
            assert!(
                now >= seen[k],
                "{slug}: edit {now} is live after edit {} was: an older catalog was stored over a newer one",
                seen[k]
            );
            seen[k] = now;
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    let snap = live.snapshot();
    assert_eq!(snap.catalog.episode(slugs[0]).unwrap().title, "Edit 0-14");
    assert_eq!(snap.catalog.episode(slugs[1]).unwrap().title, "Edit 1-14");
}

/// A copy into `episodes/` that keeps writing (files arriving one after another) does not
/// postpone reloads: an edit made meanwhile goes live while the writes are still going on.
#[test]
fn a_long_copy_does_not_postpone_reloads() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scratch = demo.path("episodes/.incoming-copy.part");
    let writer = {
        let (writing, stop) = (writing.clone(), stop.clone());
        std::thread::spawn(move || {
            // A write every 50 ms, far more often than the watcher's 200 ms of quiet, for up to
            // 30 s (the test stops it as soon as it has seen what it waits for).
            let mut f = std::fs::File::create(&scratch).unwrap();
            for _ in 0..600 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                f.write_all(&[0u8; 4096]).unwrap();
                f.sync_data().unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
            writing.store(false, std::sync::atomic::Ordering::SeqCst);
            let _ = std::fs::remove_file(&scratch);
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    demo.edit(
        EP,
        "title = \"Defining De-Escalation\"",
        "title = \"Defining De-Escalation, Revised\"",
    );
    let mut seen_while_writing = false;
    let live = eventually(25, || {
        let has = feed_text(&server).contains("Defining De-Escalation, Revised");
        if has {
            seen_while_writing = writing.load(std::sync::atomic::Ordering::SeqCst);
        }
        has
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    assert!(live, "the edit went live");
    assert!(
        seen_while_writing,
        "it went live while the copy was still writing"
    );
}

/// Every feed a snapshot serves, as (id, identity bytes, stitched gzip), and every members
/// feed's template, as its content hash and number of holes: what a start must produce whether or not it reused
/// saved items.
fn served_feeds(live: &rollcall::snapshot::Live) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let snap = live.snapshot();
    let mut out: Vec<_> = snap
        .feeds
        .iter()
        .map(|(id, f)| {
            let e = &f.encoded;
            let gzip = e.stitched().expect("a feed's gzip exists from the start");
            (id.clone(), e.identity.to_bytes().to_vec(), gzip.to_vec())
        })
        .chain(snap.personal.iter().map(|(id, t)| {
            (
                format!("personal {id}"),
                t.hash.clone().into_bytes(),
                t.holes().to_le_bytes().to_vec(),
            )
        }))
        .collect();
    out.sort();
    out
}

/// A start saves the episodes it parsed (`episodes.cache`) and the feed items it rendered
/// (`items.cache`) in state_dir, and the next start takes them instead of reading, parsing and
/// rendering again, and serves the same bytes. An episode edited while the server was down is
/// read and rendered again; a damaged file is ignored, the work is done, and the file is
/// written again. Each start is checked against a start that saves nothing.
#[test]
fn a_restart_reuses_saved_episodes_and_feed_items_and_redoes_only_what_changed() {
    use rollcall::catalog::codec::Reuse;
    use rollcall::snapshot::{Live, StartReuse};
    let demo = Demo::new();
    let source = rollcall::catalog::Source::from(&demo.config());
    let items_file = source.items_cache.clone().expect("the server saves items");
    let episodes_file = source
        .episodes_cache
        .clone()
        .expect("the server saves episodes");
    let fresh = |source: &rollcall::catalog::Source| {
        let unsaved = rollcall::catalog::Source {
            items_cache: None,
            episodes_cache: None,
            ..source.clone()
        };
        served_feeds(&Live::load(unsaved).unwrap())
    };
    let reuse = |saved, taken, made| Reuse { saved, taken, made };
    let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_default();

    let first = Live::load(source.clone()).unwrap();
    let (m, n) = (
        first.start_reuse().episodes.made,
        first.start_reuse().items.made,
    );
    assert!(m >= 3 && n >= 3, "{:?}", first.start_reuse());
    assert_eq!(
        first.start_reuse(),
        StartReuse {
            episodes: reuse(0, 0, m),
            items: reuse(0, 0, n)
        }
    );
    assert!(
        eventually(20, || items_file.exists() && episodes_file.exists()),
        "the start's work was never saved"
    );
    let expected = served_feeds(&first);
    assert_eq!(expected, fresh(&source));

    let second = Live::load(source.clone()).unwrap();
    assert_eq!(
        second.start_reuse(),
        StartReuse {
            episodes: reuse(m, m, 0),
            items: reuse(n, n, 0)
        }
    );
    assert_eq!(
        served_feeds(&second),
        expected,
        "reused work serves the same bytes"
    );

    // One episode edited while the server was down: only it is read and rendered again.
    let (items_before, episodes_before) = (read(&items_file), read(&episodes_file));
    demo.edit(
        EP,
        "title = \"Defining De-Escalation\"",
        "title = \"Defining De-Escalation, Revised\"",
    );
    let third = Live::load(source.clone()).unwrap();
    assert_eq!(
        third.start_reuse(),
        StartReuse {
            episodes: reuse(m, m - 1, 1),
            items: reuse(n, n - 1, 1)
        }
    );
    let edited = served_feeds(&third);
    assert_ne!(edited, expected);
    assert!(String::from_utf8_lossy(&edited[0].1).contains("Defining De-Escalation, Revised"));
    assert_eq!(edited, fresh(&source));
    assert!(
        eventually(20, || read(&items_file) != items_before
            && read(&episodes_file) != episodes_before),
        "the files were not written again with the edited episode"
    );
    let fourth = Live::load(source.clone()).unwrap();
    assert_eq!(
        fourth.start_reuse(),
        StartReuse {
            episodes: reuse(m, m, 0),
            items: reuse(n, n, 0)
        }
    );

    // Damaged files: not used, nothing fails, and they are written again.
    let damage = |p: &std::path::Path| {
        let mut bytes = read(p);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(p, &bytes).unwrap();
        bytes
    };
    let (bad_items, bad_episodes) = (damage(&items_file), damage(&episodes_file));
    let damaged = Live::load(source.clone()).unwrap();
    assert_eq!(
        damaged.start_reuse(),
        StartReuse {
            episodes: reuse(0, 0, m),
            items: reuse(0, 0, n)
        }
    );
    assert_eq!(served_feeds(&damaged), edited);
    assert!(
        eventually(20, || read(&items_file) != bad_items
            && read(&episodes_file) != bad_episodes),
        "the damaged files were not replaced"
    );
    let after = Live::load(source).unwrap();
    assert_eq!(
        after.start_reuse(),
        StartReuse {
            episodes: reuse(m, m, 0),
            items: reuse(n, n, 0)
        }
    );
    assert_eq!(served_feeds(&after), edited);
}
