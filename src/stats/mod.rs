//! Measurement: what each response really delivered.
//!
//! When a response ends (its last body byte reached the socket, the client cut it off, or the
//! shutdown deadline closed it), the http layer publishes one [`Delivery`] to [`Deliveries`], which
//! hands it to every subscriber over its own bounded channel: the access log today, download
//! measurement (#9) next. Publishing never blocks a request: a subscriber that falls behind loses
//! records, and each subscription counts what it lost.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::access::Credentials;

/// Which kind of resource a request named; `route` in a [`Delivery`].
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
    Personal,
    /// A path that names nothing, or a request refused before routing (no `Host`).
    Unknown,
}

impl RouteKind {
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
            RouteKind::Personal => "personal",
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
    pub method: String,
    /// The path without its query (queries may carry tokens).
    pub path: String,
    pub route: RouteKind,
    /// The episode's slug, for media that belongs to an episode.
    pub episode: Option<Arc<str>>,
    pub status: u16,
    /// The request's `Range` header, as sent.
    pub range: Option<String>,
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
    pub user_agent: Option<String>,
    pub credentials: Credentials,
}

struct Subscriber {
    name: &'static str,
    tx: SyncSender<Arc<Delivery>>,
    dropped: Arc<AtomicU64>,
}

/// Where deliveries go: any number of subscribers, each with a bounded queue.
#[derive(Default)]
pub struct Deliveries {
    subscribers: Mutex<Vec<Subscriber>>,
    /// Deliveries published so far.
    published: AtomicU64,
}

/// A subscriber's end: its records and how many it lost.
pub struct Subscription {
    pub records: Receiver<Arc<Delivery>>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Records lost because this subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Deliveries {
    /// Adds a subscriber whose queue holds up to `capacity` records. `name` appears in warnings.
    pub fn subscribe(&self, name: &'static str, capacity: usize) -> Subscription {
        let (tx, records) = mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        self.lock().push(Subscriber {
            name,
            tx,
            dropped: Arc::clone(&dropped),
        });
        Subscription { records, dropped }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `d` to every subscriber without waiting; a full queue counts a drop instead.
    pub fn publish(&self, d: Delivery) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let d = Arc::new(d);
        let mut subs = self.lock();
        subs.retain(|s| match s.tx.try_send(Arc::clone(&d)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::debug!(subscriber = s.name, "delivery subscriber went away");
                false
            }
        });
    }

    /// Deliveries published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(status: u16) -> Delivery {
        Delivery {
            at: SystemTime::now(),
            duration: Duration::ZERO,
            method: "GET".into(),
            path: "/".into(),
            route: RouteKind::Home,
            episode: None,
            status,
            range: None,
            length: None,
            bytes: 0,
            sendfile_bytes: 0,
            complete: true,
            client: IpAddr::from([127, 0, 0, 1]),
            user_agent: None,
            credentials: Credentials::Anonymous,
        }
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
        assert_eq!(hub.published(), 3);
    }

    #[test]
    fn a_subscriber_that_hung_up_is_forgotten() {
        let hub = Deliveries::default();
        drop(hub.subscribe("gone", 1));
        hub.publish(delivery(200));
        assert!(hub.lock().is_empty());
    }
}
