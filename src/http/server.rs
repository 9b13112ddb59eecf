//! The server loop: accepts connections up to a limit, serves HTTP/1.1 with hyper, enforces the
//! header-read and idle timeouts, and shuts down gracefully.
//!
//! Each connection holds a semaphore permit, so past `max_connections` new clients wait in the
//! kernel's accept queue instead of costing memory. Each gets a [`Wire`], the ledger through which
//! its socket writes (see [`super::wire`]). On shutdown the listener closes at once, in-flight
//! requests get `shutdown_grace` to finish, and then every connection left is closed, which ends
//! (and records) the responses still going out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::wire::{Tracked, Wire};
use super::{App, Connection};
use crate::config::ServerConfig;

/// hyper's read buffer limit per connection. It is above `MAX_URI_BYTES` and `MAX_HEAD_BYTES`, so
/// a long URI gets its 414 and a large head its 431 from those checks, with their limits named;
/// only a head past this buffer gets hyper's own 431. The buffer grows only as a request needs it.
const MAX_BUF: usize = 64 * 1024;

/// The hyper settings Rollcall serves with, in one place because zero-copy relies on them:
/// - HTTP/1 only: stand-in frames go to this connection's own socket writer;
/// - `writev(true)`, hyper's queued write strategy: body frames reach the writer as they are, in
///   order, and a response's head is buffered only once the previous body is fully written. With
///   flattening, hyper would copy a stand-in's zeros instead (the ledger would catch it and close
///   the connection; `tests/serve_wire.rs` fails if that happens);
/// - nothing between the handler's [`super::delivery::Counted`] body and hyper transforms frames.
pub(super) fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    // The header-read timeout is checked by `run`'s per-connection loop, not by hyper, whose
    // timer would arm and clear a timer-wheel entry (a clock read, an allocation and two locks)
    // for every request; so hyper gets no timer and no timeout of its own.
    builder
        .header_read_timeout(None)
        .keep_alive(true)
        .writev(true)
        .max_buf_size(MAX_BUF);
    builder
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains for `shutdown_grace`.
pub async fn run(listener: TcpListener, app: App, cfg: ServerConfig, shutdown: CancellationToken) {
    let app = Arc::new(app);
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    let builder = http1_builder();
    // Every connection's task, so that at the shutdown deadline the ones left can be closed.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        // Forget the connections that have finished.
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closes"),
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        tune(&stream, &cfg);
        let wire = Arc::new(Wire::default());
        let io = TokioIo::new(Tracked {
            inner: stream,
            wire: Arc::clone(&wire),
        });
        let connection = Connection {
            peer,
            wire: Arc::clone(&wire),
        };
        let app = Arc::clone(&app);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            connection.wire.head_arrived();
            let (parts, body) = req.into_parts();
            Arc::clone(&app).handle(parts, body, connection.clone())
        });
        let conn = graceful.watch(builder.serve_connection(io, service));
        let (idle, header_read) = (cfg.keep_alive_timeout, cfg.header_read_timeout);
        tasks.spawn(async move {
            tokio::pin!(conn);
            // Checked a few times per timeout: reads and writes only set a flag and count
            // requests, so the hot path reads no clock and arms no timer. A connection closes
            // after between 1 and 1.25 timeouts.
            let tick = (idle.min(header_read) / IDLE_CHECKS).max(Duration::from_millis(1));
            let mut moved_at = tokio::time::Instant::now();
            // Since when the connection has waited for a request head, and how many it had.
            let mut waiting: Option<(u64, tokio::time::Instant)> = None;
            loop {
                tokio::select! {
                    biased;
                    _ = &mut conn => break,
                    () = tokio::time::sleep(tick) => {
                        let now = tokio::time::Instant::now();
                        if wire.take_moved() {
                            moved_at = now;
                        } else if now - moved_at >= idle {
                            break; // No bytes either way for the whole keep-alive timeout.
                        }
                        waiting = match (wire.awaiting_head(), waiting) {
                            (None, _) => None,
                            (Some(heads), Some((seen, since))) if heads == seen => {
                                if now - since >= header_read {
                                    // No whole request head within the header-read timeout,
                                    // whether the client sent part of one or nothing at all.
                                    tracing::debug!(client = %peer, "closing a connection: no request head within header_read_timeout_secs");
                                    break;
                                }
                                Some((seen, since))
                            }
                            (Some(heads), _) => Some((heads, now)),
                        };
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
            // Closing a connection drops its responses, which publishes their delivery records;
            // wait until every one has, so that they are all out before this returns.
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// Per-connection socket options.
fn tune(stream: &TcpStream, cfg: &ServerConfig) {
    let _ = stream.set_nodelay(true);
    if let Some(n) = cfg.send_buffer {
        if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(stream, n) {
            tracing::warn!(error = %e, "cannot set the send buffer size");
        }
    }
}

/// Binds the listen address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Checks of a connection's activity per keep-alive timeout.
const IDLE_CHECKS: u32 = 4;
