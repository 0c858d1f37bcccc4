//! Readiness-based I/O on raw fds: [`Registration`] (the protocol the network types use) and
//! [`AsyncFd`] (an owned fd with it); and [`KnoteRegistration`] for any other knote (signals,
//! processes, user events).

mod async_fd;
mod knote;
mod registration;

pub use async_fd::{AsyncFd, AsyncFdReadyGuard, TryIoError};
pub use knote::{Fired, KnoteRegistration};
pub use registration::{Interest, Readiness, Ready, ReadyEvent, Registration};
