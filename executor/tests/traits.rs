//! The auto traits the public types promise (checked at compile time; the test bodies only
//! make the checks run as tests). hyper's `rt::Timer` needs `Send + Sync` sleeps, and the
//! network types will hold `Registration`s across `.await`s in `Send` tasks.

use std::os::unix::net::UnixStream;

use knote_executor::io::{AsyncFd, KnoteRegistration, Registration};
use knote_executor::runtime::{Builder, Handle, Runtime};
use knote_executor::task::{JoinError, JoinHandle};
use knote_executor::time::{Elapsed, Interval, Sleep, Timeout};

fn send_sync<T: Send + Sync>() {}
fn unpin<T: Unpin>() {}

#[test]
fn timers_are_send_sync_and_unpin() {
    send_sync::<Sleep>();
    send_sync::<Interval>();
    send_sync::<Timeout<std::future::Ready<u8>>>();
    send_sync::<Elapsed>();
    unpin::<Sleep>();
    unpin::<Interval>();
}

#[test]
fn tasks_and_runtimes_are_send_sync() {
    send_sync::<JoinHandle<u64>>();
    send_sync::<JoinError>();
    send_sync::<Handle>();
    send_sync::<Runtime>();
    send_sync::<Builder>();
    unpin::<JoinHandle<u64>>();
}

#[test]
fn registrations_are_send_sync() {
    send_sync::<Registration>();
    send_sync::<KnoteRegistration>();
    send_sync::<AsyncFd<UnixStream>>();
}
