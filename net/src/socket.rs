//! Creating sockets: non-blocking and close-on-exec from the start, through `socket2`; and
//! waiting for a non-blocking `connect` to finish — the two steps every socket type shares.

use std::io;
use std::os::fd::AsFd;

use knote_executor::io::{AsyncFd, Interest};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// A new socket, close-on-exec (socket2 sets it) and non-blocking: in the `socket(2)` call
/// itself where the system has `SOCK_NONBLOCK`, right after it elsewhere (macOS), before
/// anyone else can see the fd.
pub(crate) fn new_socket(
    domain: Domain,
    ty: Type,
    protocol: Option<Protocol>,
) -> io::Result<Socket> {
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    {
        Socket::new(domain, ty.nonblocking(), protocol)
    }
    #[cfg(not(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd"
    )))]
    {
        let socket = Socket::new(domain, ty, protocol)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

/// Whether `connect(2)` on a non-blocking socket reported that it goes on in the background.
pub(crate) fn connect_in_progress(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EINPROGRESS)
}

/// Waits until the non-blocking `connect` of `fd`'s socket has finished: its outcome is the
/// socket's pending error (`ECONNREFUSED`, `ETIMEDOUT`, ...) or, if none, a peer address. A
/// write event that comes before either (the socket is still connecting) waits again.
pub(crate) async fn finish_connect<T: AsFd>(fd: &AsyncFd<T>) -> io::Result<()> {
    fd.async_io(Interest::WRITABLE, |s| {
        let socket = SockRef::from(s);
        if let Some(err) = socket.take_error()? {
            return Err(err);
        }
        match socket.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        }
    })
    .await
}
