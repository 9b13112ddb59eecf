//! Members feeds and personal URLs against a real server on a copy of the demo catalog, whose
//! `valor-members` feed is members-only (in preview mode) and carries a members-only episode:
//! what the public sees, personal feed URLs with the token in every media URL, the same private
//! 404 for every kind of bad token, throttled guessing, revocation, suspension, logs and records
//! without tokens, and members media kept byte-exact on a shared keep-alive connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, get, path_of, split_responses, Demo, Server, PUBLIC_URL};

const MEMBERS: &str = "valor-members";
const BRIEFING: &str = "roll-call-briefing-defusing-difficult-encounters";

fn cli(demo: &Demo, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("--config")
        .arg(demo.path("config.toml"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rollcall {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Creates an officer and returns the path of its personal members feed.
fn officer(demo: &Demo, name: &str) -> String {
    cli(
        demo,
        &["user", "add", name, "--role", "officer", "--password-stdin"],
        Some("officer password 1"),
    );
    personal_feed(demo, name, false)
}

fn personal_feed(demo: &Demo, name: &str, rotate: bool) -> String {
    let mut args = vec!["user", "token", name];
    if rotate {
        args.push("--rotate");
    }
    let out = cli(demo, &args, None);
    let url = out
        .lines()
        .find(|l| l.ends_with(&format!("/feeds/{MEMBERS}.xml")))
        .unwrap_or_else(|| panic!("no members feed URL in {out:?}"))
        .to_owned();
    path_of(&url)
}

fn text(r: &common::Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Every enclosure URL in a feed, as paths.
fn enclosures(xml: &str) -> Vec<String> {
    xml.match_indices("<enclosure url=\"")
        .map(|(i, m)| {
            let rest = &xml[i + m.len()..];
            path_of(&rest[..rest.find('"').unwrap()])
        })
        .collect()
}

#[test]
fn the_public_sees_no_members_feed_or_media() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let snapshot = server.live.snapshot();
    let briefing = snapshot.catalog.episode(BRIEFING).unwrap();
    let nothing = get(server.addr, "/no/such/path", &[]);
    let members_paths = [
        format!("/feeds/{MEMBERS}.xml"),
        briefing.audio.url_path.clone(),
        snapshot
            .catalog
            .feed(MEMBERS)
            .unwrap()
            .artwork
            .url_path
            .clone(),
    ];
    for path in &members_paths {
        let r = get(server.addr, path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, nothing.body, "{path}");
        assert_eq!(r.stable_headers(), nothing.stable_headers(), "{path}");
    }
    let opml = text(&get(server.addr, "/feeds.opml", &[]));
    assert!(!opml.contains(MEMBERS), "{opml}");
    // The public feed with episodes = "all" carries the public episodes and not the briefing.
    let all = text(&get(server.addr, "/feeds/spotlight-on-safety.xml", &[]));
    assert!(all.contains("Defining De-Escalation"));
    assert!(!all.contains("Roll-Call Briefing"), "{all}");
}

#[test]
fn a_reload_that_changes_who_may_see_a_file_changes_its_answer() {
    // Unchanged files keep their entry across a reload; one whose access changed must not.
    let demo = Demo::new();
    let server = Server::start(&demo);
    let audio = server.audio_path(BRIEFING);
    let public = server.audio_path("defining-de-escalation");
    assert_ne!(public, audio);
    let public_etag = get(server.addr, &public, &[])
        .header("etag")
        .map(str::to_owned);
    assert_eq!(get(server.addr, &audio, &[]).status, 404);
    let episode = format!("episodes/{BRIEFING}/episode.toml");
    let tagged = r#"feeds = ["valor-members", "defusing-difficult-encounters"]"#;
    demo.edit(&episode, r#"feeds = ["valor-members"]"#, tagged);
    assert!(server.live.reload().unwrap());
    // Named by a public feed, it is public now, at the same URL.
    assert_eq!(server.audio_path(BRIEFING), audio);
    assert_eq!(get(server.addr, &audio, &[]).status, 200);
    demo.edit(&episode, tagged, r#"feeds = ["valor-members"]"#);
    assert!(server.live.reload().unwrap());
    assert_eq!(get(server.addr, &audio, &[]).status, 404);
    let kept = server.live.snapshot();
    let before = Arc::clone(&kept.media[public.as_str()]);
    let r = get(server.addr, &public, &[]);
    assert_eq!(
        (r.status, r.header("etag").map(str::to_owned)),
        (200, public_etag)
    );
    // And an unchanged file's entry is the one the previous snapshot had.
    demo.edit(&episode, r#"feeds = ["valor-members"]"#, tagged);
    assert!(server.live.reload().unwrap());
    assert!(Arc::ptr_eq(
        &before,
        &server.live.snapshot().media[public.as_str()]
    ));
}

#[test]
fn a_personal_feed_carries_the_token_in_every_media_url_and_serves_media() {
    let demo = Demo::new();
    let feed = officer(&demo, "patrol");
    let token = feed.split('/').nth(2).unwrap().to_owned();
    let server = Server::start(&demo);
    let r = get(server.addr, &feed, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let xml = text(&r);
    assert_eq!(
        r.body.len(),
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    // Directories must never list it.
    assert!(xml.contains("<itunes:block>Yes</itunes:block>"), "{xml}");
    assert!(xml.contains("<podcast:block>yes</podcast:block>"), "{xml}");
    // Every media URL carries this officer's token; none is public.
    let media = enclosures(&xml);
    assert_eq!(media.len(), 3, "{xml}");
    for path in &media {
        assert!(path.starts_with(&format!("/p/{token}/media/")), "{path}");
    }
    for attr in ["href=\"", "url=\""] {
        for public in ["/media/", "/artwork/"] {
            let url = format!("{attr}{PUBLIC_URL}{public}");
            assert!(!xml.contains(&url), "a public URL {url}: {xml}");
        }
    }
    assert!(xml.contains(&format!(
        "<atom:link href=\"{PUBLIC_URL}/p/{token}/feeds/{MEMBERS}.xml\" rel=\"self\""
    )));
    // The channel's podcast:guid is the feed's own, the same for everyone.
    let guid = |x: &str| {
        let at = x.find("<podcast:guid>").unwrap() + 14;
        x[at..at + 36].to_owned()
    };
    // A token the CLI makes while the server runs works at once.
    let other = officer(&demo, "sergeant");
    let other_xml = text(&get(server.addr, &other, &[]));
    assert_eq!(guid(&xml), guid(&other_xml));
    assert_ne!(enclosures(&other_xml), media);

    // The briefing's audio, by range, through the personal URL.
    let briefing = server
        .live
        .snapshot()
        .catalog
        .episode(BRIEFING)
        .unwrap()
        .clone();
    let bytes = std::fs::read(&briefing.audio.path).unwrap();
    let url = media.iter().find(|p| p.contains(BRIEFING)).unwrap();
    let part = get(server.addr, url, &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &bytes[100..200]);
    assert_eq!(part.header("cache-control"), Some("private, no-store"));
    // A 304 for an app that polls with the ETag it has.
    let etag = r.header("etag").unwrap().to_owned();
    let again = get(server.addr, &feed, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert!(etag.ends_with(&format!(
        "-{}\"",
        &rollcall::access::Secret::parse(&token)
            .unwrap()
            .hash()
            .fingerprint()
    )));
}

#[test]
fn every_bad_token_gets_the_same_private_404() {
    let demo = Demo::new();
    let revoked = officer(&demo, "gone");
    let _current = personal_feed(&demo, "gone", true); // `revoked` no longer works
    let suspended = officer(&demo, "away");
    cli(&demo, &["user", "suspend", "away"], None);
    // Room for every bad token below before the throttle steps in.
    let mut config = demo.config();
    config.admin.attempts_per_minute = std::num::NonZeroU32::new(100).unwrap();
    let server = Server::start_with(config);
    let token_of = |p: &str| p.split('/').nth(2).unwrap().to_owned();
    let tail = format!("/feeds/{MEMBERS}.xml");
    let bad = [
        format!("/p/{}{tail}", "0".repeat(64)),
        format!("/p/not-hex-at-all{tail}"),
        format!("/p/{}{tail}", "a".repeat(63)),
        format!("/p/{}{tail}", "A".repeat(64)),
        format!("/p/{}{tail}", token_of(&revoked)),
        format!("/p/{}{tail}", token_of(&suspended)),
    ];
    let first = get(server.addr, &bad[0], &[]);
    assert_eq!(first.status, 404);
    assert_eq!(first.header("cache-control"), Some("private, no-store"));
    for path in &bad[1..] {
        let r = get(server.addr, path, &[]);
        assert_eq!(r.status, first.status, "{path}");
        assert_eq!(r.stable_headers(), first.stable_headers(), "{path}");
        assert_eq!(r.body, first.body, "{path}");
    }
    // Reinstated, the suspended officer's URL works again.
    cli(&demo, &["user", "reinstate", "away"], None);
    assert!(eventually(5, || get(server.addr, &suspended, &[]).status == 200));
}

#[test]
fn guessing_tokens_gets_429_but_a_valid_token_works_from_elsewhere() {
    let demo = Demo::new();
    let feed = officer(&demo, "patrol");
    let mut config = demo.config();
    config.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    config.admin.attempts_per_minute = std::num::NonZeroU32::new(3).unwrap();
    let server = Server::start_with(config);
    let guesser = [("X-Forwarded-For", "192.0.2.66")];
    let officer_addr = [("X-Forwarded-For", "198.51.100.7")];
    let guess = format!("/p/{}/feeds/{MEMBERS}.xml", "0".repeat(64));
    let statuses: Vec<u16> = (0..5)
        .map(|_| get(server.addr, &guess, &guesser).status)
        .collect();
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    let blocked = get(server.addr, &guess, &guesser);
    let wait: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(blocked.header("cache-control"), Some("private, no-store"));
    // The officer, elsewhere, is not affected.
    assert_eq!(get(server.addr, &feed, &officer_addr).status, 200);
}

#[test]
fn rotating_a_token_ends_the_old_url_at_once_and_spares_other_officers() {
    let demo = Demo::new();
    let old = officer(&demo, "patrol");
    let other = officer(&demo, "sergeant");
    let server = Server::start(&demo);
    let media = enclosures(&text(&get(server.addr, &old, &[])));
    assert_eq!(get(server.addr, &media[0], &[]).status, 200);
    let new = personal_feed(&demo, "patrol", true);
    assert_ne!(new, old);
    // The CLI is another process: the server notices the change within about a second.
    assert!(eventually(10, || get(server.addr, &old, &[]).status == 404));
    assert_eq!(get(server.addr, &media[0], &[]).status, 404);
    assert_eq!(get(server.addr, &new, &[]).status, 200);
    assert_eq!(get(server.addr, &other, &[]).status, 200);
}

#[test]
fn records_and_logs_carry_no_token() {
    let demo = Demo::new();
    let feed = officer(&demo, "patrol");
    let token = feed.split('/').nth(2).unwrap().to_owned();
    let server = Server::start(&demo);
    let sub = server.deliveries.subscribe("test", 64);
    let xml = text(&get(server.addr, &feed, &[]));
    get(server.addr, &enclosures(&xml)[0], &[("Range", "bytes=0-9")]);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let d = sub.records.recv_timeout(Duration::from_secs(10)).unwrap();
        seen.push(d);
    }
    for d in &seen {
        let shown = format!("{d:?}");
        assert!(!shown.contains(&token), "{shown}");
        assert!(
            d.request.path().starts_with("/p/*/"),
            "{}",
            d.request.path()
        );
        assert!(matches!(
            d.credentials,
            rollcall::access::Credentials::Personal { .. }
        ));
    }
    // The binary's access log, too.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("--config")
        .arg(demo.path("config.toml"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    let addr: std::net::SocketAddr = line
        .trim()
        .trim_start_matches("listening on http://")
        .parse()
        .unwrap();
    assert_eq!(get(addr, &feed, &[]).status, 200);
    assert_eq!(
        get(addr, &format!("/p/{}/feeds/x.xml", "1".repeat(64)), &[]).status,
        404
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let log = common::stderr_of(&mut child);
    assert!(
        log.contains(&format!("path=/p/*/feeds/{MEMBERS}.xml")),
        "{log}"
    );
    assert!(!log.contains(&token), "{log}");
    assert!(!log.contains(&"1".repeat(64)), "{log}");
    // The token shows only as its fingerprint, which tells an admin whose URL it was.
    let fingerprint = rollcall::access::Secret::hash_of(&token)
        .expect("a well-formed token")
        .fingerprint();
    assert!(log.contains(&format!(" token={fingerprint}")), "{log}");
}

#[test]
fn members_media_keeps_its_own_bytes_on_a_shared_connection() {
    let demo = Demo::new();
    let feed = officer(&demo, "patrol");
    let members = demo.enlarge_audio(BRIEFING, 20); // about 4.8 MB
    let public = demo.enlarge_audio("defining-de-escalation", 12);
    let server = Server::start(&demo);
    let media = enclosures(&text(&get(server.addr, &feed, &[])));
    let private_url = media.iter().find(|p| p.contains(BRIEFING)).unwrap().clone();
    let public_url = server.audio_path("defining-de-escalation");
    common::evict(&demo.path(&format!("episodes/{BRIEFING}/audio.mp3")));
    let mid = members.len() / 2;
    let requests = [
        (private_url.as_str(), None),
        (public_url.as_str(), None),
        (private_url.as_str(), Some(format!("bytes={mid}-"))),
        (public_url.as_str(), Some("bytes=10-99".to_owned())),
    ];
    let mut out = String::new();
    for (path, range) in &requests {
        out.push_str(&format!(
            "GET {path} HTTP/1.1\r\nHost: podcasts.example.org\r\n"
        ));
        if let Some(r) = range {
            out.push_str(&format!("Range: {r}\r\n"));
        }
        out.push_str("\r\n");
    }
    out.push_str("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(out.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let r = split_responses(&all, &[false; 5]);
    let want: [(u16, &[u8]); 5] = [
        (200, &members),
        (200, &public),
        (206, &members[mid..]),
        (206, &public[10..100]),
        (200, b"ok\n"),
    ];
    for (i, (got, (status, body))) in r.iter().zip(want).enumerate() {
        assert_eq!(got.status, status, "response {i}");
        assert!(got.body == body, "response {i}: not the file's own bytes");
    }
}

#[test]
fn the_admin_sees_use_flags_sharing_and_revokes_at_once() {
    let demo = Demo::new();
    cli(
        &demo,
        &[
            "user",
            "add",
            "chief",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("correct horse battery"),
    );
    let feed = officer(&demo, "patrol");
    let other = officer(&demo, "sergeant");
    let mut config = demo.config();
    config.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    config.admin.sharing_alert_addresses = 2;
    let server = Server::start_with(config);
    // One URL from three addresses, with two apps, in one day: more than 2 addresses.
    for (addr, app) in [
        ("192.0.2.1", "AntennaPod/3.4.0"),
        ("192.0.2.2", "AntennaPod/3.4.0"),
        ("192.0.2.3", "gPodder/3.11.1 (+http://gpodder.org/) Linux"),
    ] {
        let r = get(
            server.addr,
            &feed,
            &[("X-Forwarded-For", addr), ("User-Agent", app)],
        );
        assert_eq!(r.status, 200);
    }
    let b = common::Browser::new(&server, demo.root(), "chief");
    assert_eq!(b.sign_in("chief", "correct horse battery").status, 303);
    let page = || b.get("/admin/officers");
    assert!(
        eventually(10, || page().body.contains("Possible shared URLs")),
        "{}",
        page().body
    );
    let p = page();
    assert!(
        p.body.contains("patrol: used from 3 addresses"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("3 addresses; AntennaPod (2), gPodder (1)"),
        "{}",
        p.body
    );
    assert!(
        !p.body.contains("192.0.2."),
        "no raw address is shown or stored"
    );
    let db = std::fs::read(demo.path(".rollcall/rollcall.db")).unwrap();
    let wal = std::fs::read(demo.path(".rollcall/rollcall.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(9).any(|w| w == b"192.0.2.1"),
            "a raw address was stored"
        );
    }
    // Dismissing the flag.
    let csrf = p.csrf();
    let day = chrono::Utc::now().date_naive().to_string();
    let r = b.post(
        &format!("/admin/flags/patrol/{day}/dismiss"),
        &[("csrf", &csrf)],
    );
    assert_eq!(r.status, 303);
    assert!(!page().body.contains("Possible shared URLs"));

    // Revoking from the web ends the URL at the next request; the other officer is unaffected.
    let r = b.post("/admin/officers/patrol/revoke", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert_eq!(get(server.addr, &feed, &[]).status, 404);
    assert_eq!(get(server.addr, &other, &[]).status, 200);
    // Suspending the other officer ends its URL too, and reinstating restores it.
    assert_eq!(
        b.post("/admin/officers/sergeant/suspend", &[("csrf", &csrf)])
            .status,
        303
    );
    assert_eq!(get(server.addr, &other, &[]).status, 404);
    assert_eq!(
        b.post("/admin/officers/sergeant/reinstate", &[("csrf", &csrf)])
            .status,
        303
    );
    assert_eq!(get(server.addr, &other, &[]).status, 200);
    // Regenerating makes a new URL, which the CLI prints.
    assert_eq!(
        b.post("/admin/officers/patrol/rotate", &[("csrf", &csrf)])
            .status,
        303
    );
    let fresh = personal_feed(&demo, "patrol", false);
    assert_ne!(fresh, feed);
    assert_eq!(get(server.addr, &fresh, &[]).status, 200);
    // Every action is in the audit log.
    let home = b.get("/admin").body;
    for action in [
        "officer revoke",
        "officer suspend",
        "officer reinstate",
        "officer rotate",
        "sharing flag dismiss",
    ] {
        assert!(home.contains(action), "{action} not audited");
    }
    // Without the CSRF token, nothing happens.
    assert_eq!(
        b.post("/admin/officers/patrol/revoke", &[("csrf", "x")])
            .status,
        403
    );
    assert_eq!(get(server.addr, &fresh, &[]).status, 200);
}

#[test]
fn a_preview_feed_is_a_public_teaser_without_any_media_or_feed_url() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    let home = text(&get(server.addr, "/", &[]));
    assert!(home.contains("Spotlight on Safety: Members"), "{home}");
    assert!(home.contains("Members only"));
    for path in [format!("/feeds/{MEMBERS}"), format!("/episodes/{BRIEFING}")] {
        let r = get(server.addr, &path, &[]);
        assert_eq!(r.status, 200, "{path}");
        let page = text(&r);
        assert!(
            page.contains("Roll-Call Briefing: Defusing Difficult Encounters"),
            "{page}"
        );
        assert!(page.contains("Sign in to listen"), "{page}");
        // Notes and resources are the teaser; no way in to the media or the feed.
        assert!(page.contains("VALOR For Blue eLearning"), "{page}");
        for forbidden in [
            "/media/",
            "/artwork/",
            "/p/",
            &format!("{MEMBERS}.xml"),
            "<audio",
        ] {
            assert!(
                !page.contains(forbidden),
                "{path} shows {forbidden}:\n{page}"
            );
        }
    }
    // The teaser lists the feed's public episodes too, locked like the rest.
    let theme = text(&get(server.addr, &format!("/feeds/{MEMBERS}"), &[]));
    assert!(theme.contains("Defining De-Escalation"));
    assert_eq!(
        theme.matches("class=\"listen locked\"").count(),
        3,
        "{theme}"
    );
}

#[test]
fn a_signed_in_officer_sees_members_feeds_plays_them_and_resets_the_link() {
    let demo = Demo::new();
    let old_feed = officer(&demo, "patrol");
    let server = Server::start(&demo);
    let b = common::Browser::new(&server, demo.root(), "patrol");
    let signed = b.sign_in("patrol", "officer password 1");
    assert_eq!(signed.status, 303);
    assert_eq!(
        signed.header("location"),
        Some("/"),
        "officers land on the site"
    );
    let home = b.get("/");
    assert_eq!(home.header("cache-control"), Some("private, no-store"));
    assert!(home.body.contains("Sign out patrol"), "{}", home.body);
    let theme = b.get(&format!("/feeds/{MEMBERS}"));
    assert_eq!(theme.status, 200);
    let personal = format!("{PUBLIC_URL}{old_feed}");
    assert!(
        theme.body.contains(&personal),
        "the personal URL is shown: {}",
        theme.body
    );
    assert!(theme.body.contains("<svg"), "with a QR code");
    assert!(theme
        .body
        .contains("antennapod.org/deeplink/subscribe?url="));
    assert!(!theme.body.contains("Sign in to listen"));
    // The player's media URL is the public path; the session cookie authorizes it.
    let at = theme.body.find("<audio").unwrap();
    let src_at = theme.body[at..].find("src=\"").unwrap() + at + 5;
    let src = &theme.body[src_at..src_at + theme.body[src_at..].find('"').unwrap()];
    assert!(src.contains(BRIEFING), "{src}");
    let played = b.run(&["-r", "0-99", &format!("{}{src}", b.base)]);
    assert_eq!(played.status, 206);
    assert_eq!(
        get(server.addr, src, &[]).status,
        404,
        "not without the session"
    );
    // Reset my link: a new personal URL; the old one stops working at once.
    let csrf = theme.csrf();
    let reset = b.post(
        "/admin/reset-my-link",
        &[("csrf", &csrf), ("feed", MEMBERS)],
    );
    assert_eq!(reset.status, 303);
    assert_eq!(
        reset.header("location"),
        Some(format!("/feeds/{MEMBERS}").as_str())
    );
    assert_eq!(get(server.addr, &old_feed, &[]).status, 404);
    let after = b.get(&format!("/feeds/{MEMBERS}")).body;
    assert!(!after.contains(&personal));
    let new_feed = personal_feed(&demo, "patrol", false);
    assert_ne!(new_feed, old_feed);
    assert!(after.contains(&format!("{PUBLIC_URL}{new_feed}")));
    assert_eq!(get(server.addr, &new_feed, &[]).status, 200);
    // Signed out, the teaser again.
    let csrf = b.get("/").csrf();
    assert_eq!(b.post("/admin/sign-out", &[("csrf", &csrf)]).status, 303);
    assert!(b
        .get(&format!("/feeds/{MEMBERS}"))
        .body
        .contains("Sign in to listen"));
}

#[test]
fn a_personal_feed_comes_gzipped_and_revalidates_in_either_encoding() {
    let demo = Demo::new();
    let feed = officer(&demo, "patrol");
    let server = Server::start(&demo);
    let plain = get(server.addr, &feed, &[]);
    let gz = get(server.addr, &feed, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        gz.body.len(),
        gz.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    assert!(
        gz.body.len() * 2 < plain.body.len(),
        "{} vs {}",
        gz.body.len(),
        plain.body.len()
    );
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain.body);
    let (e_plain, e_gz) = (plain.header("etag").unwrap(), gz.header("etag").unwrap());
    assert_ne!(e_plain, e_gz);
    for etag in [e_plain, e_gz] {
        let r = get(
            server.addr,
            &feed,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", etag)],
        );
        assert_eq!(r.status, 304, "{etag}");
    }
}
