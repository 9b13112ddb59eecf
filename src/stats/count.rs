//! Counting downloads by the IAB Tech Lab Podcast Measurement Technical Guidelines, v2.3, from
//! the bytes each response really delivered. `docs/measurement.md` states the method; this file
//! is it.
//!
//! A [`Tally`] sees every media response once, in the order the responses ended, as a
//! [`Hit`]. It decides a [`Verdict`] for each:
//! - Requests that can never be a download are excluded by name: HEAD, 304, failed responses,
//!   2-byte probes, Apple Watch duplicates, known bots, requests before the episode's release
//!   and an admin's own listening.
//! - Every other request is *qualifying*. A listener is the keyed hash of the client's address
//!   (IPv6 by its /64) plus the user agent plus the episode. The listener's first qualifying
//!   request opens a 24-hour window ("first touch" rolling window, guidelines section 5.5.1);
//!   within it, the union of the byte intervals delivered to the listener is kept, so a range
//!   fetched twice counts once. The request that brings the union to the episode's minimum
//!   ([`minimum_bytes`]) is the window's one download; later ones are duplicates. The first
//!   qualifying request after the window ends opens the next.
//!
//! Address salts rotate daily, so the same client hashes differently after midnight UTC. A
//! window opened yesterday is still found today: the tally keys each window by the hash made
//! with the salt of the day it opened, and looks a request up under yesterday's key before
//! today's.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::agents;

/// The de-duplication window.
pub const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// What a media response counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The listener's delivered bytes reached the minimum with this response: one download.
    Download,
    /// Qualifying bytes, but the listener's bytes are still short of the minimum.
    Partial,
    /// Qualifying, but the listener's window already holds its download.
    Duplicate,
    /// A HEAD request: no body.
    Head,
    /// 304 Not Modified.
    NotModified,
    /// Any status but 200 and 206, or a response that delivered no byte.
    Failed,
    /// A range of two bytes or fewer (`bytes=0-1` and the like).
    Probe,
    /// A paired Apple Watch repeating the phone's request.
    AppleWatch,
    /// A user agent the OPAWG list names as a bot.
    Bot,
    /// Before the episode's release time.
    BeforeRelease,
    /// A signed-in admin listening.
    Admin,
    /// Not the episode's audio (a transcript, chapters or artwork): never a download.
    NotAudio,
    /// Would have been a download, but its address already made `max_downloads_per_address`
    /// downloads that UTC day: unrealistic for one household or office, so not counted.
    AddressLimit,
}

impl Verdict {
    pub const ALL: [Verdict; 13] = [
        Verdict::Download,
        Verdict::Partial,
        Verdict::Duplicate,
        Verdict::Head,
        Verdict::NotModified,
        Verdict::Failed,
        Verdict::Probe,
        Verdict::AppleWatch,
        Verdict::Bot,
        Verdict::BeforeRelease,
        Verdict::Admin,
        Verdict::NotAudio,
        Verdict::AddressLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Download => "download",
            Verdict::Partial => "partial",
            Verdict::Duplicate => "duplicate",
            Verdict::Head => "head",
            Verdict::NotModified => "not-modified",
            Verdict::Failed => "failed",
            Verdict::Probe => "probe",
            Verdict::AppleWatch => "apple-watch",
            Verdict::Bot => "bot",
            Verdict::BeforeRelease => "before-release",
            Verdict::Admin => "admin",
            Verdict::NotAudio => "not-audio",
            Verdict::AddressLimit => "address-limit",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the request took part in counting (it may have opened or fed a window).
    pub fn qualifying(self) -> bool {
        matches!(
            self,
            Verdict::Download | Verdict::Partial | Verdict::Duplicate
        )
    }
}

/// The bytes one listener must receive for a download: the ID3 tag plus one minute of audio at
/// the episode's own average bitrate, `tag + (size - tag) / duration * 60`; the whole file when
/// the episode is a minute or shorter (or its duration is unknown).
pub fn minimum_bytes(size: u64, tag: u64, duration: std::time::Duration) -> u64 {
    let tag = tag.min(size);
    let ms = duration.as_millis();
    if ms <= 60_000 {
        return size;
    }
    let minute = (u128::from(size - tag) * 60_000).div_ceil(ms) as u64;
    (tag + minute).min(size)
}

/// The length of the ID3v2 tag a file starts with (header, body and footer), from its first ten
/// bytes; 0 if it has none.
pub fn id3v2_len(head: &[u8]) -> u64 {
    let [b'I', b'D', b'3', major, _, flags, s0, s1, s2, s3, ..] = *head else {
        return 0;
    };
    if major == 0xff || [s0, s1, s2, s3].iter().any(|b| b & 0x80 != 0) {
        return 0;
    }
    let size = [s0, s1, s2, s3]
        .iter()
        .fold(0u64, |acc, &b| (acc << 7) | u64::from(b));
    let footer = if flags & 0x10 != 0 { 10 } else { 0 };
    10 + size + footer
}

/// Half-open byte intervals `[start, end)`, kept sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(u64, u64)>);

impl Intervals {
    pub fn from_pairs(pairs: &[(u64, u64)]) -> Intervals {
        let mut i = Intervals::default();
        for &(s, e) in pairs {
            i.add(s, e);
        }
        i
    }

    pub fn pairs(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Adds `[start, end)`, merging it with any interval it overlaps or touches.
    pub fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let v = &mut self.0;
        // The first interval that ends at or after `start` may merge; so may those after it that
        // begin at or before `end`.
        let from = v.partition_point(|&(_, e)| e < start);
        let to = v.partition_point(|&(s, _)| s <= end);
        if from == to {
            v.insert(from, (start, end));
            return;
        }
        let merged = (start.min(v[from].0), end.max(v[to - 1].1));
        v.splice(from..to, [merged]);
    }

    /// Bytes covered.
    pub fn covered(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// As stored: `start-end,start-end`.
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(s, e)| format!("{s}-{e}")).collect();
        parts.join(",")
    }

    pub fn from_text(text: &str) -> Option<Intervals> {
        let mut i = Intervals::default();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (s, e) = part.split_once('-')?;
            i.add(s.parse().ok()?, e.parse().ok()?);
        }
        Some(i)
    }
}

/// One listener's open window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// When its first qualifying request arrived, in Unix milliseconds.
    pub opened_ms: i64,
    pub covered: Intervals,
    pub counted: bool,
}

/// One media response, as counting sees it.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    /// When the request arrived, Unix milliseconds.
    pub at_ms: i64,
    pub client: IpAddr,
    pub user_agent: &'a str,
    pub episode: &'a str,
    pub method: &'a str,
    pub status: u16,
    /// The `Range` header as sent.
    pub range: Option<&'a str>,
    /// The file's byte intervals that reached the socket.
    pub delivered: &'a [(u64, u64)],
    /// The file's size, and the bytes a download needs ([`minimum_bytes`]); `None` when the file
    /// is not the episode's audio.
    pub audio: Option<(u64, u64)>,
    /// The episode's release, Unix milliseconds.
    pub released_ms: i64,
    /// A signed-in admin asked.
    pub admin: bool,
}

/// What the tally decided for a hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The hit's UTC day, `YYYY-MM-DD`.
    pub day: Arc<str>,
    /// The client's keyed address hash, with the salt of the hit's own day (what events store).
    pub address: Arc<str>,
    /// The client as the OPAWG list names it, and its user agent as sent.
    pub client: agents::Client,
    pub user_agent: Arc<str>,
    /// For qualifying hits: the key of the listener's window.
    pub listener: Option<Arc<str>>,
}

/// Salts for keyed address hashes, by UTC day (`YYYY-MM-DD`). With `create`, a day without one
/// gets one; without, only an existing salt is returned (the tally peeks at the next day's, and
/// must not make a salt for a day that has not begun).
pub trait Salts {
    fn salt(&mut self, day: &str, create: bool) -> Option<[u8; 32]>;
}

impl<F: FnMut(&str, bool) -> Option<[u8; 32]>> Salts for F {
    fn salt(&mut self, day: &str, create: bool) -> Option<[u8; 32]> {
        self(day, create)
    }
}

/// The address as counted: IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The keyed hash of an address, as 16 hex digits.
pub fn address_hash(salt: &[u8; 32], ip: IpAddr) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("any key length works");
    mac.update(address_key(ip).to_string().as_bytes());
    hex16(&mac.finalize().into_bytes())
}

fn hex16(bytes: &[u8]) -> String {
    bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A listener's key under one day's salt: a keyed hash of address, user agent and episode.
fn listener_key(salt: &[u8; 32], ip: IpAddr, user_agent: &str, episode: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("any key length works");
    mac.update(address_key(ip).to_string().as_bytes());
    mac.update(b"\0");
    mac.update(user_agent.as_bytes());
    mac.update(b"\0");
    mac.update(episode.as_bytes());
    let digest = mac.finalize().into_bytes();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The UTC day number of a time in Unix milliseconds.
pub(crate) fn day_number(at_ms: i64) -> i64 {
    at_ms.div_euclid(24 * 60 * 60 * 1000)
}

/// A UTC day number as `YYYY-MM-DD`.
pub(crate) fn day_text(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .unwrap_or_default()
        .date_naive()
        .to_string()
}

/// What a client (address, user agent, episode) hashes to on one day, worked out once: a busy
/// app's requests cost a map lookup, not two keyed hashes.
#[derive(Debug, Clone)]
struct Ident {
    ip: IpAddr,
    user_agent: Arc<str>,
    episode: Arc<str>,
    day: i64,
    day_text: Arc<str>,
    address: Arc<str>,
    /// Its listener key under yesterday's salt (if there is one) and under today's.
    keys: (Option<Arc<str>>, Arc<str>),
    client: agents::Client,
}

fn delivered_bytes(spans: &[(u64, u64)]) -> u64 {
    spans.iter().map(|(s, e)| e - s).sum()
}

/// Whether the asked range covers two bytes or fewer of a `size`-byte file.
fn is_probe(range: Option<&str>, size: u64) -> bool {
    let Some(range) = range else {
        return false;
    };
    let Ok(specs) = crate::media::range::parse(range) else {
        return false;
    };
    match crate::media::range::resolve(&specs, size) {
        crate::media::range::Resolved::Satisfiable(ranges) => {
            ranges.iter().map(|r| r.len()).sum::<u64>() <= 2
        }
        crate::media::range::Resolved::Unsatisfiable => true,
    }
}

/// The guidelines' filter for addresses with unrealistic download counts (v2.3 section 5.5.2,
/// step 1.2): at most `per_address_per_day` downloads from one address (IPv6 by its /64) in one
/// UTC day, except from addresses on the inclusion list (a station's or campus's shared NAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressLimit {
    pub per_address_per_day: u64,
    pub exempt: Vec<ipnet::IpNet>,
}

impl Default for AddressLimit {
    fn default() -> AddressLimit {
        AddressLimit {
            per_address_per_day: 200,
            exempt: Vec::new(),
        }
    }
}

/// The counting state: every listener's open window, and which changed since last asked.
#[derive(Debug, Default)]
pub struct Tally {
    windows: HashMap<Arc<str>, Window>,
    changed: std::collections::HashSet<Arc<str>>,
    /// Names of clients by user agent; bounded.
    clients: HashMap<String, agents::Client>,
    /// Recent clients' hashes, by a hash of address, user agent and episode; bounded.
    idents: HashMap<u64, Ident>,
    /// The last client's, checked first: a listener's requests tend to come in runs.
    last: Option<Ident>,
    limit: AddressLimit,
    /// Downloads per address hash, by UTC day; the two latest days are kept, because records
    /// arrive in the order responses end, so yesterday's long downloads finish among today's.
    per_day: HashMap<Arc<str>, HashMap<Arc<str>, u64>>,
}

impl Tally {
    /// A tally that continues from windows stored earlier (`key`, window) and from the
    /// downloads already counted per address hash, by day (today's and yesterday's).
    pub fn resume(
        windows: impl IntoIterator<Item = (String, Window)>,
        limit: AddressLimit,
        per_day: HashMap<String, HashMap<String, u64>>,
    ) -> Tally {
        Tally {
            windows: windows.into_iter().map(|(k, w)| (k.into(), w)).collect(),
            limit,
            per_day: per_day
                .into_iter()
                .map(|(day, counts)| {
                    let counts = counts.into_iter().map(|(k, n)| (k.into(), n)).collect();
                    (day.into(), counts)
                })
                .collect(),
            ..Tally::default()
        }
    }

    /// A tally with an address limit, and nothing counted yet.
    pub fn with_limit(limit: AddressLimit) -> Tally {
        Tally {
            limit,
            ..Tally::default()
        }
    }

    /// Whether one more download from `address` (hashed) on `day` stays within the limit; if so
    /// it is counted against it.
    fn within_limit(&mut self, day: &Arc<str>, address: &Arc<str>, ip: IpAddr) -> bool {
        // The exemption is for the address itself (a single IPv6 address may be listed), while
        // the count is per hash, IPv6 by its /64.
        let ip = ip.to_canonical();
        if self.limit.exempt.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        if !self.per_day.contains_key(day) {
            self.per_day.insert(Arc::clone(day), HashMap::new());
            // Keep the two latest days (ISO dates sort by time).
            while self.per_day.len() > 2 {
                let oldest = self.per_day.keys().min().cloned().expect("not empty");
                self.per_day.remove(&oldest);
            }
            if !self.per_day.contains_key(day) {
                // Older than both kept days: its downloads are counted without a limit.
                return true;
            }
        }
        let counts = self.per_day.get_mut(day).expect("just ensured");
        let n = counts.entry(Arc::clone(address)).or_insert(0);
        if *n >= self.limit.per_address_per_day {
            return false;
        }
        *n += 1;
        true
    }

    fn client(&mut self, user_agent: &str) -> agents::Client {
        if let Some(c) = self.clients.get(user_agent) {
            return *c;
        }
        if self.clients.len() >= 10_000 {
            self.clients.clear();
        }
        let c = agents::client(user_agent);
        self.clients.insert(user_agent.to_owned(), c);
        c
    }

    /// Decides what `hit` counts as, updating its listener's window. `None` if no salt could be
    /// had for the hit's day (the store failed); the hit is then not counted at all.
    pub fn offer(&mut self, hit: &Hit<'_>, salts: &mut impl Salts) -> Option<Outcome> {
        let ident = self.ident(hit, salts)?;
        let client = ident.client;
        let mut outcome = Outcome {
            verdict: Verdict::Failed,
            day: Arc::clone(&ident.day_text),
            address: Arc::clone(&ident.address),
            client,
            user_agent: Arc::clone(&ident.user_agent),
            listener: None,
        };
        let excluded = if hit.method == "HEAD" {
            Some(Verdict::Head)
        } else if hit.status == 304 {
            Some(Verdict::NotModified)
        } else if !matches!(hit.status, 200 | 206) || hit.delivered.is_empty() {
            Some(Verdict::Failed)
        } else if hit.audio.is_none() {
            Some(Verdict::NotAudio)
        } else if delivered_bytes(hit.delivered) <= 2
            && is_probe(hit.range, hit.audio.map_or(0, |a| a.0))
        {
            Some(Verdict::Probe)
        } else if hit.admin {
            // Whatever the admin's browser calls itself (headless ones name themselves bots).
            Some(Verdict::Admin)
        } else if agents::is_apple_watch_duplicate(hit.user_agent) {
            Some(Verdict::AppleWatch)
        } else if client.bot {
            Some(Verdict::Bot)
        } else if hit.at_ms < hit.released_ms {
            Some(Verdict::BeforeRelease)
        } else {
            None
        };
        if let Some(v) = excluded {
            outcome.verdict = v;
            return Some(outcome);
        }
        let minimum = hit.audio.map_or(u64::MAX, |a| a.1);
        // Yesterday's window first: it may still be open.
        let mut key = match &ident.keys.0 {
            Some(old) if self.is_open(old, hit.at_ms) => Arc::clone(old),
            _ => Arc::clone(&ident.keys.1),
        };
        if !self.is_open(&key, hit.at_ms) {
            // A request of just before midnight whose record arrives after one of just after
            // (records come in the order responses end) belongs to the window the later one
            // opened under the next day's key.
            if let Some(next) = salts.salt(&day_text(day_number(hit.at_ms) + 1), false) {
                let k: Arc<str> =
                    listener_key(&next, hit.client, hit.user_agent, hit.episode).into();
                if self.is_open(&k, hit.at_ms) {
                    key = k;
                }
            }
        }
        if !self.is_open(&key, hit.at_ms) {
            self.windows.insert(
                Arc::clone(&key),
                Window {
                    opened_ms: hit.at_ms,
                    covered: Intervals::default(),
                    counted: false,
                },
            );
        }
        let w = self.windows.get_mut(&key).expect("just ensured");
        outcome.verdict = if w.counted {
            Verdict::Duplicate
        } else {
            for &(s, e) in hit.delivered {
                w.covered.add(s, e);
            }
            if w.covered.covered() < minimum {
                Verdict::Partial
            } else if self.within_limit(&outcome.day, &outcome.address, hit.client) {
                let w = self.windows.get_mut(&key).expect("just ensured");
                w.counted = true;
                // Counted windows need no byte map any more.
                w.covered = Intervals::default();
                Verdict::Download
            } else {
                // The window is spent: later requests in it are duplicates, even after the
                // address's budget renews at midnight.
                let w = self.windows.get_mut(&key).expect("just ensured");
                w.counted = true;
                w.covered = Intervals::default();
                Verdict::AddressLimit
            }
        };
        if !self.changed.contains(&key) {
            self.changed.insert(Arc::clone(&key));
        }
        outcome.listener = Some(key);
        Some(outcome)
    }

    /// The hit's client's hashes for the hit's day, from the cache or worked out now.
    fn ident(&mut self, hit: &Hit<'_>, salts: &mut impl Salts) -> Option<Ident> {
        let day = day_number(hit.at_ms);
        let same = |i: &Ident| {
            i.day == day
                && i.ip == hit.client
                && *i.user_agent == *hit.user_agent
                && *i.episode == *hit.episode
        };
        if let Some(i) = self.last.as_ref().filter(|i| same(i)) {
            return Some(i.clone());
        }
        let mut h = std::hash::DefaultHasher::new();
        (hit.client, hit.user_agent, hit.episode).hash(&mut h);
        let slot = h.finish();
        if let Some(i) = self.idents.get(&slot).filter(|i| same(i)) {
            let i = i.clone();
            self.last = Some(i.clone());
            return Some(i);
        }
        let today = day_text(day);
        let salt = salts.salt(&today, true)?;
        let yesterday = salts
            .salt(&day_text(day - 1), false)
            .map(|old| listener_key(&old, hit.client, hit.user_agent, hit.episode).into());
        let ident = Ident {
            ip: hit.client,
            user_agent: hit.user_agent.into(),
            episode: hit.episode.into(),
            day,
            day_text: today.into(),
            address: address_hash(&salt, hit.client).into(),
            keys: (
                yesterday,
                listener_key(&salt, hit.client, hit.user_agent, hit.episode).into(),
            ),
            client: self.client(hit.user_agent),
        };
        if self.idents.len() >= 10_000 {
            self.idents.clear();
        }
        self.idents.insert(slot, ident.clone());
        self.last = Some(ident.clone());
        Some(ident)
    }

    fn is_open(&self, key: &str, at_ms: i64) -> bool {
        self.windows
            .get(key)
            .is_some_and(|w| at_ms < w.opened_ms + WINDOW_MS)
    }

    /// The windows changed since the last call, and the keys of windows that closed before
    /// `now_ms` (forgotten here; to be deleted wherever they were stored).
    pub fn take_changes(&mut self, now_ms: i64) -> (Vec<(String, Window)>, Vec<String>) {
        let mut closed = Vec::new();
        self.windows.retain(|k, w| {
            let open = now_ms < w.opened_ms + WINDOW_MS;
            if !open {
                closed.push(k.to_string());
            }
            open
        });
        let changed = std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|k| self.windows.get(&k).map(|w| (k.to_string(), w.clone())))
            .collect();
        (changed, closed)
    }

    /// Open windows.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_overlaps_and_neighbours() {
        let mut i = Intervals::default();
        i.add(10, 20);
        i.add(30, 40);
        assert_eq!(i.covered(), 20);
        i.add(15, 25);
        assert_eq!(i.pairs(), [(10, 25), (30, 40)]);
        i.add(25, 30);
        assert_eq!(i.pairs(), [(10, 40)]);
        i.add(0, 5);
        i.add(50, 60);
        i.add(0, 100);
        assert_eq!(i.pairs(), [(0, 100)]);
        i.add(7, 7);
        assert_eq!(i.covered(), 100);
        let text = Intervals::from_pairs(&[(5, 9), (1, 2)]).to_text();
        assert_eq!(text, "1-2,5-9");
        assert_eq!(Intervals::from_text(&text).unwrap().covered(), 5);
        assert_eq!(Intervals::from_text("x"), None);
    }

    #[test]
    fn minimum_is_the_tag_plus_a_minute_or_the_whole_short_file() {
        // 16 minutes, 960 s, 10 kB tag: one minute is a sixteenth of the audio.
        let secs = std::time::Duration::from_secs;
        assert_eq!(minimum_bytes(16_010_000, 10_000, secs(960)), 1_010_000);
        assert_eq!(minimum_bytes(16_010_001, 10_000, secs(960)), 1_010_001);
        assert_eq!(minimum_bytes(50_000, 1_000, secs(60)), 50_000);
        assert_eq!(minimum_bytes(50_000, 1_000, secs(30)), 50_000);
        assert_eq!(minimum_bytes(100, 500, secs(120)), 100);
    }

    #[test]
    fn id3v2_lengths_come_from_the_syncsafe_size() {
        assert_eq!(id3v2_len(b"ID3\x04\x00\x00\x00\x00\x02\x01rest"), 10 + 257);
        assert_eq!(id3v2_len(b"ID3\x04\x00\x10\x00\x00\x00\x0a"), 30);
        assert_eq!(id3v2_len(b"ID3\x04\x00\x00\x80\x00\x00\x00"), 0);
        assert_eq!(id3v2_len(b"\xff\xfb\x90\x00"), 0);
        assert_eq!(id3v2_len(b"ID3"), 0);
    }
}
