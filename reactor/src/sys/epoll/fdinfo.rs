//! What kqueue knows about an fd and epoll does not: what kind of file it is, whether it is still
//! the file that was registered, and the exact `data` of its READ and WRITE events.
//!
//! Every function here costs system calls, which is why the shim calls them only in exact-data
//! mode (or for `NOTE_LOWAT` knotes), never on the fast path.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// The kind of file behind an fd, which decides how `data` is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FdClass {
    /// Not looked at yet (fast mode registers without an `fstat`).
    Unknown,
    /// A socket: `FIONREAD`/`SIOCOUTQ`, `TCP_INFO` for listeners.
    Socket,
    /// A pipe or FIFO: `FIONREAD` and `F_GETPIPE_SZ`.
    Fifo,
    /// A regular file or directory: epoll refuses them; kqueue measures offset to EOF.
    Regular,
    /// Anything else (tty, eventfd, …): readiness only, `data` is 0.
    Other,
}

/// The identity of an open file: its device and inode numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity a `stat` records.
    pub(super) fn of(st: &libc::stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// `fstat(fd)`; `None` if `fd` is not open.
pub(super) fn fstat(fd: RawFd) -> Option<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of a `struct stat`.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } == -1 {
        return None;
    }
    // SAFETY: fstat succeeded and filled `st`.
    Some(unsafe { st.assume_init() })
}

/// The identity and class of the file `fd` names now; `None` if `fd` is not open.
pub(super) fn identify(fd: RawFd) -> Option<(FileId, FdClass)> {
    let st = fstat(fd)?;
    let class = match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => FdClass::Socket,
        libc::S_IFIFO => FdClass::Fifo,
        libc::S_IFREG | libc::S_IFDIR => FdClass::Regular,
        _ => FdClass::Other,
    };
    Some((FileId::of(&st), class))
}

fn ioctl_int(fd: RawFd, request: libc::Ioctl) -> Option<i64> {
    let mut value: libc::c_int = 0;
    // SAFETY: FIONREAD/SIOCOUTQ write one int through the pointer, which is live.
    if unsafe { libc::ioctl(fd, request, &mut value) } == -1 {
        None
    } else {
        Some(i64::from(value))
    }
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Option<i64> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` has room for the int this option returns, and `len` says so.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (ret == 0).then_some(i64::from(value))
}

/// The pending error of a socket (`SO_ERROR`), which kqueue reports in `fflags` with `EV_EOF`.
pub(super) fn socket_error(fd: RawFd) -> u32 {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR).map_or(0, |e| e as u32)
}

/// `TCP_LISTEN` from the kernel's tcp_states.h (not exported by libc).
const TCP_LISTEN: u8 = 10;

/// The head of Linux's `struct tcp_info` (linux/tcp.h), as far as `tcpi_unacked`: seven `u8`
/// fields and a byte of bit fields, then `u32`s. The kernel copies at most the length it is
/// given, so asking for this prefix is valid on every kernel; declared here because the libc
/// crate has no `tcp_info` for Android.
#[repr(C)]
#[derive(Default)]
struct TcpInfoHead {
    state: u8,
    _ca_state_to_wscale: [u8; 7],
    _rto: u32,
    _ato: u32,
    _snd_mss: u32,
    _rcv_mss: u32,
    unacked: u32,
}

/// Connections waiting in a TCP listener's accept queue: `tcpi_unacked` holds the current
/// backlog for a socket in LISTEN state.
fn tcp_accept_queue(fd: RawFd) -> Option<i64> {
    let mut info = TcpInfoHead::default();
    let mut len = std::mem::size_of::<TcpInfoHead>() as libc::socklen_t;
    // SAFETY: `info` has room for `len` bytes; the kernel writes at most `len`.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut TcpInfoHead).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return None;
    }
    (info.state == TCP_LISTEN).then_some(i64::from(info.unacked))
}

/// Bytes between the file offset and EOF of a regular file (negative past EOF, as in kqueue).
pub(super) fn regular_remaining(fd: RawFd) -> i64 {
    let Some(st) = fstat(fd) else { return 0 };
    // SAFETY: lseek with SEEK_CUR and offset 0 only reads the offset.
    let offset = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if offset < 0 {
        return 0;
    }
    st.st_size - offset
}

/// `data` of a READ event: bytes readable (or connections waiting on a listener).
pub(super) fn read_data(fd: RawFd, class: FdClass) -> i64 {
    match class {
        FdClass::Socket => match ioctl_int(fd, libc::FIONREAD) {
            Some(n) => n,
            // SIOCINQ refuses listening sockets (EINVAL): a TCP listener's queue length comes
            // from TCP_INFO; a Unix listener's is not exposed at all, so report one waiting
            // connection (documented difference).
            None => tcp_accept_queue(fd).unwrap_or(1),
        },
        FdClass::Fifo | FdClass::Other => ioctl_int(fd, libc::FIONREAD).unwrap_or(0),
        FdClass::Regular => regular_remaining(fd),
        FdClass::Unknown => 0,
    }
}

/// `data` of a WRITE event: free space in the send buffer or pipe. `SIOCOUTQ` alone is the
/// number of bytes still queued, so free space is the buffer size minus that.
pub(super) fn write_data(fd: RawFd, class: FdClass) -> i64 {
    match class {
        FdClass::Socket => {
            let size = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap_or(0);
            let queued = ioctl_int(fd, libc::TIOCOUTQ).unwrap_or(0);
            (size - queued).max(0)
        }
        FdClass::Fifo => {
            // SAFETY: F_GETPIPE_SZ takes no argument and returns the capacity.
            let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
            let queued = ioctl_int(fd, libc::FIONREAD).unwrap_or(0);
            if size < 0 {
                0
            } else {
                (i64::from(size) - queued).max(0)
            }
        }
        FdClass::Regular | FdClass::Other | FdClass::Unknown => 0,
    }
}
