//! Media serving decisions: range and conditional semantics, decided before any byte is read.
//!
//! A request flows through [`decide`], which checks preconditions ([`conditional`]) in RFC order, then
//! `If-Range`, then the `Range` header ([`range`]), and returns a [`Decision`]. The http layer turns
//! the decision into a response and streams the bytes with [`stream::FileStream`]. Apart from that
//! stream and its page-cache check ([`residency`]), nothing here does I/O.

pub mod conditional;
pub mod range;
pub mod residency;
pub mod stream;
pub mod zerocopy;

use conditional::{Conditions, Precondition, Validators};
use range::{ByteRange, Resolved};

/// What to send for a media request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// 304: the client's copy is current.
    NotModified,
    /// 412: an If-Match or If-Unmodified-Since condition failed.
    PreconditionFailed,
    /// 200 with the whole representation.
    Full,
    /// 206 with one range.
    Partial(ByteRange),
    /// 206 `multipart/byteranges` with two or more sorted, non-overlapping ranges.
    Multipart(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The parts of a request that affect a media response.
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaRequest<'a> {
    pub range: Option<&'a str>,
    pub conditions: Conditions<'a>,
}

/// Decides a GET or HEAD for a representation of `len` bytes. HEAD is decided exactly like GET, so
/// its headers are the ones GET would send.
pub fn decide(req: &MediaRequest, v: &Validators, len: u64) -> Decision {
    match conditional::evaluate(&req.conditions, v, true) {
        Precondition::NotModified => return Decision::NotModified,
        Precondition::Failed => return Decision::PreconditionFailed,
        Precondition::Proceed => {}
    }
    let Some(header) = req.range else {
        return Decision::Full;
    };
    if !conditional::if_range_holds(&req.conditions, v) {
        return Decision::Full;
    }
    let Ok(specs) = range::parse(header) else {
        return Decision::Full;
    };
    // Nearly every request asks for one range: decided without the lists of `resolve`.
    if let [spec] = specs[..] {
        return range::clamp(spec, len).map_or(Decision::Unsatisfiable, Decision::Partial);
    }
    match range::resolve(&specs, len) {
        Resolved::Unsatisfiable => Decision::Unsatisfiable,
        Resolved::Satisfiable(ranges) if ranges.len() == 1 => Decision::Partial(ranges[0]),
        Resolved::Satisfiable(ranges) => Decision::Multipart(ranges),
    }
}

/// `Content-Range` value for a satisfied range.
pub fn content_range(r: ByteRange, len: u64) -> String {
    let mut buf = ContentRange::default();
    buf.write(r, len).to_owned()
}

/// Room for a `Content-Range` value, so the media path can format one without allocating.
pub struct ContentRange {
    buf: [u8; 72],
}

impl Default for ContentRange {
    fn default() -> ContentRange {
        ContentRange { buf: [0; 72] }
    }
}

impl ContentRange {
    /// `bytes first-last/len`: at most 6 + 3 × 20 + 2 bytes.
    pub fn write(&mut self, r: ByteRange, len: u64) -> &str {
        use std::io::Write;
        let size = self.buf.len();
        let mut out = &mut self.buf[..];
        write!(out, "bytes {}-{}/{len}", r.first, r.last).expect("72 bytes hold three u64s");
        let n = size - out.len();
        std::str::from_utf8(&self.buf[..n]).expect("ASCII")
    }
}

/// The byte layout of a `multipart/byteranges` body: each part's header text and range, the closing
/// delimiter, and the exact total length for `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    pub boundary: String,
    pub parts: Vec<(String, ByteRange)>,
    pub trailer: String,
    pub content_length: u64,
}

impl Multipart {
    pub fn new(ranges: &[ByteRange], len: u64, mime: &str, boundary: String) -> Multipart {
        let mut parts = Vec::with_capacity(ranges.len());
        let mut total = 0u64;
        for (i, r) in ranges.iter().enumerate() {
            let lead = if i == 0 { "" } else { "\r\n" };
            let head = format!(
                "{lead}--{boundary}\r\nContent-Type: {mime}\r\nContent-Range: {}\r\n\r\n",
                content_range(*r, len)
            );
            total += head.len() as u64 + r.len();
            parts.push((head, *r));
        }
        let trailer = format!("\r\n--{boundary}--\r\n");
        total += trailer.len() as u64;
        Multipart {
            boundary,
            parts,
            trailer,
            content_length: total,
        }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn v() -> Validators<'static> {
        Validators {
            etag: "\"v1\"",
            alternates: &[],
            last_modified: UNIX_EPOCH + Duration::from_secs(1_000_000),
        }
    }

    fn req(range: Option<&'static str>, conditions: Conditions<'static>) -> MediaRequest<'static> {
        MediaRequest { range, conditions }
    }

    #[test]
    fn apple_probe_gets_206() {
        let d = decide(&req(Some("bytes=0-1"), Conditions::default()), &v(), 100);
        assert_eq!(d, Decision::Partial(ByteRange { first: 0, last: 1 }));
    }

    #[test]
    fn preconditions_come_before_ranges() {
        let c = Conditions {
            if_none_match: Some("\"v1\""),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(Some("bytes=0-1"), c), &v(), 100),
            Decision::NotModified
        );
        let c = Conditions {
            if_match: Some("\"v0\""),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(Some("bytes=0-1"), c), &v(), 100),
            Decision::PreconditionFailed
        );
    }

    #[test]
    fn stale_if_range_sends_the_whole_file() {
        let c = Conditions {
            if_range: Some("\"v0\""),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(Some("bytes=50-"), c), &v(), 100),
            Decision::Full
        );
        let c = Conditions {
            if_range: Some("\"v1\""),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(Some("bytes=50-"), c), &v(), 100),
            Decision::Partial(ByteRange {
                first: 50,
                last: 99
            })
        );
    }

    #[test]
    fn malformed_or_foreign_ranges_send_the_whole_file() {
        for h in ["bytes=5-1", "items=0-1", "bytes=x"] {
            assert_eq!(
                decide(&req(Some(h), Conditions::default()), &v(), 100),
                Decision::Full,
                "{h}"
            );
        }
    }

    #[test]
    fn unsatisfiable_and_multipart() {
        assert_eq!(
            decide(&req(Some("bytes=100-"), Conditions::default()), &v(), 100),
            Decision::Unsatisfiable
        );
        let d = decide(&req(Some("bytes=0-0,-1"), Conditions::default()), &v(), 100);
        assert_eq!(
            d,
            Decision::Multipart(vec![
                ByteRange { first: 0, last: 0 },
                ByteRange {
                    first: 99,
                    last: 99
                }
            ])
        );
    }

    #[test]
    fn one_range_is_decided_as_the_general_resolution_would() {
        let specs = [
            "bytes=0-",
            "bytes=0-0",
            "bytes=5-9",
            "bytes=5-500",
            "bytes=99-",
            "bytes=100-",
            "bytes=-1",
            "bytes=-0",
            "bytes=-500",
            "bytes= 3-4 ,",
            "bytes=0-18446744073709551615",
        ];
        for len in [0, 1, 100] {
            for h in specs {
                let general = match range::parse(h) {
                    Err(_) => Decision::Full,
                    Ok(s) => match range::resolve(&s, len) {
                        Resolved::Unsatisfiable => Decision::Unsatisfiable,
                        Resolved::Satisfiable(r) if r.len() == 1 => Decision::Partial(r[0]),
                        Resolved::Satisfiable(r) => Decision::Multipart(r),
                    },
                };
                let d = decide(&req(Some(h), Conditions::default()), &v(), len);
                assert_eq!(d, general, "{h} of {len} bytes");
            }
        }
    }

    #[test]
    fn content_range_values_fit_the_largest_file() {
        let mut buf = ContentRange::default();
        let r = ByteRange {
            first: u64::MAX - 1,
            last: u64::MAX - 1,
        };
        assert_eq!(
            buf.write(r, u64::MAX),
            "bytes 18446744073709551614-18446744073709551614/18446744073709551615"
        );
        let r = ByteRange { first: 0, last: 9 };
        assert_eq!(buf.write(r, 10), "bytes 0-9/10");
        assert_eq!(content_range(r, 10), "bytes 0-9/10");
    }

    #[test]
    fn multipart_length_is_exact() {
        let ranges = [
            ByteRange { first: 0, last: 1 },
            ByteRange { first: 5, last: 9 },
        ];
        let m = Multipart::new(&ranges, 10, "audio/mpeg", "B".into());
        let mut body = String::new();
        for (head, r) in &m.parts {
            body.push_str(head);
            body.push_str(&"x".repeat(r.len() as usize));
        }
        body.push_str(&m.trailer);
        assert_eq!(body.len() as u64, m.content_length);
        assert!(body.starts_with(
            "--B\r\nContent-Type: audio/mpeg\r\nContent-Range: bytes 0-1/10\r\n\r\nxx\r\n--B\r\n"
        ));
        assert!(body.ends_with("xxxxx\r\n--B--\r\n"));
    }
}
