//! The download report at `/admin/stats` (page, CSV and JSON) and `/metrics`, against a real
//! server: who may read them, and that real downloads show up in both.

mod common;

use common::{eventually, get, path_of, Browser, Demo, Server};

const PASSWORD: &str = "correct horse battery";

/// The demo's first episode's audio path, from its public feed.
fn audio_path(server: &Server, slug: &str) -> String {
    let feed = get(server.addr, "/feeds/spotlight-on-safety.xml", &[]);
    let xml = String::from_utf8(feed.body).unwrap();
    let at = xml.find(&format!("/media/{slug}/")).unwrap();
    let start = xml[..at].rfind('"').unwrap() + 1;
    let end = at + xml[at..].find('"').unwrap();
    path_of(&xml[start..end])
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn stats_page_and_exports_show_real_downloads_to_admins_only() {
    let demo = Demo::new();
    demo.add_user("chief", "admin", PASSWORD);
    demo.add_user("patrol", "officer", PASSWORD);
    let admin = demo.api_token("chief");
    let officer = demo.api_token("patrol");
    let server = Server::start(&demo);
    let audio = audio_path(&server, "defining-de-escalation");
    for agent in [
        "AntennaPod/3.4.0",
        "Pocket Casts",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ] {
        assert_eq!(
            get(server.addr, &audio, &[("User-Agent", agent)]).status,
            200
        );
    }
    let auth = bearer(&admin);
    let json = |query: &str| {
        let r = get(
            server.addr,
            &format!("/admin/stats.json{query}"),
            &[("Authorization", &auth)],
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()
    };
    assert!(
        eventually(20, || json("")["downloads"] == 2),
        "{}",
        json("")
    );
    let report = json("");
    assert_eq!(report["episodes"][0]["slug"], "defining-de-escalation");
    assert!(report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["counted_as"] == "bot" && v["requests"] == 1));
    assert_eq!(json("?since=2999-01-01")["downloads"], 0);
    assert_eq!(
        json("?episode=behavioral-response-to-stress-and-fear")["downloads"],
        0
    );

    let csv = get(server.addr, "/admin/stats.csv", &[("Authorization", &auth)]);
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = String::from_utf8(csv.body).unwrap();
    assert!(
        text.starts_with("section,name,downloads,officers,requests,bytes\n"),
        "{text}"
    );
    assert!(
        text.contains("\nepisode,defining-de-escalation,2,"),
        "{text}"
    );
    assert!(text.contains("\napp,AntennaPod,1,"), "{text}");
    assert!(text.contains("\nrequests,bot,,,1,"), "{text}");

    // Nobody else: no credentials, an officer's token, a bad date.
    assert_eq!(get(server.addr, "/admin/stats.json", &[]).status, 401);
    let r = get(
        server.addr,
        "/admin/stats.csv",
        &[("Authorization", &bearer(&officer))],
    );
    assert_eq!(r.status, 403);
    let r = get(
        server.addr,
        "/admin/stats.json?since=yesterday",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("since"));

    // The page, signed in, with its charts as inline SVG.
    let b = Browser::new(&server, demo.root(), "chief");
    assert_eq!(
        b.get("/admin/stats").status,
        303,
        "signed out, it asks to sign in"
    );
    assert_eq!(b.sign_in("chief", PASSWORD).status, 303);
    let page = b.get("/admin/stats");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<strong id=\"total\">2</strong>"),
        "{}",
        page.body
    );
    for chart in ["days", "episodes", "apps", "devices", "feeds"] {
        assert!(
            page.body.contains(&format!("id=\"chart-{chart}\"")),
            "{chart}"
        );
    }
    assert!(page.body.contains("<svg role=\"img\""));
    assert!(
        page.body.contains("<tr><td>AntennaPod</td><td>1</td></tr>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-verdict=\"bot\""));
    let officer_browser = Browser::new(&server, demo.root(), "patrol");
    assert_eq!(officer_browser.sign_in("patrol", PASSWORD).status, 303);
    assert_eq!(officer_browser.get("/admin/stats").status, 403);

    // Listening signed in on the website: the admin's is recorded and never a download; the
    // officer's counts, under the officer's name.
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";
    let url = format!("http://{}{audio}", server.addr);
    assert_eq!(b.run(&["-A", firefox, &url]).status, 200);
    assert_eq!(officer_browser.run(&["-A", firefox, &url]).status, 200);
    let verdict = |r: &serde_json::Value, v: &str| {
        r["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["counted_as"] == v)
            .map_or(0, |x| x["requests"].as_u64().unwrap())
    };
    assert!(
        eventually(20, || {
            let r = json("");
            verdict(&r, "admin") == 1 && r["downloads"] == 3
        }),
        "{}",
        json("")
    );
    let r = json("");
    assert_eq!(r["officers"][0]["officer"], "patrol", "{r}");
    assert_eq!(r["officers"][0]["episode"], "defining-de-escalation", "{r}");
    assert_eq!(r["officers"][0]["downloads"], 1, "{r}");
    assert_eq!(
        r["officers"].as_array().unwrap().len(),
        1,
        "the admin is not among them: {r}"
    );
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_requests_bytes_and_downloads_for_allowed_readers() {
    let demo = Demo::new();
    demo.add_user("chief", "admin", PASSWORD);
    demo.add_user("patrol", "officer", PASSWORD);
    let admin = demo.api_token("chief");
    let officer = demo.api_token("patrol");
    // Loopback is allowed by default.
    let server = Server::start(&demo);
    let audio = audio_path(&server, "defining-de-escalation");
    let full = get(server.addr, &audio, &[("User-Agent", "AntennaPod/3.4.0")]);
    assert_eq!(full.status, 200);
    let size = full.body.len() as f64;
    assert_eq!(get(server.addr, "/nothing-here", &[]).status, 404);
    let scrape = || {
        let r = get(server.addr, "/metrics", &[]);
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).unwrap()
    };
    assert!(
        eventually(20, || metric(&scrape(), "rollcall_downloads_total")
            == Some(1.0)),
        "{}",
        scrape()
    );
    let text = scrape();
    assert_eq!(
        metric(
            &text,
            "rollcall_http_requests_total{route=\"media\",status=\"200\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "rollcall_http_requests_total{route=\"unknown\",status=\"404\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "rollcall_http_response_body_bytes_total{route=\"media\"}"
        ) >= Some(size),
        "{text}"
    );
    assert!(
        text.contains("rollcall_http_response_seconds_bucket{le="),
        "{text}"
    );
    assert_eq!(
        metric(&text, "rollcall_measurement_events_dropped_total"),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(&text, "rollcall_measurement_events_total") >= Some(1.0),
        "{text}"
    );
    drop(server);

    // With no address allowed, only an admin's token reads them.
    let mut config = demo.config();
    config.admin.metrics_allow = Vec::new();
    let server = Server::start_with(config);
    let r = get(server.addr, "/metrics", &[]);
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("metrics_allow"));
    assert_eq!(
        get(
            server.addr,
            "/metrics",
            &[("Authorization", &bearer(&officer))]
        )
        .status,
        403
    );
    let r = get(
        server.addr,
        "/metrics",
        &[("Authorization", &bearer(&admin))],
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("# TYPE rollcall_downloads counter"));
}
