//! A raw deflate stream read back as its tokens (literals and back-references), not as bytes.
//!
//! A personal feed's gzip is compressed once for every officer, with a placeholder in each hole
//! where an officer's prefix goes (see [`super::personal`]). That is only right if no token
//! depends on the placeholder's own bytes: every hole must be copied, whole and aligned, from an
//! earlier hole. Which tokens the compressor chose is known only by reading them back, which is
//! what this does. It decodes canonical Huffman codes bit by bit (RFC 1951, as zlib's `puff`
//! does): slow per bit, but a feed deflates to few bits per byte, and this runs once per changed
//! part of a snapshot, never per request.

/// One token of a deflate stream, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// One byte, as itself (also every byte of a stored block).
    Literal(u8),
    /// `len` bytes copied from `dist` bytes back.
    Copy { len: u16, dist: u16 },
}

/// What is wrong with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a raw deflate stream: {0}")]
pub struct Invalid(&'static str);

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u32,
    count: u32,
}

impl Bits<'_> {
    fn need(&mut self, n: u32) -> Result<u32, Invalid> {
        while self.count < n {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(Invalid("ends inside a block"));
            };
            self.buf |= u32::from(b) << self.count;
            self.pos += 1;
            self.count += 8;
        }
        let v = self.buf & ((1u32 << n) - 1);
        self.buf >>= n;
        self.count -= n;
        Ok(v)
    }

    /// At the end of the input, with nothing but zero padding left.
    fn at_end(&self) -> bool {
        self.pos == self.data.len() && self.buf == 0
    }
}

/// A canonical Huffman code: how many codes of each length, and the symbols in code order.
struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        // Where each length's symbols start, in code order (shorter codes first).
        let mut next = [0u16; 16];
        for l in 2..16 {
            next[l] = next[l - 1] + count[l - 1];
        }
        let mut symbol = vec![0u16; lengths.iter().filter(|&&l| l > 0).count()];
        for (s, &l) in lengths.iter().enumerate() {
            if l > 0 {
                let at = &mut next[usize::from(l)];
                symbol[usize::from(*at)] = s as u16;
                *at += 1;
            }
        }
        Huffman { count, symbol }
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, Invalid> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.need(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - first < count {
                return self
                    .symbol
                    .get((index + code - first) as usize)
                    .copied()
                    .ok_or(Invalid("a code past its table"));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(Invalid("a code that is in no table"))
    }
}

use super::gzip::{DIST_BASE, DIST_EXTRA, LEN_BASE, LEN_EXTRA};

/// The order in which a dynamic block gives the code lengths of its code-length code.
const ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Calls `each` with every token of `stream`, a raw deflate stream of whole blocks (as a sync
/// flush leaves it, or ended by a final block), in order. Stops with an error at anything that
/// is not valid deflate.
pub fn tokens(stream: &[u8], mut each: impl FnMut(Token)) -> Result<(), Invalid> {
    let mut bits = Bits {
        data: stream,
        pos: 0,
        buf: 0,
        count: 0,
    };
    loop {
        if bits.at_end() {
            return Ok(());
        }
        let last = bits.need(1)? == 1;
        match bits.need(2)? {
            0 => {
                bits.buf = 0;
                bits.count = 0;
                let head = stream
                    .get(bits.pos..bits.pos + 4)
                    .ok_or(Invalid("a stored block without its length"))?;
                let len = u16::from_le_bytes([head[0], head[1]]);
                let nlen = u16::from_le_bytes([head[2], head[3]]);
                if len != !nlen {
                    return Err(Invalid("a stored block whose length does not check"));
                }
                bits.pos += 4;
                let body = stream
                    .get(bits.pos..bits.pos + usize::from(len))
                    .ok_or(Invalid("a stored block cut short"))?;
                body.iter().for_each(|&b| each(Token::Literal(b)));
                bits.pos += usize::from(len);
            }
            1 => {
                let mut lengths = [0u8; 288 + 30];
                lengths[..144].fill(8);
                lengths[144..256].fill(9);
                lengths[256..280].fill(7);
                lengths[280..288].fill(8);
                lengths[288..].fill(5);
                let lit = Huffman::new(&lengths[..288]);
                let dist = Huffman::new(&lengths[288..]);
                codes(&mut bits, &lit, &dist, &mut each)?;
            }
            2 => {
                let (lit, dist) = dynamic_tables(&mut bits)?;
                codes(&mut bits, &lit, &dist, &mut each)?;
            }
            _ => return Err(Invalid("a block of the reserved type")),
        }
        if last {
            return Ok(());
        }
    }
}

fn dynamic_tables(bits: &mut Bits<'_>) -> Result<(Huffman, Huffman), Invalid> {
    let nlen = bits.need(5)? as usize + 257;
    let ndist = bits.need(5)? as usize + 1;
    let ncode = bits.need(4)? as usize + 4;
    if nlen > 286 || ndist > 30 {
        return Err(Invalid("a dynamic block with too many codes"));
    }
    let mut code_lengths = [0u8; 19];
    for &i in &ORDER[..ncode] {
        code_lengths[i] = bits.need(3)? as u8;
    }
    let lencode = Huffman::new(&code_lengths);
    let mut lengths = vec![0u8; nlen + ndist];
    let mut i = 0;
    while i < nlen + ndist {
        let sym = lencode.decode(bits)?;
        let (value, repeat) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                let prev = *lengths[..i]
                    .last()
                    .ok_or(Invalid("a repeated length with none before it"))?;
                (prev, 3 + bits.need(2)? as usize)
            }
            17 => (0, 3 + bits.need(3)? as usize),
            _ => (0, 11 + bits.need(7)? as usize),
        };
        if i + repeat > nlen + ndist {
            return Err(Invalid("code lengths past the table"));
        }
        lengths[i..i + repeat].fill(value);
        i += repeat;
    }
    if lengths[256] == 0 {
        return Err(Invalid("a dynamic block with no end-of-block code"));
    }
    Ok((
        Huffman::new(&lengths[..nlen]),
        Huffman::new(&lengths[nlen..]),
    ))
}

fn codes(
    bits: &mut Bits<'_>,
    lit: &Huffman,
    dist: &Huffman,
    each: &mut impl FnMut(Token),
) -> Result<(), Invalid> {
    loop {
        let sym = lit.decode(bits)?;
        match sym {
            0..=255 => each(Token::Literal(sym as u8)),
            256 => return Ok(()),
            _ => {
                let i = usize::from(sym - 257);
                let base = *LEN_BASE.get(i).ok_or(Invalid("a length code past 285"))?;
                let len = base + bits.need(u32::from(LEN_EXTRA[i]))? as u16;
                let d = usize::from(dist.decode(bits)?);
                let dbase = *DIST_BASE.get(d).ok_or(Invalid("a distance code past 29"))?;
                let dist = dbase + bits.need(u32::from(DIST_EXTRA[d]))? as u16;
                each(Token::Copy { len, dist });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rebuilds the bytes from the tokens, after `dict`.
    fn replay(dict: &[u8], stream: &[u8]) -> Vec<u8> {
        let mut out = dict.to_vec();
        tokens(stream, |t| match t {
            Token::Literal(b) => out.push(b),
            Token::Copy { len, dist } => {
                for _ in 0..len {
                    out.push(out[out.len() - usize::from(dist)]);
                }
            }
        })
        .unwrap();
        out.split_off(dict.len())
    }

    #[test]
    fn the_tokens_of_a_stream_rebuild_its_bytes() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("<item n=\"{}\">episode {}</item>", i % 97, i % 13).into_bytes())
            .collect();
        // Dynamic blocks, with a dictionary.
        let dict = b"<item n=\"1\">episode 1</item>".repeat(50);
        let z = super::super::gzip::deflate_after(&dict, &text);
        assert_eq!(replay(&dict, &z), text);
        // Fixed and stored blocks.
        for level in [0, 1] {
            let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
            let mut out = Vec::with_capacity(text.len() * 2);
            c.compress_vec(b"abcabcabc-x", &mut out, flate2::FlushCompress::Finish)
                .unwrap();
            assert_eq!(replay(b"", &out), b"abcabcabc-x");
        }
    }

    #[test]
    fn a_broken_stream_is_an_error_not_a_panic() {
        let z = super::super::gzip::deflate(&b"hello hello hello hello".repeat(20));
        for cut in 1..z.len() - 1 {
            let _ = tokens(&z[..cut], |_| {});
        }
        assert!(tokens(&[0b111], |_| {}).is_err(), "the reserved block type");
        assert!(
            tokens(&[0, 5, 0, 0, 0], |_| {}).is_err(),
            "a bad stored length"
        );
    }
}
