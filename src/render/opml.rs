//! `/feeds.opml`: every public feed as an OPML 2.0 subscription list, written with quick-xml so that
//! any title is escaped correctly.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::feed_path;
use crate::access::{self, Credentials};
use crate::catalog::Catalog;

pub fn opml(catalog: &Catalog) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let io = "writing to a Vec cannot fail";
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect(io);
    let mut root = BytesStart::new("opml");
    root.push_attribute(("version", "2.0"));
    w.write_event(Event::Start(root)).expect(io);
    w.write_event(Event::Start(BytesStart::new("head")))
        .expect(io);
    w.create_element("title")
        .write_text_content(BytesText::new("Rollcall feeds"))
        .expect(io);
    w.write_event(Event::End(BytesEnd::new("head"))).expect(io);
    w.write_event(Event::Start(BytesStart::new("body")))
        .expect(io);
    for feed in access::visible_feeds(catalog, Credentials::Anonymous) {
        let xml_url = catalog.url(&feed_path(&feed.id));
        let html_url = catalog.url(&format!("/feeds/{}", feed.id));
        w.create_element("outline")
            .with_attributes([
                ("type", "rss"),
                ("text", feed.title.as_str()),
                ("title", feed.title.as_str()),
                ("xmlUrl", xml_url.as_str()),
                ("htmlUrl", html_url.as_str()),
            ])
            .write_empty()
            .expect(io);
    }
    w.write_event(Event::End(BytesEnd::new("body"))).expect(io);
    w.write_event(Event::End(BytesEnd::new("opml"))).expect(io);
    let mut out = w.into_inner();
    out.push(b'\n');
    out
}
