//! `Range` header parsing and resolution against a representation's length (RFC 9110 section 14).
//!
//! [`parse`] turns header text into requested ranges or says the header must be ignored;
//! [`resolve`] clamps, drops unsatisfiable ranges and coalesces the rest. Both are pure.

/// An inclusive byte range `first..=last` that lies inside the representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One `range-spec` as the client wrote it. Numbers too large for u64 saturate to `u64::MAX`, so an
/// absurd position is simply past the end of any file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` or `first-`.
    FromTo { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// More ranges than this in one request and the header is ignored: a full 200 response costs the
/// server one file read, while thousands of tiny overlapping parts (the "Apache Killer") cost far more.
pub const MAX_RANGES: usize = 16;

/// Why a `Range` header is ignored, producing a plain 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// A unit other than `bytes`.
    UnknownUnit,
    /// Not valid `ranges-specifier` syntax, or a `first-last` with last before first.
    Malformed,
    /// More than [`MAX_RANGES`] ranges.
    TooMany,
}

/// The range specs of one header. Nearly every request asks for one or two, which stay inline:
/// parsing costs no allocation.
pub type Specs = smallvec::SmallVec<[RangeSpec; 2]>;

/// Parses a `Range` header value.
pub fn parse(header: &str) -> Result<Specs, Ignored> {
    let (unit, set) = header.split_once('=').ok_or(Ignored::Malformed)?;
    let unit = unit.trim_matches([' ', '\t']);
    if !unit.eq_ignore_ascii_case("bytes") {
        return Err(if is_token(unit) {
            Ignored::UnknownUnit
        } else {
            Ignored::Malformed
        });
    }
    let mut specs = Specs::new();
    // `1#range-spec` allows empty list elements and optional whitespace around commas.
    for element in set.split(',') {
        let element = element.trim_matches([' ', '\t']);
        if element.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGES {
            return Err(Ignored::TooMany);
        }
        specs.push(parse_spec(element).ok_or(Ignored::Malformed)?);
    }
    if specs.is_empty() {
        return Err(Ignored::Malformed);
    }
    Ok(specs)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Digits only, saturating at u64::MAX.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

fn parse_spec(s: &str) -> Option<RangeSpec> {
    let (first, last) = s.split_once('-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix(number(last)?));
    }
    let first = number(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(number(last)?)
    };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(RangeSpec::FromTo { first, last })
}

/// What the ranges mean for a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// At least one satisfiable range, sorted and coalesced (overlapping or adjacent ranges merged).
    Satisfiable(Vec<ByteRange>),
    /// No range overlaps the representation: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// One range clamped to a representation of `len` bytes; `None` when it is unsatisfiable.
pub fn clamp(spec: RangeSpec, len: u64) -> Option<ByteRange> {
    match spec {
        RangeSpec::FromTo { first, last } if first < len => Some(ByteRange {
            first,
            last: last.map_or(len - 1, |l| l.min(len - 1)),
        }),
        RangeSpec::Suffix(n) if n > 0 && len > 0 => Some(ByteRange {
            first: len.saturating_sub(n),
            last: len - 1,
        }),
        _ => None,
    }
}

/// Clamps each range to the representation, drops unsatisfiable ones, and coalesces the rest.
pub fn resolve(specs: &[RangeSpec], len: u64) -> Resolved {
    let mut ranges: Vec<ByteRange> = specs.iter().filter_map(|s| clamp(*s, len)).collect();
    if ranges.is_empty() {
        return Resolved::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.first);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(prev) if r.first <= prev.last.saturating_add(1) => {
                prev.last = prev.last.max(r.last)
            }
            _ => merged.push(r),
        }
    }
    Resolved::Satisfiable(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(header: &str, len: u64) -> Vec<(u64, u64)> {
        match resolve(&parse(header).unwrap(), len) {
            Resolved::Satisfiable(v) => v.into_iter().map(|r| (r.first, r.last)).collect(),
            Resolved::Unsatisfiable => panic!("{header} should be satisfiable"),
        }
    }

    #[test]
    fn single_range() {
        assert_eq!(sat("bytes=0-1", 100), [(0, 1)]);
        assert_eq!(sat("bytes=10-19", 100), [(10, 19)]);
    }

    #[test]
    fn open_ended_range() {
        assert_eq!(sat("bytes=90-", 100), [(90, 99)]);
        assert_eq!(sat("bytes=0-", 100), [(0, 99)]);
    }

    #[test]
    fn suffix_range() {
        assert_eq!(sat("bytes=-10", 100), [(90, 99)]);
        assert_eq!(
            sat("bytes=-1000", 100),
            [(0, 99)],
            "a suffix longer than the file is the file"
        );
    }

    #[test]
    fn end_past_the_file_is_clamped() {
        assert_eq!(sat("bytes=50-1000", 100), [(50, 99)]);
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(sat("Bytes=0-0", 10), [(0, 0)]);
        assert_eq!(sat("BYTES=0-0", 10), [(0, 0)]);
    }

    #[test]
    fn whitespace_and_empty_list_elements_are_allowed() {
        assert_eq!(sat("bytes= 0-1 , ,5-6", 10), [(0, 1), (5, 6)]);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_coalesce() {
        assert_eq!(sat("bytes=0-4,5-9", 100), [(0, 9)], "adjacent");
        assert_eq!(sat("bytes=0-10,5-20", 100), [(0, 20)], "overlapping");
        assert_eq!(sat("bytes=50-60,0-1", 100), [(0, 1), (50, 60)], "sorted");
        assert_eq!(sat("bytes=0-1,-5", 100), [(0, 1), (95, 99)]);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(
            resolve(&parse("bytes=100-").unwrap(), 100),
            Resolved::Unsatisfiable
        );
        assert_eq!(
            resolve(&parse("bytes=200-300").unwrap(), 100),
            Resolved::Unsatisfiable
        );
        assert_eq!(
            resolve(&parse("bytes=-0").unwrap(), 100),
            Resolved::Unsatisfiable
        );
        assert_eq!(
            resolve(&parse("bytes=0-").unwrap(), 0),
            Resolved::Unsatisfiable
        );
    }

    #[test]
    fn unsatisfiable_parts_are_dropped_when_others_fit() {
        assert_eq!(sat("bytes=500-600,0-0", 100), [(0, 0)]);
    }

    #[test]
    fn numbers_past_u64_saturate() {
        let huge = "99999999999999999999999999";
        assert_eq!(
            resolve(&parse(&format!("bytes={huge}-")).unwrap(), 100),
            Resolved::Unsatisfiable
        );
        assert_eq!(sat(&format!("bytes=0-{huge}"), 100), [(0, 99)]);
        assert_eq!(sat(&format!("bytes=-{huge}"), 100), [(0, 99)]);
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(parse("items=0-1"), Err(Ignored::UnknownUnit));
        assert_eq!(parse("none"), Err(Ignored::Malformed));
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for h in [
            "bytes=",
            "bytes=,",
            "bytes=abc",
            "bytes=1-a",
            "bytes=5-1",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=-",
            "bytes 0-1",
            "bytes=0x10-20",
            "bytes=-1-2",
        ] {
            assert_eq!(parse(h), Err(Ignored::Malformed), "{h}");
        }
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        // The "Apache Killer" request: it contains 5-0..5-4, which are malformed, so it is ignored.
        let killer = format!(
            "bytes=0-,{}",
            (0..1300)
                .map(|i| format!("5-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(parse(&killer).is_err());
        let many = format!(
            "bytes=0-,{}",
            (5..1300)
                .map(|i| format!("5-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(parse(&many), Err(Ignored::TooMany));
        let ok = (0..MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse(&format!("bytes={ok}")).is_ok());
    }
}
