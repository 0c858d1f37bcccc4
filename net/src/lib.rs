//! knote's networking: TCP, UDP and Unix-domain sockets whose readiness is followed by the
//! runtime's kqueue (the `knote-net` crate, re-exported as `knote::net`).
//!
//! Every type here wraps one socket in an [`AsyncFd`](knote_executor::io::AsyncFd) and speaks
//! its readiness protocol (wait, try, clear on `WouldBlock`), so a task that would block parks
//! its waker in the socket's slot and is woken by the socket's next kevent.
//!
//! - **Non-blocking and close-on-exec by construction.** Sockets are created through
//!   `socket2` (which sets `SOCK_CLOEXEC`/`FD_CLOEXEC`, and `SOCK_NONBLOCK` where the system
//!   has it) or through std (close-on-exec too) and made non-blocking before they are
//!   registered; every `from_std` sets non-blocking mode itself. No path through this API puts
//!   a blocking socket into the reactor, where one blocking call would stall a current-thread
//!   runtime for every task on it.
//! - **Addresses** go through [`ToSocketAddrs`]: literal addresses are used at once, host names
//!   are resolved on the blocking pool ([`lookup_host`]), never on a runtime thread.
//! - **Streams** ([`TcpStream`], [`UnixStream`], and the halves of a split TCP stream)
//!   implement futures-io's `AsyncRead`/`AsyncWrite`, so `futures::io` utilities (`copy`,
//!   `BufReader`, `AsyncReadExt`) work; with the `tokio-io` feature they implement tokio's
//!   traits too (tokio-util codecs, tokio-io based crates), with no tokio runtime. `&TcpStream`
//!   and `&UnixStream` read and write as well, so tasks can share one stream.
//! - **Readiness first** (tokio's API, same names and semantics): [`TcpStream::readable`] /
//!   [`writable`](TcpStream::writable) wait, and `try_read` / `try_write` move bytes without
//!   waiting, clearing the readiness they found gone. A service with many idle connections
//!   waits with them and reads into a shared scratch buffer instead of keeping one per
//!   connection (`UnixStream` has them too).
//! - **Accepting under pressure** ([`TcpListener::accept`], [`UnixListener::accept`]): when the
//!   process or system runs out of descriptors or buffers the accept loop backs off on a knote
//!   timer instead of spinning on the error, and resumes when descriptors free up; connections
//!   aborted before they were accepted are skipped. [`AcceptMetrics`] counts what happened.

#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

/// The fd traits every socket type has, through its `io: AsyncFd<_>` field: `AsRawFd`, `AsFd`,
/// and `TryFrom` of the std type (its `from_std`, which sets non-blocking).
macro_rules! impl_fd {
    ($ty:ident, $std:ty) => {
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.io)
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.io)
            }
        }

        impl TryFrom<$std> for $ty {
            type Error = std::io::Error;

            #[doc = concat!("[`", stringify!($ty), "::from_std`].")]
            fn try_from(socket: $std) -> std::io::Result<$ty> {
                $ty::from_std(socket)
            }
        }
    };
}
pub(crate) use impl_fd;

mod accept;
mod addr;
mod io;
mod socket;
mod stream;
pub mod tcp;
mod udp;
pub mod unix;

pub use accept::AcceptMetrics;
pub use addr::{lookup_host, ToSocketAddrs};
pub use stream::Stream;
pub use tcp::{TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
