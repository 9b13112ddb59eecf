//! The server loop: accepts connections up to a limit, serves HTTP/1.1 with hyper, enforces the
//! header-read and idle timeouts, and shuts down gracefully.
//!
//! Each connection holds a semaphore permit, so past `max_connections` new clients wait in the
//! kernel's accept queue instead of costing memory. On shutdown the listener closes at once and
//! in-flight requests get `shutdown_grace` to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::App;
use crate::config::ServerConfig;
use crate::media::zerocopy::{is_stand_in, Regions};

/// hyper's read buffer limit per connection. Requests are small; a large buffer only costs memory.
const MAX_BUF: usize = 16 * 1024;

/// Serves `app` on `listener` until `shutdown` completes, then drains for `shutdown_grace`.
pub async fn run(
    listener: TcpListener,
    app: App,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let app = Arc::new(app);
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Without a timer hyper silently ignores header_read_timeout.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true)
        // Queue body frames and write them with vectored writes, never copying them into a
        // buffer: zero-copy stand-in frames depend on reaching the writer as they are (a copied
        // stand-in would be zeros).
        .writev(true)
        .max_buf_size(MAX_BUF);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closes"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let regions = Arc::new(Regions::default());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
            regions: Arc::clone(&regions),
        });
        let app = Arc::clone(&app);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (app, regions) = (Arc::clone(&app), Arc::clone(&regions));
            async move {
                let req = req.map(axum::body::Body::new);
                Ok::<_, std::convert::Infallible>(app.handle(req, Some(&regions)).await)
            }
        });
        let conn = graceful.watch(builder.serve_connection(io, service));
        let idle = cfg.keep_alive_timeout;
        tokio::spawn(async move {
            tokio::pin!(conn);
            // Checked a few times per timeout: reads and writes only set a flag, so the hot path
            // reads no clock. A connection closes after between 1 and 1.25 timeouts of silence.
            let tick = (idle / IDLE_CHECKS).max(Duration::from_millis(1));
            let mut quiet = 0;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut conn => break,
                    () = tokio::time::sleep(tick) => {
                        if activity.take_moved() {
                            quiet = 0;
                        } else {
                            quiet += 1;
                            if quiet >= IDLE_CHECKS {
                                break; // No bytes either way for the whole keep-alive timeout.
                            }
                        }
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(cfg.shutdown_grace) => {
            tracing::warn!(grace_secs = cfg.shutdown_grace.as_secs(), "shutdown deadline passed; closing remaining connections");
        }
    }
}

/// Binds the listen address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Checks of a connection's activity per keep-alive timeout.
const IDLE_CHECKS: u32 = 4;

/// Whether a connection moved bytes since the idle check last looked.
struct Activity {
    moved: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            moved: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.moved.store(true, Ordering::Relaxed);
    }

    fn take_moved(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }
}

/// A TCP stream that records whether bytes moved, and sends zero-copy stand-in frames with
/// `sendfile` (see [`crate::media::zerocopy`]).
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    regions: Arc<Regions>,
}

impl Tracked {
    /// Sends the file region behind a `want`-byte stand-in frame.
    fn poll_sendfile(&self, cx: &mut Context<'_>, want: usize) -> Poll<std::io::Result<usize>> {
        let (file, mut offset, n) = self.regions.next(want)?;
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.inner, &*file, Some(&mut offset), n)
                    .map_err(std::io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file is shorter than the catalog measured",
                    )))
                }
                Ok(k) => {
                    self.regions.advance(k);
                    crate::media::zerocopy::record_sent(k);
                    self.activity.touch();
                    return Poll::Ready(Ok(k));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if is_stand_in(buf) {
            return self.poll_sendfile(cx, buf.len());
        }
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // Ordinary bytes up to the first stand-in go out in one vectored write; a stand-in at the
        // front goes out with sendfile.
        let bufs = match bufs.iter().position(|b| is_stand_in(b)) {
            Some(0) => return self.poll_sendfile(cx, bufs[0].len()),
            Some(first) => &bufs[..first],
            None => bufs,
        };
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
