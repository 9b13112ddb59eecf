//! Property tests (proptest) for the pure cores: Range parsing and resolution, the byte-interval
//! union download measurement counts with, and the IAB 24-hour window.

use proptest::prelude::*;
use rollcall::media::range::{parse, resolve, RangeSpec, Resolved, MAX_RANGES};
use rollcall::stats::count::{AddressLimit, Hit, Intervals, Tally, Verdict};

/// A spec and the header text that says it.
fn spec() -> impl Strategy<Value = (RangeSpec, String)> {
    prop_oneof![
        (0u64..300, proptest::option::of(0u64..300)).prop_filter_map(
            "last before first is malformed",
            |(first, last)| {
                if last.is_some_and(|l| l < first) {
                    return None;
                }
                let text = match last {
                    Some(l) => format!("{first}-{l}"),
                    None => format!("{first}-"),
                };
                Some((RangeSpec::FromTo { first, last }, text))
            }
        ),
        (0u64..300).prop_map(|n| (RangeSpec::Suffix(n), format!("-{n}"))),
    ]
}

/// The bytes of a `len`-byte file that `specs` name, by brute force.
fn named_bytes(specs: &[RangeSpec], len: u64) -> Vec<bool> {
    let mut bytes = vec![false; len as usize];
    for s in specs {
        let (from, to) = match *s {
            RangeSpec::FromTo { first, last } => (first, last.unwrap_or(u64::MAX)),
            RangeSpec::Suffix(0) => continue,
            RangeSpec::Suffix(n) => (len.saturating_sub(n), u64::MAX),
        };
        for b in from..len.min(to.saturating_add(1)) {
            bytes[b as usize] = true;
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_header_text_parses_or_is_ignored_without_panicking(text in ".{0,80}") {
        let _ = parse(&text);
        let _ = parse(&format!("bytes={text}"));
    }

    #[test]
    fn written_specs_parse_back(specs in proptest::collection::vec(spec(), 1..=MAX_RANGES)) {
        let header = format!(
            "bytes={}",
            specs.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(",")
        );
        let parsed = parse(&header).unwrap().to_vec();
        let want: Vec<RangeSpec> = specs.iter().map(|(s, _)| *s).collect();
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn more_than_the_limit_is_ignored(n in (MAX_RANGES + 1)..100) {
        let header = format!("bytes={}", vec!["0-0"; n].join(","));
        prop_assert!(parse(&header).is_err());
    }

    #[test]
    fn resolution_is_sorted_disjoint_inside_the_file_and_names_exactly_the_asked_bytes(
        specs in proptest::collection::vec(spec(), 1..8),
        len in 0u64..260,
    ) {
        let specs: Vec<RangeSpec> = specs.into_iter().map(|(s, _)| s).collect();
        let want = named_bytes(&specs, len);
        match resolve(&specs, len) {
            Resolved::Unsatisfiable => prop_assert!(want.iter().all(|b| !b)),
            Resolved::Satisfiable(ranges) => {
                prop_assert!(!ranges.is_empty());
                for r in &ranges {
                    prop_assert!(r.first <= r.last && r.last < len);
                }
                for w in ranges.windows(2) {
                    // Sorted, and neither overlapping nor adjacent (those merge).
                    prop_assert!(w[0].last + 1 < w[1].first);
                }
                let mut got = vec![false; len as usize];
                for r in &ranges {
                    for b in r.first..=r.last {
                        got[b as usize] = true;
                    }
                }
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn intervals_are_the_union_of_what_was_added(
        spans in proptest::collection::vec((0u64..500, 0u64..80), 0..40),
    ) {
        let mut iv = Intervals::default();
        let mut bytes = vec![false; 600];
        for &(start, n) in &spans {
            iv.add(start, start + n);
            for b in start..start + n {
                bytes[b as usize] = true;
            }
        }
        for w in iv.pairs().windows(2) {
            prop_assert!(w[0].1 < w[1].0, "sorted, merged and not touching: {:?}", iv.pairs());
        }
        prop_assert_eq!(iv.covered(), bytes.iter().filter(|b| **b).count() as u64);
        prop_assert_eq!(Intervals::from_text(&iv.to_text()).unwrap(), iv);
    }

    #[test]
    fn one_listener_counts_once_per_window_and_again_after_it(
        mut offsets in proptest::collection::vec(0i64..(72 * 3_600_000), 1..30),
    ) {
        offsets.sort_unstable();
        let start = 1_780_000_000_000i64; // 2026-05-28
        let size = 1_000_000u64;
        let mut tally = Tally::with_limit(AddressLimit::default());
        let mut salts = |_: &str, _: bool| Some([7u8; 32]);
        let delivered = [(0u64, size)];
        let mut downloads = Vec::new();
        for &off in &offsets {
            let hit = Hit {
                at_ms: start + off,
                client: "203.0.113.9".parse().unwrap(),
                user_agent: "AntennaPod/3.4.0",
                episode: "defining-de-escalation",
                method: "GET",
                status: 200,
                range: None,
                delivered: &delivered,
                audio: Some((size, size / 2)),
                released_ms: 0,
                admin: false,
            };
            let outcome = tally.offer(&hit, &mut salts).unwrap();
            match outcome.verdict {
                Verdict::Download => downloads.push(off),
                Verdict::Duplicate => {}
                other => prop_assert!(false, "a full GET is a download or a duplicate, not {other:?}"),
            }
        }
        // First touch: a window opens at a download and lasts 24 hours; the next request after it
        // opens the next window.
        let mut expected = Vec::new();
        for &off in &offsets {
            if expected.last().is_none_or(|&w: &i64| off >= w + 24 * 3_600_000) {
                expected.push(off);
            }
        }
        prop_assert_eq!(downloads, expected);
    }
}
