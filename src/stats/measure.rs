//! The measurement thread: turns every media response's delivery record into a stored event and
//! counts downloads with a [`Tally`].
//!
//! It subscribes to the delivery records like the access log does, over its own bounded queue,
//! so streaming never waits for it: when the queue is full the record is dropped and counted.
//! Once a second it writes what it has to the store in one transaction: the events, the
//! downloads they made and the windows they changed. A failed write is kept and retried with the
//! next batch, up to [`MAX_UNWRITTEN`] events; past that, events are dropped and counted.
//! Counting itself needs the day's address salt from the store: while the store cannot give it
//! (locked, unwritable), records wait in arrival order, up to the same bound, and are counted
//! when it answers again.
//! Stopping writes everything received so far (retrying a refused batch a few times, then
//! counting it as lost). Once an hour, raw events older than the retention period are rolled up
//! into daily totals, and salts older than yesterday are deleted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::count::{self, Hit, Tally, Verdict};
use super::{Consumer, Deliveries, Delivery, RouteKind, Subscription};
use crate::access::Credentials;
use crate::store::{DownloadRow, Event, MeasurementBatch, Store};

/// Records the queue holds before it drops.
pub const QUEUE: usize = 64 * 1024;
/// How often a batch is written.
const INTERVAL: Duration = Duration::from_secs(1);
/// Events kept for a retry while the store cannot be written.
const MAX_UNWRITTEN: usize = 1_000_000;
/// How often old events are rolled up.
const ROLL_UP_EVERY: Duration = Duration::from_secs(3600);

/// What the measurement thread has done, for `/metrics`, `/admin/stats` and readiness.
#[derive(Debug, Default)]
pub struct Status {
    /// Events written to the store.
    pub events: AtomicU64,
    /// Downloads counted.
    pub downloads: AtomicU64,
    /// Events lost because the store could not take them.
    pub unwritten: AtomicU64,
    /// The last write to the store failed.
    pub failing: AtomicBool,
    /// When records were last lost (Unix milliseconds; 0: never), as the thread noticed.
    last_loss_ms: std::sync::atomic::AtomicI64,
    /// The loss count when the thread last looked.
    seen_lost: AtomicU64,
    /// Records lost because the queue was full (the subscription's own count).
    queue_dropped: std::sync::OnceLock<Arc<AtomicU64>>,
}

impl Status {
    /// Media records lost before they were stored: queue full, or store unwritable too long.
    pub fn dropped(&self) -> u64 {
        let queue = self
            .queue_dropped
            .get()
            .map_or(0, |q| q.load(Ordering::Relaxed));
        queue + self.unwritten.load(Ordering::Relaxed)
    }

    /// Whether records were lost within `window` of now.
    pub fn lost_within(&self, window: Duration) -> bool {
        let last = self.last_loss_ms.load(Ordering::Relaxed);
        last > 0 && millis(SystemTime::now()) - last <= window.as_millis() as i64
    }

    /// Notes the time if the loss count moved since last asked.
    fn notice_losses(&self) {
        let now = self.dropped();
        if now > self.seen_lost.swap(now, Ordering::Relaxed) {
            self.last_loss_ms
                .store(millis(SystemTime::now()), Ordering::Relaxed);
        }
    }
}

/// The running measurement; [`Measurement::finish`] writes what is left and stops it.
pub struct Measurement {
    consumer: Consumer,
    pub status: Arc<Status>,
}

impl Measurement {
    /// Starts measuring. Open windows are read back from the store first, so counting continues
    /// across restarts.
    pub fn start(
        deliveries: &Deliveries,
        store: Arc<Store>,
        config: &crate::config::MeasurementConfig,
    ) -> std::io::Result<Measurement> {
        Measurement::start_with_queue(deliveries, store, config, QUEUE)
    }

    fn start_with_queue(
        deliveries: &Deliveries,
        store: Arc<Store>,
        config: &crate::config::MeasurementConfig,
        queue: usize,
    ) -> std::io::Result<Measurement> {
        let windows = store.open_windows().map_err(std::io::Error::other)?;
        // Today's and yesterday's downloads per address, for the per-address limit.
        let now = millis(SystemTime::now());
        let mut per_day = HashMap::new();
        for day in [day_of(now), day_of(now - count::WINDOW_MS)] {
            let counts = store
                .address_downloads(&day)
                .map_err(std::io::Error::other)?;
            per_day.insert(day, counts);
        }
        let tally = Tally::resume(windows, config.address_limit.clone(), per_day);
        let retention_days = config.retention_days;
        let status = Arc::new(Status::default());
        let shared = Arc::clone(&status);
        let consumer =
            Consumer::spawn(deliveries, "measurement", queue, media, move |sub, stop| {
                let mut m = Measurer {
                    store,
                    tally,
                    salts: HashMap::new(),
                    pending: MeasurementBatch::default(),
                    status: shared,
                    retention: Duration::from_secs(retention_days * 86_400),
                    delivered: Vec::new(),
                    backlog: Default::default(),
                    salt_failing: false,
                };
                m.run(sub, stop);
            })?;
        let _ = status.queue_dropped.set(consumer.drop_count());
        Ok(Measurement { consumer, status })
    }

    /// Stores everything published so far, then stops.
    pub fn finish(self) {
        self.consumer.finish();
    }
}

struct Measurer {
    store: Arc<Store>,
    tally: Tally,
    /// Salts by day, from the store.
    salts: HashMap<String, [u8; 32]>,
    pending: MeasurementBatch,
    status: Arc<Status>,
    retention: Duration,
    /// A buffer for each record's delivered intervals.
    delivered: Vec<(u64, u64)>,
    /// Records waiting, in arrival order, for the day's salt the store could not give (it was
    /// locked or unwritable): counted once it can, so a store outage loses nothing.
    backlog: std::collections::VecDeque<Arc<Delivery>>,
    /// The salt lookup is failing (logged once per outage, not per record).
    salt_failing: bool,
}

/// The records measurement counts: media responses for an episode. Nothing else enters its
/// queue.
fn media(d: &Delivery) -> bool {
    d.route == RouteKind::Media && d.episode.is_some()
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn day_of(at_ms: i64) -> String {
    count::day_text(count::day_number(at_ms))
}

/// Reads the length of the ID3v2 tag at the start of `path`; 0 if it has none or cannot be read.
fn tag_len(path: &std::path::Path) -> u64 {
    use std::io::Read;
    let mut head = [0u8; 10];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
        Ok(()) => count::id3v2_len(&head),
        Err(_) => 0,
    }
}

impl Measurer {
    fn run(&mut self, sub: Subscription, stop: &AtomicBool) {
        let mut rolled: Option<std::time::Instant> = None;
        let mut written = std::time::Instant::now();
        loop {
            let last = stop.load(Ordering::Relaxed);
            if rolled.is_none_or(|t| t.elapsed() >= ROLL_UP_EVERY) {
                self.roll_up();
                rolled = Some(std::time::Instant::now());
            }
            // Records are counted as each drain takes them (every 5 to 100 ms, by their rate),
            // so they do not pile up (a record is several times the size of its event); the
            // store is written every INTERVAL.
            self.retry_backlog();
            for d in sub.drain() {
                // Behind a backlog, records wait their turn: windows depend on order.
                if !self.backlog.is_empty() || !self.observe(&d) {
                    self.hold(d);
                }
            }
            if last || written.elapsed() >= INTERVAL {
                self.write();
                written = std::time::Instant::now();
                self.status.notice_losses();
            }
            if last {
                self.write_last();
                return;
            }
            let holding = !self.pending.events.is_empty()
                || !self.pending.downloads.is_empty()
                || !self.backlog.is_empty();
            sub.pause(holding.then(|| written + INTERVAL));
        }
    }

    /// At shutdown, a batch the store refused gets a few more tries; what is still refused is
    /// counted as lost, and said so.
    fn write_last(&mut self) {
        for wait in [100, 500, 2000] {
            self.retry_backlog();
            if self.pending.events.is_empty()
                && self.pending.downloads.is_empty()
                && self.backlog.is_empty()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(wait));
            self.retry_backlog();
            self.write();
        }
        let lost = (self.pending.events.len() + self.backlog.len()) as u64;
        if lost > 0 {
            self.status.unwritten.fetch_add(lost, Ordering::Relaxed);
            tracing::error!(
                events = lost,
                "shutting down with measurement events the store would not take; they are lost"
            );
        }
    }

    /// Rolls up old events, and deletes salts older than yesterday even when no request has
    /// come today (a quiet server must forget them too).
    fn roll_up(&self) {
        let cutoff = millis(SystemTime::now() - self.retention);
        match self.store.roll_up(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "rolled old events up into daily totals"),
            Err(e) => tracing::error!(error = %e, "cannot roll up old events"),
        }
        let yesterday = day_of(millis(SystemTime::now()) - count::WINDOW_MS);
        if let Err(e) = self.store.forget_salts_before(&yesterday) {
            tracing::error!(error = %e, "cannot delete old address salts");
        }
    }

    /// The salt of `day`; with `create`, made if the day has none yet.
    fn salt(&mut self, day: &str, create: bool) -> Option<[u8; 32]> {
        if let Some(s) = self.salts.get(day) {
            return Some(*s);
        }
        let keep_from = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .ok()?
            .pred_opt()?
            .to_string();
        let got = if create {
            self.store.daily_salt(day, &keep_from).map(Some)
        } else {
            self.store.existing_salt(day)
        };
        match got {
            Ok(None) => None,
            Ok(Some(s)) => {
                if std::mem::take(&mut self.salt_failing) {
                    tracing::info!(
                        "the daily salt can be read again; counting the waiting requests"
                    );
                }
                if self.salts.len() >= 4 {
                    self.salts.clear();
                }
                self.salts.insert(day.to_owned(), s);
                Some(s)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.salt_failing, true) {
                    tracing::error!(error = %e, "cannot read the daily salt; media requests wait to be counted until the store answers");
                }
                self.status.failing.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Keeps a record that could not be counted yet, up to [`MAX_UNWRITTEN`]; past that it is
    /// dropped and counted as lost.
    fn hold(&mut self, d: Arc<Delivery>) {
        if self.backlog.len() >= MAX_UNWRITTEN {
            self.status.unwritten.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.backlog.push_back(d);
    }

    /// Counts the waiting records, in order, as far as the store lets it.
    fn retry_backlog(&mut self) {
        while let Some(d) = self.backlog.front().cloned() {
            if !self.observe(&d) {
                return;
            }
            self.backlog.pop_front();
        }
    }

    /// Counts one record and queues its event (and download) for the store. `false` if it could
    /// not be counted yet (no salt for its day: the store failed); nothing changed then.
    fn observe(&mut self, d: &Delivery) -> bool {
        let (RouteKind::Media, Some(episode)) = (d.route, &d.episode) else {
            return true;
        };
        let audio = d.audio.as_ref().map(|a| {
            let minimum = *a
                .minimum
                .get_or_init(|| count::minimum_bytes(a.size, tag_len(&a.path), a.duration));
            (a.size, minimum)
        });
        let mut delivered = std::mem::take(&mut self.delivered);
        d.delivered_into(&mut delivered);
        let user_agent = d.request.user_agent().unwrap_or_default();
        let hit = Hit {
            at_ms: millis(d.at),
            client: d.client,
            user_agent,
            episode,
            method: d.request.method(),
            status: d.status,
            range: d.request.range(),
            delivered: &delivered,
            audio,
            released_ms: d.audio.as_ref().map_or(i64::MIN, |a| a.released_ms),
            admin: crate::access::may_administer(d.credentials),
        };
        // The salt lookup borrows `self`; the tally is taken out for the call.
        let mut tally = std::mem::take(&mut self.tally);
        let outcome = tally.offer(&hit, &mut |day: &str, create| self.salt(day, create));
        self.tally = tally;
        let (at_ms, method, range) = (hit.at_ms, d.request.method(), d.request.range());
        self.delivered = delivered;
        let Some(outcome) = outcome else {
            return false;
        };
        let (user_id, fingerprint) = match d.credentials {
            Credentials::Anonymous => (None, None),
            Credentials::Account { id, .. } => (Some(id), None),
            Credentials::Personal {
                id, fingerprint, ..
            } => (
                Some(id),
                Some(fingerprint.iter().map(|b| format!("{b:02x}")).collect()),
            ),
        };
        if outcome.verdict == Verdict::Download {
            self.pending.downloads.push(DownloadRow {
                at: at_ms,
                day: Arc::clone(&outcome.day),
                episode: Arc::clone(episode),
                app: outcome.client.app,
                device: outcome.client.device,
                user_id,
                address: Arc::clone(&outcome.address),
            });
        }
        self.pending.events.push(Event {
            at: at_ms,
            day: outcome.day,
            episode: Arc::clone(episode),
            method: if method == "HEAD" { "HEAD" } else { "GET" },
            status: d.status,
            range: range.map(str::to_owned),
            bytes: d.bytes,
            agent: outcome.user_agent,
            user_id,
            fingerprint,
            address: outcome.address,
            verdict: outcome.verdict.as_str(),
        });
        true
    }

    fn write(&mut self) {
        let (changed, closed) = self.tally.take_changes(millis(SystemTime::now()));
        if !self.pending.windows.is_empty() {
            // A retry: a window changed again replaces its waiting copy.
            let fresh: std::collections::HashSet<&str> =
                changed.iter().map(|(k, _)| k.as_str()).collect();
            self.pending
                .windows
                .retain(|(k, _)| !fresh.contains(k.as_str()));
        }
        self.pending.windows.extend(changed);
        self.pending.closed.extend(closed);
        if self.pending.is_empty() {
            return;
        }
        match self.store.record_measurement(&self.pending) {
            Ok(()) => {
                let s = &self.status;
                s.events
                    .fetch_add(self.pending.events.len() as u64, Ordering::Relaxed);
                s.downloads
                    .fetch_add(self.pending.downloads.len() as u64, Ordering::Relaxed);
                // Still failing while records wait for a salt the store would not give.
                s.failing.store(!self.backlog.is_empty(), Ordering::Relaxed);
                // Cleared, not replaced: the next batch reuses the allocations.
                self.pending.events.clear();
                self.pending.downloads.clear();
                self.pending.windows.clear();
                self.pending.closed.clear();
            }
            Err(e) => {
                self.status.failing.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, waiting = self.pending.events.len(), "cannot store measurement events; retrying with the next batch");
                if self.pending.events.len() > MAX_UNWRITTEN {
                    let lost = self.pending.events.len() as u64;
                    self.status.unwritten.fetch_add(lost, Ordering::Relaxed);
                    self.pending.events.clear();
                    self.pending.downloads.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{AudioFile, Extent, RequestLine};

    fn config() -> crate::config::MeasurementConfig {
        crate::config::MeasurementConfig {
            enabled: true,
            retention_days: 30,
            address_limit: Default::default(),
        }
    }

    fn media(audio: &Arc<AudioFile>, ip: u8) -> Delivery {
        Delivery {
            at: SystemTime::now(),
            duration: Duration::ZERO,
            request: RequestLine::new("GET", "/media/ep/1/ep.mp3", None, Some("AntennaPod/3")),
            route: RouteKind::Media,
            episode: Some(Arc::clone(&audio.episode)),
            audio: Some(Arc::clone(audio)),
            extent: Extent::From(0),
            status: 200,
            length: Some(audio.size),
            bytes: audio.size,
            sendfile_bytes: 0,
            complete: true,
            client: std::net::IpAddr::from([192, 0, 2, ip]),
            credentials: Credentials::Anonymous,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_every_record_is_stored_or_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let hub = Deliveries::default();
        let m = Measurement::start_with_queue(&hub, Arc::clone(&store), &config(), 4).unwrap();
        let audio = Arc::new(AudioFile {
            episode: "ep".into(),
            path: dir.path().join("missing.mp3"),
            size: 1000,
            duration: Duration::from_secs(30),
            released_ms: 0,
            minimum: Default::default(),
        });
        // Published at once, far faster than one pass a second drains: most cannot queue.
        for i in 0..200u32 {
            hub.publish(media(&audio, (i % 250) as u8));
        }
        let status = Arc::clone(&m.status);
        m.finish();
        let stored = store.events(1000).unwrap().len() as u64;
        let dropped = status.dropped();
        assert!(dropped > 0, "a queue of 4 took 200 records at once");
        assert!(
            status.lost_within(Duration::from_secs(60)),
            "readiness hears of it"
        );
        assert_eq!(stored + dropped, 200, "stored {stored}, dropped {dropped}");
        assert_eq!(status.events.load(Ordering::Relaxed), stored);
        // Each record was a whole short file from its own address: each stored one is a download.
        assert_eq!(status.downloads.load(Ordering::Relaxed), stored);
    }

    #[test]
    fn counting_resumes_after_a_restart_from_the_stored_windows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let audio = Arc::new(AudioFile {
            episode: "ep".into(),
            path: dir.path().join("missing.mp3"),
            size: 1000,
            duration: Duration::from_secs(30),
            released_ms: 0,
            minimum: Default::default(),
        });
        for _ in 0..2 {
            let hub = Deliveries::default();
            let m = Measurement::start(&hub, Arc::clone(&store), &config()).unwrap();
            hub.publish(media(&audio, 7));
            m.finish();
        }
        let verdicts: Vec<&str> = store
            .events(10)
            .unwrap()
            .iter()
            .map(|e| e.verdict)
            .collect();
        assert_eq!(
            verdicts,
            ["download", "duplicate"],
            "the second run knew the first's window"
        );
    }
}
