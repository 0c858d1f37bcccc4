//! Accepting connections under pressure: the one accept loop TCP and Unix listeners share.
//!
//! `accept(2)` fails with `EMFILE`/`ENFILE` when the process or system is out of descriptors,
//! and with `ENOBUFS`/`ENOMEM` when the kernel is out of memory. The pending connection stays
//! queued and the listener stays readable, so a loop that retried at once would spin at full
//! speed, making the error again and again. Instead the loop sleeps on a knote timer — 1 ms,
//! doubling up to 200 ms while the failures last — then retries without waiting for another
//! event (the queued connection will not make one), and accepts normally once descriptors are
//! free again. `ECONNABORTED` (a connection reset while queued) is skipped, and so is `EPROTO`
//! (how some systems say the same). Other errors are the caller's.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use knote_executor::io::Registration;
use knote_executor::time::{sleep, Sleep};

/// The first back-off after a resource error.
const BACKOFF_MIN: Duration = Duration::from_millis(1);
/// The longest back-off: how long recovery may lag behind descriptors becoming free.
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// What a listener's accept loop did, counted since the listener was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptMetrics {
    /// `accept(2)` calls made (successful or not).
    pub attempts: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Back-offs taken after `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`.
    pub backoffs: u64,
    /// Connections skipped because they were aborted while queued (`ECONNABORTED`, `EPROTO`).
    pub aborted: u64,
}

/// The counters behind [`AcceptMetrics`] (relaxed: they order nothing).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    attempts: AtomicU64,
    accepted: AtomicU64,
    backoffs: AtomicU64,
    aborted: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> AcceptMetrics {
        AcceptMetrics {
            attempts: self.attempts.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            backoffs: self.backoffs.load(Ordering::Relaxed),
            aborted: self.aborted.load(Ordering::Relaxed),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What to do after one `accept(2)`.
enum Outcome<T> {
    /// Accepted, or an error to return.
    Done(io::Result<T>),
    /// The queue is empty: clear readiness and wait for an event.
    Empty,
    /// A queued connection was aborted: try the next one.
    Skip,
    /// Out of descriptors or memory: sleep, then try again.
    BackOff,
}

fn attempt<T>(counters: &Counters, op: &mut impl FnMut() -> io::Result<T>) -> Outcome<T> {
    Counters::bump(&counters.attempts);
    match op() {
        Ok(v) => {
            Counters::bump(&counters.accepted);
            Outcome::Done(Ok(v))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Outcome::Empty,
        Err(e) => match e.raw_os_error() {
            Some(libc::ECONNABORTED | libc::EPROTO) => {
                Counters::bump(&counters.aborted);
                Outcome::Skip
            }
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                Counters::bump(&counters.backoffs);
                Outcome::BackOff
            }
            _ => Outcome::Done(Err(e)),
        },
    }
}

/// The growing delay between retries while accepting fails for want of resources, and the
/// timer of the current one.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    next: Option<Duration>,
    timer: Option<Sleep>,
}

impl Backoff {
    /// Starts the next delay (1 ms, then doubling up to 200 ms).
    fn start(&mut self) {
        let delay = self.next.unwrap_or(BACKOFF_MIN);
        self.next = Some((delay * 2).min(BACKOFF_MAX));
        self.timer = Some(sleep(delay));
    }

    /// An accept succeeded (or failed otherwise): the next delay starts small again.
    fn reset(&mut self) {
        self.next = None;
        self.timer = None;
    }

    /// Waits out the current delay, if one is running.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(timer) = &mut self.timer {
            ready!(timer.poll_elapsed(cx));
            self.timer = None;
        }
        Poll::Ready(())
    }
}

/// Accepts with `op` (the listener's `accept(2)`), waiting for readiness among any number of
/// tasks accepting on the same listener, backing off on resource errors.
pub(crate) async fn accept<T>(
    registration: &Registration,
    counters: &Counters,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut backoff = Backoff::default();
    loop {
        let event = registration.readable().await?;
        loop {
            match attempt(counters, &mut op) {
                Outcome::Done(result) => return result,
                Outcome::Empty => {
                    registration.clear_readiness(event);
                    break;
                }
                Outcome::Skip => {}
                Outcome::BackOff => {
                    backoff.start();
                    std::future::poll_fn(|cx| backoff.poll_wait(cx)).await;
                }
            }
        }
    }
}

/// [`accept`] as a poll function, for streams of connections: `backoff` keeps the delay
/// between polls. Waits with the registration's one read waker.
pub(crate) fn poll_accept<T>(
    registration: &Registration,
    counters: &Counters,
    backoff: &mut Backoff,
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        ready!(backoff.poll_wait(cx));
        let event = ready!(registration.poll_read_ready(cx))?;
        match attempt(counters, &mut op) {
            Outcome::Done(result) => {
                backoff.reset();
                return Poll::Ready(result);
            }
            Outcome::Empty => registration.clear_readiness(event),
            Outcome::Skip => {}
            Outcome::BackOff => backoff.start(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use knote_executor::io::AsyncFd;
    use knote_executor::runtime::Builder;

    use super::*;

    fn err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    /// Runs [`accept`] over a readable registration with `op` replaying `script`.
    fn replay(script: Vec<io::Result<u32>>) -> (io::Result<u32>, AcceptMetrics) {
        let rt = Builder::new_current_thread().build().unwrap();
        rt.block_on(async move {
            let (a, mut b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            b.write_all(b"!").unwrap(); // readable, as a listener with a queued connection
            let fd = AsyncFd::new(a).unwrap();
            let counters = Counters::default();
            let mut script = script.into_iter();
            let result = accept(fd.registration(), &counters, || {
                script.next().expect("accept called after the script ended")
            })
            .await;
            (result, counters.snapshot())
        })
    }

    #[test]
    fn aborted_connections_are_skipped() {
        let (result, m) = replay(vec![
            Err(err(libc::ECONNABORTED)),
            Err(err(libc::EPROTO)),
            Ok(7),
        ]);
        assert_eq!(result.unwrap(), 7);
        assert_eq!(
            m,
            AcceptMetrics {
                attempts: 3,
                accepted: 1,
                backoffs: 0,
                aborted: 2
            }
        );
    }

    #[test]
    fn resource_errors_back_off_then_accept() {
        let (result, m) = replay(vec![
            Err(err(libc::EMFILE)),
            Err(err(libc::ENFILE)),
            Err(err(libc::ENOBUFS)),
            Err(err(libc::ENOMEM)),
            Ok(9),
        ]);
        assert_eq!(result.unwrap(), 9);
        assert_eq!((m.attempts, m.backoffs, m.accepted), (5, 4, 1));
    }

    #[test]
    fn other_errors_are_returned() {
        let (result, m) = replay(vec![Err(err(libc::EINVAL))]);
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        assert_eq!((m.attempts, m.accepted), (1, 0));
    }

    #[test]
    fn the_delay_doubles_up_to_its_bound() {
        let rt = Builder::new_current_thread().build().unwrap();
        let _guard = rt.enter();
        let mut backoff = Backoff::default();
        let mut delays = Vec::new();
        for _ in 0..12 {
            delays.push(backoff.next.unwrap_or(BACKOFF_MIN));
            backoff.start();
        }
        assert_eq!(delays[..4], [1, 2, 4, 8].map(Duration::from_millis));
        assert_eq!(*delays.last().unwrap(), BACKOFF_MAX);
        assert!(delays
            .windows(2)
            .all(|w| w[0] <= w[1] && w[1] <= BACKOFF_MAX));
        backoff.reset();
        assert_eq!(backoff.next, None);
    }
}
