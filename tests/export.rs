//! `rollcall build --out DIR` writes every public feed and exactly the files its URLs name.

mod common;

use common::{Demo, PUBLIC_URL};

#[test]
fn build_writes_feeds_and_the_media_their_urls_name() {
    let demo = Demo::new();
    demo.edit(
        "feeds/spotlight-on-safety.toml",
        "access = \"public\"",
        "access = \"members\"",
    );
    let out = demo.path("public");
    let run = demo.run(&["build".as_ref(), "--out".as_ref(), out.as_os_str()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).starts_with("wrote 1 feeds and 8 media files"));
    assert!(
        !out.join("feeds/spotlight-on-safety.xml").exists(),
        "members-only feeds stay out of a static export"
    );
    let xml = std::fs::read(out.join("feeds/defusing-difficult-encounters.xml")).unwrap();
    let ch = rss::Channel::read_from(&xml[..]).unwrap();
    let catalog = demo.load().unwrap();
    for item in &ch.items {
        let enc = item.enclosure.as_ref().unwrap();
        let rel = enc
            .url
            .strip_prefix(PUBLIC_URL)
            .unwrap()
            .trim_start_matches('/');
        let exported = std::fs::read(out.join(rel)).unwrap();
        assert_eq!(exported.len().to_string(), enc.length);
        let ep = catalog
            .episodes
            .iter()
            .find(|e| e.audio.url_path == format!("/{rel}"))
            .unwrap();
        assert_eq!(exported, std::fs::read(&ep.audio.path).unwrap());
    }
    let art = ch.itunes_ext.unwrap().image.unwrap();
    assert!(out
        .join(
            art.strip_prefix(PUBLIC_URL)
                .unwrap()
                .trim_start_matches('/')
        )
        .is_file());
    let opml = std::fs::read_to_string(out.join("feeds.opml")).unwrap();
    assert!(opml.contains(&format!(
        "xmlUrl=\"{PUBLIC_URL}/feeds/defusing-difficult-encounters.xml\""
    )));
    assert!(!opml.contains("spotlight-on-safety.xml"));
}
