//! The inotify(7) plumbing under the shim's `EVFILT_VNODE`: the system calls, the event
//! record's layout, and the masks, with the `unsafe` kept here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(super) const IN_ACCESS: u32 = libc::IN_ACCESS;
pub(super) const IN_MODIFY: u32 = libc::IN_MODIFY;
pub(super) const IN_ATTRIB: u32 = libc::IN_ATTRIB;
pub(super) const IN_CLOSE_WRITE: u32 = libc::IN_CLOSE_WRITE;
pub(super) const IN_CLOSE_NOWRITE: u32 = libc::IN_CLOSE_NOWRITE;
pub(super) const IN_OPEN: u32 = libc::IN_OPEN;
pub(super) const IN_MOVED_FROM: u32 = libc::IN_MOVED_FROM;
pub(super) const IN_MOVED_TO: u32 = libc::IN_MOVED_TO;
pub(super) const IN_CREATE: u32 = libc::IN_CREATE;
pub(super) const IN_DELETE: u32 = libc::IN_DELETE;
pub(super) const IN_DELETE_SELF: u32 = libc::IN_DELETE_SELF;
pub(super) const IN_MOVE_SELF: u32 = libc::IN_MOVE_SELF;
pub(super) const IN_UNMOUNT: u32 = libc::IN_UNMOUNT;
pub(super) const IN_Q_OVERFLOW: u32 = libc::IN_Q_OVERFLOW;
pub(super) const IN_IGNORED: u32 = libc::IN_IGNORED;
pub(super) const IN_ISDIR: u32 = libc::IN_ISDIR;
const IN_MASK_ADD: u32 = libc::IN_MASK_ADD;

/// The fixed part of `struct inotify_event`: `wd`, `mask`, `cookie`, `len`.
const HEADER: usize = 16;

/// A non-blocking, close-on-exec inotify instance.
pub(super) fn init() -> io::Result<OwnedFd> {
    // SAFETY: no pointers are involved.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by inotify_init1, so it is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/proc/self/fd/N` as a NUL-terminated path, without allocating.
fn proc_fd_path(fd: RawFd, buf: &mut [u8; 32]) -> &[u8] {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = PREFIX.len();
    for &d in digits[..len].iter().rev() {
        buf[at] = d;
        at += 1;
    }
    buf[at] = 0;
    &buf[..=at]
}

/// Watches the inode `fd` names now (the magic link resolves to the open file, so the watch
/// follows the file, not a path), adding `mask` to whatever the inode's watch already has.
/// The same inode always yields the same watch descriptor.
pub(super) fn add_watch(inotify: &OwnedFd, fd: RawFd, mask: u32) -> io::Result<i32> {
    let mut buf = [0u8; 32];
    let path = proc_fd_path(fd, &mut buf);
    // SAFETY: `path` is NUL-terminated and lives across the call.
    let wd = unsafe {
        libc::inotify_add_watch(
            inotify.as_raw_fd(),
            path.as_ptr().cast(),
            mask | IN_MASK_ADD,
        )
    };
    if wd == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(wd)
    }
}

/// Stops watching `wd` (Android's libc takes it as unsigned). Its only failure, `EINVAL`, means the kernel removed the watch already
/// (the inode is gone or its file system was unmounted; `IN_IGNORED` is on its way), which
/// leaves nothing to undo, so the caller need not look at the result.
pub(super) fn rm_watch(inotify: &OwnedFd, wd: i32) -> io::Result<()> {
    // SAFETY: no pointers are involved.
    if unsafe { libc::inotify_rm_watch(inotify.as_raw_fd(), wd as _) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads what is queued into `buf`: the number of bytes, 0 when nothing is.
pub(super) fn read(inotify: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::read(inotify, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(0),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// One inotify event, without its name (only whether it has one: events about a directory's
/// entries carry the entry's name, events about the watched inode itself do not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Event {
    pub(super) wd: i32,
    pub(super) mask: u32,
    pub(super) cookie: u32,
    pub(super) named: bool,
}

/// The events in the first `len` bytes `read` returned (the kernel only returns whole records).
pub(super) fn parse(bytes: &[u8], out: &mut Vec<Event>) {
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[at + 4 * i..at + 4 * i + 4]);
            w
        };
        let wd = i32::from_ne_bytes(word(0));
        let mask = u32::from_ne_bytes(word(1));
        let cookie = u32::from_ne_bytes(word(2));
        let len = u32::from_ne_bytes(word(3)) as usize;
        out.push(Event {
            wd,
            mask,
            cookie,
            named: len > 0,
        });
        at += HEADER + len;
    }
}

/// Where `fd` points now (`readlink /proc/self/fd/N`): a path for files reached through the
/// file system (with " (deleted)" once unlinked), `pipe:[…]`, `socket:[…]`, `anon_inode:…`
/// for the rest.
pub(super) fn fd_target(fd: RawFd) -> Option<Vec<u8>> {
    let mut path = [0u8; 32];
    let path = proc_fd_path(fd, &mut path);
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `path` is NUL-terminated; `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::readlink(path.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Some(buf);
        }
        if buf.len() >= 1 << 16 {
            return Some(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fd_paths() {
        let mut buf = [0u8; 32];
        assert_eq!(proc_fd_path(0, &mut buf), b"/proc/self/fd/0\0");
        assert_eq!(proc_fd_path(1234, &mut buf), b"/proc/self/fd/1234\0");
        assert_eq!(
            proc_fd_path(i32::MAX, &mut buf),
            b"/proc/self/fd/2147483647\0"
        );
    }

    #[test]
    fn parses_records_with_and_without_names() {
        let mut bytes = Vec::new();
        for (wd, mask, cookie, name) in [(1, IN_MODIFY, 0, &b""[..]), (2, IN_CREATE, 7, b"abc\0")] {
            bytes.extend_from_slice(&i32::to_ne_bytes(wd));
            bytes.extend_from_slice(&u32::to_ne_bytes(mask));
            bytes.extend_from_slice(&u32::to_ne_bytes(cookie));
            bytes.extend_from_slice(&u32::to_ne_bytes(name.len() as u32));
            bytes.extend_from_slice(name);
        }
        let mut events = Vec::new();
        parse(&bytes, &mut events);
        assert_eq!(
            events,
            [
                Event {
                    wd: 1,
                    mask: IN_MODIFY,
                    cookie: 0,
                    named: false
                },
                Event {
                    wd: 2,
                    mask: IN_CREATE,
                    cookie: 7,
                    named: true
                },
            ]
        );
    }
}
