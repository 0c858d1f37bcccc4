//! `timeout`: a future raced against a `Sleep`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::clock::Instant;

use super::sleep::{far_future, sleep_until, Sleep};

/// Runs `future` for at most `duration`: `Err(Elapsed)` if it has not completed by then (it is
/// dropped with the `Timeout`). A future that is ready at once never arms a timer.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    let deadline = Instant::now()
        .checked_add(duration)
        .unwrap_or_else(far_future);
    timeout_at(deadline, future)
}

/// [`timeout`] with a deadline.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        value: future,
        delay: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`].
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        value: F,
        delay: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The future inside.
    pub fn get_ref(&self) -> &F {
        &self.value
    }

    /// The future inside, mutably.
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.value
    }

    /// The future inside (its deadline is forgotten).
    pub fn into_inner(self) -> F {
        self.value
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.value.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match this.delay.poll_elapsed(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}
