//! Renders feeds, parses them back with the rss crate's parser (and quick-xml for well-formedness),
//! and compares every field with the catalog model.

mod common;

use common::{Demo, PUBLIC_URL};
use rollcall::catalog::{Catalog, Feed};
use rollcall::render::{notes::show_notes_html, podcast_guid, render_feed};
use rss::Channel;

fn parse(xml: &[u8]) -> Channel {
    // quick-xml in strict mode: every tag must close and every entity be known.
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "feed is not well-formed XML at {}: {e}",
                reader.buffer_position()
            ),
        }
        buf.clear();
    }
    Channel::read_from(xml).expect("the rss crate parses the feed")
}

fn ext<'a>(
    map: &'a rss::extension::ExtensionMap,
    prefix: &str,
    name: &str,
) -> Vec<&'a rss::extension::Extension> {
    map.get(prefix)
        .and_then(|m| m.get(name))
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

/// Compares a parsed channel with the model, field by field.
fn assert_roundtrip(catalog: &Catalog, feed: &Feed) {
    let xml = render_feed(catalog, feed);
    let ch = parse(&xml);
    let self_url = format!("{PUBLIC_URL}/feeds/{}.xml", feed.id);
    assert_eq!(ch.title, feed.title);
    assert_eq!(ch.description, feed.description);
    assert_eq!(ch.language.as_deref(), Some(feed.language.as_str()));
    for (prefix, uri) in [
        ("itunes", "http://www.itunes.com/dtds/podcast-1.0.dtd"),
        ("podcast", "https://podcastindex.org/namespace/1.0"),
        ("content", "http://purl.org/rss/1.0/modules/content/"),
        ("atom", "http://www.w3.org/2005/Atom"),
    ] {
        assert_eq!(
            ch.namespaces.get(prefix).map(String::as_str),
            Some(uri),
            "xmlns:{prefix}"
        );
    }
    let atom = ext(&ch.extensions, "atom", "link");
    assert_eq!(atom.len(), 1);
    assert_eq!(atom[0].attrs["rel"], "self");
    assert_eq!(atom[0].attrs["href"], self_url);
    let guid = ext(&ch.extensions, "podcast", "guid");
    assert_eq!(
        guid[0].value.as_deref(),
        Some(podcast_guid(&self_url).as_str())
    );
    let locked = ext(&ch.extensions, "podcast", "locked");
    assert_eq!(locked[0].value.as_deref(), Some("yes"));
    assert_eq!(locked[0].attrs["owner"], feed.owner.email);

    let it = ch.itunes_ext.as_ref().expect("itunes channel tags");
    assert_eq!(it.author.as_deref(), Some(feed.author.as_str()));
    assert_eq!(
        it.image.as_deref(),
        Some(format!("{PUBLIC_URL}{}", feed.artwork.url_path).as_str())
    );
    assert_eq!(it.categories[0].text, feed.category);
    assert_eq!(
        it.explicit.as_deref(),
        Some(if feed.explicit { "true" } else { "false" })
    );
    let owner = it.owner.as_ref().unwrap();
    assert_eq!(owner.name.as_deref(), Some(feed.owner.name.as_str()));
    assert_eq!(owner.email.as_deref(), Some(feed.owner.email.as_str()));

    let episodes: Vec<_> = catalog.feed_episodes(feed).collect();
    assert_eq!(ch.items.len(), episodes.len());
    for (item, ep) in ch.items.iter().zip(&episodes) {
        assert_eq!(item.title.as_deref(), Some(ep.title.as_str()));
        let g = item.guid.as_ref().unwrap();
        assert_eq!(g.value, ep.guid);
        assert!(!g.permalink);
        let date = chrono::DateTime::parse_from_rfc2822(item.pub_date.as_deref().unwrap()).unwrap();
        assert_eq!(date, ep.published);
        let enc = item.enclosure.as_ref().unwrap();
        assert_eq!(enc.url, format!("{PUBLIC_URL}{}", ep.audio.url_path));
        assert_eq!(
            enc.length,
            std::fs::metadata(&ep.audio.path).unwrap().len().to_string()
        );
        assert_eq!(enc.mime_type, ep.audio.mime);
        let notes = show_notes_html(ep);
        assert_eq!(item.content.as_deref(), Some(notes.as_str()));
        assert_eq!(item.description.as_deref(), Some(notes.as_str()));
        let iext = item.itunes_ext.as_ref().unwrap();
        assert_eq!(
            iext.duration.as_deref(),
            Some(ep.duration_secs().to_string().as_str())
        );
        let people = ext(&item.extensions, "podcast", "person");
        let names: Vec<_> = people.iter().map(|p| p.value.clone().unwrap()).collect();
        let want: Vec<_> = ep.guests.iter().map(|g| g.name.clone()).collect();
        assert_eq!(names, want);
        assert!(people.iter().all(|p| p.attrs["role"] == "guest"));
        assert_eq!(
            ext(&item.extensions, "podcast", "transcript").len(),
            usize::from(ep.transcript.is_some())
        );
        assert_eq!(
            ext(&item.extensions, "podcast", "chapters").len(),
            usize::from(ep.chapters.is_some())
        );
    }
    // Newest first.
    assert!(episodes
        .windows(2)
        .all(|w| w[0].published >= w[1].published));
}

#[test]
fn demo_catalog_round_trips() {
    let demo = Demo::new();
    let catalog = demo.load().unwrap();
    assert_eq!(catalog.feeds.len(), 3);
    for feed in &catalog.feeds {
        assert_roundtrip(&catalog, feed);
    }
    let theme = catalog.feed("defusing-difficult-encounters").unwrap();
    let titles: Vec<_> = catalog
        .feed_episodes(theme)
        .map(|e| e.title.as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Behavioral Response to Stress and Fear",
            "Defining De-Escalation"
        ]
    );
    let xml = String::from_utf8(render_feed(&catalog, theme)).unwrap();
    assert!(xml.contains("Resources Mentioned in This Podcast"));
    assert!(
        xml.contains("<podcast:person group=\"cast\" role=\"guest\">Mark Sawa</podcast:person>")
    );
    assert!(xml
        .contains("<podcast:person group=\"cast\" role=\"guest\">Eric Pisconski</podcast:person>"));
}

#[test]
fn adversarial_text_stays_well_formed_and_round_trips() {
    let demo = Demo::new();
    let ep = "episodes/defining-de-escalation/episode.toml";
    let nasty = "Fish & <Chips> ]]> \"quoted\" 'single' \u{1b}[31mred\u{0} — ünïcødé 🚓";
    let clean = "Fish & <Chips> ]]> \"quoted\" 'single' [31mred — ünïcødé 🚓";
    demo.edit(
        ep,
        "title = \"Defining De-Escalation\"",
        &format!("title = {}", toml::Value::String(nasty.into())),
    );
    demo.edit(
        ep,
        "title = \"Training For",
        "title = \"]]> <b>&amp; Training For",
    );
    demo.write(
        "episodes/defining-de-escalation/notes.md",
        "Ends a CDATA: ]]> and opens a tag <script>alert(1)</script> & more.\n\n`code ]]>`\n",
    );
    demo.write(
        "episodes/defining-de-escalation/transcript.vtt",
        "WEBVTT\n\n00:00.000 --> 00:02.000\nHello\n",
    );
    demo.write(
        "episodes/defining-de-escalation/chapters.json",
        r#"{"version":"1.2.0","chapters":[{"startTime":0,"title":"Intro"},{"startTime":10,"title":"Seattle"}]}"#,
    );
    let catalog = demo.load().unwrap();
    let e = catalog.episode("defining-de-escalation").unwrap();
    assert_eq!(
        e.title, clean,
        "control characters are stripped, everything else kept"
    );
    for feed in &catalog.feeds {
        assert_roundtrip(&catalog, feed);
    }
    let xml = String::from_utf8(render_feed(
        &catalog,
        catalog.feed("spotlight-on-safety").unwrap(),
    ))
    .unwrap();
    assert!(
        !xml.contains("<script>"),
        "raw HTML from notes must not reach the feed unescaped"
    );
    assert!(xml.contains("type=\"text/vtt\""));
    assert!(xml.contains("type=\"application/json+chapters\""));
}

#[test]
fn rendering_is_deterministic() {
    let demo = Demo::new();
    let a = demo.load().unwrap();
    let b = demo.load().unwrap();
    for (fa, fb) in a.feeds.iter().zip(&b.feeds) {
        assert_eq!(render_feed(&a, fa), render_feed(&b, fb));
    }
    // A second copy in another folder, with other mtimes, renders the same bytes too.
    let other = Demo::new();
    let c = other.load().unwrap();
    assert_eq!(render_feed(&a, &a.feeds[0]), render_feed(&c, &c.feeds[0]));
}

#[test]
fn members_feed_is_blocked_from_directories() {
    let demo = Demo::new();
    demo.edit(
        "feeds/spotlight-on-safety.toml",
        "access = \"public\"",
        "access = \"members\"",
    );
    let catalog = demo.load().unwrap();
    let members = catalog.feed("spotlight-on-safety").unwrap();
    let ch = parse(&render_feed(&catalog, members));
    assert_eq!(ch.itunes_ext.unwrap().block.as_deref(), Some("Yes"));
    assert_eq!(
        ext(&ch.extensions, "podcast", "block")[0].value.as_deref(),
        Some("yes")
    );
    let public = catalog.feed("defusing-difficult-encounters").unwrap();
    let ch = parse(&render_feed(&catalog, public));
    assert!(ch.itunes_ext.unwrap().block.is_none());
    assert!(ext(&ch.extensions, "podcast", "block").is_empty());
}

#[test]
fn reloading_with_a_warm_cache_sees_every_kind_of_edit() {
    use rollcall::catalog::{load, MeasureCache, Source};
    let demo = Demo::new();
    let source = Source::from(&demo.config());
    let cache = MeasureCache::default();
    let slug = "defining-de-escalation";
    let first = load(&source, &cache).unwrap();
    assert_eq!(
        load(&source, &cache).unwrap(),
        first,
        "an unchanged catalog reloads identically"
    );

    demo.write(
        &format!("episodes/{slug}/notes.md"),
        "Only the notes changed.\n",
    );
    let c = load(&source, &cache).unwrap();
    assert_eq!(
        c.episode(slug).unwrap().notes_markdown,
        "Only the notes changed.\n"
    );

    demo.write(
        &format!("episodes/{slug}/transcript.vtt"),
        "WEBVTT\n\n00:00.000 --> 00:01.000\nHi\n",
    );
    let c = load(&source, &cache).unwrap();
    assert!(
        c.episode(slug).unwrap().transcript.is_some(),
        "a new file in the folder is noticed"
    );

    let audio = demo.path(&format!("episodes/{slug}/audio.mp3"));
    let other = demo.path("episodes/behavioral-response-to-stress-and-fear/audio.mp3");
    std::fs::copy(&other, &audio).unwrap();
    let c = load(&source, &cache).unwrap();
    assert_eq!(
        c.episode(slug).unwrap().audio.size,
        std::fs::metadata(&other).unwrap().len(),
        "replaced audio is re-measured"
    );

    demo.edit(
        &format!("episodes/{slug}/episode.toml"),
        "title = \"Defining De-Escalation\"",
        "title = \"Renamed\"",
    );
    assert_eq!(
        load(&source, &cache).unwrap().episode(slug).unwrap().title,
        "Renamed"
    );
}

#[test]
fn cached_items_render_the_same_bytes_as_a_fresh_render() {
    use rollcall::render::{render_feed_with, ItemCache};
    let demo = Demo::new();
    let cache = ItemCache::default();
    let before = demo.load().unwrap();
    let feed = before.feed("spotlight-on-safety").unwrap();
    let first = render_feed_with(&before, feed, &cache);
    assert_eq!(first.xml.to_bytes(), render_feed(&before, feed));
    assert_eq!(
        render_feed_with(&before, feed, &cache).hash,
        first.hash,
        "same bytes, same hash"
    );

    demo.edit(
        "episodes/defining-de-escalation/episode.toml",
        "title = \"Defining De-Escalation\"",
        "title = \"Edited\"",
    );
    let after = demo.load().unwrap();
    let feed = after.feed("spotlight-on-safety").unwrap();
    let second = render_feed_with(&after, feed, &cache);
    assert_eq!(
        second.xml.to_bytes(),
        render_feed(&after, feed),
        "a stale cached item would differ here"
    );
    assert!(String::from_utf8_lossy(&second.xml.to_bytes()).contains("<title>Edited</title>"));
    assert_ne!(second.hash, first.hash);
}
