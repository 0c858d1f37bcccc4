//! The epoll shim (scaffold: being written).
mod abi;
pub(crate) use abi::*;

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::Options;
use crate::Kevent;

pub(crate) struct Selector {
    epfd: RawFd,
}

impl Selector {
    pub(crate) fn new(_options: &Options) -> io::Result<Selector> {
        Ok(Selector { epfd: -1 })
    }
    pub(crate) fn kevent(
        &self,
        _changes: &[Kevent],
        _events: &mut [Kevent],
        _timeout: Option<Duration>,
    ) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.epfd
    }
}
