//! The access log: one line per request with method, path, status, bytes actually sent, duration
//! and user agent, written when the response body finishes or the client goes away.
//!
//! The count comes from the body frames hyper pulled for the socket, so an aborted download logs
//! what was really sent rather than its Content-Length. Query strings are never logged, because
//! they may carry tokens.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{self as http, header, Method};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// What the log line reports once the body is done.
struct Record {
    method: Method,
    seen: Seen,
    status: u16,
    started: Instant,
    /// Content-Length as announced, if any; `bytes` below it means the client left early.
    length: Option<u64>,
    bytes: u64,
}

impl Drop for Record {
    fn drop(&mut self) {
        match SINK.get() {
            Some(sink) => {
                if !tracing::enabled!(target: "access", tracing::Level::INFO) {
                    return;
                }
                LINE.with_borrow_mut(|line| {
                    line.clear();
                    timestamp(line);
                    line.push_str("  INFO access: ");
                    self.message(line);
                    line.push('\n');
                    sink.write_line(line.as_bytes());
                });
            }
            None => {
                let mut message = String::new();
                self.message(&mut message);
                tracing::info!(target: "access", "{message}");
            }
        }
    }
}

impl Record {
    fn message(&self, out: &mut String) {
        use std::fmt::Write;
        let micros = self.started.elapsed().as_micros();
        let _ = write!(
            out,
            "method={} path={} status={} bytes={} length={} ms={}.{:03} ua={}",
            self.method,
            self.seen.path(),
            self.status,
            self.bytes,
            Length(self.length),
            micros / 1000,
            micros % 1000,
            self.seen.user_agent(),
        );
    }
}

/// Where access lines go when the binary installed a writer. Without one (the library in tests)
/// they go through `tracing`.
static SINK: OnceLock<Batcher> = OnceLock::new();

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The current second, formatted, so each line formats only its microseconds.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// A log writer that takes whole lines, or batches of them.
pub trait AccessSink: Send + Sync + 'static {
    fn write_lines(&self, lines: &[u8]);
}

impl<W: std::io::Write + Clone + Send + Sync + 'static> AccessSink for W {
    fn write_lines(&self, lines: &[u8]) {
        let mut w = self.clone();
        let _ = w.write_all(lines);
        let _ = w.flush();
    }
}

/// Collects access lines in memory and hands them to the writer in batches, from its own thread,
/// at most [`Batcher::INTERVAL`] after they were logged. A request only appends to a buffer under
/// a lock that no one holds for long: waking a writer thread per request (what a channel-per-line
/// writer does) cost a context switch per request on a busy core.
struct Batcher {
    pending: Mutex<Vec<u8>>,
    full: Condvar,
    /// Held while a batch is taken and written, so batches reach the sink in order.
    writing: Mutex<()>,
    /// Lines dropped because the sink fell [`Batcher::MAX_PENDING`] behind.
    dropped: std::sync::atomic::AtomicU64,
    sink: Box<dyn AccessSink>,
}

impl Batcher {
    const INTERVAL: Duration = Duration::from_millis(100);
    /// Past this many buffered bytes the writer is woken early.
    const FLUSH_AT: usize = 256 * 1024;
    /// Buffer capacity: room for a burst beyond `FLUSH_AT` while the writer wakes.
    const CAPACITY: usize = 2 * Self::FLUSH_AT;
    /// If the sink blocks (a stuck log reader), lines beyond this many buffered bytes are counted
    /// and dropped rather than growing memory without bound or stalling requests.
    const MAX_PENDING: usize = 64 * 1024 * 1024;

    fn write_line(&self, line: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() + line.len() > Self::MAX_PENDING {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        pending.extend_from_slice(line);
        if pending.len() >= Self::FLUSH_AT {
            self.full.notify_one();
        }
    }

    /// Hands everything buffered to the sink.
    fn flush(&self) {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let batch = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.is_empty() {
                return;
            }
            // Swap in a buffer of the same capacity, so requests never wait on a growing one.
            std::mem::replace(&mut *pending, Vec::with_capacity(Self::CAPACITY))
        };
        self.sink.write_lines(&batch);
        let dropped = self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "access log lines dropped: stderr fell more than 64 MiB behind; check that whatever reads the server's stderr (journald, a pipe, a log shipper) keeps up"
            );
        }
    }

    fn run(&self) {
        loop {
            {
                let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let _unused = self
                    .full
                    .wait_timeout_while(pending, Self::INTERVAL, |p| p.len() < Self::FLUSH_AT)
                    .unwrap_or_else(|e| e.into_inner());
            }
            self.flush();
        }
    }
}

/// Writes access lines to `sink` in batches, formatted like the `tracing` output around them,
/// without the subscriber's per-event formatting cost. Filtering still follows `RUST_LOG` for the
/// `access` target. Call [`flush`] before the process exits.
pub fn install_sink(sink: impl AccessSink) {
    let batcher = Batcher {
        pending: Mutex::new(Vec::with_capacity(Batcher::CAPACITY)),
        full: Condvar::new(),
        writing: Mutex::new(()),
        dropped: std::sync::atomic::AtomicU64::new(0),
        sink: Box::new(sink),
    };
    if SINK.set(batcher).is_ok() {
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(|| SINK.get().expect("just set").run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access log writer");
        }
    }
}

/// Writes out buffered access lines now (at shutdown).
pub fn flush() {
    if let Some(b) = SINK.get() {
        b.flush();
    }
}

/// `2026-11-23T15:16:44.848805Z`, as tracing-subscriber writes it.
fn timestamp(out: &mut String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *cached = secs;
            text.clear();
            if let Some(t) = chrono::DateTime::from_timestamp(secs as i64, 0) {
                use std::fmt::Write;
                let _ = write!(text, "{}", t.format("%Y-%m-%dT%H:%M:%S"));
            }
        }
        out.push_str(text);
    });
    use std::fmt::Write;
    let _ = write!(out, ".{:06}Z", now.subsec_micros());
}

/// `Content-Length` for the log: the number, or `-` when the body had none.
struct Length(Option<u64>);

impl std::fmt::Display for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("-"),
        }
    }
}

/// A body that counts the bytes it yields and logs when dropped.
pub struct Counted {
    inner: Body,
    record: Record,
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
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(data) = frame.data_ref() {
                this.record.bytes += data.len() as u64;
            }
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

/// What the log needs from the request, taken before the handler consumes it.
pub(super) struct Started {
    method: Method,
    seen: Seen,
    at: Instant,
}

/// The request's path and user agent, copied into one small allocation. Keeping the request's own
/// `Uri` or header values instead would pin hyper's 8 KiB read buffer (they share it) for the whole
/// response, and a long download would then hold two read buffers.
struct Seen {
    text: String,
    path_len: usize,
}

impl Seen {
    fn new(path: &str, user_agent: &str) -> Seen {
        let mut text = String::with_capacity(path.len() + user_agent.len());
        text.push_str(path);
        text.push_str(user_agent);
        Seen {
            text,
            path_len: path.len(),
        }
    }

    fn path(&self) -> &str {
        &self.text[..self.path_len]
    }

    fn user_agent(&self) -> &str {
        &self.text[self.path_len..]
    }
}

impl Started {
    pub(super) fn new(req: &Request) -> Started {
        Started {
            at: Instant::now(),
            method: req.method().clone(),
            seen: Seen::new(
                req.uri().path(),
                req.headers()
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-"),
            ),
        }
    }
}

/// Wraps the response body so that the log line, written when the body is done or dropped, reports
/// the bytes actually sent.
pub(super) fn counted(response: Response, started: Started) -> http::Response<Counted> {
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    // The header when a handler set it, else the body's exact size, which hyper announces.
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| HttpBody::size_hint(&body).exact());
    let record = Record {
        method: started.method,
        seen: started.seen,
        status,
        started: started.at,
        length,
        bytes: 0,
    };
    http::Response::from_parts(
        parts,
        Counted {
            inner: body,
            record,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A sink that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batcher(kept: &Kept) -> Batcher {
        Batcher {
            pending: Mutex::new(Vec::new()),
            full: Condvar::new(),
            writing: Mutex::new(()),
            dropped: std::sync::atomic::AtomicU64::new(0),
            sink: Box::new(kept.clone()),
        }
    }

    #[test]
    fn batches_reach_the_sink_whole_and_in_order() {
        let kept = Kept::default();
        let b = batcher(&kept);
        b.write_line(b"one\n");
        b.write_line(b"two\n");
        b.flush();
        b.write_line(b"three\n");
        assert_eq!(
            &kept.0.lock().unwrap()[..],
            b"one\ntwo\n",
            "nothing before a flush"
        );
        b.flush();
        b.flush(); // nothing pending: writes nothing
        assert_eq!(&kept.0.lock().unwrap()[..], b"one\ntwo\nthree\n");
    }

    #[test]
    fn a_sink_that_falls_far_behind_costs_dropped_lines_not_memory() {
        let kept = Kept::default();
        let b = batcher(&kept);
        b.write_line(b"kept\n");
        b.write_line(&vec![b'x'; Batcher::MAX_PENDING]);
        assert_eq!(
            b.dropped.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "the line that would pass the cap is dropped"
        );
        b.flush();
        assert_eq!(&kept.0.lock().unwrap()[..], b"kept\n");
        assert_eq!(b.dropped.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn timestamps_look_like_the_rest_of_the_log() {
        let mut s = String::new();
        timestamp(&mut s);
        // 2026-11-23T15:16:44.848805Z
        assert_eq!(s.len(), 27, "{s}");
        assert!(
            s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.',
            "{s}"
        );
    }
}
