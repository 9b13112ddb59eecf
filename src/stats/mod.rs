//! Measurement: what each response really delivered.
//!
//! When a response ends (its last body byte reached the socket, the client cut it off, or the
//! shutdown deadline closed it), the http layer publishes one [`Delivery`] to [`Deliveries`], which
//! hands it to every subscriber over its own bounded channel: the access log today, download
//! measurement (#9) next. Publishing never blocks a request: a subscriber that falls behind loses
//! records, and each subscription counts what it lost.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::access::Credentials;

pub mod agents;
pub mod count;
pub mod measure;
pub mod metrics;
pub mod report;
pub mod usage;

/// Which kind of resource a request named, publicly or under a personal URL; `route` in a
/// [`Delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Home,
    Health,
    Opml,
    Feed,
    Theme,
    Episode,
    Static,
    Media,
    Artwork,
    /// `/files/…`: a theme's printable material.
    File,
    /// `/search`.
    Search,
    /// The admin surface: pages, forms and the API.
    Admin,
    /// `/metrics`.
    Metrics,
    /// A path that names nothing, or a request refused before routing (no `Host`).
    Unknown,
}

impl RouteKind {
    /// How many kinds there are: `kind as usize` is below it.
    pub const COUNT: usize = RouteKind::Unknown as usize + 1;

    /// Its name, as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Home => "home",
            RouteKind::Health => "health",
            RouteKind::Opml => "opml",
            RouteKind::Feed => "feed",
            RouteKind::Theme => "theme",
            RouteKind::Episode => "episode",
            RouteKind::Static => "static",
            RouteKind::Media => "media",
            RouteKind::Artwork => "artwork",
            RouteKind::File => "file",
            RouteKind::Search => "search",
            RouteKind::Admin => "admin",
            RouteKind::Metrics => "metrics",
            RouteKind::Unknown => "unknown",
        }
    }
}

/// One response, as it ended.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When the request arrived.
    pub at: SystemTime,
    /// From the request's arrival to the end of the response.
    pub duration: Duration,
    /// The method, path, `Range` and user agent, in one allocation; see the accessors.
    pub request: RequestLine,
    pub route: RouteKind,
    /// The episode's slug, for media that belongs to an episode.
    pub episode: Option<Arc<str>>,
    /// For an episode's audio: what counting needs to know of the file.
    pub audio: Option<Arc<AudioFile>>,
    /// Which bytes of the file the body carried, for media.
    pub extent: Extent,
    pub status: u16,
    /// The announced `Content-Length`, if any.
    pub length: Option<u64>,
    /// Body bytes the socket accepted for this response (counted where `write` and `sendfile`
    /// return, never when a frame is queued).
    pub bytes: u64,
    /// Of `bytes`, those sent with `sendfile`.
    pub sendfile_bytes: u64,
    /// True when the whole body the response produced reached the socket.
    pub complete: bool,
    /// The client's address: the peer, or the forwarded address when the peer is a trusted proxy.
    pub client: IpAddr,
    pub credentials: Credentials,
}

impl Delivery {
    /// The file's byte intervals `[start, end)` that reached the socket: the body's first
    /// `bytes` bytes, mapped through its extent.
    pub fn delivered(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        self.delivered_into(&mut out);
        out
    }

    /// [`Delivery::delivered`] into a buffer the caller reuses (cleared first).
    pub fn delivered_into(&self, out: &mut Vec<(u64, u64)>) {
        out.clear();
        match &self.extent {
            Extent::None => {}
            Extent::From(first) => {
                if self.bytes > 0 {
                    out.push((*first, first + self.bytes));
                }
            }
            Extent::Parts(parts) => out.extend(
                parts
                    .iter()
                    .filter(|p| p.body_at < self.bytes)
                    .map(|p| {
                        let len = p.len.min(self.bytes - p.body_at);
                        (p.file_at, p.file_at + len)
                    })
                    .filter(|(s, e)| s < e),
            ),
        }
    }
}

/// An episode's audio file, as measurement needs it.
#[derive(Debug, Clone)]
pub struct AudioFile {
    pub episode: Arc<str>,
    /// On disk, to read its ID3 tag's length.
    pub path: std::path::PathBuf,
    pub size: u64,
    pub duration: Duration,
    /// The episode's release, Unix milliseconds.
    pub released_ms: i64,
    /// The bytes a download needs, worked out by the measurement thread on first use (it reads
    /// the ID3 tag's length from the file).
    pub minimum: std::sync::OnceLock<u64>,
}

impl AudioFile {
    /// What measurement needs of `ep`'s audio.
    pub fn of(ep: &crate::catalog::Episode) -> AudioFile {
        AudioFile {
            episode: ep.slug.as_str().into(),
            path: ep.audio.path.clone(),
            size: ep.audio.size,
            duration: ep.duration,
            released_ms: ep.published.timestamp_millis(),
            minimum: Default::default(),
        }
    }

    /// Whether this is what [`AudioFile::of`] gives for `ep` (so it can be kept across a reload,
    /// with the minimum it has worked out).
    pub fn is_for(&self, ep: &crate::catalog::Episode) -> bool {
        *self.episode == *ep.slug
            && self.path == ep.audio.path
            && self.size == ep.audio.size
            && self.duration == ep.duration
            && self.released_ms == ep.published.timestamp_millis()
    }
}

/// Which bytes of a file a media response's body carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Extent {
    /// None: not media, or no body.
    #[default]
    None,
    /// The body is the file's bytes from this offset on (a whole file or one range).
    From(u64),
    /// A multipart body: each part's file bytes and where they sit in the body.
    Parts(Arc<[Piece]>),
}

/// One part of a multipart body: `len` file bytes from `file_at`, at `body_at` in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub body_at: u64,
    pub file_at: u64,
    pub len: u64,
}

/// What a record keeps of the request: its method, its path without the query (queries may carry
/// tokens), its `Range` header, its user agent and its `Referer` (without query, and with any
/// personal token masked), as sent. One buffer, because every request makes a record.
#[derive(Debug, Clone)]
pub struct RequestLine {
    text: String,
    /// Ends of the method and the path, and of range, user agent and referer (`None` if absent).
    method_end: usize,
    path_end: usize,
    range_end: Option<usize>,
    agent_end: Option<usize>,
    referer_end: Option<usize>,
}

impl RequestLine {
    pub fn new(method: &str, path: &str, range: Option<&str>, user_agent: Option<&str>) -> Self {
        RequestLine::with_referer(method, path, range, user_agent, None)
    }

    pub fn with_referer(
        method: &str,
        path: &str,
        range: Option<&str>,
        user_agent: Option<&str>,
        referer: Option<&str>,
    ) -> Self {
        Self::with_path_parts(method, &[path], range, user_agent, referer)
    }

    /// Like [`RequestLine::with_referer`], with the path given in pieces that are joined (a
    /// redacted personal path is `/p/*` and the rest, with no copy in between).
    pub fn with_path_parts(
        method: &str,
        path: &[&str],
        range: Option<&str>,
        user_agent: Option<&str>,
        referer: Option<&str>,
    ) -> Self {
        let len = |p: Option<&str>| p.map_or(0, str::len);
        let path_len: usize = path.iter().map(|p| p.len()).sum();
        let mut text = String::with_capacity(
            method.len() + path_len + len(range) + len(user_agent) + len(referer),
        );
        text.push_str(method);
        let method_end = text.len();
        for p in path {
            text.push_str(p);
        }
        let path_end = text.len();
        let mut push = |part: Option<&str>| {
            part.map(|p| {
                text.push_str(p);
                text.len()
            })
        };
        let range_end = push(range);
        let agent_end = push(user_agent);
        let referer_end = push(referer);
        RequestLine {
            text,
            method_end,
            path_end,
            range_end,
            agent_end,
            referer_end,
        }
    }

    pub fn method(&self) -> &str {
        &self.text[..self.method_end]
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        &self.text[self.method_end..self.path_end]
    }

    /// The `Range` header, as sent.
    pub fn range(&self) -> Option<&str> {
        self.range_end.map(|end| &self.text[self.path_end..end])
    }

    pub fn user_agent(&self) -> Option<&str> {
        let start = self.range_end.unwrap_or(self.path_end);
        self.agent_end.map(|end| &self.text[start..end])
    }

    /// The `Referer`, without its query and with any personal token masked.
    pub fn referer(&self) -> Option<&str> {
        let start = self.agent_end.or(self.range_end).unwrap_or(self.path_end);
        self.referer_end.map(|end| &self.text[start..end])
    }
}

struct Subscriber {
    name: &'static str,
    wants: Wants,
    tx: SyncSender<Arc<Delivery>>,
    dropped: Arc<AtomicU64>,
}

/// Which records a subscriber takes. The others never enter its queue, so they cost it
/// nothing and are freed as soon as the subscribers that want them are done.
pub type Wants = fn(&Delivery) -> bool;

/// Every record.
pub fn everything(_: &Delivery) -> bool {
    true
}

/// Where deliveries go: the metrics, and any number of subscribers, each with a bounded queue.
#[derive(Default)]
pub struct Deliveries {
    subscribers: Mutex<Vec<Subscriber>>,
    pub metrics: metrics::Metrics,
}

/// A subscriber's end: its records and how many it lost.
pub struct Subscription {
    pub records: Receiver<Arc<Delivery>>,
    dropped: Arc<AtomicU64>,
    /// The last pause, when the last drain began, and how many records drains have taken since
    /// (see [`Subscription::pause`]).
    paused: Cell<Duration>,
    drained_at: Cell<Instant>,
    taken: Cell<usize>,
}

impl Subscription {
    /// Records lost because this subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Takes every record that has arrived.
    pub fn drain(&self) -> impl Iterator<Item = Arc<Delivery>> + '_ {
        self.records
            .try_iter()
            .inspect(|_| self.taken.set(self.taken.get() + 1))
    }

    /// Parks the consumer's thread until its next drain (stopping a [`Consumer`] unparks it).
    /// `due`: when output the consumer holds (a batch of log lines, events not yet stored) is to
    /// be written on its own clock; the thread wakes by then. How long it parks is decided by
    /// `next_pause`: see there.
    pub fn pause(&self, due: Option<Instant>) {
        let now = Instant::now();
        std::thread::park_timeout(self.next_pause(now, due));
    }

    /// Long enough that the next drain takes about [`DRAIN_BATCH`] records at the rate the last
    /// ones came, between [`DRAIN`] and [`IDLE_PAUSE`]; twice the last pause (up to
    /// [`IDLE_PAUSE`]) when none came; and never past `due`.
    ///
    /// A busy server's records are taken every 5 ms, so few are in flight and they are still in
    /// the CPU's cache when read. At a few thousand responses a second or fewer (large downloads,
    /// whole feeds), a consumer wakes about ten times a second instead of two hundred, each time
    /// on the core the server shares: that took about 4% off the CPU per 1 MiB range and 9% off
    /// a whole-file download's (BENCHMARKS.md). The first record after a quiet spell may wait up
    /// to 100 ms to be taken.
    fn next_pause(&self, now: Instant, due: Option<Instant>) -> Duration {
        let since = now.saturating_duration_since(self.drained_at.replace(now));
        let taken = self.taken.replace(0);
        let by_rate = if taken == 0 {
            self.paused.get() * 2
        } else {
            since.mul_f64(DRAIN_BATCH as f64 / taken as f64)
        }
        .clamp(DRAIN, IDLE_PAUSE);
        self.paused.set(by_rate);
        due.map_or(by_rate, |d| {
            by_rate.min(
                d.saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            )
        })
    }
}

/// How often a [`Consumer`] thread takes what arrived in its queue at most. Often, so that few
/// records are in flight: 100 ms of them at 130k responses a second is megabytes, fallen out of
/// the CPU's cache before they are read (the access log drained every 5 ms instead of 100
/// measured 0.1-0.4 µs less per 304 at 256 connections; see BENCHMARKS.md). Each consumer
/// still writes its output in larger batches on its own clock.
pub const DRAIN: Duration = Duration::from_millis(5);

/// The records a drain aims to take: fewer arriving, longer pauses (see
/// [`Subscription::pause`]).
pub const DRAIN_BATCH: usize = 256;

/// The longest a consumer sleeps between drains.
pub const IDLE_PAUSE: Duration = Duration::from_millis(100);

/// A subscriber on its own thread: `run` gets the subscription and a stop flag, and returns
/// once the flag is set and everything published before it has been handled. Stopping
/// ([`Consumer::finish`], or dropping it) sets the flag, wakes the thread and waits for it.
pub struct Consumer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl Consumer {
    /// Subscribes as `name` to the records it `wants`, with a queue of `capacity` of them, and
    /// runs `run` on a thread of the same name.
    pub fn spawn(
        deliveries: &Deliveries,
        name: &'static str,
        capacity: usize,
        wants: Wants,
        run: impl FnOnce(Subscription, &std::sync::atomic::AtomicBool) + Send + 'static,
    ) -> std::io::Result<Consumer> {
        let sub = deliveries.subscribe_to(name, capacity, wants);
        let dropped = Arc::clone(&sub.dropped);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.replace(' ', "-"))
            .spawn(move || run(sub, &stopping))?;
        Ok(Consumer {
            stop,
            thread: Some(thread),
            dropped,
        })
    }

    /// The count of records this consumer's full queue lost.
    pub fn drop_count(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// Handles every record published so far, then stops the thread.
    pub fn finish(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl Deliveries {
    /// Adds a subscriber to every record, whose queue holds up to `capacity` of them. `name`
    /// appears in warnings.
    pub fn subscribe(&self, name: &'static str, capacity: usize) -> Subscription {
        self.subscribe_to(name, capacity, everything)
    }

    /// Adds a subscriber to the records it `wants`, whose queue holds up to `capacity` of them.
    pub fn subscribe_to(&self, name: &'static str, capacity: usize, wants: Wants) -> Subscription {
        let (tx, records) = mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        self.lock().push(Subscriber {
            name,
            wants,
            tx,
            dropped: Arc::clone(&dropped),
        });
        Subscription {
            records,
            dropped,
            paused: Cell::new(DRAIN),
            drained_at: Cell::new(Instant::now()),
            taken: Cell::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `d` in the metrics and hands it to every subscriber without waiting; a full queue
    /// counts a drop instead.
    pub fn publish(&self, d: Delivery) {
        self.metrics.observe(&d);
        let d = Arc::new(d);
        let mut subs = self.lock();
        subs.retain(|s| {
            if !(s.wants)(&d) {
                return true;
            }
            match s.tx.try_send(Arc::clone(&d)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => {
                    tracing::debug!(subscriber = s.name, "delivery subscriber went away");
                    false
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_pauses_by_the_rate_records_come_and_wakes_when_its_output_is_due() {
        let hub = Deliveries::default();
        let sub = hub.subscribe("test", 4096);
        let ms = |n| Duration::from_millis(n);
        let start = Instant::now();
        sub.drained_at.set(start);
        let now = Cell::new(start);
        let pause = |taken: usize, after: Duration, due: Option<Instant>| {
            for _ in 0..taken {
                hub.publish(delivery(200));
            }
            assert_eq!(sub.drain().count(), taken);
            now.set(now.get() + after);
            sub.next_pause(now.get(), due)
        };
        // Nothing comes: the pauses double up to 100 ms.
        let idle: Vec<_> = (0..6).map(|_| pause(0, ms(5), None)).collect();
        assert_eq!(idle, [10, 20, 40, 80, 100, 100].map(ms));
        // 256 records in 20 ms (12,800 a second): the next drain in 20 ms takes about 256 more.
        assert_eq!(pause(256, ms(20), None), ms(20));
        // 1,024 in 10 ms (102,400 a second) would be 2.5 ms: the shortest pause instead.
        assert_eq!(pause(1024, ms(10), None), DRAIN);
        // 3 in 5 ms (600 a second): the longest.
        assert_eq!(pause(3, ms(5), None), IDLE_PAUSE);
        // Output due in 20 ms: woken by then, whatever the rate says.
        let due = now.get() + ms(100 + 20);
        assert_eq!(pause(3, ms(100), Some(due)), ms(20));
        // Output already due: at once (1 ms), not never.
        assert_eq!(pause(3, ms(100), Some(due)), ms(1));
        // Nothing came, and the last pause by rate was the longest: still the longest.
        assert_eq!(pause(0, ms(100), None), IDLE_PAUSE);
    }

    fn delivery(status: u16) -> Delivery {
        Delivery {
            at: SystemTime::now(),
            duration: Duration::ZERO,
            request: RequestLine::new("GET", "/", None, None),
            route: RouteKind::Home,
            episode: None,
            audio: None,
            extent: Extent::None,
            status,
            length: None,
            bytes: 0,
            sendfile_bytes: 0,
            complete: true,
            client: IpAddr::from([127, 0, 0, 1]),
            credentials: Credentials::Anonymous,
        }
    }

    #[test]
    fn a_subscriber_gets_only_the_records_it_wants_and_others_are_not_counted_as_lost() {
        let hub = Deliveries::default();
        let partial = hub.subscribe_to("partial", 1, |d| d.status == 304);
        let all = hub.subscribe("all", 10);
        for s in [200, 304, 206, 200] {
            hub.publish(delivery(s));
        }
        let got: Vec<u16> = partial.records.try_iter().map(|d| d.status).collect();
        assert_eq!(got, [304]);
        assert_eq!(partial.dropped(), 0, "unwanted records are not drops");
        assert_eq!(all.records.try_iter().count(), 4);
    }

    #[test]
    fn a_full_subscriber_loses_records_and_counts_them_without_slowing_others() {
        let hub = Deliveries::default();
        let slow = hub.subscribe("slow", 1);
        let fast = hub.subscribe("fast", 10);
        for s in [200, 206, 304] {
            hub.publish(delivery(s));
        }
        assert_eq!(slow.dropped(), 2);
        assert_eq!(fast.dropped(), 0);
        assert_eq!(slow.records.try_recv().unwrap().status, 200);
        assert!(slow.records.try_recv().is_err());
        let got: Vec<u16> = fast.records.try_iter().map(|d| d.status).collect();
        assert_eq!(got, [200, 206, 304]);
    }

    #[test]
    fn request_lines_keep_each_part() {
        let r = RequestLine::new("GET", "/media/x.mp3", Some("bytes=0-1"), Some("gPodder"));
        assert_eq!(
            (r.method(), r.path(), r.range(), r.user_agent()),
            ("GET", "/media/x.mp3", Some("bytes=0-1"), Some("gPodder"))
        );
        let r = RequestLine::new("HEAD", "/", None, Some("curl"));
        assert_eq!((r.range(), r.user_agent()), (None, Some("curl")));
        let r = RequestLine::new("GET", "/", Some(""), None);
        assert_eq!((r.range(), r.user_agent()), (Some(""), None));
        let r = RequestLine::with_referer("GET", "/", None, Some("ua"), Some("https://x/"));
        assert_eq!(
            (r.user_agent(), r.referer()),
            (Some("ua"), Some("https://x/"))
        );
        let r = RequestLine::with_referer("GET", "/", Some("bytes=1-"), None, Some("r"));
        assert_eq!(
            (r.range(), r.user_agent(), r.referer()),
            (Some("bytes=1-"), None, Some("r"))
        );
    }

    #[test]
    fn delivered_intervals_follow_the_extent_and_stop_at_the_bytes_sent() {
        let mut d = delivery(206);
        d.bytes = 100;
        assert!(d.delivered().is_empty());
        d.extent = Extent::From(1000);
        assert_eq!(d.delivered(), [(1000, 1100)]);
        // Two parts of 50 file bytes, each after a 20-byte part header.
        d.extent = Extent::Parts(
            vec![
                Piece {
                    body_at: 20,
                    file_at: 0,
                    len: 50,
                },
                Piece {
                    body_at: 90,
                    file_at: 500,
                    len: 50,
                },
            ]
            .into(),
        );
        assert_eq!(d.delivered(), [(0, 50), (500, 510)]);
        d.bytes = 15;
        assert!(d.delivered().is_empty());
        d.bytes = 0;
        d.extent = Extent::From(0);
        assert!(d.delivered().is_empty());
    }

    #[test]
    fn a_subscriber_that_hung_up_is_forgotten() {
        let hub = Deliveries::default();
        drop(hub.subscribe("gone", 1));
        hub.publish(delivery(200));
        assert!(hub.lock().is_empty());
    }
}
