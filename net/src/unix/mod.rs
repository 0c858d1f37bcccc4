//! Unix-domain sockets: [`UnixListener`] and [`UnixStream`] for byte streams, [`UnixDatagram`]
//! for datagrams, [`UCred`] for who is at the other end; [`Incoming`] is a listener's stream of connections, and a
//! stream splits into the same half types as TCP's ([`crate::tcp::ReadHalf`] and friends). Paths name sockets in the file
//! system; on Linux and Android the `*_abstract` constructors use the abstract namespace
//! instead (names that vanish with their last socket, no file to unlink).

mod cred;
mod datagram;
mod listener;
mod stream;

pub use cred::UCred;
pub use datagram::UnixDatagram;
pub use listener::{Incoming, UnixListener};
pub use stream::UnixStream;

use std::io;
use std::path::Path;

use socket2::SockAddr;

/// The socket address of `path`.
fn path_addr(path: &Path) -> io::Result<SockAddr> {
    SockAddr::unix(path)
}

/// The socket address of the abstract `name` (a leading NUL byte in `sun_path`, no
/// terminating one: socket2's encoding).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SockAddr> {
    use std::os::unix::ffi::OsStrExt;
    let mut bytes = Vec::with_capacity(name.len() + 1);
    bytes.push(0);
    bytes.extend_from_slice(name);
    SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes))
}
