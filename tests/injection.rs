//! XML and HTML injection and control characters through every metadata field, on every path
//! that accepts metadata: the catalog files, the admin form, the API and the CLI. Whatever the
//! text, the feed parses as well-formed XML and reads back the same text (less the control
//! characters XML forbids), and the pages show it as text, never as markup.

mod common;

use common::{get, tone_mp3, Browser, Demo, Server};

/// Text that breaks naive XML and HTML writers: markup, entities, a CDATA end, quotes, a C0
/// control, DEL and a non-character.
const HOSTILE: &str =
    "<script>alert(1)</script> & &amp; ]]> \"q\" 'a' \u{1}\u{7f}\u{fffe} <b>bold</b>";

/// What the catalog keeps of [`HOSTILE`]: XML forbids C0 controls, DEL here and U+FFFE.
fn kept() -> String {
    rollcall::catalog::strip_controls(HOSTILE)
}

/// Every text of the element `name` in `xml`, read with an XML parser (which fails on any
/// ill-formed input).
fn texts(xml: &str, name: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().expect("the feed is well-formed XML") {
            Event::Start(e) if e.name().as_ref() == name.as_bytes() => {
                inside = true;
                text.clear();
            }
            Event::Text(t) if inside => text.push_str(&t.decode().unwrap()),
            Event::GeneralRef(r) if inside => {
                let name = r.decode().unwrap();
                let resolved = match name.as_ref() {
                    "amp" => "&".to_owned(),
                    "lt" => "<".to_owned(),
                    "gt" => ">".to_owned(),
                    "quot" => "\"".to_owned(),
                    "apos" => "'".to_owned(),
                    other => {
                        let n = other.trim_start_matches('#');
                        let code = if let Some(hex) = n.strip_prefix('x') {
                            u32::from_str_radix(hex, 16).unwrap()
                        } else {
                            n.parse().unwrap()
                        };
                        char::from_u32(code).unwrap().to_string()
                    }
                };
                text.push_str(&resolved);
            }
            Event::CData(c) if inside => text.push_str(&String::from_utf8_lossy(&c)),
            Event::End(e) if e.name().as_ref() == name.as_bytes() => {
                inside = false;
                out.push(text.clone());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// The checks every path must pass for an episode whose title, summary, guest and resource
/// fields all carried [`HOSTILE`].
fn assert_safe(server: &Server, slug: &str) {
    let xml =
        String::from_utf8(get(server.addr, "/feeds/defusing-difficult-encounters.xml", &[]).body)
            .unwrap();
    assert!(
        texts(&xml, "title").contains(&kept()),
        "the title reads back as the same text: {xml}"
    );
    assert!(texts(&xml, "podcast:person").contains(&kept()), "{xml}");
    assert!(texts(&xml, "itunes:summary").contains(&kept()), "{xml}");
    assert!(!xml.contains('\u{1}') && !xml.contains('\u{fffe}'));
    for page in [
        format!("/episodes/{slug}"),
        "/feeds/defusing-difficult-encounters".into(),
    ] {
        let html = String::from_utf8(get(server.addr, &page, &[]).body).unwrap();
        assert!(
            !html.contains("<script>alert"),
            "{page}: markup got through"
        );
        assert!(!html.contains("<b>bold</b>"), "{page}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{page} shows the text escaped"
        );
    }
    let search = String::from_utf8(get(server.addr, "/search?q=alert", &[]).body).unwrap();
    assert!(
        !search.contains("<script>alert"),
        "search results escape it too"
    );
    assert!(
        search.contains(&format!("href=\"/episodes/{slug}\"")),
        "{search}"
    );
}

#[test]
fn hostile_text_in_catalog_files_stays_text() {
    let demo = Demo::new();
    let toml_text = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let path = "episodes/defining-de-escalation/episode.toml";
    let mut text = demo.read(path);
    text = text.replace(
        "title = \"Defining De-Escalation\"",
        &format!("title = {}", toml_text(HOSTILE)),
    );
    text = text.replacen(
        "summary = \"",
        &format!("summary = {}\n# was: \"", toml_text(HOSTILE)),
        1,
    );
    text = text.replace(
        "name = \"Eric Pisconski\"",
        &format!("name = {}", toml_text(HOSTILE)),
    );
    demo.write(path, &text);
    demo.write("episodes/defining-de-escalation/notes.md", HOSTILE);
    let server = Server::start(&demo);
    assert_safe(&server, "defining-de-escalation");
}

#[test]
fn hostile_text_through_the_api_stays_text() {
    let demo = Demo::new();
    demo.add_user("chief", "admin", "correct horse battery");
    let token = demo.api_token("chief");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 3.0);
    let server = Server::start(&demo);
    let metadata = serde_json::json!({
        "title": HOSTILE,
        "slug": "hostile",
        "published": "2016-07-05",
        "summary": HOSTILE,
        "guests": [{"name": HOSTILE, "role": HOSTILE}],
        "resources": [{"title": HOSTILE, "url": "https://example.org/?a=1&b=2", "note": HOSTILE}],
        "feeds": ["defusing-difficult-encounters"],
        "notes": HOSTILE,
    });
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        // --form-string: curl would read the ';' in the JSON as a part parameter.
        .arg("--form-string")
        .arg(format!("metadata={metadata}"))
        .arg("-F")
        .arg(format!("audio=@{}", audio.display()))
        .arg(format!("http://{}/admin/api/episodes", server.addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n201"), "{text}");
    assert_safe(&server, "hostile");
}

#[test]
fn hostile_text_through_the_form_stays_text() {
    let demo = Demo::new();
    demo.add_user("chief", "admin", "correct horse battery");
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 3.0);
    let server = Server::start(&demo);
    let b = Browser::new(&server, demo.root(), "chief");
    assert_eq!(b.sign_in("chief", "correct horse battery").status, 303);
    let csrf = b.get("/admin").csrf();
    // curl -F takes ';' and ',' specially in values; --form-string sends them as they are.
    let field = |name: &str| format!("{name}={HOSTILE}");
    let add = b.run(&[
        "-F",
        &format!("csrf={csrf}"),
        "--form-string",
        &field("title"),
        "-F",
        "slug=hostile",
        "-F",
        "published=2016-07-05",
        "--form-string",
        &field("summary"),
        "--form-string",
        &field("guest_name"),
        "--form-string",
        &field("guest_role"),
        "--form-string",
        &field("resource_title"),
        "-F",
        "resource_url=https://example.org/",
        "--form-string",
        &field("notes"),
        "-F",
        "feed=defusing-difficult-encounters",
        "-F",
        &format!("audio=@{}", audio.display()),
        &format!("{}/admin/episodes", b.base),
    ]);
    assert_eq!(add.status, 303, "{}", add.body);
    assert_safe(&server, "hostile");
    // The admin's own pages escape it as well.
    let list = b.get("/admin");
    assert!(!list.body.contains("<script>alert"), "{}", list.body);
}

#[test]
fn hostile_text_through_the_cli_stays_text() {
    let demo = Demo::new();
    let audio = demo.path("talk.mp3");
    tone_mp3(&audio, 3.0);
    let notes = demo.path("notes.md");
    std::fs::write(&notes, HOSTILE).unwrap();
    let guest = format!("{}|{}|{}", HOSTILE.replace('|', ""), "Role", "Agency");
    let out = demo.run(&[
        "episode".as_ref(),
        "add".as_ref(),
        "--title".as_ref(),
        HOSTILE.as_ref(),
        "--slug".as_ref(),
        "hostile".as_ref(),
        "--date".as_ref(),
        "2016-07-05".as_ref(),
        "--summary".as_ref(),
        HOSTILE.as_ref(),
        "--guest".as_ref(),
        guest.as_ref(),
        "--feed".as_ref(),
        "defusing-difficult-encounters".as_ref(),
        "--notes".as_ref(),
        notes.as_os_str(),
        "--audio".as_ref(),
        audio.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(&demo);
    assert_safe(&server, "hostile");
}
