//! Personal feeds: a members feed rendered once per snapshot as a template whose URL prefixes
//! are holes, filled with one officer's `/p/<token>` prefix per request.
//!
//! A members feed is rendered like any other; then every URL that must carry the officer's token
//! (enclosures, transcripts, chapters, images: everything under `/media/` and `/artwork/`, and the
//! feed's own `atom:link rel="self"`, which apps may re-subscribe to) is split right after
//! `public_url`, leaving a hole there. A request copies the pieces and the officer's prefix into
//! quarter-MiB chunks as the response goes out, with the exact length known beforehand; nothing
//! is rendered per request. Its gzip is compressed once per snapshot for every officer: the text
//! is compressed with a placeholder in the holes, and [`first_unaligned`] reads the result back
//! (see [`super::inflate`]) to check that each hole is copied, whole and aligned, from an earlier
//! hole, so the compressed bytes are right whatever the prefix. Only a hole that is not (the
//! first) spells the prefix out, as a block of its own between the shared runs. Compressing in
//! groups of pieces keeps a reload's work to the groups that changed (see [`super::gzip`] for
//! the stitching). The page links (`<link>`) stay public: the website has its own sign-in.

use bytes::Bytes;

use crate::rope::Rope;

/// A rendered feed with holes where a personal prefix goes.
#[derive(Debug)]
pub struct Template {
    /// Text, with a hole after every piece but the last.
    pieces: Vec<Bytes>,
    text_len: usize,
    /// The feed compressed in groups of [`GROUP`] pieces, each keyed by a hash of its text and
    /// the window before it, for reuse by the next snapshot's template.
    groups: Vec<Group>,
    /// The gzip body between the holes that must spell the prefix out (the first, and any the
    /// compressed text does not copy from the hole before): the groups' bytes laid end to end.
    /// A personal gzip is these runs with the prefix's fragment between them, sent as they are:
    /// no per-request copy of the feed.
    runs: Vec<Bytes>,
    /// The CRC-32 of the filled feed, for any prefix, in constant time.
    crc: super::gzip::HoleCrc,
    /// The rendered feed's content hash (32 hex digits): with the token, it makes the ETag.
    pub hash: String,
    /// When these bytes were first served; kept across reloads that do not change them.
    pub last_modified: std::time::SystemTime,
    /// `last_modified` as an HTTP date, formatted on first use: every 304 poll sends it.
    last_modified_value: std::sync::OnceLock<axum::http::HeaderValue>,
}

/// XML-escapes `s` as the rss writer does in attribute values and text.
fn escaped(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

impl Template {
    /// The `Last-Modified` value. Set `last_modified` before the first call.
    pub fn last_modified_value(&self) -> &axum::http::HeaderValue {
        self.last_modified_value.get_or_init(|| {
            axum::http::HeaderValue::from_str(&httpdate::fmt_http_date(self.last_modified))
                .expect("an HTTP date")
        })
    }

    /// Cuts `xml` (a members feed rendered with `public_url`, whose own path is `self_path`)
    /// after `public_url` wherever a personal prefix belongs, and compresses the pieces, reusing
    /// what `previous` (the last snapshot's template of this feed) compressed.
    pub fn new(
        xml: &Rope,
        public_url: &str,
        self_path: &str,
        hash: String,
        previous: Option<&Template>,
    ) -> Template {
        let base = escaped(public_url);
        let followers = [
            "/media/".to_owned(),
            "/artwork/".to_owned(),
            escaped(self_path),
        ];
        let mut pieces = Vec::new();
        let mut current: Vec<Bytes> = Vec::new();
        for part in xml.parts() {
            let mut start = 0;
            let mut from = 0;
            while let Some(at) = find(&part[from..], base.as_bytes()).map(|i| i + from) {
                let after = at + base.len();
                let rest = &part[after..];
                if followers.iter().any(|f| rest.starts_with(f.as_bytes())) {
                    current.push(part.slice(start..after));
                    pieces.push(join(std::mem::take(&mut current)));
                    start = after;
                }
                from = after;
            }
            if start < part.len() {
                current.push(part.slice(start..));
            }
        }
        pieces.push(join(current));
        let text_len = pieces.iter().map(Bytes::len).sum();
        let groups = compress_groups(&pieces, previous);
        let crc = super::gzip::HoleCrc::new(&pieces, PREFIX_LEN);
        // An unchanged feed's groups are all the previous template's: so are its runs.
        let unchanged = previous.filter(|p| {
            p.groups.len() == groups.len()
                && p.groups
                    .iter()
                    .zip(&groups)
                    .all(|(a, b)| std::sync::Arc::ptr_eq(&a.parts, &b.parts))
        });
        let runs = match unchanged {
            Some(p) => p.runs.clone(),
            None => runs_of(&groups),
        };
        Template {
            pieces,
            text_len,
            groups,
            runs,
            crc,
            hash,
            last_modified: super::encoded::now_seconds(),
            last_modified_value: std::sync::OnceLock::new(),
        }
    }

    /// How many holes there are.
    pub fn holes(&self) -> usize {
        self.pieces.len() - 1
    }

    /// The feed's length with `prefix_len` bytes in every hole.
    pub fn len_with(&self, prefix_len: usize) -> usize {
        self.text_len + self.holes() * prefix_len
    }

    /// The feed with `prefix` in every hole, as chunks of about `chunk` bytes: the copy is
    /// made as the response goes out, in bounded memory, however large the feed.
    pub fn chunks(self: &std::sync::Arc<Self>, prefix: Bytes, chunk: usize) -> Chunks {
        Chunks {
            template: std::sync::Arc::clone(self),
            prefix,
            next: 0,
            chunk,
        }
    }

    /// The feed with `prefix` in every hole, in one buffer (what the chunks add up to).
    #[cfg(test)]
    pub fn fill(&self, prefix: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(self.len_with(prefix.len()));
        let (last, rest) = self.pieces.split_last().expect("at least one piece");
        for piece in rest {
            out.extend_from_slice(piece);
            out.extend_from_slice(prefix);
        }
        out.extend_from_slice(last);
        out.into()
    }
}

/// The length of every personal prefix: `/p/` and 64 hex digits.
pub const PREFIX_LEN: usize = 67;

/// Pieces compressed together, and so kept and reused together. A group's text is about
/// 130 KB for a feed of typical items: large enough that its deflate blocks cost little, small
/// enough that a reload recompresses little more than the items that changed.
const GROUP: usize = 32;

/// What the prefix is, while a template is compressed: bytes that valid UTF-8 (every rendered
/// feed) never holds, so the compressor can copy a hole only from another hole; and in an order
/// in which no two neighbours come twice, so only from the same place in it. Then the compressed
/// bytes are right for every prefix, which [`first_unaligned`] checks anyway.
static PLACEHOLDER: std::sync::LazyLock<[u8; PREFIX_LEN]> = std::sync::LazyLock::new(|| {
    let alphabet: Vec<u8> = [0xC0, 0xC1].into_iter().chain(0xF5..=0xFF).collect();
    // Around the 13 bytes by steps of 1 (13 pairs, back to the first), then of 2, and so on:
    // pairs (a, a + step) for different steps never coincide.
    let mut out = [0u8; PREFIX_LEN];
    let mut at = 0;
    for (j, b) in out.iter_mut().enumerate() {
        *b = alphabet[at];
        at = (at + j / alphabet.len() + 1) % alphabet.len();
    }
    out
});

/// Whether `bytes` hold any byte the placeholder is made of.
fn holds_placeholder_bytes(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == 0xC0 || b == 0xC1 || b >= 0xF5)
}

/// One part of a group's gzip body.
#[derive(Debug)]
enum Part {
    /// Deflate blocks (or a repeat block) that are the same for every officer.
    Shared(Bytes),
    /// A hole that must spell the prefix out: the prefix's own fragment goes here.
    Spell,
}

#[derive(Debug)]
struct Group {
    key: [u8; 32],
    parts: std::sync::Arc<[Part]>,
}

/// Unit `i` is the hole before piece `i` (for `i > 0`) and piece `i`. The text of units
/// `from..=to` with the placeholder in the holes, leaving out unit `from`'s hole unless `lead`;
/// and each hole's offset in it, with its unit.
fn unit_text(
    pieces: &[Bytes],
    from: usize,
    to: usize,
    lead: bool,
) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut text = Vec::new();
    let mut holes = Vec::new();
    for (i, piece) in pieces.iter().enumerate().take(to + 1).skip(from) {
        if i > 0 && (i > from || lead) {
            holes.push((text.len(), i));
            text.extend_from_slice(&*PLACEHOLDER);
        }
        text.extend_from_slice(piece);
    }
    (text, holes)
}

/// The text before unit `from` (before its hole when `lead`, after it otherwise), its last
/// [`super::gzip::WINDOW`] bytes at most, with the placeholder in the holes; and where each hole
/// in it starts (below zero for one the window cuts).
fn window_before(pieces: &[Bytes], from: usize, lead: bool) -> (Vec<u8>, Vec<i64>) {
    let window = super::gzip::WINDOW;
    // Walk back until the window is full, then lay the parts out forwards.
    let mut parts: Vec<(&[u8], bool)> = Vec::new();
    let mut have = 0;
    if from > 0 && !lead {
        parts.push((&PLACEHOLDER[..], true));
        have += PREFIX_LEN;
    }
    let mut i = from;
    while i > 0 && have < window {
        i -= 1;
        parts.push((&pieces[i][..], false));
        have += pieces[i].len();
        if i > 0 && have < window {
            parts.push((&PLACEHOLDER[..], true));
            have += PREFIX_LEN;
        }
    }
    let cut = have.saturating_sub(window) as i64;
    let mut text = Vec::with_capacity(have);
    let mut holes = Vec::new();
    for (bytes, hole) in parts.into_iter().rev() {
        if hole {
            holes.push(text.len() as i64 - cut);
        }
        text.extend_from_slice(bytes);
    }
    (text.split_off(cut as usize), holes)
}

/// The first hole of `holes` (offsets in `text`, which followed `window` with `window_holes`)
/// that the deflate blocks `z` of `text` do not copy whole and aligned from another hole, by its
/// index in `holes`: a hole spelled out as literals, or copied from text or from elsewhere in a
/// hole. `None` when every hole is copied right, so that `z` holds for any prefix.
fn first_unaligned(
    window: &[u8],
    window_holes: &[i64],
    holes: &[(usize, usize)],
    z: &[u8],
) -> Option<usize> {
    use super::inflate::Token;
    if holes.is_empty() {
        return None;
    }
    let base = window.len() as i64;
    let starts: Vec<i64> = window_holes
        .iter()
        .copied()
        .chain(holes.iter().map(|&(at, _)| base + at as i64))
        .collect();
    let hole = PREFIX_LEN as i64;
    let (mut pos, mut next, mut bad) = (base, 0usize, None);
    let walked = super::inflate::tokens(z, |t| {
        if bad.is_some() {
            return;
        }
        let len = match t {
            Token::Literal(_) => 1,
            Token::Copy { len, .. } => i64::from(len),
        };
        // Holes this token's bytes fall in.
        while next < holes.len() && base + (holes[next].0 as i64) + hole <= pos {
            next += 1;
        }
        let mut k = next;
        while k < holes.len() && base + (holes[k].0 as i64) < pos + len {
            let start = base + holes[k].0 as i64;
            let aligned = match t {
                Token::Literal(_) => false,
                // Aligned: the bytes it copies into this hole come from the same place in
                // another hole, so that hole starts `dist` before this one.
                Token::Copy { dist, .. } => {
                    starts.binary_search(&(start - i64::from(dist))).is_ok()
                }
            };
            if !aligned {
                bad = Some(k);
                return;
            }
            k += 1;
        }
        pos += len;
    });
    match walked {
        Ok(()) => bad,
        // Cannot happen for our own compressor's output; if it did, spell the first hole out.
        Err(_) => Some(0),
    }
}

/// Whether no earlier hole is within deflate's reach of the hole before piece `unit`: it is the
/// first hole, or the piece before it is too long for a copy to reach back past it.
fn out_of_reach(pieces: &[Bytes], unit: usize) -> bool {
    unit < 2 || PREFIX_LEN + pieces[unit - 1].len() > super::gzip::WINDOW
}

/// The part for the hole before piece `unit` when the compressed text cannot copy it: a repeat
/// of the hole before it where that is within deflate's reach, or the prefix spelled out.
fn hole_part(pieces: &[Bytes], unit: usize) -> Part {
    if out_of_reach(pieces, unit) {
        return Part::Spell;
    }
    match super::gzip::repeat_block(PREFIX_LEN, PREFIX_LEN + pieces[unit - 1].len()) {
        Some(block) => Part::Shared(block),
        None => Part::Spell,
    }
}

#[cfg(test)]
thread_local! {
    /// Segments compressed by this thread, for tests that count the work.
    static COMPRESSIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Units `first..=last` compressed: as few segments as the holes allow, each one deflate run
/// after the window before it, cut before any hole it does not copy right.
fn compress_group(pieces: &[Bytes], first: usize, last: usize) -> Vec<Part> {
    let mut parts = Vec::new();
    if pieces[first..=last]
        .iter()
        .any(|p| holds_placeholder_bytes(p))
    {
        // Not UTF-8 (no rendered feed is): the placeholder's argument does not hold, so every
        // hole gets its own part and every piece its own deflate run.
        for unit in first..=last {
            if unit > 0 {
                parts.push(hole_part(pieces, unit));
            }
            let (window, _) = window_before(pieces, unit, false);
            parts.push(Part::Shared(super::gzip::deflate_after(
                &window,
                &pieces[unit],
            )));
        }
        return parts;
    }
    let (mut from, mut lead) = (first, first > 0);
    while from <= last {
        if lead && out_of_reach(pieces, from) {
            parts.push(Part::Spell);
            lead = false;
        }
        // A hole that no copy can reach is known before compressing: the segment ends before
        // it, instead of being compressed once to find that out (and again for each such hole
        // after it, which for a feed of long show notes made the work quadratic).
        let mut to = (from + 1..=last)
            .find(|&u| out_of_reach(pieces, u))
            .map_or(last, |u| u - 1);
        loop {
            let (window, window_holes) = window_before(pieces, from, lead);
            let (text, holes) = unit_text(pieces, from, to, lead);
            #[cfg(test)]
            COMPRESSIONS.with(|c| c.set(c.get() + 1));
            let z = super::gzip::deflate_after(&window, &text);
            match first_unaligned(&window, &window_holes, &holes, &z) {
                None => {
                    parts.push(Part::Shared(z));
                    (from, lead) = (to + 1, true);
                    break;
                }
                Some(k) if holes[k].1 == from => {
                    // The segment's own leading hole: it gets its own part.
                    parts.push(hole_part(pieces, from));
                    lead = false;
                    break;
                }
                // Compress again up to the hole before it; the hole leads the next segment.
                Some(k) => to = holes[k].1 - 1,
            }
        }
    }
    parts
}

/// Compresses `pieces` (a hole after each but the last) group by group, taking from `previous`
/// every group whose text and window are unchanged.
fn compress_groups(pieces: &[Bytes], previous: Option<&Template>) -> Vec<Group> {
    use sha2::{Digest, Sha256};
    let reuse: std::collections::HashMap<[u8; 32], &std::sync::Arc<[Part]>> = previous
        .map(|p| p.groups.iter().map(|g| (g.key, &g.parts)).collect())
        .unwrap_or_default();
    (0..pieces.len())
        .step_by(GROUP)
        .map(|first| {
            let last = (first + GROUP).min(pieces.len()) - 1;
            let (window, _) = window_before(pieces, first, first > 0);
            let (text, _) = unit_text(pieces, first, last, first > 0);
            let mut h = Sha256::new();
            h.update((window.len() as u64).to_le_bytes());
            h.update(&window);
            h.update(&text);
            let key: [u8; 32] = h.finalize().into();
            let parts = match reuse.get(&key) {
                Some(parts) => std::sync::Arc::clone(parts),
                None => compress_group(pieces, first, last).into(),
            };
            Group { key, parts }
        })
        .collect()
}

/// The gzip body's runs: the groups' shared parts laid end to end, cut at every spelled hole.
fn runs_of(groups: &[Group]) -> Vec<Bytes> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for part in groups.iter().flat_map(|g| g.parts.iter()) {
        match part {
            Part::Shared(bytes) => run.extend_from_slice(bytes),
            Part::Spell => runs.push(Bytes::from(std::mem::take(&mut run))),
        }
    }
    runs.push(Bytes::from(run));
    runs
}

impl Template {
    /// The gzip of the feed with `prefix` (of [`PREFIX_LEN`] bytes) in every hole, as frames
    /// (see [`GzipChunks`]), and its exact length. Only the prefix is encoded per request, and
    /// only where a hole spells it out (the first, and any the compressed text does not copy).
    pub fn gzip_chunks(self: &std::sync::Arc<Self>, prefix: Bytes) -> (GzipChunks, usize) {
        assert_eq!(
            prefix.len(),
            PREFIX_LEN,
            "a personal prefix is /p/ and 64 hex digits"
        );
        let prefix_z = super::gzip::literal_block(&prefix);
        let len = 10
            + self.runs.iter().map(Bytes::len).sum::<usize>()
            + (self.runs.len() - 1) * prefix_z.len()
            + 10;
        let (crc, plain_len) = self.crc.with(&prefix);
        let chunks = GzipChunks {
            template: std::sync::Arc::clone(self),
            prefix_z,
            next: 0,
            header: true,
            trailer: Some(super::gzip::trailer(crc, plain_len)),
        };
        (chunks, len)
    }
}

/// The frames of a personal feed's gzip, in order: the header, then each run with the prefix's
/// fragment before every run but the first, then the trailer.
pub struct GzipChunks {
    template: std::sync::Arc<Template>,
    prefix_z: Bytes,
    /// The next run; the prefix's fragment goes before it when it is not the first.
    next: usize,
    header: bool,
    /// Sent after the last run.
    trailer: Option<Bytes>,
}

impl Iterator for GzipChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let runs = &self.template.runs;
        if std::mem::take(&mut self.header) {
            return Some(super::gzip::Stitcher::header());
        }
        match self.next {
            n if n >= 2 * runs.len() - 1 => self.trailer.take(),
            n if n % 2 == 0 => {
                self.next += 1;
                Some(runs[n / 2].clone())
            }
            _ => {
                self.next += 1;
                Some(self.prefix_z.clone())
            }
        }
    }
}

/// The chunks of a filled template, in order.
pub struct Chunks {
    template: std::sync::Arc<Template>,
    prefix: Bytes,
    /// The next piece to copy.
    next: usize,
    chunk: usize,
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let pieces = &self.template.pieces;
        if self.next >= pieces.len() {
            return None;
        }
        let mut out = Vec::with_capacity(self.chunk + self.prefix.len() + 4096);
        while self.next < pieces.len() && out.len() < self.chunk {
            out.extend_from_slice(&pieces[self.next]);
            if self.next + 1 < pieces.len() {
                out.extend_from_slice(&self.prefix);
            }
            self.next += 1;
        }
        Some(out.into())
    }
}

/// One piece from consecutive slices (usually one, so no copy).
fn join(mut parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().expect("one part"),
        _ => parts.concat().into(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(parts: &[&str]) -> Rope {
        Rope::from_parts(parts.iter().map(|p| Bytes::from(p.to_string())).collect())
    }

    #[test]
    fn holes_go_after_public_url_before_media_artwork_and_self() {
        let xml = rope(&[
            r#"<atom:link href="https://x.org/feeds/m.xml" rel="self"/><link>https://x.org/feeds/m</link>"#,
            r#"<enclosure url="https://x.org/media/a/1/a.mp3"/><link>https://x.org/episodes/a</link>"#,
            r#"<itunes:image href="https://x.org/artwork/m/1/c.jpg"/>"#,
        ]);
        let t = Template::new(&xml, "https://x.org", "/feeds/m.xml", "h".into(), None);
        assert_eq!(t.holes(), 3);
        let filled = t.fill(b"/p/TOKEN");
        let text = std::str::from_utf8(&filled).unwrap();
        assert!(text.contains(r#"href="https://x.org/p/TOKEN/feeds/m.xml""#));
        assert!(text.contains(r#"url="https://x.org/p/TOKEN/media/a/1/a.mp3""#));
        assert!(text.contains(r#"href="https://x.org/p/TOKEN/artwork/m/1/c.jpg""#));
        // Page links stay public.
        assert!(text.contains("<link>https://x.org/feeds/m</link>"));
        assert!(text.contains("<link>https://x.org/episodes/a</link>"));
        assert_eq!(filled.len(), t.len_with(8));
        assert_eq!(filled.len(), xml.len() + 3 * 8);
        // Streaming in small chunks gives the same bytes.
        let t = std::sync::Arc::new(t);
        let streamed: Vec<u8> = t
            .chunks(Bytes::from_static(b"/p/TOKEN"), 10)
            .flat_map(|c| c.to_vec())
            .collect();
        assert_eq!(streamed, filled.to_vec());
        // The gzip of the same, with a real-length prefix, decodes to the filled feed; and the
        // next snapshot's template reuses the compressed pieces.
        let prefix = Bytes::from(format!("/p/{}", "ab".repeat(32)));
        let (chunks, len) = t.gzip_chunks(prefix.clone());
        let gz: Vec<u8> = chunks.flat_map(|c| c.to_vec()).collect();
        assert_eq!(gz.len(), len);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
        assert_eq!(plain, t.fill(&prefix).to_vec());
        let again = Template::new(&xml, "https://x.org", "/feeds/m.xml", "h".into(), Some(&t));
        assert!(again
            .groups
            .iter()
            .zip(&t.groups)
            .all(|(a, b)| std::sync::Arc::ptr_eq(&a.parts, &b.parts)));
        assert_eq!(again.runs[0].as_ptr(), t.runs[0].as_ptr());
    }

    #[test]
    fn a_personal_gzip_repeats_the_prefix_and_spells_it_out_where_the_last_is_out_of_reach() {
        let far = "x".repeat(40_000);
        let xml = rope(&[
            r#"<enclosure url="https://x.org/media/a/1/a.mp3"/>"#,
            r#"<enclosure url="https://x.org/media/b/1/b.mp3"/>"#,
            &format!(r#"<description>{far}</description>"#),
            r#"<enclosure url="https://x.org/media/c/1/c.mp3"/>"#,
            r#"<enclosure url="https://x.org/media/d/1/d.mp3"/>"#,
        ]);
        let t = template(&xml);
        assert_eq!(t.holes(), 4);
        // The first hole and the one 40 KB past the one before it spell the prefix out.
        // So the gzip is three runs with the prefix's fragment between them, and each run goes
        // out as the template's own bytes, not a copy.
        assert_eq!(t.runs.len(), 3);
        let prefix = Bytes::from(format!("/p/{}", "cd".repeat(32)));
        let frames: Vec<Bytes> = t.gzip_chunks(prefix).0.collect();
        assert_eq!(
            frames.len(),
            1 + 3 + 2 + 1,
            "header, runs, two fragments, trailer"
        );
        for (i, run) in t.runs.iter().enumerate() {
            assert_eq!(frames[1 + 2 * i].as_ptr(), run.as_ptr(), "run {i}");
        }
        assert_eq!(
            frames[2], frames[4],
            "the same fragment in both spelled holes"
        );
        for token in ["ab", "07"] {
            let prefix = Bytes::from(format!("/p/{}", token.repeat(32)));
            let (chunks, len) = t.gzip_chunks(prefix.clone());
            let gz: Vec<u8> = chunks.flat_map(|c| c.to_vec()).collect();
            assert_eq!(gz.len(), len);
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain)
                .unwrap();
            assert_eq!(plain, t.fill(&prefix).to_vec());
        }
    }

    fn template(xml: &Rope) -> std::sync::Arc<Template> {
        std::sync::Arc::new(Template::new(
            xml,
            "https://x.org",
            "/feeds/m.xml",
            "h".into(),
            None,
        ))
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut plain).unwrap();
        plain
    }

    fn personal_gzip(t: &std::sync::Arc<Template>, token: &str) -> (Vec<u8>, Bytes) {
        let prefix = Bytes::from(format!("/p/{}", token.repeat(32)));
        let (chunks, len) = t.gzip_chunks(prefix.clone());
        let gz: Vec<u8> = chunks.flat_map(|c| c.to_vec()).collect();
        assert_eq!(gz.len(), len);
        (gz, prefix)
    }

    /// A members feed of `n` items, each with an enclosure and an image under `public_url`.
    fn items(n: usize, changed: Option<usize>) -> Rope {
        let mut parts =
            vec![r#"<rss><atom:link href="https://x.org/feeds/m.xml" rel="self"/>"#.to_owned()];
        for i in 0..n {
            let title = if changed == Some(i) {
                "Changed"
            } else {
                "Briefing"
            };
            parts.push(format!(
                r#"<item><title>{title} {i}</title><description>Notes for episode {i}: officers, stress and de-escalation, with resources.</description><enclosure url="https://x.org/media/ep{i}/3/ep{i}.mp3" length="{}" type="audio/mpeg"/><itunes:image href="https://x.org/artwork/ep{i}/3/cover.jpg"/><guid>urn:x:{i}</guid></item>"#,
                1000 + i * 7
            ));
        }
        parts.push("</rss>".to_owned());
        Rope::from_parts(parts.into_iter().map(Bytes::from).collect())
    }

    #[test]
    fn the_placeholder_is_no_utf8_text_and_repeats_no_pair() {
        let p = &*PLACEHOLDER;
        assert!(p.iter().all(|&b| holds_placeholder_bytes(&[b])));
        let pairs: std::collections::HashSet<_> = p.windows(2).collect();
        assert_eq!(
            pairs.len(),
            PREFIX_LEN - 1,
            "every neighbouring pair is new"
        );
        assert!(std::str::from_utf8(p).is_err());
    }

    #[test]
    fn a_personal_gzip_copies_each_hole_from_the_one_before_and_compresses_across_them() {
        let xml = items(600, None);
        let t = template(&xml);
        assert_eq!(t.holes(), 1 + 2 * 600);
        // Only the first hole spells the prefix out: every other is copied inside the deflate
        // blocks, which run across the holes.
        assert_eq!(t.runs.len(), 2);
        for token in ["ab", "07", "ff"] {
            let (gz, prefix) = personal_gzip(&t, token);
            let filled = t.fill(&prefix);
            assert!(
                gunzip(&gz) == filled.to_vec(),
                "token {token}: the gzip decodes to the filled feed"
            );
            // Within a fifth of compressing the filled feed whole (deflate blocks and a sync
            // flush for each hole would make it several times that).
            let whole = {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                std::io::Write::write_all(&mut e, &filled).unwrap();
                e.finish().unwrap().len()
            };
            assert!(
                gz.len() * 5 < whole * 6,
                "{} bytes against {whole} compressed whole",
                gz.len()
            );
        }
    }

    #[test]
    fn a_reload_recompresses_only_the_groups_around_a_changed_item() {
        let before = Template::new(
            &items(600, None),
            "https://x.org",
            "/feeds/m.xml",
            "h".into(),
            None,
        );
        let after = std::sync::Arc::new(Template::new(
            &items(600, Some(300)),
            "https://x.org",
            "/feeds/m.xml",
            "h2".into(),
            Some(&before),
        ));
        let fresh = after
            .groups
            .iter()
            .zip(&before.groups)
            .filter(|(a, b)| !std::sync::Arc::ptr_eq(&a.parts, &b.parts))
            .count();
        // The changed item's group, and those after it whose window (the 32 KiB before them)
        // reaches into it.
        let shortest = (0..before.pieces.len() - GROUP)
            .step_by(GROUP)
            .map(|first| {
                let last = (first + GROUP).min(before.pieces.len()) - 1;
                unit_text(&before.pieces, first, last, first > 0).0.len()
            })
            .min()
            .unwrap();
        let most = 1 + super::super::gzip::WINDOW.div_ceil(shortest);
        assert!(before.groups.len() > 4 * most);
        assert!(
            (1..=most).contains(&fresh),
            "{fresh} of {} groups compressed again (at most {most})",
            before.groups.len()
        );
        let (gz, prefix) = personal_gzip(&after, "5e");
        assert!(gunzip(&gz) == after.fill(&prefix).to_vec());
    }

    #[test]
    fn text_that_is_not_utf8_still_gets_a_right_gzip() {
        let xml = Rope::from_parts(vec![
            Bytes::from_static(b"<a href=\"https://x.org/media/a\"/>\xff\xf5"),
            Bytes::from_static(b"<a href=\"https://x.org/media/b\"/>\xc0"),
            Bytes::from_static(b"<a href=\"https://x.org/media/c\"/>"),
        ]);
        let t = template(&xml);
        assert_eq!(t.holes(), 3);
        for token in ["ab", "f5"] {
            let (gz, prefix) = personal_gzip(&t, token);
            assert!(gunzip(&gz) == t.fill(&prefix).to_vec());
        }
    }

    #[test]
    fn holes_out_of_reach_are_cut_before_compressing_so_long_notes_cost_one_pass() {
        // Every item's notes are longer than deflate's window: no hole can be copied.
        let notes = "n".repeat(40_000);
        let parts: Vec<String> = (0..40)
            .map(|i| format!(r#"<enclosure url="https://x.org/media/e{i}/1/e.mp3"/><description>{notes}</description>"#))
            .collect();
        let xml = rope(&parts.iter().map(String::as_str).collect::<Vec<_>>());
        COMPRESSIONS.with(|c| c.set(0));
        let t = template(&xml);
        let segments = COMPRESSIONS.with(|c| c.get());
        assert_eq!(t.holes(), 40);
        // Every hole spells the prefix out: 40 holes, 41 runs.
        assert_eq!(t.runs.len(), 41);
        // One compression per piece. Finding each cut by compressing first took 120 here, each of
        // the rest of the group.
        assert_eq!(segments, 41, "segments compressed");
        let (gz, prefix) = personal_gzip(&t, "9c");
        assert!(gunzip(&gz) == t.fill(&prefix).to_vec());
    }

    #[test]
    fn a_feed_with_no_personal_urls_is_one_piece() {
        let xml = rope(&["<rss>", "</rss>"]);
        let t = Template::new(&xml, "https://x.org", "/feeds/m.xml", "h".into(), None);
        assert_eq!(t.holes(), 0);
        assert_eq!(&t.fill(b"/p/T")[..], b"<rss></rss>");
    }
}
