//! Personal feeds: a members feed rendered once per snapshot as a template whose URL prefixes
//! are holes, filled with one officer's `/p/<token>` prefix per request.
//!
//! A members feed is rendered like any other; then every URL that must carry the officer's token
//! (enclosures, transcripts, chapters, images: everything under `/media/` and `/artwork/`, and the
//! feed's own `atom:link rel="self"`, which apps may re-subscribe to) is split right after
//! `public_url`, leaving a hole there. A request copies the pieces and the officer's prefix into
//! quarter-MiB chunks as the response goes out, with the exact length known beforehand; nothing
//! is rendered per request. Its gzip is stitched the same way from pieces compressed once per
//! snapshot (see [`super::gzip`]). The page links (`<link>`) stay public: the website has its own
//! sign-in.

use bytes::Bytes;

use crate::rope::Rope;

/// A rendered feed with holes where a personal prefix goes.
#[derive(Debug)]
pub struct Template {
    /// Text, with a hole after every piece but the last.
    pieces: Vec<Bytes>,
    text_len: usize,
    /// Each piece as deflate blocks for its place after the piece before it and a prefix of
    /// [`PREFIX_LEN`] bytes, with its content hash and its predecessor's, for reuse by the next
    /// snapshot's template (see [`super::gzip`]).
    deflated: Vec<([u8; 32], Bytes)>,
    /// The gzip body between the holes that must spell the prefix out (the first, and any too
    /// far from the one before): each run is the deflated pieces and repeat blocks in between,
    /// contiguous, and `deflated` shares their memory. A personal gzip is these runs with the
    /// prefix's fragment between them, sent as they are: no per-request copy of the feed.
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
        let deflated = deflate_pieces(&pieces, previous);
        let crc = super::gzip::HoleCrc::new(&pieces, PREFIX_LEN);
        // An unchanged feed's pieces are all the previous template's: so are its runs.
        let unchanged = previous.filter(|p| {
            p.deflated.len() == deflated.len()
                && p.deflated
                    .iter()
                    .zip(&deflated)
                    .all(|(a, b)| a.1.as_ptr() == b.1.as_ptr() && a.1.len() == b.1.len())
        });
        let (runs, deflated) = match unchanged {
            Some(p) => (p.runs.clone(), deflated),
            None => gzip_runs(deflated, &pieces),
        };
        Template {
            pieces,
            text_len,
            deflated,
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

/// Joins the deflated pieces of `pieces`, and after each the hole's repeat block where it has
/// one, into runs that end where a hole must spell the prefix out (and at the end); returns the
/// runs, with the deflated pieces as slices of them.
///
/// Every hole holds the same prefix, so each hole after the first is a copy of the one before
/// it: `PREFIX_LEN` bytes from `PREFIX_LEN` plus the piece between them back, if that is within
/// deflate's reach ([`super::gzip::repeat_block`]).
fn gzip_runs(
    deflated: Vec<([u8; 32], Bytes)>,
    pieces: &[Bytes],
) -> (Vec<Bytes>, Vec<([u8; 32], Bytes)>) {
    // Each run's pieces, as (index, offset, length) within the run.
    let mut runs = Vec::new();
    let mut spans = Vec::with_capacity(deflated.len());
    let mut run: Vec<u8> = Vec::new();
    for (hole, (_, z)) in deflated.iter().enumerate() {
        spans.push((runs.len(), run.len(), z.len()));
        run.extend_from_slice(z);
        let last = hole + 1 == pieces.len();
        let repeat = match hole {
            0 => None,
            _ if last => None,
            _ => super::gzip::repeat_block(PREFIX_LEN, PREFIX_LEN + pieces[hole].len()),
        };
        match repeat {
            Some(block) => run.extend_from_slice(&block),
            // The prefix goes here, or this is the last piece: the run ends.
            None => runs.push(Bytes::from(std::mem::take(&mut run))),
        }
    }
    let shared = deflated
        .into_iter()
        .zip(spans)
        .map(|((hash, _), (r, at, len))| (hash, runs[r].slice(at..at + len)))
        .collect();
    (runs, shared)
}

/// Deflates each piece after its predecessor followed by a hole (NUL bytes in the dictionary,
/// where each officer's prefix will be), reusing the previous template's work for any piece
/// whose bytes and predecessor are unchanged.
fn deflate_pieces(pieces: &[Bytes], previous: Option<&Template>) -> Vec<([u8; 32], Bytes)> {
    use sha2::{Digest, Sha256};
    let hashes: Vec<[u8; 32]> = pieces.iter().map(|p| Sha256::digest(p).into()).collect();
    let mut reuse: std::collections::HashMap<([u8; 32], [u8; 32]), &Bytes> = Default::default();
    if let Some(prev) = previous {
        for (i, (h, z)) in prev.deflated.iter().enumerate() {
            let before = if i == 0 {
                [0; 32]
            } else {
                prev.deflated[i - 1].0
            };
            reuse.insert((before, *h), z);
        }
    }
    (0..pieces.len())
        .map(|i| {
            let before = if i == 0 { [0; 32] } else { hashes[i - 1] };
            let z = match reuse.get(&(before, hashes[i])) {
                Some(z) => (*z).clone(),
                None if i == 0 => super::gzip::deflate(&pieces[0]),
                None => {
                    let prev = &pieces[i - 1];
                    let keep = prev.len().min(32 * 1024 - PREFIX_LEN);
                    let mut dict = Vec::with_capacity(keep + PREFIX_LEN);
                    dict.extend_from_slice(&prev[prev.len() - keep..]);
                    dict.resize(keep + PREFIX_LEN, 0);
                    super::gzip::deflate_after(&dict, &pieces[i])
                }
            };
            (hashes[i], z)
        })
        .collect()
}

impl Template {
    /// The gzip of the feed with `prefix` (of [`PREFIX_LEN`] bytes) in every hole, as frames
    /// (see [`GzipChunks`]), and its exact length. Only the prefix is compressed per request, and
    /// only the first hole (and any hole too far from the one before it) holds it; the others
    /// copy the hole before them.
    pub fn gzip_chunks(self: &std::sync::Arc<Self>, prefix: Bytes) -> (GzipChunks, usize) {
        assert_eq!(
            prefix.len(),
            PREFIX_LEN,
            "a personal prefix is /p/ and 64 hex digits"
        );
        let prefix_z = super::gzip::deflate(&prefix);
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
            .deflated
            .iter()
            .zip(&t.deflated)
            .all(|(a, b)| a.1.as_ptr() == b.1.as_ptr()));
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
        let t = std::sync::Arc::new(Template::new(
            &xml,
            "https://x.org",
            "/feeds/m.xml",
            "h".into(),
            None,
        ));
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

    #[test]
    fn a_feed_with_no_personal_urls_is_one_piece() {
        let xml = rope(&["<rss>", "</rss>"]);
        let t = Template::new(&xml, "https://x.org", "/feeds/m.xml", "h".into(), None);
        assert_eq!(t.holes(), 0);
        assert_eq!(&t.fill(b"/p/T")[..], b"<rss></rss>");
    }
}
