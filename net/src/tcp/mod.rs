//! TCP: [`TcpListener`] accepts, [`TcpStream`] connects and carries bytes, [`TcpSocket`] sets
//! options before either; a stream splits into borrowed ([`ReadHalf`], [`WriteHalf`]) or owned
//! ([`OwnedReadHalf`], [`OwnedWriteHalf`]) halves for a reader and a writer
//! (the same half types serve [`UnixStream`](crate::UnixStream), its type their parameter).

mod listener;
mod socket;
pub(crate) mod split;
pub(crate) mod split_owned;
mod stream;

pub use listener::{Incoming, TcpListener};
pub use socket::TcpSocket;
pub use split::{ReadHalf, WriteHalf};
pub use split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;
