//! Feed rendering from arbitrary metadata: whatever text the catalog accepts, the feed must be
//! well-formed XML 1.0 that reads back as that text.
//!
//! Input: text fields separated by 0xFF bytes (see `rollcall_fuzz::fields`); a missing field
//! keeps the starting catalog's value, and an empty optional one (notes, guest, role,
//! affiliation, resource, note, copyright) leaves it out. In order: episode title, summary, `notes.md`, guest name,
//! role, affiliation, resource title, resource note, feed title, description, author, owner
//! name, copyright, episode GUID, owner email. They are written, TOML-escaped, into the
//! episode's and the feed's files, the catalog is loaded (`TempCatalog::load_quick`, as in the
//! `catalog` target) and the feed rendered.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rollcall::catalog::strip_controls;
use rollcall::fuzzing::{
    read_xml, toml_string, xml_line_ends, CatalogFile, TempCatalog, FEED, SLUG,
};
use rollcall::render::notes::show_notes_html;

static CATALOG: LazyLock<TempCatalog> = LazyLock::new(rollcall_fuzz::temp_catalog);

fuzz_target!(|data: &[u8]| {
    let fields = rollcall_fuzz::fields(data);
    let field = |i: usize, default: &str| fields.get(i).cloned().unwrap_or_else(|| default.into());
    let opt = |i: usize| fields.get(i).filter(|f| !f.is_empty()).cloned();
    let title = field(0, "Fuzz episode");
    let summary = field(1, "One sentence.");
    let notes = opt(2);
    let guest = opt(3);
    let (role, affiliation) = (opt(4), opt(5));
    let resource = opt(6);
    let resource_note = opt(7);
    let feed_title = field(8, "Fuzz feed");
    let description = field(9, "A feed for the fuzz targets.");
    let author = field(10, "Rollcall");
    let owner = field(11, "Rollcall");
    let copyright = opt(12);
    let guid = field(13, "0b5f6c3e-7d4a-4c1e-9a57-2f1d3c9e8b01");
    let email = field(14, "podcasts@example.org");

    let mut episode = format!(
        "guid = {}\ntitle = {}\npublished = 2016-06-30T09:00:00-04:00\nsummary = {}\nfeeds = [\"{FEED}\"]\n",
        toml_string(&guid),
        toml_string(&title),
        toml_string(&summary),
    );
    if let Some(name) = &guest {
        episode.push_str(&format!("\n[[guests]]\nname = {}\n", toml_string(name)));
        for (key, value) in [("role", &role), ("affiliation", &affiliation)] {
            if let Some(v) = value {
                episode.push_str(&format!("{key} = {}\n", toml_string(v)));
            }
        }
    }
    if let Some(t) = &resource {
        episode.push_str(&format!(
            "\n[[resources]]\ntitle = {}\nurl = \"https://example.org/\"\n",
            toml_string(t)
        ));
        if let Some(n) = &resource_note {
            episode.push_str(&format!("note = {}\n", toml_string(n)));
        }
    }
    let mut feed = format!(
        "title = {}\ndescription = {}\nauthor = {}\nlanguage = \"en-us\"\ncategory = \"Government\"\nartwork = \"{FEED}.jpg\"\nepisodes = \"tagged\"\n",
        toml_string(&feed_title),
        toml_string(&description),
        toml_string(&author),
    );
    if let Some(c) = &copyright {
        feed.push_str(&format!("copyright = {}\n", toml_string(c)));
    }
    feed.push_str(&format!(
        "\n[owner]\nname = {}\nemail = {}\n",
        toml_string(&owner),
        toml_string(&email)
    ));

    let mut files = vec![
        (CatalogFile::EpisodeToml, episode.as_bytes()),
        (CatalogFile::FeedToml, feed.as_bytes()),
    ];
    if let Some(n) = &notes {
        files.push((CatalogFile::Notes, n.as_bytes()));
    }
    CATALOG.write(&files);
    // Text the catalog refuses (a blank title, an email without '@') renders nothing.
    let Ok(catalog) = CATALOG.load_quick() else {
        return;
    };

    // The loader keeps the text, less the characters XML forbids.
    let ep = catalog.episode(SLUG).expect("the episode is released");
    let f = catalog.feed(FEED).expect("the feed loads");
    assert_eq!(ep.title, strip_controls(&title));
    assert_eq!(ep.summary, strip_controls(&summary));
    assert_eq!(f.title, strip_controls(&feed_title));
    assert_eq!(f.description, strip_controls(&description));
    assert_eq!(f.author, strip_controls(&author));
    assert_eq!(f.owner.name, strip_controls(&owner));
    if let Some(name) = &guest {
        assert_eq!(ep.guests[0].name, strip_controls(name));
    }

    let xml = rollcall::render::render_feed(&catalog, f);
    let values = read_xml(&xml).unwrap_or_else(|e| {
        panic!(
            "the feed is not well-formed XML: {e}\n{}",
            String::from_utf8_lossy(&xml)
        )
    });
    let expect = |path: &str, want: &str| {
        let got = values.one(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, xml_line_ends(want), "{path} reads back differently");
    };
    expect("rss/channel/title", &f.title);
    expect("rss/channel/image/title", &f.title);
    expect("rss/channel/description", &f.description);
    expect("rss/channel/itunes:author", &f.author);
    expect("rss/channel/itunes:summary", &f.description);
    expect("rss/channel/itunes:owner/itunes:name", &f.owner.name);
    expect("rss/channel/itunes:owner/itunes:email", &f.owner.email);
    match &f.copyright {
        Some(c) => expect("rss/channel/copyright", c),
        None => assert!(values.all("rss/channel/copyright").is_empty()),
    }
    expect("rss/channel/item/title", &ep.title);
    expect("rss/channel/item/guid", &ep.guid);
    expect("rss/channel/item/itunes:summary", &ep.summary);
    let html = show_notes_html(ep);
    expect("rss/channel/item/description", &html);
    expect("rss/channel/item/content:encoded", &html);
    let persons: Vec<String> = ep.guests.iter().map(|g| xml_line_ends(&g.name)).collect();
    assert_eq!(values.all("rss/channel/item/podcast:person"), persons);
});
