//! Streaming a byte range of an open file with little memory per connection.
//!
//! On a connection that can send file regions with `sendfile` (see [`super::zerocopy`]), a chunk
//! whose pages are in the page cache goes out as a stand-in, uncopied. A chunk that is not cached is
//! first read into the page cache on the blocking pool, also uncopied (`sendfile` to `/dev/null`),
//! and then sent the same way; so the async thread never waits for the disk and cold audio costs no
//! copy either.
//!
//! Otherwise (no zero-copy, or a chunk still not cached after warming) each chunk is a positional
//! read into a fresh buffer that is handed to the socket writer and freed once written, so a
//! stalled client pins at most one chunk. Reads first try `preadv2(RWF_NOWAIT)` on the async
//! thread, which succeeds without blocking when the pages are cached; only a cache miss goes to the
//! blocking pool.
//!
//! Chunks start at 16 KiB and grow only once a client has taken 8 MiB promptly: the
//! kernel's socket buffer swallows the first chunks of even a stalled client, so growing on speed
//! alone would leave every stalled connection pinning the largest chunk.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use rustix::io::{Errno, ReadWriteFlags};
use tokio::task::JoinHandle;

use super::zerocopy::{stand_in, Region, Regions, STAND_IN_LEN};

/// First read size, and the most a stalled client can pin.
pub const MIN_CHUNK: usize = 16 * 1024;
/// Largest read size for a client that keeps up.
pub const MAX_CHUNK: usize = 256 * 1024;
/// A range this small is read in one go, whatever the chunk size.
const SMALL_RANGE: u64 = 64 * 1024;
/// A chunk taken sooner than this after the previous one means the client is keeping up.
const FAST: Duration = Duration::from_millis(2);
/// Bytes a client must have taken before chunks may grow: more than loopback socket buffers
/// (up to 4 MiB each way here) can absorb from a client that has stopped reading.
const GROW_AFTER: u64 = 8 * 1024 * 1024;

pub struct FileStream {
    /// Where to record regions sent as zero-copy stand-ins, when the connection supports it.
    zero_copy: Option<Arc<Regions>>,
    /// The file lives in memory (a memfd), so no page-cache probe is needed.
    resident: bool,
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    chunk: usize,
    sent: u64,
    last: Option<Instant>,
    pending: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// A chunk being read into the page cache on the blocking pool, to be sent as a stand-in.
    warming: Option<JoinHandle<io::Result<()>>>,
    /// The end of the last chunk warmed: a chunk before it that is still not cached is copied
    /// instead of warmed again.
    warmed_to: u64,
}

impl FileStream {
    /// Streams `len` bytes of `file` starting at `offset`.
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> FileStream {
        FileStream {
            zero_copy: None,
            resident: false,
            file,
            offset,
            remaining: len,
            chunk: MIN_CHUNK,
            sent: 0,
            last: None,
            pending: None,
            warming: None,
            warmed_to: 0,
        }
    }

    /// Sends cached chunks with `sendfile` through `regions` (see [`super::zerocopy`]).
    pub fn zero_copy(mut self, regions: Option<Arc<Regions>>) -> FileStream {
        self.zero_copy = regions;
        self
    }

    /// Streams an in-memory file (a memfd): every chunk is a stand-in, unprobed. (Shared memory
    /// does not take `RWF_NOWAIT`, and only swap could take its pages away.)
    pub fn resident(mut self) -> FileStream {
        self.resident = true;
        self
    }

    /// A stand-in frame for the next chunk, if all its pages are in the page cache.
    fn try_stand_in(&mut self) -> Option<Bytes> {
        let regions = self.zero_copy.as_ref()?;
        let want = self.remaining.min(STAND_IN_LEN as u64);
        if !self.resident && !super::residency::cached(&self.file, self.offset, want) {
            return None;
        }
        regions.push(Region {
            file: Arc::clone(&self.file),
            offset: self.offset,
            len: want,
        });
        self.offset += want;
        self.remaining -= want;
        self.sent += want;
        self.last = Some(Instant::now());
        Some(stand_in(want as usize))
    }

    /// Starts reading the next chunk into the page cache on the blocking pool, if this stream
    /// sends stand-ins and has not just warmed this chunk.
    fn start_warming(&mut self) -> bool {
        if self.zero_copy.is_none() || self.resident || self.offset < self.warmed_to {
            return false;
        }
        let len = self.remaining.min(STAND_IN_LEN as u64);
        let (file, offset) = (Arc::clone(&self.file), self.offset);
        self.warmed_to = offset + len;
        self.warming = Some(tokio::task::spawn_blocking(move || {
            warm(&file, offset, len)
        }));
        true
    }

    fn advance(&mut self, buf: Vec<u8>) -> Poll<Option<io::Result<Bytes>>> {
        if buf.is_empty() {
            self.remaining = 0;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file is shorter than the catalog measured",
            ))));
        }
        self.offset += buf.len() as u64;
        self.remaining -= buf.len() as u64;
        self.sent += buf.len() as u64;
        self.last = Some(Instant::now());
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    }
}

impl Stream for FileStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(handle) = self.pending.as_mut() {
            let done = ready!(Pin::new(handle).poll(cx));
            self.pending = None;
            return match done {
                Ok(Ok(buf)) => self.advance(buf),
                Ok(Err(e)) => Poll::Ready(Some(Err(e))),
                Err(join) => Poll::Ready(Some(Err(io::Error::other(join)))),
            };
        }
        if let Some(handle) = self.warming.as_mut() {
            // Whatever came of it, the chunk is probed again below and copied if still not cached.
            let _ = ready!(Pin::new(handle).poll(cx));
            self.warming = None;
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(frame) = self.try_stand_in() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if self.start_warming() {
            return self.poll_next(cx);
        }
        match self.last {
            Some(t) if t.elapsed() < FAST && self.sent >= GROW_AFTER => {
                self.chunk = (self.chunk * 2).min(MAX_CHUNK);
            }
            Some(t) if t.elapsed() >= FAST => self.chunk = MIN_CHUNK,
            _ => {}
        }
        // A small range (a seek probe, a 64 KiB window) is read whole: one syscall and one frame.
        let want = if self.remaining <= SMALL_RANGE {
            self.remaining as usize
        } else {
            self.chunk.min(self.remaining as usize)
        };
        let mut buf = vec![0u8; want];
        match rustix::io::preadv2(
            &*self.file,
            &mut [io::IoSliceMut::new(&mut buf)],
            self.offset,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(n) if n > 0 => {
                buf.truncate(n);
                self.advance(buf)
            }
            Ok(_) => self.advance(Vec::new()),
            Err(e) if e == Errno::AGAIN || e == Errno::OPNOTSUPP || e == Errno::NOSYS => {
                // Not cached (or no RWF_NOWAIT here): read on the blocking pool.
                let file = Arc::clone(&self.file);
                let offset = self.offset;
                self.pending = Some(tokio::task::spawn_blocking(move || {
                    let n = file.read_at(&mut buf, offset)?;
                    buf.truncate(n);
                    Ok(buf)
                }));
                self.poll_next(cx)
            }
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

/// `/dev/null`, opened once for writing: where [`warm`] sends pages it reads.
fn null_sink() -> io::Result<&'static File> {
    static NULL: OnceLock<Option<File>> = OnceLock::new();
    NULL.get_or_init(|| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .ok()
    })
    .as_ref()
    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "/dev/null cannot be opened"))
}

/// Reads `len` bytes of `file` from `offset` into the page cache without copying them out of the
/// kernel: `sendfile` to `/dev/null` waits for each page to be read and then discards it. Blocks
/// on the disk, so it runs on the blocking pool. Stops early at the end of the file (the stream
/// reports a file that shrank when it reads past it).
fn warm(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let sink = null_sink()?;
    let (mut at, end) = (offset, offset + len);
    while at < end {
        let count = (end - at) as usize;
        // The kernel moves `at` past the bytes it read.
        let n = rustix::fs::sendfile(sink, file, Some(&mut at), count)?;
        if n == 0 {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::residency::testing::evicted_file;
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn streams_exactly_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let mut s = FileStream::new(Arc::new(File::open(&p).unwrap()), 12_345, 600_000);
        let mut got = Vec::new();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= MAX_CHUNK);
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, &data[12_345..612_345]);
    }

    #[tokio::test]
    async fn cached_chunks_become_stand_ins_with_their_regions_in_order() {
        use super::super::zerocopy::is_stand_in;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let len = STAND_IN_LEN + 300_000;
        std::fs::write(&p, vec![7u8; len + 1000]).unwrap(); // just written: in the page cache
        let regions = Arc::new(Regions::default());
        let mut s = FileStream::new(Arc::new(File::open(&p).unwrap()), 1000, len as u64)
            .zero_copy(Some(Arc::clone(&regions)));
        let mut frames = Vec::new();
        while let Some(chunk) = s.next().await {
            frames.push(chunk.unwrap());
        }
        assert_eq!(frames.len(), 2);
        assert!(
            frames.iter().all(|f| is_stand_in(f)),
            "no bytes were copied"
        );
        assert_eq!(frames[0].len(), STAND_IN_LEN);
        assert_eq!(frames[1].len(), 300_000);
        let r = regions.take().unwrap();
        assert_eq!((r.offset, r.len), (1000, STAND_IN_LEN as u64));
        let r = regions.take().unwrap();
        assert_eq!((r.offset, r.len), (1000 + STAND_IN_LEN as u64, 300_000));
        assert!(regions.take().is_none());
    }

    #[tokio::test]
    async fn uncached_chunks_are_read_into_the_page_cache_and_sent_uncopied() {
        use super::super::zerocopy::is_stand_in;
        let len = 2 * STAND_IN_LEN + 4096;
        let (_dir, file, evicted) = evicted_file(&vec![9u8; len]);
        let file = Arc::new(file);
        if !evicted {
            eprintln!("skipped: this filesystem keeps the file in memory after fadvise(DONTNEED)");
            return;
        }
        let regions = Arc::new(Regions::default());
        let mut s =
            FileStream::new(Arc::clone(&file), 0, len as u64).zero_copy(Some(Arc::clone(&regions)));
        let mut lens = Vec::new();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.unwrap();
            assert!(is_stand_in(&chunk), "a chunk was copied");
            lens.push(chunk.len());
        }
        assert_eq!(lens, [STAND_IN_LEN, STAND_IN_LEN, 4096]);
        assert!(super::super::residency::cached(&file, 0, len as u64));
        let mut offsets = Vec::new();
        while let Some(r) = regions.take() {
            offsets.push((r.offset, r.len));
        }
        let m = STAND_IN_LEN as u64;
        assert_eq!(offsets, [(0, m), (m, m), (2 * m, 4096)]);
    }

    #[tokio::test]
    async fn without_zero_copy_an_uncached_file_is_read_and_copied() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let (_dir, file, _) = evicted_file(&data);
        let mut s = FileStream::new(Arc::new(file), 10, 299_990);
        let mut got = Vec::new();
        while let Some(chunk) = s.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert!(got == data[10..], "the bytes read back differ");
    }

    #[tokio::test]
    async fn a_file_that_shrank_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![1u8; 1000]).unwrap();
        let mut s = FileStream::new(Arc::new(File::open(&p).unwrap()), 0, 5000);
        assert_eq!(s.next().await.unwrap().unwrap().len(), 1000);
        assert!(s.next().await.unwrap().is_err());
    }
}
