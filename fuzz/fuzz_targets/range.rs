//! `Range` parsing and resolution, conditional headers, and the media decision built on them.
//!
//! Input: lines of text. Line 1 is the `Range` header, line 2 the representation's length
//! (default 100), then If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since and
//! If-Range; an empty or missing line is an absent header. The representation's validators are
//! fixed: ETag `"abc"` (alternate `"abc-gzip"`), Last-Modified Sun, 06 Nov 1994 08:49:37 GMT.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use rollcall::media::conditional::{self, Conditions, Precondition, Validators};
use rollcall::media::range::{self, ByteRange, RangeSpec, Resolved, MAX_RANGES};
use rollcall::media::{self, Decision, MediaRequest, Multipart};

const ETAG: &str = "\"abc\"";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let header = lines.next().unwrap_or("");
    let len = lines
        .next()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .unwrap_or(100);
    let mut next = || lines.next().filter(|l| !l.is_empty());
    let conditions = Conditions {
        if_match: next(),
        if_unmodified_since: next(),
        if_none_match: next(),
        if_modified_since: next(),
        if_range: next(),
    };

    if let Ok(specs) = range::parse(header) {
        assert!(!specs.is_empty() && specs.len() <= MAX_RANGES, "{specs:?}");
        for s in &specs {
            if let RangeSpec::FromTo {
                first,
                last: Some(last),
            } = *s
            {
                assert!(first <= last, "{s:?} from {header:?}");
            }
        }
        let resolved = range::resolve(&specs, len);
        check_resolved(&specs, len, &resolved);
        let mut reversed = specs.clone();
        reversed.reverse();
        assert_eq!(
            range::resolve(&reversed, len),
            resolved,
            "the order of ranges matters for {header:?}"
        );
        // Optional whitespace around the header and its elements changes nothing.
        let padded = format!(" {} ", header.replace(',', " , "));
        assert_eq!(range::parse(&padded), Ok(specs), "{padded:?}");
    }

    let v = Validators {
        etag: ETAG,
        alternates: &["\"abc-gzip\""],
        last_modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
    };
    let pre = conditional::evaluate(&conditions, &v, true);
    assert_ne!(
        conditional::evaluate(&conditions, &v, false),
        Precondition::NotModified,
        "only GET and HEAD get 304"
    );
    if matches!(conditions.if_match, Some("*") | Some(ETAG)) {
        assert_ne!(pre, Precondition::Failed, "a matching If-Match fails");
    }
    if conditions.if_range.is_none() || conditions.if_range == Some(ETAG) {
        assert!(conditional::if_range_holds(&conditions, &v));
    }
    if conditions
        .if_range
        .is_some_and(|r| r.trim().starts_with("W/"))
    {
        assert!(
            !conditional::if_range_holds(&conditions, &v),
            "a weak If-Range holds"
        );
    }

    let request = MediaRequest {
        range: (!header.is_empty()).then_some(header),
        conditions,
    };
    let decision = media::decide(&request, &v, len);
    match (&decision, pre) {
        (Decision::NotModified, Precondition::NotModified)
        | (Decision::PreconditionFailed, Precondition::Failed) => {}
        (Decision::NotModified | Decision::PreconditionFailed, _) => {
            panic!("{decision:?} but preconditions say {pre:?}")
        }
        (_, Precondition::Proceed) => {}
        (_, _) => panic!("{decision:?} but preconditions say {pre:?}"),
    }
    match &decision {
        Decision::Partial(r) => check_ranges(std::slice::from_ref(r), len),
        Decision::Multipart(ranges) => {
            assert!(ranges.len() >= 2);
            check_ranges(ranges, len);
            let m = Multipart::new(ranges, len, "audio/mpeg", "B0UND".into());
            let mut total = m.trailer.len() as u64;
            for (i, (head, r)) in m.parts.iter().enumerate() {
                let lead = if i == 0 { "" } else { "\r\n" };
                assert_eq!(
                    head,
                    &format!(
                        "{lead}--B0UND\r\nContent-Type: audio/mpeg\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
                        r.first, r.last
                    )
                );
                total += head.len() as u64 + r.len();
            }
            assert_eq!(m.content_length, total);
        }
        Decision::Unsatisfiable => assert!(request.range.is_some(), "416 without a Range header"),
        _ => {}
    }
    // Optional whitespace around every header value changes nothing.
    let pad = |s: Option<&str>| s.map(|s| format!(" \t{s}\t "));
    let padded = [
        pad(request.range),
        pad(conditions.if_match),
        pad(conditions.if_unmodified_since),
        pad(conditions.if_none_match),
        pad(conditions.if_modified_since),
        pad(conditions.if_range),
    ];
    let padded_request = MediaRequest {
        range: padded[0].as_deref(),
        conditions: Conditions {
            if_match: padded[1].as_deref(),
            if_unmodified_since: padded[2].as_deref(),
            if_none_match: padded[3].as_deref(),
            if_modified_since: padded[4].as_deref(),
            if_range: padded[5].as_deref(),
        },
    };
    assert_eq!(
        media::decide(&padded_request, &v, len),
        decision,
        "whitespace around a header value changed the decision: {padded_request:?}"
    );
});

/// Sorted, inside the representation, and neither overlapping nor adjacent.
fn check_ranges(ranges: &[ByteRange], len: u64) {
    assert!(!ranges.is_empty());
    for r in ranges {
        assert!(r.first <= r.last && r.last < len, "{r:?} outside 0..{len}");
    }
    for w in ranges.windows(2) {
        assert!(
            w[0].last.saturating_add(1) < w[1].first,
            "{:?} and {:?} are not sorted and disjoint",
            w[0],
            w[1]
        );
    }
}

/// The resolved ranges cover exactly the bytes the specs ask for.
fn check_resolved(specs: &[RangeSpec], len: u64, resolved: &Resolved) {
    // Each spec as an inclusive interval inside 0..len, computed without the code under test.
    let len128 = u128::from(len);
    let mut wanted: Vec<(u128, u128)> = match len128.checked_sub(1) {
        None => Vec::new(),
        Some(end) => specs
            .iter()
            .filter_map(|s| {
                let (first, last) = match *s {
                    RangeSpec::FromTo { first, last } => (
                        u128::from(first),
                        last.map_or(end, |l| u128::from(l).min(end)),
                    ),
                    RangeSpec::Suffix(0) => return None,
                    RangeSpec::Suffix(n) => (len128.saturating_sub(u128::from(n)), end),
                };
                (first <= last).then_some((first, last))
            })
            .collect(),
    };
    match resolved {
        Resolved::Unsatisfiable => assert!(wanted.is_empty(), "{specs:?} in {len} bytes: 416"),
        Resolved::Satisfiable(ranges) => {
            assert!(!wanted.is_empty(), "{specs:?} in {len} bytes: {ranges:?}");
            check_ranges(ranges, len);
            for &(first, last) in &wanted {
                assert!(
                    ranges
                        .iter()
                        .any(|r| u128::from(r.first) <= first && last <= u128::from(r.last)),
                    "{first}-{last} is not served by {ranges:?}"
                );
            }
            // The union of what was asked for, measured, equals what is served.
            wanted.sort();
            let (mut covered, mut end) = (0u128, None::<u128>);
            for (first, last) in wanted {
                let start = match end {
                    Some(e) if first <= e => e + 1,
                    _ => first,
                };
                if last >= start {
                    covered += last - start + 1;
                }
                end = Some(end.map_or(last, |e| e.max(last)));
            }
            let served: u128 = ranges.iter().map(|r| u128::from(r.len())).sum();
            assert_eq!(served, covered, "{ranges:?} serves bytes nobody asked for");
        }
    }
}
