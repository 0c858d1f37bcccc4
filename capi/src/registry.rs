//! The table of kqueues this library created, keyed by the fd number the program holds, and the
//! check that a number still names the kqueue it was handed out for.
//!
//! The program's fd is a `dup` of the reactor's epoll fd (see the crate docs for why); the
//! [`Kqueue`] keeps its own fd, which the program never sees and never closes. An entry is
//! *stale* once the program's number no longer refers to that epoll instance — closed, or
//! reused for another file — or was inherited across `fork` (FreeBSD does not pass kqueues to
//! children). A stale entry is removed and its `Kqueue` dropped, which closes only the
//! library's own fds.
//!
//! The identity check, run on every `kevent()`, is one `epoll_ctl(fd, EPOLL_CTL_MOD, marker)`:
//! each kqueue's epoll holds a *marker*, an eventfd of the library's registered there with no
//! events (an eventfd never reports `EPOLLERR`/`EPOLLHUP`, so the reactor never sees it). An
//! epoll registration belongs to one epoll instance, so the call succeeds only if `fd` still
//! names that instance: `EBADF` for a closed number, `EINVAL` for a non-epoll file, `ENOENT` for
//! any other epoll. (`fstat` cannot tell: every epoll shares one anonymous inode.) Where the
//! marker cannot be registered (the reactor's fd is not an epoll, or no fd was left for it),
//! `kcmp(KCMP_FILE)` compares the two fds instead, and where that is refused (no
//! `CONFIG_KCMP`, a seccomp filter), `fstat`'s device and inode, which tells a kqueue from any
//! file but another epoll.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use knote_reactor::Kqueue;

/// A kqueue handed to the program, and what identifies its epoll instance.
pub(crate) struct Instance {
    kq: Kqueue,
    /// The marker registered in `kq`'s epoll (see the module docs); `None` if that failed.
    marker: Option<OwnedFd>,
}

impl Instance {
    /// The reactor's kqueue.
    pub(crate) fn kqueue(&self) -> &Kqueue {
        &self.kq
    }
}

struct Entry {
    instance: Arc<Instance>,
    /// [`FORKS`] when it was created: in a forked child the count differs, and the inherited
    /// number is not a kqueue there.
    forks: u64,
}

/// fd number → kqueue. The lock is held only to look up, insert or remove: never across a
/// wait, so any number of threads can block in `kevent` on any kqueues.
static TABLE: Mutex<BTreeMap<RawFd, Entry>> = Mutex::new(BTreeMap::new());

/// How many `fork`s separate this process from the one that loaded the library: incremented
/// in each child by a `pthread_atfork` handler (a counter, not the pid: no `getpid` per call).
static FORKS: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();
static ATFORK_FAILED: AtomicBool = AtomicBool::new(false);

extern "C" fn in_forked_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Set once `kcmp(2)` turned out to be unavailable; identity is then checked with `fstat`.
static NO_KCMP: AtomicBool = AtomicBool::new(false);

/// The marker's epoll token. It is never reported (see the module docs); were it ever, its kind
/// bits name no kind of the reactor's.
const MARKER_TOKEN: u64 = u64::MAX;

fn table() -> MutexGuard<'static, BTreeMap<RawFd, Entry>> {
    // The table's invariants hold between statements (a panic cannot leave it half-updated:
    // each operation is one insert or remove), so a poisoned lock is still usable.
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// An eventfd registered in the epoll `epfd` with no events, or `None` if that fails.
fn new_marker(epfd: RawFd) -> Option<OwnedFd> {
    // SAFETY: eventfd takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return None;
    }
    // SAFETY: eventfd just returned this fd, owned by nothing else.
    let marker = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ev = libc::epoll_event {
        events: 0,
        u64: MARKER_TOKEN,
    };
    // SAFETY: `ev` is a live epoll_event; the fds are integers.
    let r = unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, marker.as_raw_fd(), &mut ev) };
    (r == 0).then_some(marker)
}

/// Whether `marker` is registered in the epoll that `fd` names (any error means no).
fn holds_marker(fd: RawFd, marker: RawFd) -> bool {
    let mut ev = libc::epoll_event {
        events: 0,
        u64: MARKER_TOKEN,
    };
    // SAFETY: `ev` is a live epoll_event; MOD with no events changes nothing observable.
    unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_MOD, marker, &mut ev) == 0 }
}

/// `kcmp(2)`'s `KCMP_FILE`: do two fds refer to the same open file description?
const KCMP_FILE: libc::c_int = 0;

/// Whether `fd` refers to the same open file as `ours`, without a marker: `kcmp`, else `fstat`.
fn same_file(fd: RawFd, ours: RawFd) -> bool {
    if !NO_KCMP.load(Ordering::Relaxed) {
        match same_file_kcmp(fd, ours) {
            Ok(same) => return same,
            // No kcmp here: fall back for good.
            Err(_) => NO_KCMP.store(true, Ordering::Relaxed),
        }
    }
    same_file_fstat(fd, ours)
}

/// `kcmp(KCMP_FILE)`: exact. A closed `fd` is `Ok(false)`; `Err` means kcmp is unavailable.
fn same_file_kcmp(fd: RawFd, ours: RawFd) -> io::Result<bool> {
    // SAFETY: getpid and kcmp take only integers and read no memory of ours.
    let r = unsafe {
        let pid = libc::getpid();
        libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, fd, ours)
    };
    if r >= 0 {
        return Ok(r == 0);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBADF) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The last resort: same device and inode (any two epoll fds pass; a closed `fd` does not).
fn same_file_fstat(fd: RawFd, ours: RawFd) -> bool {
    match (file_id(fd), file_id(ours)) {
        (Some(theirs), Some(mine)) => theirs == mine,
        _ => false,
    }
}

/// `(st_dev, st_ino)` of an fd, `None` if it is not open.
fn file_id(fd: RawFd) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable `struct stat`; fstat writes it entirely when it returns 0.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

/// Whether the program's `fd` still names the kqueue `entry` was made for, in this process.
fn is_live(fd: RawFd, entry: &Entry) -> bool {
    if entry.forks != FORKS.load(Ordering::Relaxed) {
        return false;
    }
    let instance = &entry.instance;
    match &instance.marker {
        Some(marker) => holds_marker(fd, marker.as_raw_fd()),
        None => same_file(fd, instance.kq.as_raw_fd()),
    }
}

/// Removes every stale entry; their kqueues are dropped after the lock is released (or later,
/// by a thread still waiting on one).
fn reap() {
    let stale: Vec<Entry> = {
        let mut table = table();
        let dead: Vec<RawFd> = table
            .iter()
            .filter(|(fd, entry)| !is_live(**fd, entry))
            .map(|(fd, _)| *fd)
            .collect();
        dead.iter().filter_map(|fd| table.remove(fd)).collect()
    };
    drop(stale);
}

/// Creates a kqueue and hands the program its fd (close-on-exec if `cloexec`).
///
/// Stale entries are reaped first, so a program that closes its kqueues with `close()` and makes
/// new ones keeps a bounded number of fds.
pub(crate) fn create(cloexec: bool) -> io::Result<RawFd> {
    ATFORK.call_once(|| {
        // SAFETY: the handler is a plain function that only increments an atomic, which is
        // async-signal-safe, as a handler run in a forked child must be.
        let r = unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
        ATFORK_FAILED.store(r != 0, Ordering::Relaxed);
    });
    if ATFORK_FAILED.load(Ordering::Relaxed) {
        // Without the handler a forked child would take its parent's kqueues for its own.
        return Err(io::Error::from_raw_os_error(libc::ENOMEM));
    }
    reap();
    let kq = Kqueue::new()?;
    let cmd = if cloexec {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    // SAFETY: fcntl(F_DUPFD*) on an fd we own takes no pointers; the new fd is ours to hand out.
    let fd = unsafe { libc::fcntl(kq.as_raw_fd(), cmd, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let marker = new_marker(kq.as_raw_fd());
    let entry = Entry {
        instance: Arc::new(Instance { kq, marker }),
        forks: FORKS.load(Ordering::Relaxed),
    };
    // The number was free a moment ago, so an entry still under it is stale: replace it.
    let old = table().insert(fd, entry);
    drop(old);
    Ok(fd)
}

/// The kqueue the program's `fd` names, or `EBADF`.
///
/// A stale entry found under `fd` is removed (if no other thread replaced it meanwhile).
pub(crate) fn lookup(fd: RawFd) -> Result<Arc<Instance>, i32> {
    if fd < 0 {
        return Err(libc::EBADF);
    }
    let entry = {
        let table = table();
        let entry = table.get(&fd).ok_or(libc::EBADF)?;
        Entry {
            instance: Arc::clone(&entry.instance),
            forks: entry.forks,
        }
    };
    if is_live(fd, &entry) {
        return Ok(entry.instance);
    }
    let stale = {
        let mut table = table();
        match table.get(&fd) {
            Some(e) if Arc::ptr_eq(&e.instance, &entry.instance) => table.remove(&fd),
            _ => None,
        }
    };
    drop(stale);
    Err(libc::EBADF)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The table is process-wide: these tests only look at the numbers they created.

    #[test]
    #[cfg_attr(miri, ignore)] // system calls
    fn a_number_that_stops_naming_the_kqueue_is_ebadf_and_untouched() {
        // Unit tests share the process with other threads making fds: the number is replaced
        // atomically with dup2 (never free in between), so no other test can take it.
        let fd = create(false).unwrap();
        let instance = lookup(fd).unwrap();
        assert_ne!(
            instance.kqueue().as_raw_fd(),
            fd,
            "the program gets a dup, not the reactor's fd"
        );
        assert!(instance.marker.is_some(), "the reactor's fd is an epoll");
        drop(instance);
        let null = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: dup2 onto a number this test owns; no pointers.
        assert_eq!(unsafe { libc::dup2(null.as_raw_fd(), fd) }, fd);
        assert_eq!(lookup(fd).err(), Some(libc::EBADF));
        assert!(table().get(&fd).is_none(), "the stale entry is removed");
        assert_eq!(
            file_id(fd),
            file_id(null.as_raw_fd()),
            "and the new file untouched"
        );
        // SAFETY: `fd` now holds this test's dup of /dev/null, closed once here.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }

    #[test]
    #[cfg_attr(miri, ignore)] // system calls
    fn negative_and_unknown_numbers_are_ebadf() {
        assert_eq!(lookup(-1).err(), Some(libc::EBADF));
        assert_eq!(lookup(0).err(), Some(libc::EBADF));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // system calls
    fn every_check_tells_a_kqueue_from_other_files() {
        let a = Kqueue::new().unwrap();
        let b = Kqueue::new().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes no pointers.
        let dup = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        assert!(dup >= 0);
        let ours = a.as_raw_fd();
        let marker = new_marker(ours).expect("the reactor's fd is an epoll");
        let m = marker.as_raw_fd();
        assert!(holds_marker(dup, m) && holds_marker(ours, m));
        assert!(!holds_marker(b.as_raw_fd(), m), "another epoll");
        assert!(!holds_marker(null.as_raw_fd(), m), "not an epoll");
        assert!(!holds_marker(-1, m), "not open");
        assert!(new_marker(null.as_raw_fd()).is_none());
        if let Ok(same) = same_file_kcmp(dup, ours) {
            assert!(same);
            assert_eq!(same_file_kcmp(b.as_raw_fd(), ours).ok(), Some(false));
            assert_eq!(same_file_kcmp(null.as_raw_fd(), ours).ok(), Some(false));
            assert_eq!(same_file_kcmp(-1, ours).ok(), Some(false));
        }
        assert!(same_file_fstat(dup, ours));
        assert!(!same_file_fstat(null.as_raw_fd(), ours));
        assert!(!same_file_fstat(-1, ours));
        // The fallback's documented weakness: another epoll passes.
        assert!(same_file_fstat(b.as_raw_fd(), ours));
        // SAFETY: the dup was made by this test and is closed once.
        drop(unsafe { OwnedFd::from_raw_fd(dup) });
    }
}
