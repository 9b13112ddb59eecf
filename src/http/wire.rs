//! The wire: what each connection's socket really accepted, and zero-copy sends that cannot go
//! astray.
//!
//! Every data frame a response body hands hyper is first recorded in the connection's [`Wire`]
//! ledger, in order, with the response it belongs to. The socket writer ([`Tracked`]) matches each
//! slice hyper gives it against the ledger by address: a slice that starts exactly where the oldest
//! unwritten frame continues is that frame's body bytes; anything else is hyper's own (a head). When
//! `write` or `sendfile` returns, the bytes are credited to their response, so a delivery record
//! counts what the kernel took, not what was queued.
//!
//! Zero-copy stand-in frames (see [`crate::media::zerocopy`]) carry their file region in the
//! ledger. A region is sent only when the slice is exactly the unwritten rest of its own frame. The
//! ledger refuses, and the connection closes, when:
//! - a stand-in reaches the writer out of order, or without its region;
//! - a frame is cut short (hyper trimming a body at its `Content-Length`) or left half-written;
//! - a frame of an earlier response was never written when a later response yields its first
//!   frame (hyper buffers a response's head only once every queued frame of the last one is
//!   written, so a leftover means a frame was lost);
//! - a body stages a region whose stand-in never passes the ledger (a body transform in between);
//! - bytes that are neither a frame nor a head reach the writer while frames wait (hyper copying
//!   bodies into its own buffer, which would send a stand-in's zeros).
//!
//! These hold only with the hyper settings in `server::http1_builder`, which says so.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::delivery::Pending;
use crate::media::zerocopy::{is_stand_in, stand_in_start, Region, Regions};

/// One connection's ledger of frames handed to hyper and not yet written.
#[derive(Default)]
pub struct Wire {
    /// Regions staged by the current media body for the stand-ins it is about to yield.
    pub regions: Arc<Regions>,
    ledger: Mutex<Ledger>,
    /// Set by any read or write; the idle check clears it.
    moved: AtomicBool,
    /// Requests whose head hyper parsed, and response bodies that ended. While they are equal
    /// and no frame waits, the connection is waiting for its next request's head, which the
    /// header-read timeout bounds (`server::run` checks it; hyper's own timer would cost a clock
    /// read, an allocation and two timer-wheel locks per request).
    heads: AtomicU64,
    ended: AtomicU64,
}

#[derive(Default)]
struct Ledger {
    frames: VecDeque<Entry>,
    /// Why the connection may no longer write, once something did not match.
    broken: Option<&'static str>,
}

struct Entry {
    /// Address of the frame's first byte.
    start: usize,
    len: usize,
    written: usize,
    /// For a stand-in: the file region it stands for.
    region: Option<Region>,
    owner: Arc<Pending>,
}

impl Entry {
    fn continues_at(&self, slice: &[u8]) -> bool {
        slice.as_ptr() as usize == self.start + self.written
    }
}

/// What the writer may do with the slices it was given.
enum Plan {
    /// Write this many leading slices as they are.
    Write(usize),
    /// Send this much of the front frame's region with `sendfile`.
    Sendfile(Arc<File>, u64, usize),
}

/// This connection's ledger no longer matches what hyper writes.
#[derive(Debug, thiserror::Error)]
#[error("zero-copy ledger mismatch: {0}; closing the connection")]
pub struct Mismatch(pub &'static str);

impl From<Mismatch> for io::Error {
    fn from(m: Mismatch) -> io::Error {
        io::Error::other(m)
    }
}

impl Ledger {
    /// Breaks the connection: from now on it writes nothing.
    fn fail(&mut self, why: &'static str) -> Mismatch {
        self.broken = Some(why);
        tracing::error!(
            reason = why,
            "closing a connection: its writes no longer match the responses' frames"
        );
        Mismatch(why)
    }

    /// Fails if the connection is already broken.
    fn check(&self) -> Result<(), Mismatch> {
        self.broken.map_or(Ok(()), |why| Err(Mismatch(why)))
    }

    fn plan(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Plan> {
        self.check()?;
        let mut next = 0;
        for (i, b) in bufs.iter().enumerate() {
            if b.is_empty() {
                continue;
            }
            match self.frames.get(next) {
                Some(e) if e.continues_at(b) => {
                    if b.len() != e.len - e.written {
                        return Err(self.fail("a frame reached the socket cut short").into());
                    }
                    if let Some(r) = &e.region {
                        if i > 0 {
                            return Ok(Plan::Write(i));
                        }
                        let offset = r.offset + e.written as u64;
                        return Ok(Plan::Sendfile(Arc::clone(&r.file), offset, b.len()));
                    }
                    next += 1;
                }
                _ if is_stand_in(b) => {
                    return Err(self
                        .fail("a zero-copy frame reached the socket out of order")
                        .into());
                }
                Some(e) if e.written > 0 => {
                    return Err(self.fail("a frame was left half-written").into());
                }
                // hyper's own bytes: a response head (which ends in CRLF CRLF), or chunked
                // framing. Anything else while frames wait is a body hyper copied (flattened),
                // and a copied stand-in would be zeros.
                Some(_) if !b.ends_with(b"\r\n") => {
                    return Err(self
                        .fail("body bytes reached the socket copied, not as their frames")
                        .into());
                }
                _ => {}
            }
        }
        Ok(Plan::Write(bufs.len()))
    }

    /// Credits `n` written bytes of `bufs` to the frames they belong to.
    fn credit(&mut self, bufs: &[IoSlice<'_>], mut n: usize) {
        for b in bufs {
            if n == 0 {
                break;
            }
            let take = b.len().min(n);
            n -= take;
            if self.frames.front().is_some_and(|e| e.continues_at(b)) {
                self.credit_front(take, false);
            }
        }
    }

    fn credit_front(&mut self, n: usize, sendfile: bool) {
        let Some(e) = self.frames.front_mut() else {
            return;
        };
        e.written += n;
        e.owner.add_written(n as u64, sendfile);
        if e.written == e.len {
            self.frames.pop_front();
        }
    }
}

impl Wire {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a data frame `owner`'s body is handing to hyper. Fails, and breaks the connection,
    /// when the frame does not fit what was staged or what came before.
    pub fn register(&self, frame: &Bytes, owner: &Arc<Pending>) -> Result<(), Mismatch> {
        if frame.is_empty() {
            return Ok(()); // hyper discards empty frames
        }
        let mut l = self.lock();
        l.check()?;
        let fail = |l: &mut Ledger, why| Err(l.fail(why));
        if l.frames
            .front()
            .is_some_and(|e| !Arc::ptr_eq(&e.owner, owner))
        {
            return fail(&mut l, "a frame of an earlier response was never written");
        }
        let region = if is_stand_in(frame) {
            match self.regions.take() {
                Some(r)
                    if r.len == frame.len() as u64
                        && frame.as_ptr() as usize == stand_in_start() =>
                {
                    Some(r)
                }
                Some(_) => return fail(&mut l, "a zero-copy frame does not match its region"),
                None => return fail(&mut l, "a zero-copy frame has no region"),
            }
        } else {
            if !self.regions.is_empty() {
                return fail(&mut l, "a staged region's zero-copy frame never passed");
            }
            None
        };
        l.frames.push_back(Entry {
            start: frame.as_ptr() as usize,
            len: frame.len(),
            written: 0,
            region,
            owner: Arc::clone(owner),
        });
        Ok(())
    }

    /// A request's head was parsed and its handler is starting.
    pub fn head_arrived(&self) {
        self.heads.fetch_add(1, Ordering::Relaxed);
    }

    /// The count of request heads so far, when no request is in flight: every response body has
    /// ended and every frame is written. `None` while a request is being answered.
    pub fn awaiting_head(&self) -> Option<u64> {
        let heads = self.heads.load(Ordering::Relaxed);
        let idle = heads == self.ended.load(Ordering::Relaxed) && self.lock().frames.is_empty();
        idle.then_some(heads)
    }

    /// hyper let go of a response's body: the request is answered once its frames are written.
    pub fn body_dropped(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }

    /// A body finished or was dropped: nothing it staged may be left behind.
    pub fn body_ended(&self) -> Result<(), Mismatch> {
        if self.regions.is_empty() {
            return Ok(());
        }
        while self.regions.take().is_some() {}
        Err(self
            .lock()
            .fail("a body ended with a zero-copy region whose frame never passed"))
    }

    fn touch(&self) {
        self.moved.store(true, Ordering::Relaxed);
    }

    /// Whether bytes moved since the last call.
    pub fn take_moved(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }
}

/// A TCP stream that writes through its connection's [`Wire`].
pub struct Tracked {
    pub inner: TcpStream,
    pub wire: Arc<Wire>,
}

impl Tracked {
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        l: &mut Ledger,
        file: &File,
        mut offset: u64,
        n: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.inner, file, Some(&mut offset), n)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    // Changed in place under an open download; docs/catalog.md says to replace
                    // audio by renaming a new file over it instead.
                    return Poll::Ready(Err(l
                        .fail("the file is shorter than the catalog measured: it was changed in place; replace files by renaming a new one over them (docs/catalog.md)")
                        .into()));
                }
                Ok(k) => {
                    l.credit_front(k, true);
                    self.wire.touch();
                    return Poll::Ready(Ok(k));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
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
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.wire.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // The ledger is only ever locked by this connection's own task (the writer here and its
        // bodies), so holding it across the write costs no one a wait.
        let wire = Arc::clone(&self.wire);
        let mut l = wire.lock();
        match l.plan(bufs)? {
            Plan::Sendfile(file, offset, n) => self.poll_sendfile(cx, &mut l, &file, offset, n),
            Plan::Write(count) => {
                let bufs = &bufs[..count];
                let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
                if let Poll::Ready(Ok(n)) = poll {
                    if n > 0 {
                        l.credit(bufs, n);
                        wire.touch();
                    }
                }
                poll
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::zerocopy::stand_in;

    fn owner() -> Arc<Pending> {
        Pending::for_tests()
    }

    fn region(len: u64) -> Region {
        Region {
            file: Arc::new(tempfile::tempfile().unwrap()),
            offset: 4096,
            len,
        }
    }

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";

    /// A connection whose body staged a region of `len` bytes and registered its stand-in.
    fn registered_stand_in(len: usize) -> (Wire, Arc<Pending>, Bytes) {
        let wire = Wire::default();
        let o = owner();
        wire.regions.push(region(len as u64));
        let frame = stand_in(len);
        wire.register(&frame, &o).unwrap();
        (wire, o, frame)
    }

    #[test]
    fn a_head_then_ordinary_frames_are_credited_to_their_response() {
        let wire = Wire::default();
        let o = owner();
        let body = Bytes::from_static(b"0123456789");
        let (a, b) = (body.slice(..4), body.slice(4..));
        wire.register(&a, &o).unwrap();
        wire.register(&b, &o).unwrap();
        let mut l = wire.lock();
        let bufs = [IoSlice::new(HEAD), IoSlice::new(&a), IoSlice::new(&b)];
        assert!(matches!(l.plan(&bufs), Ok(Plan::Write(3))));
        // The socket took the head and 6 body bytes.
        l.credit(&bufs, HEAD.len() + 6);
        assert_eq!(o.written_for_tests(), 6);
        // hyper then offers the rest of the second frame.
        let rest = [IoSlice::new(&b[2..])];
        assert!(matches!(l.plan(&rest), Ok(Plan::Write(1))));
        l.credit(&rest, 4);
        assert_eq!(o.written_for_tests(), 10);
        assert!(l.frames.is_empty());
    }

    #[test]
    fn a_stand_in_is_sent_with_its_own_region_only() {
        let (wire, _o, frame) = registered_stand_in(100);
        let mut l = wire.lock();
        // The head goes first, on its own.
        let bufs = [IoSlice::new(HEAD), IoSlice::new(&frame)];
        assert!(matches!(l.plan(&bufs), Ok(Plan::Write(1))));
        l.credit(&bufs[..1], HEAD.len());
        match l.plan(&bufs[1..]) {
            Ok(Plan::Sendfile(_, offset, n)) => assert_eq!((offset, n), (4096, 100)),
            _ => panic!("expected sendfile"),
        }
        l.credit_front(40, true);
        match l.plan(&[IoSlice::new(&frame[40..])]) {
            Ok(Plan::Sendfile(_, offset, n)) => assert_eq!((offset, n), (4136, 60)),
            _ => panic!("expected the rest of the region"),
        }
    }

    #[test]
    fn a_stand_in_out_of_order_or_cut_short_closes_the_connection() {
        let (wire, _o, frame) = registered_stand_in(100);
        let mut l = wire.lock();
        // hyper trimming the frame at a Content-Length: the slice is shorter than the region.
        assert!(l.plan(&[IoSlice::new(&frame[..50])]).is_err());
        // Once broken, nothing more is written.
        assert!(l.plan(&[IoSlice::new(HEAD)]).is_err());

        let wire = Wire::default();
        let mut l = wire.lock();
        // A stand-in nobody registered.
        assert!(l.plan(&[IoSlice::new(&stand_in(10))]).is_err());
    }

    #[test]
    fn flattened_bodies_are_refused_before_any_zeros_go_out() {
        let (wire, _o, frame) = registered_stand_in(100);
        // What hyper's flattening write strategy would hand over: head and copied body in one.
        let mut flat = HEAD.to_vec();
        flat.extend_from_slice(&frame);
        assert!(wire.lock().plan(&[IoSlice::new(&flat)]).is_err());
    }

    #[test]
    fn frames_must_match_what_the_body_staged() {
        let o = owner();
        // A stand-in without a staged region.
        let wire = Wire::default();
        assert!(wire.register(&stand_in(10), &o).is_err());
        // A region whose stand-in has another length.
        let wire = Wire::default();
        wire.regions.push(region(100));
        assert!(wire.register(&stand_in(99), &o).is_err());
        // A region staged, and an ordinary frame passes instead (a transform in between).
        let wire = Wire::default();
        wire.regions.push(region(100));
        assert!(wire.register(&Bytes::from_static(b"zz"), &o).is_err());
        // A region staged that never passed when the body ends.
        let wire = Wire::default();
        wire.regions.push(region(100));
        assert!(wire.body_ended().is_err());
    }

    #[test]
    fn a_later_response_cannot_start_while_an_earlier_frame_is_unwritten() {
        let wire = Wire::default();
        let (first, second) = (owner(), owner());
        wire.register(&Bytes::from_static(b"abc"), &first).unwrap();
        assert!(wire.register(&Bytes::from_static(b"def"), &second).is_err());
        assert!(wire.lock().plan(&[IoSlice::new(HEAD)]).is_err());
    }
}
