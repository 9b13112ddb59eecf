//! One delivery record per response, produced when the response ends.
//!
//! [`Started`] copies what the record needs from the request before a handler takes it. [`finish`]
//! wraps the handler's response body in [`Counted`], which hands every data frame to the
//! connection's [`Wire`] ledger before hyper sees it; the socket writer credits the bytes it
//! really wrote to the response's [`Pending`] record. The record is published when the last of
//! its holders lets go: the body (when hyper is done with it) and the ledger's unwritten frames
//! (when they are written, or when the connection closes: the client went away or the shutdown
//! deadline passed). So a download cut off after 16 KiB reports what the kernel took.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{self as http, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::wire::Wire;
use crate::access::Credentials;
use crate::stats::{Deliveries, Delivery, RequestLine, RouteKind};

/// What the record needs from the request, taken before the handler consumes it.
pub(super) struct Started {
    at: SystemTime,
    clock: Instant,
    request: RequestLine,
}

impl Started {
    pub(super) fn new(req: &Parts) -> Started {
        // Header values that are not visible ASCII are recorded as "-": the log stays one line.
        let text = |name| {
            req.headers
                .get(name)
                .map(|v: &http::HeaderValue| v.to_str().unwrap_or("-"))
        };
        Started {
            at: SystemTime::now(),
            clock: Instant::now(),
            request: RequestLine::with_path_parts(
                req.method.as_str(),
                &redacted_parts(req.uri.path()),
                text(header::RANGE),
                text(header::USER_AGENT),
                text(header::REFERER).map(redacted_url).as_deref(),
            ),
        }
    }
}

/// The path as records and logs may keep it: the token of a personal URL (`/p/<token>/…`) is
/// replaced by `*`, whether or not the rest of the path names anything.
fn redacted(path: &str) -> String {
    redacted_parts(path).concat()
}

/// [`redacted`] as pieces to join, borrowed from `path`.
fn redacted_parts(path: &str) -> [&str; 2] {
    match path.strip_prefix("/p/") {
        Some(rest) => ["/p/*", rest.find('/').map_or("", |i| &rest[i..])],
        None => [path, ""],
    }
}

/// A `Referer` as records and logs may keep it: without query or fragment, and with the token of
/// a personal URL masked like [`redacted`] does.
fn redacted_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    match url.find("/p/") {
        Some(at) => [&url[..at], &redacted(&url[at..])].concat(),
        None => url.to_owned(),
    }
}

/// A response's record while its body is still going out.
pub struct Pending {
    draft: Option<Delivery>,
    clock: Instant,
    written: AtomicU64,
    sendfile: AtomicU64,
    /// Body bytes handed to hyper.
    yielded: AtomicU64,
    body_done: AtomicBool,
    sink: Arc<Deliveries>,
}

impl Pending {
    /// Credits `n` body bytes the socket accepted.
    pub(super) fn add_written(&self, n: u64, sendfile: bool) {
        self.written.fetch_add(n, Ordering::Relaxed);
        if sendfile {
            self.sendfile.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
impl Pending {
    /// A record that goes to a hub nobody reads.
    pub(super) fn for_tests() -> Arc<Pending> {
        Arc::new(Pending {
            draft: None,
            clock: Instant::now(),
            written: AtomicU64::new(0),
            sendfile: AtomicU64::new(0),
            yielded: AtomicU64::new(0),
            body_done: AtomicBool::new(false),
            sink: Arc::default(),
        })
    }

    pub(super) fn written_for_tests(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut d) = self.draft.take() else {
            return;
        };
        d.duration = self.clock.elapsed();
        d.bytes = *self.written.get_mut();
        d.sendfile_bytes = *self.sendfile.get_mut();
        d.complete = *self.body_done.get_mut() && d.bytes == *self.yielded.get_mut();
        self.sink.publish(d);
    }
}

/// What a media response adds to its record: the episode and audio it belongs to, which bytes of
/// the file its body carries, and the credentials a session cookie proved. Handed to [`finish`]
/// beside the response, not as a response extension, which would cost three allocations (the
/// extension map, its table and the boxed value) per response.
#[derive(Debug, Clone, Default)]
pub(super) struct Sent {
    pub episode: Option<Arc<str>>,
    pub audio: Option<Arc<crate::stats::AudioFile>>,
    pub extent: crate::stats::Extent,
    pub credentials: Option<Credentials>,
}

/// Who asked, for the record.
pub(super) struct Asker {
    pub route: RouteKind,
    /// What a media response adds.
    pub sent: Option<Sent>,
    pub client: IpAddr,
    pub credentials: Credentials,
}

/// Wraps `response`'s body so that its delivery is recorded through the connection's `wire`.
pub(super) fn finish(
    response: Response,
    started: Started,
    asker: Asker,
    wire: Arc<Wire>,
    sink: &Arc<Deliveries>,
) -> http::Response<Counted> {
    let (parts, body) = response.into_parts();
    let sent = asker.sent;
    // The header when a handler set it, else the body's exact size, which hyper announces.
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| HttpBody::size_hint(&body).exact());
    let draft = Delivery {
        at: started.at,
        duration: Default::default(),
        request: started.request,
        route: asker.route,
        episode: sent.as_ref().and_then(|s| s.episode.clone()),
        audio: sent.as_ref().and_then(|s| s.audio.clone()),
        extent: sent.as_ref().map(|s| s.extent.clone()).unwrap_or_default(),
        status: parts.status.as_u16(),
        length,
        bytes: 0,
        sendfile_bytes: 0,
        complete: false,
        client: asker.client,
        credentials: sent
            .and_then(|s| s.credentials)
            .unwrap_or(asker.credentials),
    };
    let pending = Arc::new(Pending {
        draft: Some(draft),
        clock: started.clock,
        written: AtomicU64::new(0),
        sendfile: AtomicU64::new(0),
        yielded: AtomicU64::new(0),
        body_done: AtomicBool::new(false),
        sink: Arc::clone(sink),
    });
    http::Response::from_parts(
        parts,
        Counted {
            inner: body,
            pending,
            wire,
            length,
        },
    )
}

/// A response body that records each frame in the connection's ledger before hyper takes it, and
/// refuses to yield more than its announced length (so hyper never has to cut it).
pub struct Counted {
    inner: Body,
    pending: Arc<Pending>,
    wire: Arc<Wire>,
    length: Option<u64>,
}

impl Counted {
    /// Body bytes yielded so far.
    fn yielded(&self) -> u64 {
        self.pending.yielded.load(Ordering::Relaxed)
    }

    fn check(&mut self, data: &Bytes) -> Result<(), &'static str> {
        let n = data.len() as u64;
        let yielded = self.pending.yielded.fetch_add(n, Ordering::Relaxed) + n;
        if self.length.is_some_and(|l| yielded > l) {
            return Err("a body yielded more than its Content-Length");
        }
        self.wire.register(data, &self.pending).map_err(|e| e.0)
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(why) = this.check(data) {
                        return Poll::Ready(Some(Err(axum::Error::new(why))));
                    }
                }
            }
            Poll::Ready(None) => {
                this.pending.body_done.store(true, Ordering::Relaxed);
                if let Err(e) = this.wire.body_ended() {
                    return Poll::Ready(Some(Err(axum::Error::new(e))));
                }
            }
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // hyper stops polling once a body reaches its Content-Length, without waiting for the end.
        if self.inner.is_end_stream() || self.length == Some(self.yielded()) {
            self.pending.body_done.store(true, Ordering::Relaxed);
        }
        let _ = self.wire.body_ended();
        self.wire.body_dropped();
    }
}

#[cfg(test)]
mod tests {
    use super::{redacted, redacted_url};

    #[test]
    fn referers_lose_their_query_and_any_token() {
        assert_eq!(
            redacted_url("https://a.example/feeds/x?page=2#top"),
            "https://a.example/feeds/x"
        );
        assert_eq!(
            redacted_url("https://a.example/p/s3cret/feeds/m.xml"),
            "https://a.example/p/*/feeds/m.xml"
        );
        assert_eq!(redacted_url("/episodes/x"), "/episodes/x");
    }

    #[test]
    fn personal_tokens_never_reach_a_record() {
        assert_eq!(redacted("/p/s3cret/feeds/a.xml"), "/p/*/feeds/a.xml");
        assert_eq!(redacted("/p/s3cret"), "/p/*");
        assert_eq!(redacted("/p/"), "/p/*");
        assert_eq!(redacted("/p/s3cret/"), "/p/*/");
        assert_eq!(redacted("/feeds/p/x.xml"), "/feeds/p/x.xml");
        assert_eq!(redacted("/media/x/1/x.mp3"), "/media/x/1/x.mp3");
    }
}
