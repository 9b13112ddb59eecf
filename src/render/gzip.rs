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
pub const WINDOW: usize = 32 * 1024;

/// `bytes` as raw deflate blocks ending in a sync flush (not final).
pub fn deflate(bytes: &[u8]) -> Bytes {
    deflate_after(&[], bytes)
}

/// Like [`deflate`], for bytes that come right after `before` in the output.
pub fn deflate_after(before: &[u8], bytes: &[u8]) -> Bytes {
    SCRATCH.with_borrow_mut(|(c, out)| {
        c.reset();
        if !before.is_empty() {
            let dict = &before[before.len().saturating_sub(WINDOW)..];
            c.set_dictionary(dict)
                .expect("a raw deflate stream takes a dictionary");
        }
        out.clear();
        let mut input = bytes;
        loop {
            out.reserve(input.len() / 2 + 1024);
            let before_in = c.total_in();
            c.compress_vec(input, out, FlushCompress::Sync)
                .expect("in-memory deflate");
            let used = (c.total_in() - before_in) as usize;
            input = &input[used..];
            // Done once all input is in and the flush marker fitted.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        // Exactly as long as the blocks: a feed item deflates to a few dozen bytes after the
        // item before it, and the pieces are kept for as long as the item is.
        Bytes::copy_from_slice(out)
    })
}

thread_local! {
    /// This thread's raw deflate compressor (level 6) and output buffer, reused: a fresh
    /// compressor allocates and zeroes a few hundred KiB of state, more than the work of
    /// compressing one 4 KiB feed item.
    static SCRATCH: std::cell::RefCell<(Compress, Vec<u8>)> =
        std::cell::RefCell::new((Compress::new(Compression::new(6), false), Vec::new()));
}

/// RFC 1951 3.2.5: base values and extra bits of the length codes 257-285 and the distance
/// codes 0-29.
pub(super) const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
pub(super) const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
pub(super) const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
pub(super) const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// A deflate block that repeats the `len` bytes found `distance` bytes back in the output,
/// byte-aligned and not final, like the pieces: a block with fixed codes holding one match, then
/// an empty stored block (what a sync flush writes). About 9 bytes, whatever the bytes repeated.
/// `None` if deflate cannot say it in one match (`len` 3 to 258, `distance` 1 to 32,768).
pub fn repeat_block(len: usize, distance: usize) -> Option<Bytes> {
    if !(3..=258).contains(&len) || !(1..=32768).contains(&distance) {
        return None;
    }
    let (len, distance) = (len as u16, distance as u16);
    let l = LEN_BASE.iter().rposition(|&b| b <= len).expect("len >= 3");
    let d = DIST_BASE
        .iter()
        .rposition(|&b| b <= distance)
        .expect("distance >= 1");
    let mut w = Bits::default();
    w.put(0, 1); // not the final block
    w.put(1, 2); // fixed codes
                 // Length code 257 + l: codes 256-279 are 7 bits (0000000 up), 280-287 are 8 bits
                 // (11000000 up); Huffman codes go most significant bit first.
    let code = 257 + l as u32;
    if code < 280 {
        w.put_code(code - 256, 7);
    } else {
        w.put_code(0b1100_0000 + (code - 280), 8);
    }
    w.put(u32::from(len - LEN_BASE[l]), LEN_EXTRA[l]);
    w.put_code(d as u32, 5);
    w.put(u32::from(distance - DIST_BASE[d]), DIST_EXTRA[d]);
    w.put_code(0, 7); // end of block (256)
    w.put(0, 3); // a stored block, not final
    w.align();
    w.bytes.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    Some(w.bytes.into())
}

/// `bytes` as one deflate block of literals with fixed codes, byte-aligned and not final like the
/// pieces. A personal prefix is 67 bytes of little repetition, so this is about as short as
/// compressing it, and it needs no compressor: resetting one clears a few hundred KiB of state,
/// which per request cost more than the rest of a personal gzip's assembly.
pub fn literal_block(bytes: &[u8]) -> Bytes {
    let mut w = Bits::default();
    w.bytes.reserve(bytes.len() * 9 / 8 + 8);
    w.put(0, 1); // not the final block
    w.put(1, 2); // fixed codes
    for &b in bytes {
        // RFC 1951 3.2.6: literals 0-143 are 8 bits from 00110000, 144-255 9 bits from 110010000.
        match b {
            0..=143 => w.put_code(0x30 + u32::from(b), 8),
            _ => w.put_code(0x190 + u32::from(b - 144), 9),
        }
    }
    w.put_code(0, 7); // end of block (256)
    w.put(0, 3); // a stored block, not final
    w.align();
    w.bytes.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    w.bytes.into()
}

/// Writes bits least significant first, as deflate packs them.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    acc: u32,
    n: u8,
}

impl Bits {
    fn put(&mut self, value: u32, bits: u8) {
        for i in 0..bits {
            self.acc |= ((value >> i) & 1) << self.n;
            self.n += 1;
            if self.n == 8 {
                self.bytes.push(self.acc as u8);
                (self.acc, self.n) = (0, 0);
            }
        }
    }

    /// A Huffman code, most significant bit first.
    fn put_code(&mut self, code: u32, bits: u8) {
        for i in (0..bits).rev() {
            self.put((code >> i) & 1, 1);
        }
    }

    fn align(&mut self) {
        if self.n > 0 {
            self.bytes.push(self.acc as u8);
            (self.acc, self.n) = (0, 0);
        }
    }
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

/// CRC-32 of a text with the same bytes in many holes, computed once per text and finished per
/// filling in constant time.
///
/// CRC-32 is affine in the message: for messages of one length, `crc(A ^ B) = crc(A) ^ raw(B)`,
/// where `raw` is the CRC register run from zero with no final inversion. So the CRC of the text
/// with prefix `P` in every hole is the CRC of the text with NUL bytes there, XOR the sum over holes
/// of `raw(P)` shifted through the bytes that follow that hole. Shifting through `n` zero bytes is
/// a linear map (a 32x32 bit matrix, `A^n`), so the sum is `S · raw(P)` with `S = Σ A^(n_k)`,
/// summed once when the template is built.
#[derive(Debug, Clone)]
pub struct HoleCrc {
    /// CRC-32 of the text with NUL bytes in the holes.
    zeros: u32,
    /// `S`, as the images of the 32 unit vectors.
    sum: [u32; 32],
    len: u64,
}

const POLY: u32 = 0xEDB8_8320;

/// Column `j` is the effect of one zero byte on a register holding only bit `j`.
fn zero_byte() -> [u32; 32] {
    let mut m = [0u32; 32];
    for (j, col) in m.iter_mut().enumerate() {
        let mut r = 1u32 << j;
        for _ in 0..8 {
            r = if r & 1 == 1 { (r >> 1) ^ POLY } else { r >> 1 };
        }
        *col = r;
    }
    m
}

fn apply(m: &[u32; 32], mut v: u32) -> u32 {
    let mut out = 0;
    let mut j = 0;
    while v != 0 {
        if v & 1 == 1 {
            out ^= m[j];
        }
        v >>= 1;
        j += 1;
    }
    out
}

fn mul(a: &[u32; 32], b: &[u32; 32]) -> [u32; 32] {
    let mut out = [0u32; 32];
    for (o, col) in out.iter_mut().zip(b) {
        *o = apply(a, *col);
    }
    out
}

/// `A^(2^i)` for every `i`: shifting through `2^i` zero bytes.
static POWERS: std::sync::LazyLock<[[u32; 32]; 40]> = std::sync::LazyLock::new(|| {
    let mut p = [[0u32; 32]; 40];
    p[0] = zero_byte();
    for i in 1..40 {
        p[i] = mul(&p[i - 1], &p[i - 1]);
    }
    p
});

/// `A^n`: shifting through `n` zero bytes.
fn shift(n: u64) -> [u32; 32] {
    let mut m: [u32; 32] = std::array::from_fn(|j| 1u32 << j);
    for (i, p) in POWERS.iter().enumerate() {
        if n >> i & 1 == 1 {
            m = mul(p, &m);
        }
    }
    m
}

/// The CRC register after `bytes`, from zero, not inverted.
fn raw(bytes: &[u8]) -> u32 {
    let mut r = 0u32;
    for &b in bytes {
        r ^= u32::from(b);
        for _ in 0..8 {
            r = if r & 1 == 1 { (r >> 1) ^ POLY } else { r >> 1 };
        }
    }
    r
}

impl HoleCrc {
    /// For `pieces` with a hole of `hole_len` bytes after every piece but the last.
    pub fn new(pieces: &[Bytes], hole_len: usize) -> HoleCrc {
        let zeros_hole = vec![0u8; hole_len];
        let mut h = crc32fast::Hasher::new();
        let mut len = 0u64;
        for (i, p) in pieces.iter().enumerate() {
            h.update(p);
            len += p.len() as u64;
            if i + 1 < pieces.len() {
                h.update(&zeros_hole);
                len += hole_len as u64;
            }
        }
        // From the last hole backwards: `after` bytes follow the current hole's end.
        let mut sum = [0u32; 32];
        if pieces.len() > 1 {
            let last = pieces.len() - 1;
            let mut current = shift(pieces[last].len() as u64);
            for (c, s) in current.iter().zip(sum.iter_mut()) {
                *s ^= c;
            }
            for k in (1..last).rev() {
                let step = shift((hole_len + pieces[k].len()) as u64);
                current = mul(&current, &step);
                for (c, s) in current.iter().zip(sum.iter_mut()) {
                    *s ^= c;
                }
            }
        }
        HoleCrc {
            zeros: h.finalize(),
            sum,
            len,
        }
    }

    /// The CRC-32 and length of the text with `prefix` (of the hole length) in every hole.
    pub fn with(&self, prefix: &[u8]) -> (u32, u64) {
        (self.zeros ^ apply(&self.sum, raw(prefix)), self.len)
    }
}

/// A gzip trailer (after the final block) for a CRC and length.
pub fn trailer(crc: u32, len: u64) -> Bytes {
    let mut t = Vec::with_capacity(10);
    t.extend_from_slice(&FINAL);
    t.extend_from_slice(&crc.to_le_bytes());
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.into()
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
    fn a_literal_block_decodes_to_its_bytes() {
        let bytes: Vec<u8> = (0..=255u8).chain(*b"/p/0123abcdef").collect();
        let mut stream = literal_block(&bytes).to_vec();
        stream.extend_from_slice(&FINAL);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::DeflateDecoder::new(&stream[..]),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, bytes);
    }

    #[test]
    fn a_repeat_block_copies_exactly_the_bytes_it_points_back_to() {
        // Text with no repeats to speak of, so a wrong length or distance shows.
        let text: Vec<u8> = (0..40_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let head = deflate(&text);
        let distances = (1..=40).chain([255, 256, 257, 1024, 4097, 24577, 32767, 32768]);
        for distance in distances {
            for len in (3..=258).step_by(if distance < 40 { 17 } else { 1 }) {
                let block = repeat_block(len, distance).unwrap();
                let gz = stitch([(&text[..], &head), (&[][..], &block)]);
                // The stitcher's CRC and length cover only the text given; check the deflate
                // stream itself instead.
                let mut plain = Vec::new();
                flate2::read::DeflateDecoder::new(&gz[10..gz.len() - 8])
                    .read_to_end(&mut plain)
                    .unwrap();
                let start = text.len() - distance;
                let mut want = text.clone();
                for i in 0..len {
                    want.push(want[start + i]);
                }
                assert_eq!(plain, want, "len {len} distance {distance}");
            }
        }
        assert!(repeat_block(2, 10).is_none());
        assert!(repeat_block(259, 10).is_none());
        assert!(repeat_block(10, 32769).is_none());
        assert!(repeat_block(10, 0).is_none());
        assert!(repeat_block(67, 4000).unwrap().len() <= 10);
    }

    #[test]
    fn hole_crc_matches_the_crc_of_the_filled_text() {
        let pieces: Vec<Bytes> = vec![
            Bytes::from_static(b"<rss>"),
            Bytes::from("<item>one</item>".repeat(300)),
            Bytes::new(),
            Bytes::from_static(b"tail"),
        ];
        let crc = HoleCrc::new(&pieces, 5);
        for prefix in [b"/p/ab", b"/p/zz", b"\0\0\0\0\0"] {
            let mut filled = Vec::new();
            for (i, p) in pieces.iter().enumerate() {
                filled.extend_from_slice(p);
                if i + 1 < pieces.len() {
                    filled.extend_from_slice(prefix);
                }
            }
            assert_eq!(
                crc.with(prefix),
                (crc32fast::hash(&filled), filled.len() as u64)
            );
        }
        let one = HoleCrc::new(&[Bytes::from_static(b"no holes")], 5);
        assert_eq!(one.with(b"/p/ab").0, crc32fast::hash(b"no holes"));
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
