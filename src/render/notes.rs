//! Show notes: Markdown from `notes.md` to safe HTML, followed by the "Resources Mentioned in This
//! Podcast" list. Raw HTML in the Markdown is shown as text, and links may only use http, https or
//! mailto, so a note can never inject script into a feed reader or the website.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};

use crate::catalog::Episode;

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn safe_link(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    match lower.split_once(':') {
        // No scheme: a relative link or fragment.
        None => true,
        Some((scheme, _))
            if scheme.contains('/') || scheme.contains('#') || scheme.contains('?') =>
        {
            true
        }
        Some((scheme, _)) => matches!(scheme, "http" | "https" | "mailto"),
    }
}

/// Renders Markdown to HTML with raw HTML escaped and unsafe link schemes removed.
pub fn markdown_to_html(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_link(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::from("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_link(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::from("#"),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

/// The full show notes as HTML: the notes (or the summary when there are none), then the resources.
pub fn show_notes_html(ep: &Episode) -> String {
    let mut out = if ep.notes_markdown.trim().is_empty() {
        format!("<p>{}</p>\n", escape_html(&ep.summary))
    } else {
        markdown_to_html(&ep.notes_markdown)
    };
    out.push_str(&resources_html(ep));
    // Feed parsers trim element text; without trailing space the notes round-trip exactly.
    out.truncate(out.trim_end().len());
    out
}

/// The "Resources Mentioned in This Podcast" section, empty when there are none.
pub fn resources_html(ep: &Episode) -> String {
    if ep.resources.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h3>Resources Mentioned in This Podcast</h3>\n<ul>\n");
    for r in &ep.resources {
        out.push_str(&format!(
            "<li><a href=\"{}\">{}</a>",
            escape_html(&r.url),
            escape_html(&r.title)
        ));
        if let Some(note) = &r.note {
            out.push_str(&format!(" — {}", escape_html(note)));
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_in_markdown_is_shown_as_text() {
        let html = markdown_to_html("Hello <script>alert(1)</script> **world**");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<strong>world</strong>"), "{html}");
    }

    #[test]
    fn javascript_links_are_neutralised() {
        let html =
            markdown_to_html("[x](javascript:alert(1)) [y](https://example.org/) [z](#t=90)");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://example.org/\""), "{html}");
        assert!(html.contains("href=\"#t=90\""), "{html}");
    }

    #[test]
    fn escape_html_covers_attribute_quotes() {
        assert_eq!(escape_html("a&b<c>\"d'"), "a&amp;b&lt;c&gt;&quot;d&#39;");
    }
}
