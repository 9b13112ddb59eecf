//! Zero-copy media bodies: `sendfile(2)` under hyper.
//!
//! hyper writes a response as its head plus the body's frames, and with vectored writes it queues
//! body frames as they are, uncopied, until the connection writes them. A zero-copy body therefore
//! yields *stand-in* frames: `Bytes` that point into [`STAND_IN`], a static block that is never
//! read, and records which file region each stand-in stands for in the connection's
//! [`Regions`] queue. When the connection's writer (`http::server`'s stream) is handed a slice
//! that lies inside `STAND_IN`, it sends the next recorded region with `sendfile` instead, so
//! file bytes go from the page cache to the socket without passing through user space.
//!
//! Everything else stays hyper's: the head, Content-Length, keep-alive, pipelining order. Stand-ins
//! are written in the order they were yielded (hyper writes frames in order), so the regions queue
//! is first in, first out. A stand-in with no recorded region, or a file that ends early, is an
//! error that closes the connection; a stand-in's zeros are never sent.
//!
//! A body only uses stand-ins for chunks whose first and last byte are in the page cache, checked
//! with `preadv2(RWF_NOWAIT)`, so `sendfile` on the async thread does not wait for the disk; other
//! chunks are read and sent as ordinary bytes (see [`super::stream`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Largest stand-in frame: one `sendfile` call's worth, as nginx's default `sendfile_max_chunk`
/// is of the same order. The access log counts a frame when hyper takes it, so this also bounds
/// how far an aborted download's count can run ahead of the bytes handed to the kernel.
pub const STAND_IN_LEN: usize = 1024 * 1024;

/// Never read: only its address range matters. It lives in zero-initialised memory, so it costs
/// no resident memory.
static STAND_IN: [u8; STAND_IN_LEN] = [0; STAND_IN_LEN];

/// A stand-in frame for `len` bytes (at most [`STAND_IN_LEN`]).
pub fn stand_in(len: usize) -> Bytes {
    Bytes::from_static(&STAND_IN[..len])
}

/// Whether `buf` is (part of) a stand-in frame.
pub fn is_stand_in(buf: &[u8]) -> bool {
    let start = STAND_IN.as_ptr() as usize;
    let p = buf.as_ptr() as usize;
    !buf.is_empty() && p >= start && p < start + STAND_IN_LEN
}

/// Bytes this process has sent with `sendfile`, for tests and future metrics.
static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Records `n` bytes sent with `sendfile`.
pub fn record_sent(n: usize) {
    SENT.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Bytes this process has sent with `sendfile` so far.
pub fn bytes_sent() -> u64 {
    SENT.load(std::sync::atomic::Ordering::Relaxed)
}

/// A file region a stand-in frame stands for.
pub struct Region {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

/// The regions of stand-ins yielded on one connection and not yet written, oldest first.
#[derive(Default)]
pub struct Regions(Mutex<VecDeque<Region>>);

impl Regions {
    pub fn push(&self, region: Region) {
        self.lock().push_back(region);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Region>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next region's file and offset, and how much of a `want`-byte stand-in it covers.
    pub fn next(&self, want: usize) -> io::Result<(Arc<File>, u64, usize)> {
        let q = self.lock();
        let r = q.front().ok_or_else(|| {
            io::Error::other("a zero-copy frame reached the socket without its file region")
        })?;
        let n = (r.len.min(want as u64)) as usize;
        Ok((Arc::clone(&r.file), r.offset, n))
    }

    /// Records that `n` bytes of the front region were sent.
    pub fn advance(&self, n: usize) {
        let mut q = self.lock();
        if let Some(r) = q.front_mut() {
            r.offset += n as u64;
            r.len -= n as u64;
            if r.len == 0 {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_recognised_by_address_only() {
        let s = stand_in(1000);
        assert!(is_stand_in(&s));
        assert!(is_stand_in(&s[999..]));
        assert!(
            !is_stand_in(&s[1000..]),
            "an empty slice is nothing to send"
        );
        let zeros = vec![0u8; 1000];
        assert!(!is_stand_in(&zeros), "real zeros are real data");
    }

    #[test]
    fn regions_are_consumed_in_order_and_in_pieces() {
        let f = Arc::new(tempfile::tempfile().unwrap());
        let q = Regions::default();
        assert!(q.next(10).is_err(), "no region: an error, never zeros");
        q.push(Region {
            file: Arc::clone(&f),
            offset: 100,
            len: 50,
        });
        q.push(Region {
            file: f,
            offset: 7,
            len: 5,
        });
        let (_, off, n) = q.next(30).unwrap();
        assert_eq!((off, n), (100, 30));
        q.advance(30);
        let (_, off, n) = q.next(1000).unwrap();
        assert_eq!(
            (off, n),
            (130, 20),
            "a stand-in never spills into the next region"
        );
        q.advance(20);
        let (_, off, n) = q.next(1000).unwrap();
        assert_eq!((off, n), (7, 5));
        q.advance(5);
        assert!(q.next(1).is_err());
    }
}
