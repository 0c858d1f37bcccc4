//! `#[knote::test]` and `#[knote::main]` on the real runtime: the flavor and worker count they
//! build, `Result` bodies with `?`, `#[should_panic]`, and `#[knote::main]` on functions other
//! than `main`. (What they reject at compile time is unit-tested in the macros crate.)

use std::io;
use std::time::Duration;

use knote::runtime::{Handle, RuntimeFlavor};
use knote::time::{sleep, timeout};

#[knote::test]
#[cfg_attr(miri, ignore)]
async fn the_default_flavor_is_current_thread() {
    let handle = Handle::current();
    assert_eq!(handle.runtime_flavor(), RuntimeFlavor::CurrentThread);
    assert_eq!(handle.worker_threads(), 1);

    // The runtime runs tasks and timers, on this very thread.
    let me = std::thread::current().id();
    let task = knote::spawn(async move {
        sleep(Duration::from_millis(1)).await;
        std::thread::current().id() == me
    });
    assert!(
        task.await.expect("the task completes"),
        "ran on another thread"
    );
}

#[knote::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(miri, ignore)]
async fn multi_thread_with_two_workers() {
    let handle = Handle::current();
    assert_eq!(handle.runtime_flavor(), RuntimeFlavor::MultiThread);
    assert_eq!(handle.worker_threads(), 2);

    // Spawned tasks run on the workers, which see the same runtime.
    let test_thread = std::thread::current().id();
    let task = knote::spawn(async move {
        sleep(Duration::from_millis(1)).await;
        let h = Handle::current();
        (
            h.runtime_flavor(),
            h.worker_threads(),
            std::thread::current().id() != test_thread,
        )
    });
    let (flavor, workers, elsewhere) = task.await.expect("the task completes");
    assert_eq!(flavor, RuntimeFlavor::MultiThread);
    assert_eq!(workers, 2);
    assert!(elsewhere, "a spawned task ran on the test's own thread");
}

#[knote::test(flavor = "multi_thread")]
#[cfg_attr(miri, ignore)]
async fn multi_thread_without_a_worker_count() {
    let handle = Handle::current();
    assert_eq!(handle.runtime_flavor(), RuntimeFlavor::MultiThread);
    assert!(handle.worker_threads() >= 1);
}

#[knote::test(flavor = "current_thread")]
#[cfg_attr(miri, ignore)]
async fn an_explicit_current_thread_flavor() {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::CurrentThread
    );
}

#[knote::test]
#[cfg_attr(miri, ignore)]
async fn a_result_test_uses_question_mark() -> Result<(), io::Error> {
    let n: u32 = "42".parse().map_err(io::Error::other)?;
    // `Elapsed` converts into `io::Error`, so `?` works on a timeout too.
    let doubled = timeout(Duration::from_secs(5), async move { n * 2 }).await?;
    assert_eq!(doubled, 84);
    Ok(())
}

#[knote::test]
#[cfg_attr(miri, ignore)]
async fn an_early_return_leaves_the_body() -> Result<(), io::Error> {
    let quit_early = std::hint::black_box(true);
    if quit_early {
        return Ok(());
    }
    Err(io::Error::other("the early return did not leave the test"))
}

#[knote::test]
#[should_panic(expected = "boom in a knote test")]
#[cfg_attr(miri, ignore)]
async fn should_panic_works() {
    sleep(Duration::from_millis(1)).await;
    panic!("boom in a knote test");
}

#[knote::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "boom on a multi-thread runtime")]
#[cfg_attr(miri, ignore)]
async fn should_panic_works_on_multi_thread() {
    sleep(Duration::from_millis(1)).await;
    panic!("boom on a multi-thread runtime");
}

// With `#[test]` already written after it, `#[knote::test]` does not add a second one (which
// would not compile).
#[knote::test]
#[test]
#[cfg_attr(miri, ignore)]
async fn an_explicit_test_attribute_is_kept_single() {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::CurrentThread
    );
}

/// `crate = "..."` names the knote crate by another path.
mod renamed_crate {
    use knote as my_knote;

    #[my_knote::test(crate = "my_knote")]
    #[cfg_attr(miri, ignore)]
    async fn a_renamed_crate_path() {
        sleep_a_little().await;
        assert_eq!(
            my_knote::runtime::Handle::current().runtime_flavor(),
            my_knote::runtime::RuntimeFlavor::CurrentThread
        );
    }

    async fn sleep_a_little() {
        my_knote::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// `#[knote::main]` on functions that are not `main`: calling one builds a runtime and blocks on
/// its body.
mod entry_points {
    use std::io;

    use knote::runtime::{Handle, RuntimeFlavor};

    #[knote::main(flavor = "current_thread")]
    async fn entry() -> u32 {
        knote::time::sleep(std::time::Duration::from_millis(1)).await;
        7
    }

    #[knote::main(worker_threads = 2)]
    async fn multi(base: usize) -> (RuntimeFlavor, usize) {
        let h = Handle::current();
        let workers = knote::spawn(async { Handle::current().worker_threads() })
            .await
            .expect("the task completes");
        (h.runtime_flavor(), base + workers)
    }

    #[knote::main(flavor = "current_thread")]
    async fn fallible(fail: bool) -> io::Result<u32> {
        if fail {
            Err(io::Error::other("asked to fail"))?;
        }
        Ok(1)
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn entry_returns_its_value() {
        assert_eq!(entry(), 7);
        // A fresh runtime per call, none left current afterwards.
        assert_eq!(entry(), 7);
        assert!(Handle::try_current().is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn main_defaults_to_multi_thread_and_takes_arguments() {
        assert_eq!(multi(40), (RuntimeFlavor::MultiThread, 42));
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn question_mark_in_main_returns_the_error() {
        assert_eq!(fallible(false).expect("no error"), 1);
        let err = fallible(true).expect_err("an error");
        assert_eq!(err.to_string(), "asked to fail");
    }
}

// A paused clock: the 30 s timeout completes as soon as the runtime is idle.
#[knote::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn start_paused_makes_a_thirty_second_timeout_instant() {
    let real = std::time::Instant::now();
    let start = knote::time::Instant::now();
    let r = timeout(Duration::from_secs(30), std::future::pending::<()>()).await;
    assert!(r.is_err());
    assert_eq!(knote::time::Instant::now() - start, Duration::from_secs(30));
    assert!(real.elapsed() < Duration::from_secs(5));
}
