//! Use of personal feed URLs: when each officer's token was last used, from how many distinct
//! addresses, and with which apps, plus flags for tokens that look shared.
//!
//! A [`Recorder`] subscribes to the delivery records like the access log does, on its own
//! thread, and once a second writes the uses of personal tokens to the store in one transaction.
//! Client addresses are never stored: each is reduced to a keyed hash (HMAC-SHA256 with a salt
//! drawn for that UTC day and deleted the day after next; IPv6 addresses are cut to their /64
//! first), which is enough to count distinct addresses within a day and nothing more. When one
//! account's uses in a day come from more than `sharing_alert_addresses` addresses, the store
//! raises a flag, which the admin shows, and the log records it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{agents, Consumer, Deliveries, Delivery, Subscription};
use crate::access::Credentials;
use crate::store::{Store, TokenUse};

/// How often uses are written.
const INTERVAL: Duration = Duration::from_secs(1);

/// The running recorder; [`Recorder::finish`] writes what is left and stops it.
pub struct Recorder(Consumer);

impl Recorder {
    pub fn start(
        deliveries: &Deliveries,
        store: Arc<Store>,
        alert_above: u64,
    ) -> std::io::Result<Recorder> {
        Consumer::spawn(
            deliveries,
            "token usage",
            64 * 1024,
            personal,
            move |sub, stop| run(sub, &store, alert_above, stop),
        )
        .map(Recorder)
    }

    /// Records everything published so far, then stops.
    pub fn finish(self) {
        self.0.finish();
    }
}

/// The records this recorder takes: requests a personal token authorized.
fn personal(d: &Delivery) -> bool {
    matches!(d.credentials, Credentials::Personal { .. })
}

pub use super::count::address_key;
use super::count::{address_hash, day_number, day_text};

#[cfg(test)]
fn day_of(at: SystemTime) -> chrono::NaiveDate {
    chrono::DateTime::<chrono::Utc>::from(at).date_naive()
}

/// Remembers what was worked out for recent clients, so a busy app costs one regex match and
/// one keyed hash per address and user agent, not per request.
#[derive(Default)]
struct Seen {
    apps: std::collections::HashMap<String, &'static str>,
    addresses: std::collections::HashMap<IpAddr, String>,
}

impl Seen {
    fn app(&mut self, user_agent: &str) -> &'static str {
        if let Some(a) = self.apps.get(user_agent) {
            return a;
        }
        if self.apps.len() > 10_000 {
            self.apps.clear();
        }
        let a = agents::app_name(user_agent);
        self.apps.insert(user_agent.to_owned(), a);
        a
    }

    /// The keyed hash of `ip`; forgotten whenever the salt changes.
    fn address(&mut self, salt: &[u8; 32], ip: IpAddr) -> String {
        if self.addresses.len() > 10_000 {
            self.addresses.clear();
        }
        self.addresses
            .entry(ip)
            .or_insert_with(|| address_hash(salt, ip))
            .clone()
    }
}

/// One row per client, app and day: (account, UTC day number, address, user agent).
type Key = (i64, i64, IpAddr, String);

/// The personal uses drained since the last write, grouped by [`Key`] in order of first
/// appearance, each with its number of requests and the latest second among them. Records are
/// drained every 5 to 100 ms ([`super::Subscription::pause`]) and reduced to this at once, so they do not pile up in the queue
/// between writes: at a busy server's rate a second's records would be tens of MB, allocated
/// by the request threads and freed here in one burst.
#[derive(Default)]
struct Pending {
    groups: Vec<(Key, (i64, i64))>,
    index: std::collections::HashMap<Key, usize>,
    /// The group of the record before. An app polling over one connection sends runs of
    /// identical keys, so it is tried first and the map is asked only when the key changes.
    previous: Option<usize>,
}

impl Pending {
    fn add(&mut self, d: &Delivery) {
        let Credentials::Personal { id, .. } = d.credentials else {
            return;
        };
        let at_ms =
            d.at.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |t| t.as_millis() as i64);
        let (at, day, client) = (at_ms.div_euclid(1000), day_number(at_ms), d.client);
        let user_agent = d.request.user_agent().unwrap_or_default();
        let i = match self.previous {
            Some(i)
                if {
                    let k = &self.groups[i].0;
                    k.0 == id && k.1 == day && k.2 == client && k.3 == user_agent
                } =>
            {
                i
            }
            _ => {
                let key = (id, day, client, user_agent.to_owned());
                let groups = &mut self.groups;
                *self.index.entry(key).or_insert_with_key(|key| {
                    groups.push((key.clone(), (0, 0)));
                    groups.len() - 1
                })
            }
        };
        self.previous = Some(i);
        let g = &mut self.groups[i].1;
        g.0 += 1;
        g.1 = g.1.max(at);
    }

    /// The groups so far, leaving none.
    fn take(&mut self) -> Vec<(Key, (i64, i64))> {
        self.index.clear();
        self.previous = None;
        std::mem::take(&mut self.groups)
    }
}

fn run(sub: Subscription, store: &Store, alert_above: u64, stop: &AtomicBool) {
    let mut salt: Option<(i64, [u8; 32])> = None;
    let mut seen = Seen::default();
    let mut today: Option<(i64, String)> = None;
    let mut pending = Pending::default();
    let mut written = std::time::Instant::now();
    loop {
        let last = stop.load(Ordering::Relaxed);
        for d in sub.drain() {
            pending.add(&d);
        }
        if !last && written.elapsed() < INTERVAL {
            sub.pause((!pending.groups.is_empty()).then(|| written + INTERVAL));
            continue;
        }
        written = std::time::Instant::now();
        // Requests from one client with one app on one day are one row, so the keyed hash and
        // the app's name are worked out once per group, not per request.
        let groups = pending.take();
        let mut uses = Vec::with_capacity(groups.len());
        for ((id, day, client, user_agent), (requests, at)) in groups {
            let salt = match salt {
                Some((salt_day, s)) if salt_day == day => s,
                _ => match store.daily_salt(&day_text(day), &day_text(day - 1)) {
                    Ok(s) => {
                        salt = Some((day, s));
                        seen.addresses.clear();
                        s
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the daily salt; token uses not recorded");
                        continue;
                    }
                },
            };
            let day_text = match &today {
                Some((d, text)) if *d == day => text.clone(),
                _ => {
                    let text = day_text(day);
                    today = Some((day, text.clone()));
                    text
                }
            };
            uses.push(TokenUse {
                user_id: id,
                at,
                requests,
                day: day_text,
                address: seen.address(&salt, client),
                app: seen.app(&user_agent).to_owned(),
            });
        }
        if !uses.is_empty() {
            match store.record_token_uses(&uses, alert_above) {
                Ok(flags) => {
                    for f in flags {
                        tracing::warn!(
                            user = f.user,
                            day = f.day,
                            addresses = f.addresses,
                            "personal feed URL used from more addresses in a day than sharing_alert_addresses allows; it may be shared (see /admin/officers)"
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot record personal URL use"),
            }
        }
        if last {
            return;
        }
        sub.pause(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_group_by_account_address_and_app_across_interleaved_runs() {
        use crate::stats::{Extent, RequestLine, RouteKind};
        let use_by = |id: i64, ip: [u8; 4], ua: &str, secs: u64| {
            Arc::new(Delivery {
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
                duration: Duration::ZERO,
                request: RequestLine::new("GET", "/p/*/feeds/m.xml", None, Some(ua)),
                route: RouteKind::Feed,
                episode: None,
                audio: None,
                extent: Extent::None,
                status: 304,
                length: None,
                bytes: 0,
                sendfile_bytes: 0,
                complete: true,
                client: IpAddr::from(ip),
                credentials: Credentials::Personal {
                    id,
                    role: crate::access::Role::Officer,
                    fingerprint: [0; 4],
                },
            })
        };
        let mut anonymous = (*use_by(1, [10, 0, 0, 1], "AntennaPod/3", 0)).clone();
        anonymous.credentials = Credentials::Anonymous;
        let records = [
            use_by(1, [10, 0, 0, 1], "AntennaPod/3", 0),
            use_by(1, [10, 0, 0, 1], "AntennaPod/3", 5),
            use_by(1, [10, 0, 0, 2], "AntennaPod/3", 1),
            Arc::new(anonymous),
            use_by(2, [10, 0, 0, 1], "AntennaPod/3", 2),
            use_by(1, [10, 0, 0, 1], "AntennaPod/3", 3),
            use_by(1, [10, 0, 0, 1], "gPodder/3.11", 4),
            use_by(1, [10, 0, 0, 1], "AntennaPod/3", 86_400),
        ];
        // Drained in two goes, as the recorder drains its queue: the groups span both.
        let mut pending = Pending::default();
        for d in &records[..4] {
            pending.add(d);
        }
        for d in &records[4..] {
            pending.add(d);
        }
        let taken = pending.take();
        // Each group is dated with the UTC day of its requests.
        let days: Vec<String> = taken.iter().map(|g| day_text(g.0 .1)).collect();
        let first = day_of(records[0].at).to_string();
        let next = day_of(records[7].at).to_string();
        assert_eq!(next, day_of(records[0].at).succ_opt().unwrap().to_string());
        assert_eq!(days, [&*first, &first, &first, &first, &next]);
        let groups: Vec<(i64, IpAddr, String, (i64, i64))> = taken
            .into_iter()
            .map(|((id, _, ip, ua), n)| (id, ip, ua, n))
            .collect();
        let t = 1_700_000_000;
        assert_eq!(
            groups,
            [
                (
                    1,
                    IpAddr::from([10, 0, 0, 1]),
                    "AntennaPod/3".into(),
                    (3, t + 5)
                ),
                (
                    1,
                    IpAddr::from([10, 0, 0, 2]),
                    "AntennaPod/3".into(),
                    (1, t + 1)
                ),
                (
                    2,
                    IpAddr::from([10, 0, 0, 1]),
                    "AntennaPod/3".into(),
                    (1, t + 2)
                ),
                (
                    1,
                    IpAddr::from([10, 0, 0, 1]),
                    "gPodder/3.11".into(),
                    (1, t + 4)
                ),
                (
                    1,
                    IpAddr::from([10, 0, 0, 1]),
                    "AntennaPod/3".into(),
                    (1, t + 86_400)
                ),
            ]
        );
        assert!(pending.take().is_empty(), "taking leaves none");
    }

    #[test]
    fn addresses_hash_per_salt_and_v6_by_its_64() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let salt = [1u8; 32];
        assert_eq!(address_hash(&salt, a), address_hash(&salt, b));
        assert_ne!(address_hash(&salt, a), address_hash(&salt, c));
        assert_ne!(address_hash(&salt, a), address_hash(&[2u8; 32], a));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!address_hash(&salt, v4).contains("192"));
        assert_eq!(address_hash(&salt, v4).len(), 16);
    }
}
