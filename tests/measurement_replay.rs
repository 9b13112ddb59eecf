//! Replays `tests/fixtures/measurement_replay.toml` through the download counter and checks each
//! case's exact downloads and each request's verdict.

use std::collections::HashMap;
use std::net::IpAddr;

use rollcall::media::range::{parse, resolve, Resolved};
use rollcall::stats::count::{minimum_bytes, AddressLimit, Hit, Tally, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    defaults: Defaults,
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Defaults {
    episode: EpisodeSpec,
}

#[derive(Deserialize, Clone)]
struct EpisodeSpec {
    size: u64,
    tag: u64,
    duration: u64,
    released: String,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    episode: Option<EpisodeSpec>,
    downloads: usize,
    verdicts: Vec<String>,
    request: Vec<Request>,
    /// `max_downloads_per_address`; default 200.
    limit: Option<u64>,
    /// `busy_addresses`.
    #[serde(default)]
    exempt: Vec<String>,
}

#[derive(Deserialize)]
struct Request {
    at: String,
    ip: IpAddr,
    ua: String,
    method: Option<String>,
    range: Option<String>,
    status: Option<u16>,
    sent: Option<u64>,
    #[serde(default)]
    admin: bool,
}

fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .timestamp_millis()
}

/// The file intervals a response delivers: its range (or the whole file), cut to `sent` bytes.
fn delivered(r: &Request, size: u64) -> Vec<(u64, u64)> {
    let (first, len) = match &r.range {
        Some(range) => match resolve(&parse(range).unwrap(), size) {
            Resolved::Satisfiable(ranges) => {
                assert_eq!(ranges.len(), 1, "the fixture uses single ranges");
                (ranges[0].first, ranges[0].len())
            }
            Resolved::Unsatisfiable => (0, 0),
        },
        None => (0, size),
    };
    let sent = r.sent.unwrap_or(len).min(len);
    if sent == 0 {
        return Vec::new();
    }
    vec![(first, first + sent)]
}

#[test]
fn replayed_request_sequences_count_exactly_the_expected_downloads() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/measurement_replay.toml"),
    )
    .unwrap();
    let fixture: Fixture = toml::from_str(&text).unwrap();
    assert!(
        fixture.case.len() >= 12,
        "every listed situation has a case"
    );
    let mut failures = Vec::new();
    for case in &fixture.case {
        let ep = case
            .episode
            .clone()
            .unwrap_or(fixture.defaults.episode.clone());
        let minimum = minimum_bytes(ep.size, ep.tag, std::time::Duration::from_secs(ep.duration));
        // A fresh salt per day, as the store draws them.
        let mut salts: HashMap<String, [u8; 32]> = HashMap::new();
        let mut salt = |day: &str, create: bool| {
            if !create {
                return salts.get(day).copied();
            }
            let n = salts.len() as u8;
            Some(*salts.entry(day.to_owned()).or_insert([n + 1; 32]))
        };
        let mut tally = Tally::with_limit(AddressLimit {
            per_address_per_day: case.limit.unwrap_or(200),
            // As the config reads it: a range, or a single address.
            exempt: case
                .exempt
                .iter()
                .map(|n| {
                    n.parse::<ipnet::IpNet>()
                        .or_else(|_| n.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .unwrap()
                })
                .collect(),
        });
        let mut verdicts = Vec::new();
        for r in &case.request {
            let spans = delivered(r, ep.size);
            let status = r
                .status
                .unwrap_or(if r.range.is_some() { 206 } else { 200 });
            let hit = Hit {
                at_ms: millis(&r.at),
                client: r.ip,
                user_agent: &r.ua,
                episode: "defining-de-escalation",
                method: r.method.as_deref().unwrap_or("GET"),
                status,
                range: r.range.as_deref(),
                delivered: &spans,
                audio: Some((ep.size, minimum)),
                released_ms: millis(&ep.released),
                admin: r.admin,
            };
            let outcome = tally.offer(&hit, &mut salt).expect("salts are available");
            verdicts.push(outcome.verdict.as_str().to_owned());
        }
        let downloads = verdicts
            .iter()
            .filter(|v| Verdict::parse(v) == Some(Verdict::Download))
            .count();
        if downloads != case.downloads || verdicts != case.verdicts {
            failures.push(format!(
                "{}: {downloads} downloads (expected {}), verdicts {verdicts:?} (expected {:?})",
                case.name, case.downloads, case.verdicts
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
