//! gzip assembled from pieces compressed once, so a feed's gzip variant exists the moment its
//! snapshot goes live, and a personal feed's gzip costs only its prefix.
//!
//! Each piece is compressed as raw deflate and ended with a sync flush: whole blocks,
//! byte-aligned, none marked final. Pieces compressed that way can be laid end to end and still
//! form one valid deflate stream. A piece may be compressed with a dictionary, which lets it
//! refer back into the bytes before it, as long as the dictionary is exactly what comes before it
//! in the output: a feed item is compressed with the item before it, which brings the stitched
//! feed within about 1.5 times the size of compressing the whole feed at once (items are alike),
//! and a reload recompresses only an item whose own bytes or predecessor changed. Where the bytes
//! before a piece vary (the personal prefix in a hole), the dictionary holds NUL bytes there:
//! feed text has no NUL, so no match can reach into them. [`Stitcher`] writes the gzip header,
//! the pieces, an empty final block, and the trailer (CRC-32 and length of the uncompressed
//! bytes, which the caller feeds it).

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// Deflate's window: a dictionary longer than this is cut to its end.
const WINDOW: usize = 32 * 1024;

/// `bytes` as raw deflate blocks ending in a sync flush (not final).
pub fn deflate(bytes: &[u8]) -> Bytes {
    deflate_after(&[], bytes)
}

/// Like [`deflate`], for bytes that come right after `before` in the output.
pub fn deflate_after(before: &[u8], bytes: &[u8]) -> Bytes {
    let mut c = Compress::new(Compression::new(6), false);
    if !before.is_empty() {
        let dict = &before[before.len().saturating_sub(WINDOW)..];
        c.set_dictionary(dict)
            .expect("a raw deflate stream takes a dictionary");
    }
    let mut out = Vec::with_capacity(bytes.len() / 3 + 64);
    let mut input = bytes;
    loop {
        out.reserve(input.len() / 2 + 1024);
        let before_in = c.total_in();
        c.compress_vec(input, &mut out, FlushCompress::Sync)
            .expect("in-memory deflate");
        let used = (c.total_in() - before_in) as usize;
        input = &input[used..];
        // Done once all input is in and the flush marker fitted.
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    out.into()
}

/// The 10-byte gzip header: deflate, no name, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final block with fixed codes: ends the deflate stream.
const FINAL: [u8; 2] = [0x03, 0x00];

/// Lays deflated pieces end to end into one gzip member.
pub struct Stitcher {
    crc: crc32fast::Hasher,
    len: u64,
}

impl Default for Stitcher {
    fn default() -> Self {
        Stitcher {
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }
}

impl Stitcher {
    pub fn header() -> Bytes {
        Bytes::from_static(&HEADER)
    }

    /// Accounts for the uncompressed bytes of the next piece (in order).
    pub fn update(&mut self, plain: &[u8]) {
        self.crc.update(plain);
        self.len += plain.len() as u64;
    }

    /// The final block and the trailer, once every piece was accounted for.
    pub fn trailer(self) -> Bytes {
        let mut t = Vec::with_capacity(10);
        t.extend_from_slice(&FINAL);
        t.extend_from_slice(&self.crc.finalize().to_le_bytes());
        t.extend_from_slice(&(self.len as u32).to_le_bytes());
        t.into()
    }
}

/// One gzip member from `(plain, deflated)` pieces in order.
pub fn stitch<'a>(pieces: impl IntoIterator<Item = (&'a [u8], &'a Bytes)>) -> Bytes {
    let mut s = Stitcher::default();
    let mut out = Vec::from(&Stitcher::header()[..]);
    for (plain, deflated) in pieces {
        s.update(plain);
        out.extend_from_slice(deflated);
    }
    out.extend_from_slice(&s.trailer());
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn stitched_pieces_decode_to_their_concatenation() {
        let pieces: Vec<Vec<u8>> = vec![
            b"<rss><channel>".to_vec(),
            "<item>an item with some text</item>"
                .repeat(50)
                .into_bytes(),
            Vec::new(),
            b"/p/0123456789abcdef".to_vec(),
            (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect(),
            b"</channel></rss>".to_vec(),
        ];
        let deflated: Vec<Bytes> = pieces.iter().map(|p| deflate(p)).collect();
        let gz = stitch(pieces.iter().map(|p| p.as_slice()).zip(&deflated));
        assert_eq!(gunzip(&gz), pieces.concat());
        // Each piece compressed after the one before it: the same bytes, smaller.
        let chained: Vec<Bytes> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| deflate_after(if i == 0 { &[] } else { &pieces[i - 1] }, p))
            .collect();
        let gz2 = stitch(pieces.iter().map(|p| p.as_slice()).zip(&chained));
        assert_eq!(gunzip(&gz2), pieces.concat());
        assert!(gz2.len() < gz.len(), "{} >= {}", gz2.len(), gz.len());
        // A dictionary with NUL where unknown bytes will be: any bytes may stand there.
        let hole = b"/p/ffffffff";
        let after = deflate_after(&[&pieces[1][..], &[0u8; 11][..]].concat(), &pieces[1]);
        let prefix = deflate(hole);
        let gz3 = stitch([
            (pieces[1].as_slice(), &deflated[1]),
            (&hole[..], &prefix),
            (pieces[1].as_slice(), &after),
        ]);
        assert_eq!(
            gunzip(&gz3),
            [&pieces[1][..], hole, &pieces[1][..]].concat()
        );
        // Repeating a piece (a personal prefix in every hole) is fine too.
        let order = [0, 3, 1, 3, 5];
        let gz = stitch(order.iter().map(|&i| (pieces[i].as_slice(), &deflated[i])));
        let want: Vec<u8> = order.iter().flat_map(|&i| pieces[i].clone()).collect();
        assert_eq!(gunzip(&gz), want);
    }
}
