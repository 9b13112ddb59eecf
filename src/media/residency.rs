//! Whether a file region's pages are in the page cache, asked without reading them.
//!
//! `sendfile` on an async worker thread must never wait for the disk, so a media chunk is sent
//! with it only when every page of the chunk is cached. `cachestat(2)` (Linux 6.5 and later)
//! counts exactly the cached pages of a range, in one call. Where the kernel lacks it or refuses it
//! (`ENOSYS`, or `EPERM` from a seccomp filter), the process stops asking it, and one-byte
//! `preadv2(RWF_NOWAIT)` probes stand in: the first and last byte and one in every 128 KiB between. The probes are
//! weaker and dearer: they sample pages, and they also fail on a cached page that carries the
//! kernel's readahead mark (`RWF_NOWAIT` may not even start readahead), so a cached chunk can be
//! sent the slow way.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::ReadWriteFlags;

/// Distance between probes: Linux's default readahead window.
const PROBE_STEP: usize = 128 * 1024;
/// `cachestat`'s number: system calls added since Linux 5.1 share one number on every architecture but alpha.
const SYS_CACHESTAT: libc::c_long = 451;

/// Cleared once the kernel says it has no `cachestat` or may not use it.
static HAS_CACHESTAT: AtomicBool = AtomicBool::new(true);

/// Whether all `len` bytes of `file` from `offset` are in the page cache (`len` > 0).
pub fn cached(file: &File, offset: u64, len: u64) -> bool {
    if HAS_CACHESTAT.load(Ordering::Relaxed) {
        match cached_pages(file, offset, len) {
            Ok(n) => return n >= pages(offset, len),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                HAS_CACHESTAT.store(false, Ordering::Relaxed);
            }
            Err(_) => {} // not for this file (hugetlbfs, for one): probe it
        }
    }
    probed(file, offset, len)
}

/// Pages that hold bytes `[offset, offset + len)`.
fn pages(offset: u64, len: u64) -> u64 {
    let size = rustix::param::page_size() as u64;
    (offset + len - 1) / size - offset / size + 1
}

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Pages of the range in the page cache, from `cachestat(2)`.
#[allow(unsafe_code)]
fn cached_pages(file: &File, offset: u64, len: u64) -> io::Result<u64> {
    let range = CachestatRange { off: offset, len };
    let mut stat = Cachestat::default();
    // SAFETY: `cachestat(fd, range, stat, flags)` reads one `struct cachestat_range` and writes
    // one `struct cachestat`, both laid out as above (`repr(C)`, all `__u64`), and both live for
    // the call; the descriptor stays open while `file` is borrowed.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    if r == 0 {
        Ok(stat.nr_cache)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The fallback: one-byte `RWF_NOWAIT` reads at the first and last byte and every
/// [`PROBE_STEP`] between.
fn probed(file: &File, offset: u64, len: u64) -> bool {
    let last = offset + len - 1;
    (offset..last)
        .step_by(PROBE_STEP)
        .chain(std::iter::once(last))
        .all(|at| probe(file, at))
}

/// Whether the byte at `at` reads without waiting.
fn probe(file: &File, at: u64) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        rustix::io::preadv2(
            file,
            &mut [io::IoSliceMut::new(&mut byte)],
            at,
            ReadWriteFlags::NOWAIT,
        ),
        Ok(1)
    )
}

/// Files on disk whose pages the tests can drop from the page cache.
#[cfg(test)]
pub(super) mod testing {
    use std::fs::File;
    use std::io::Write;

    /// `data` written to a file on disk (in the crate's folder: `/tmp` may be a tmpfs), synced,
    /// and dropped from the page cache; with whether the drop took (a filesystem may keep it).
    pub fn evicted_file(data: &[u8]) -> (tempfile::TempDir, File, bool) {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let p = dir.path().join("f");
        let mut f = File::create(&p).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&p).unwrap();
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let evicted = !super::probe(&f, 0);
        (dir, f, evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::evicted_file;
    use super::*;

    #[test]
    fn page_counts_cover_partial_pages() {
        let size = rustix::param::page_size() as u64;
        assert_eq!(pages(0, 1), 1);
        assert_eq!(pages(0, size), 1);
        assert_eq!(pages(size - 1, 2), 2);
        assert_eq!(pages(size, 3 * size), 3);
    }

    #[test]
    fn a_region_is_cached_only_when_every_page_is() {
        let len = 1024 * 1024;
        let (_dir, f, evicted) = evicted_file(&vec![5u8; len]);
        if !evicted {
            assert!(cached(&f, 0, len as u64), "kept in memory");
            eprintln!("skipped: this filesystem keeps the file in memory after fadvise(DONTNEED)");
            return;
        }
        assert!(!cached(&f, 0, len as u64));
        // Read one page in the middle back: a range that only starts there is cached, one that
        // spans uncached pages around it is not.
        let page = rustix::param::page_size() as u64;
        let mid = 100 * page;
        let mut buf = vec![0u8; page as usize];
        std::os::unix::fs::FileExt::read_at(&f, &mut buf, mid).unwrap();
        assert!(cached(&f, mid, 1));
        assert!(cached(&f, mid + 10, page - 10));
        // Readahead runs forward from the page read, so the two pages before it stay on disk.
        assert!(!cached(&f, mid - 2 * page, 3 * page));
    }
}
