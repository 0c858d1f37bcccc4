//! The cooperative budget: a task may take at most [`BUDGET`] ready results from knote's
//! resources (I/O readiness, timers, join handles) per poll. After that every resource answers
//! `Pending` and wakes the task at once, so the task goes to the back of the run queue and the
//! scheduler gets to poll the kqueue and the other tasks: a task whose socket is always ready
//! cannot starve the rest.

use std::cell::Cell;
use std::task::{Context, Poll};

/// Ready results a task may take per poll (tokio's figure; it keeps the cost of checking small
/// while bounding how long one poll can run on ready resources).
pub(crate) const BUDGET: u8 = 128;

thread_local! {
    /// `None` outside a task poll: no limit (a future polled by some other executor).
    static LEFT: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` (a task poll) with a fresh budget, restoring the previous one after (task polls
/// nest when `block_on` runs inside a blocking task).
pub(crate) fn budgeted<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0;
            let _ = LEFT.try_with(|l| l.set(prev));
        }
    }
    let _restore = Restore(LEFT.with(|l| l.replace(Some(BUDGET))));
    f()
}

/// Checks the budget: `Ready` if the task may take another ready result (then call
/// [`spend`] when it does), `Pending` (with the task already woken) if it has used its share
/// of this poll. Checking costs nothing: a resource that stays pending spends no budget.
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    let spent = LEFT.try_with(|l| l.get() == Some(0)).unwrap_or(false);
    if spent {
        // A spent budget is a yield: the task goes behind the rest of the work.
        super::mark_yield();
        cx.waker().wake_by_ref();
        Poll::Pending
    } else {
        Poll::Ready(())
    }
}

/// Spends one unit: the caller is returning a ready result.
pub(crate) fn spend() {
    let _ = LEFT.try_with(|l| {
        if let Some(n) = l.get() {
            l.set(Some(n.saturating_sub(1)));
        }
    });
}

/// Whether the current task still has budget (without spending any).
#[cfg(test)]
pub(crate) fn has_budget_left() -> bool {
    LEFT.with(|l| l.get() != Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_and_is_restored() {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(poll_proceed(&mut cx).is_ready(), "unlimited outside a task");
        budgeted(|| {
            for _ in 0..BUDGET {
                assert!(poll_proceed(&mut cx).is_ready());
                spend();
            }
            assert!(!has_budget_left());
            assert!(poll_proceed(&mut cx).is_pending());
        });
        assert!(poll_proceed(&mut cx).is_ready());
    }
}
