//! Readiness-based I/O on raw fds: [`Registration`] (the protocol the network types use) and
//! [`AsyncFd`] (an owned fd with it).

mod async_fd;
mod registration;

pub use async_fd::{AsyncFd, AsyncFdReadyGuard, TryIoError};
pub use registration::{Interest, Ready, ReadyEvent, Registration};
