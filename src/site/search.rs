//! The home page's search: every word of the query must appear in an episode's title, guests,
//! summary and show notes, or mentioned resources. Rendered on the server, so it works without
//! JavaScript, and only over the episodes whose pages the viewer may see.
//!
//! The text is folded to lower case once per snapshot ([`Index`]); a query then costs one
//! substring scan per word and episode.

use std::sync::OnceLock;

use crate::catalog::{Catalog, Episode};
use crate::render::notes::escape_html as escape;

/// Longest query read, in characters; the rest is ignored.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words a query is split into.
pub const MAX_WORDS: usize = 8;
/// Most results shown.
pub const MAX_RESULTS: usize = 50;

/// The searchable text of one episode, folded to lower case.
struct Doc {
    title: String,
    guests: String,
    notes: String,
    resources: String,
}

/// The searchable text of a catalog's released episodes, in [`Catalog::episodes`] order, made on
/// the first search of a snapshot.
#[derive(Default)]
pub struct Index {
    docs: OnceLock<Vec<Doc>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("built", &self.docs.get().is_some())
            .finish()
    }
}

fn doc(ep: &Episode) -> Doc {
    let mut guests = String::new();
    for g in &ep.guests {
        for part in [Some(&g.name), g.role.as_ref(), g.affiliation.as_ref()]
            .into_iter()
            .flatten()
        {
            guests.push_str(&part.to_lowercase());
            guests.push('\n');
        }
    }
    let mut resources = String::new();
    for r in &ep.resources {
        resources.push_str(&r.title.to_lowercase());
        resources.push('\n');
        if let Some(n) = &r.note {
            resources.push_str(&n.to_lowercase());
            resources.push('\n');
        }
    }
    Doc {
        title: ep.title.to_lowercase(),
        guests,
        notes: format!("{}\n{}", ep.summary, markdown_text(&ep.notes_markdown)).to_lowercase(),
        resources,
    }
}

/// A parsed query: its words, folded to lower case, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// What the visitor typed, trimmed and cut to [`MAX_QUERY_CHARS`], for the search box.
    pub text: String,
    pub words: Vec<String>,
}

impl Query {
    /// Reads `q` from a raw query string (`q=de-escalation+seattle`).
    pub fn from_query_string(raw: Option<&str>) -> Query {
        let q = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "q")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        Query::new(&q)
    }

    pub fn new(q: &str) -> Query {
        let text: String = q
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_QUERY_CHARS)
            .collect();
        let text = text.trim().to_owned();
        let mut words: Vec<String> = Vec::new();
        for w in text
            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .filter(|w| !w.is_empty())
        {
            let w = w.to_lowercase();
            if !words.contains(&w) && words.len() < MAX_WORDS {
                words.push(w);
            }
        }
        Query { text, words }
    }
}

/// Where a query's words were found in one episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`Catalog::episodes`].
    pub episode: usize,
    pub score: u32,
    /// The fields that hold at least one word: "title", "guests", "notes", "resources".
    pub matched: Vec<&'static str>,
}

impl Index {
    fn docs(&self, catalog: &Catalog) -> &[Doc] {
        self.docs
            .get_or_init(|| catalog.episodes.iter().map(|e| doc(e)).collect())
    }

    /// Episodes holding every word, best first: a word in the title counts most, then guests,
    /// then resources, then notes; ties go to the newer episode. `visible` says which episodes
    /// (by index) the viewer may see. Every hit is returned; the page shows [`MAX_RESULTS`].
    pub fn search(
        &self,
        catalog: &Catalog,
        query: &Query,
        visible: impl Fn(usize) -> bool,
    ) -> Vec<Hit> {
        if query.words.is_empty() {
            return Vec::new();
        }
        let mut hits = Vec::new();
        for (i, d) in self.docs(catalog).iter().enumerate() {
            let mut score = 0;
            let mut matched = Vec::new();
            let all = query.words.iter().all(|w| {
                let mut found = false;
                for (field, text, weight) in [
                    ("title", &d.title, 8),
                    ("guests", &d.guests, 4),
                    ("resources", &d.resources, 2),
                    ("notes", &d.notes, 1),
                ] {
                    if text.contains(w.as_str()) {
                        found = true;
                        score += weight;
                        if !matched.contains(&field) {
                            matched.push(field);
                        }
                    }
                }
                found
            });
            if all && visible(i) {
                hits.push(Hit {
                    episode: i,
                    score,
                    matched,
                });
            }
        }
        // Episodes are newest first already, and the sort is stable.
        hits.sort_by_key(|h| std::cmp::Reverse(h.score));
        hits
    }
}

/// The words of Markdown show notes, without markup or link targets.
pub fn markdown_text(md: &str) -> String {
    use pulldown_cmark::{Event, Parser};
    let mut out = String::with_capacity(md.len());
    for event in Parser::new(md) {
        match event {
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak | Event::End(_) if !out.ends_with(' ') => {
                out.push(' ')
            }
            _ => {}
        }
    }
    out.trim_end().to_owned()
}

/// A short piece of `text` around the first word found, HTML-escaped, with every word marked
/// `<mark>`. Falls back to the start of `text`.
pub fn snippet(text: &str, words: &[String], width: usize) -> String {
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths (rarely); mark only when it did not.
    let aligned = lower.len() == text.len();
    let first = words
        .iter()
        .filter_map(|w| lower.find(w.as_str()))
        .min()
        .filter(|_| aligned)
        .unwrap_or(0);
    let mut start = first.saturating_sub(width / 3);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    // Start at a word boundary.
    if start > 0 {
        if let Some(space) = text[start..first].find(' ') {
            start += space + 1;
        }
    }
    let mut end = (start + width).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    if end < text.len() {
        if let Some(space) = text[first.max(start)..end].rfind(' ') {
            end = first.max(start) + space;
        }
    }
    let piece = &text[start..end];
    let mut marks: Vec<(usize, usize)> = Vec::new();
    if aligned {
        let lower_piece = &lower[start..end];
        for w in words {
            let mut from = 0;
            while let Some(at) = lower_piece[from..].find(w.as_str()) {
                let s = from + at;
                marks.push((s, s + w.len()));
                from = s + w.len().max(1);
            }
        }
    }
    marks.sort_unstable();
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = 0;
    for (s, e) in marks {
        if s < at {
            continue;
        }
        out.push_str(&escape(&piece[at..s]));
        out.push_str("<mark>");
        out.push_str(&escape(&piece[s..e]));
        out.push_str("</mark>");
        at = e;
    }
    out.push_str(&escape(&piece[at..]));
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_fold_case_drop_duplicates_and_stop_at_the_limits() {
        let q = Query::from_query_string(Some("q=De-Escalation+SEATTLE+seattle&page=2"));
        assert_eq!(q.text, "De-Escalation SEATTLE seattle");
        assert_eq!(q.words, ["de-escalation", "seattle"]);
        let long = "word ".repeat(100);
        let q = Query::new(&long);
        assert!(q.text.chars().count() <= MAX_QUERY_CHARS);
        assert_eq!(q.words, ["word"]);
        let many: String = (0..20).map(|i| format!("w{i} ")).collect();
        assert_eq!(Query::new(&many).words.len(), MAX_WORDS);
        assert!(Query::from_query_string(None).words.is_empty());
        assert_eq!(Query::new("a\u{0}b").text, "ab");
    }

    #[test]
    fn snippets_escape_the_text_and_mark_every_word() {
        let s = snippet(
            "Officers <b>learn</b> de-escalation & more de-escalation",
            &["de-escalation".into()],
            200,
        );
        assert_eq!(
            s,
            "Officers &lt;b&gt;learn&lt;/b&gt; <mark>de-escalation</mark> &amp; more <mark>de-escalation</mark>"
        );
        let long = format!("{} needle {}", "hay ".repeat(100), "straw ".repeat(100));
        let s = snippet(&long, &["needle".into()], 60);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("<mark>needle</mark>"), "{s}");
        // Text whose lower case is longer than itself is shown unmarked, not cut mid-character.
        let s = snippet("İstanbul İstanbul", &["istanbul".into()], 10);
        assert!(!s.contains("<mark>"), "{s}");
    }
}
