//! The table of kqueues this library created, keyed by the fd number the program holds, and the
//! check that a number still names the kqueue it was handed out for.
//!
//! The program's fd is a `dup` of the reactor's epoll fd (see the crate docs for why); the
//! [`Kqueue`] keeps its own fd, which the program never sees and never closes. An entry is
//! *stale* once the program's number no longer refers to that epoll instance: closed, reused
//! for another file, or inherited across `fork` (FreeBSD does not pass kqueues to children).
//! A stale entry is removed and its `Kqueue` dropped, which closes only the library's own fds.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use knote_reactor::Kqueue;

/// One kqueue handed to the program.
struct Entry {
    kq: Arc<Kqueue>,
    /// The process that created it; in any other (a forked child) the number is not a kqueue.
    pid: libc::pid_t,
}

/// fd number → kqueue. The lock is held only to look up, insert or remove: never across a
/// wait, so any number of threads can block in `kevent` on any kqueues.
static TABLE: Mutex<BTreeMap<RawFd, Entry>> = Mutex::new(BTreeMap::new());

/// Set once `kcmp(2)` turned out to be unavailable (a kernel without `CONFIG_KCMP`, or a
/// seccomp filter refusing it); identity is then checked with `fstat` (see [`same_file`]).
static NO_KCMP: AtomicBool = AtomicBool::new(false);

fn table() -> MutexGuard<'static, BTreeMap<RawFd, Entry>> {
    // The table's invariants hold between statements (a panic cannot leave it half-updated:
    // each operation is one insert or remove), so a poisoned lock is still usable.
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `kcmp(2)`'s `KCMP_FILE`: do two fds refer to the same open file description?
const KCMP_FILE: libc::c_int = 0;

/// Whether the program's `fd` still refers to the open file behind `ours` (the kqueue's own fd).
///
/// `kcmp(KCMP_FILE)` answers exactly, in one system call. Without it, `fstat` compares device and
/// inode — weaker, because every epoll instance shares one anonymous inode: a number reused for
/// some other epoll (not one of ours: those replace the entry when created) passes.
fn same_file(pid: libc::pid_t, fd: RawFd, ours: RawFd) -> bool {
    if !NO_KCMP.load(Ordering::Relaxed) {
        match same_file_kcmp(pid, fd, ours) {
            Ok(same) => return same,
            // No kcmp here: fall back for good.
            Err(_) => NO_KCMP.store(true, Ordering::Relaxed),
        }
    }
    same_file_fstat(fd, ours)
}

/// `kcmp(KCMP_FILE)`: exact. A closed `fd` is `Ok(false)`; `Err` means kcmp is unavailable.
fn same_file_kcmp(pid: libc::pid_t, fd: RawFd, ours: RawFd) -> io::Result<bool> {
    // SAFETY: kcmp takes only integers and reads no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, fd, ours) };
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

/// The fallback: same device and inode (any two epoll fds pass; a closed `fd` does not).
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

fn pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

fn is_live(fd: RawFd, entry: &Entry, pid: libc::pid_t) -> bool {
    entry.pid == pid && same_file(pid, fd, entry.kq.as_raw_fd())
}

/// Removes every stale entry; their kqueues are dropped after the lock is released (or later,
/// by a thread still waiting on one).
fn reap() {
    let pid = pid();
    let stale: Vec<Entry> = {
        let mut table = table();
        let dead: Vec<RawFd> = table
            .iter()
            .filter(|(fd, entry)| !is_live(**fd, entry, pid))
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
    let entry = Entry {
        kq: Arc::new(kq),
        pid: pid(),
    };
    // The number was free a moment ago, so an entry still under it is stale: replace it.
    let old = table().insert(fd, entry);
    drop(old);
    Ok(fd)
}

/// The kqueue the program's `fd` names, or `EBADF`.
///
/// A stale entry found under `fd` is removed (if no other thread replaced it meanwhile).
pub(crate) fn lookup(fd: RawFd) -> Result<Arc<Kqueue>, i32> {
    if fd < 0 {
        return Err(libc::EBADF);
    }
    let (kq, created_by) = {
        let table = table();
        let entry = table.get(&fd).ok_or(libc::EBADF)?;
        (Arc::clone(&entry.kq), entry.pid)
    };
    let pid = pid();
    if created_by == pid && same_file(pid, fd, kq.as_raw_fd()) {
        return Ok(kq);
    }
    let stale = {
        let mut table = table();
        match table.get(&fd) {
            Some(entry) if Arc::ptr_eq(&entry.kq, &kq) => table.remove(&fd),
            _ => None,
        }
    };
    drop(stale);
    Err(libc::EBADF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    // The table is process-wide: these tests only look at the numbers they created.

    #[test]
    fn a_number_that_stops_naming_the_kqueue_is_ebadf_and_untouched() {
        // Unit tests share the process with other threads making fds: the number is replaced
        // atomically with dup2 (never free in between), so no other test can take it.
        let fd = create(false).unwrap();
        let kq = lookup(fd).unwrap();
        assert_ne!(
            kq.as_raw_fd(),
            fd,
            "the program gets a dup, not the reactor's fd"
        );
        drop(kq);
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
    fn negative_and_unknown_numbers_are_ebadf() {
        assert_eq!(lookup(-1).err(), Some(libc::EBADF));
        assert_eq!(lookup(0).err(), Some(libc::EBADF));
    }

    #[test]
    fn both_checks_tell_a_kqueue_from_other_files() {
        let a = Kqueue::new().unwrap();
        let b = Kqueue::new().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes no pointers.
        let dup = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        assert!(dup >= 0);
        let (ours, pid) = (a.as_raw_fd(), pid());
        if let Ok(same) = same_file_kcmp(pid, dup, ours) {
            assert!(same);
            assert_eq!(same_file_kcmp(pid, b.as_raw_fd(), ours).ok(), Some(false));
            assert_eq!(
                same_file_kcmp(pid, null.as_raw_fd(), ours).ok(),
                Some(false)
            );
            assert_eq!(same_file_kcmp(pid, -1, ours).ok(), Some(false));
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
