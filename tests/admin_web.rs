//! The admin website's sign-in, sessions and CSRF protection, over real HTTP with curl: a wrong
//! password, a form without its CSRF token, a session used after sign-out, throttled failures,
//! officers kept out, cookie attributes, and logs that never carry a secret.

mod common;

use common::{tone_mp3, Browser, Demo, Server, PUBLIC_URL};

const PASSWORD: &str = "correct horse battery";

fn add_user(demo: &Demo, name: &str, role: &str) {
    demo.add_user(name, role, PASSWORD);
}

#[test]
fn sign_in_sessions_and_sign_out() {
    let demo = Demo::new();
    add_user(&demo, "chief", "admin");
    let server = Server::start(&demo);
    let b = Browser::new(&server, demo.root(), "chief");

    // Signed out, /admin sends people to the sign-in page.
    let home = b.get("/admin");
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/admin/sign-in"));

    // A wrong password is refused, and no session starts.
    let wrong = b.sign_in("chief", "not the password");
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("do not match"), "{}", wrong.body);
    assert!(b.session_cookie().is_none());
    // An unknown name gets the same answer.
    let unknown = b.sign_in("nobody", PASSWORD);
    assert_eq!(unknown.status, 401);

    // The right one starts a session whose cookie is HttpOnly, SameSite=Lax and (public_url is
    // https) Secure.
    let ok = b.sign_in("chief", PASSWORD);
    assert_eq!(ok.status, 303, "{}", ok.body);
    let cookie = ok
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("rollcall_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(PUBLIC_URL.starts_with("https://"));
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let session = b.session_cookie().expect("curl kept the cookie");
    let home = b.get("/admin");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Defining De-Escalation"));
    assert_eq!(home.header("cache-control"), Some("no-store"));
    assert!(
        home.body.contains("sign in"),
        "the audit log shows the sign-in"
    );

    // Sign-out needs the CSRF token too.
    let csrf = home.csrf();
    let forged = b.post("/admin/sign-out", &[("csrf", &"0".repeat(64))]);
    assert_eq!(forged.status, 403);
    assert_eq!(
        b.get("/admin").status,
        200,
        "a forged sign-out does nothing"
    );
    let out = b.post("/admin/sign-out", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);

    // The old session id no longer works, even sent by hand.
    let replay = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Cookie: rollcall_session={session}"))
        .arg(format!("{}/admin", b.base))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&replay.stdout), "303");
}

#[test]
fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let demo = Demo::new();
    add_user(&demo, "chief", "admin");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 2.0);
    let server = Server::start(&demo);
    let b = Browser::new(&server, demo.root(), "chief");
    assert_eq!(b.sign_in("chief", PASSWORD).status, 303);
    let toml = demo.read("episodes/defining-de-escalation/episode.toml");

    // The sign-in form itself, without the token from its page.
    let fresh = Browser::new(&server, demo.root(), "fresh");
    let no_token = fresh.post(
        "/admin/sign-in",
        &[("name", "chief"), ("password", PASSWORD), ("csrf", "")],
    );
    assert_eq!(no_token.status, 403);
    assert!(fresh.session_cookie().is_none());

    // Unpublish without a token.
    let r = b.post(
        "/admin/episodes/defining-de-escalation/unpublish",
        &[("csrf", "")],
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("CSRF"), "{}", r.body);
    // An upload whose first part is not the token: refused before the file is read.
    let add = b.run(&[
        "-F",
        "title=Forged",
        "-F",
        "published=2016-07-05",
        "-F",
        &format!("audio=@{}", audio.display()),
        &format!("{}/admin/episodes", b.base),
    ]);
    assert_eq!(add.status, 403);
    assert_eq!(
        demo.read("episodes/defining-de-escalation/episode.toml"),
        toml
    );
    assert!(!demo.path("episodes/forged").exists());

    // With the token, the same upload works and is live at once.
    let csrf = b.get("/admin").csrf();
    let add = b.run(&[
        "-F",
        &format!("csrf={csrf}"),
        "-F",
        "title=Web Briefing",
        "-F",
        "published=2016-07-05",
        "-F",
        "summary=From the web form.",
        "-F",
        "feed=defusing-difficult-encounters",
        "-F",
        &format!("audio=@{}", audio.display()),
        &format!("{}/admin/episodes", b.base),
    ]);
    assert_eq!(add.status, 303, "{}", add.body);
    let feed = common::get(server.addr, "/feeds/defusing-difficult-encounters.xml", &[]);
    assert!(String::from_utf8_lossy(&feed.body).contains("Web Briefing"));

    // Bad input through the form gets its message (as a page, or as JSON for the upload
    // script), and changes nothing.
    let toml = demo.read("episodes/web-briefing/episode.toml");
    let bad = b.run(&[
        "-F",
        &format!("csrf={csrf}"),
        "-F",
        "title=Web Briefing",
        "-F",
        "published=2016-07-05",
        "-F",
        "summary=x",
        "-F",
        "resource_title=Report",
        "-F",
        "resource_url=javascript:alert(1)",
        "-F",
        "resource_note=",
        &format!("{}/admin/episodes/web-briefing", b.base),
    ]);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("resources[0].url"), "{}", bad.body);
    let json = b.run(&[
        "-H",
        "Accept: application/json",
        "-F",
        &format!("csrf={csrf}"),
        "-F",
        "title=Other",
        "-F",
        "published=2016-07-05",
        "-F",
        "slug=web-briefing",
        "-F",
        &format!("audio=@{}", audio.display()),
        &format!("{}/admin/episodes", b.base),
    ]);
    assert_eq!(json.status, 409, "{}", json.body);
    assert!(json.body.contains("\"field\":\"slug\""), "{}", json.body);
    // The edit form carries the folder's version; saving from a stale form is a 409.
    let form = b.get("/admin/episodes/web-briefing");
    assert!(form.body.contains("name=\"version\""), "{}", form.body);
    let stale = b.run(&[
        "-F",
        &format!("csrf={csrf}"),
        "-F",
        "version=0000000000000000",
        "-F",
        "title=Renamed",
        "-F",
        "published=2016-07-05",
        "-F",
        "summary=x",
        &format!("{}/admin/episodes/web-briefing", b.base),
    ]);
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(demo.read("episodes/web-briefing/episode.toml"), toml);
}

#[test]
fn repeated_failed_sign_ins_get_429_with_retry_after() {
    let demo = Demo::new();
    add_user(&demo, "chief", "admin");
    let mut config = demo.config();
    config.admin.attempts_per_minute = std::num::NonZeroU32::new(3).unwrap();
    let server = Server::start_with(config);
    let b = Browser::new(&server, demo.root(), "guesser");
    let statuses: Vec<u16> = (0..5).map(|_| b.sign_in("chief", "guess").status).collect();
    assert_eq!(statuses[..3], [401, 401, 401], "{statuses:?}");
    assert_eq!(statuses[3..], [429, 429], "{statuses:?}");
    let blocked = b.sign_in("chief", PASSWORD);
    assert_eq!(blocked.status, 429, "even the right password waits");
    let wait: u64 = blocked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Bad API tokens count against the same address.
    let api = b.run(&[
        "-H",
        &format!("Authorization: Bearer {}", "0".repeat(64)),
        &format!("{}/admin/api/episodes", b.base),
    ]);
    assert_eq!(api.status, 429);
}

#[test]
fn parallel_guesses_cannot_outrun_the_throttle_and_sign_in_bodies_are_small() {
    let demo = Demo::new();
    add_user(&demo, "chief", "admin");
    let mut config = demo.config();
    config.admin.attempts_per_minute = std::num::NonZeroU32::new(3).unwrap();
    let server = Server::start_with(config);
    let b = Browser::new(&server, demo.root(), "flood");
    // A sign-in body larger than a form needs is refused without being held in memory.
    let body = demo.path("big.form");
    std::fs::write(
        &body,
        format!("csrf=a&name=chief&password={}", "x".repeat(200_000)),
    )
    .unwrap();
    let r = b.run(&[
        "--data-binary",
        &format!("@{}", body.display()),
        &format!("{}/admin/sign-in", b.base),
    ]);
    assert_eq!(r.status, 413);
    let csrf = b.get("/admin/sign-in").csrf();
    // Twenty guesses at once with one form token, the right password among them last: only
    // the first three are checked at all.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..20)
            .map(|i| {
                let (b, csrf) = (&b, &csrf);
                s.spawn(move || {
                    let password = if i == 19 { PASSWORD } else { "guess" };
                    b.post(
                        "/admin/sign-in",
                        &[("csrf", csrf), ("name", "chief"), ("password", password)],
                    )
                    .status
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s != 429).count();
    assert!(checked <= 3, "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 17,
        "{statuses:?}"
    );
}

#[test]
fn officers_cannot_use_the_admin() {
    let demo = Demo::new();
    let server = Server::start(&demo);
    // The CLI writes to the store while the server has it open.
    add_user(&demo, "patrol", "officer");
    let b = Browser::new(&server, demo.root(), "patrol");
    assert_eq!(b.sign_in("patrol", PASSWORD).status, 303);
    let home = b.get("/admin");
    assert_eq!(home.status, 403);
    assert!(home.body.contains("officer account"), "{}", home.body);
    assert_eq!(b.get("/admin/episodes/new").status, 403);
}

#[test]
fn logs_carry_no_password_session_id_or_token() {
    let demo = Demo::new();
    add_user(&demo, "chief", "admin");
    let token = demo.run(&[
        "token".as_ref(),
        "create".as_ref(),
        "--user".as_ref(),
        "chief".as_ref(),
    ]);
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("--config")
        .arg(demo.path("config.toml"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    let base = line.trim().trim_start_matches("listening on ").to_owned();
    let jar = demo.path("log.jar");
    let curl = |args: &[&str]| {
        std::process::Command::new("curl")
            .args(["-s", "-c"])
            .arg(&jar)
            .arg("-b")
            .arg(&jar)
            .args(args)
            .output()
            .unwrap()
    };
    let page = String::from_utf8(curl(&[&format!("{base}/admin/sign-in")]).stdout).unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &page[at..at + 64];
    curl(&[
        "-d",
        &format!("csrf={csrf}&name=chief&password=wrong+password+x"),
        &format!("{base}/admin/sign-in"),
    ]);
    // A failed sign-in hands out a fresh form token.
    let page = String::from_utf8(curl(&[&format!("{base}/admin/sign-in")]).stdout).unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf2 = page[at..at + 64].to_owned();
    curl(&[
        "-d",
        &format!(
            "csrf={csrf2}&name=chief&password={}",
            PASSWORD.replace(' ', "+")
        ),
        &format!("{base}/admin/sign-in"),
    ]);
    curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{base}/admin/api/episodes?x=1"),
    ]);
    let jar_text = std::fs::read_to_string(&jar).unwrap();
    let session = jar_text
        .lines()
        .filter(|l| l.contains("rollcall_session"))
        .filter_map(|l| l.split('\t').nth(6))
        .find(|v| !v.is_empty())
        .expect("signed in")
        .to_owned();
    curl(&[&format!("{base}/admin")]);
    terminate(&child);
    child.wait().unwrap();
    let log = common::stderr_of(&mut child);
    assert!(
        log.contains("path=/admin/sign-in"),
        "the access log ran: {log}"
    );
    for secret in [
        PASSWORD,
        "correct+horse",
        "wrong password x",
        "wrong+password",
        &token,
        &session,
        csrf,
        &csrf2,
    ] {
        assert!(!log.contains(secret), "the log carries {secret:?}:\n{log}");
    }
}

/// Stops the server with SIGTERM, so it flushes its log.
fn terminate(child: &std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}
