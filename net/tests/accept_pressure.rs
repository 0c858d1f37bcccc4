//! Accept under descriptor pressure: with `RLIMIT_NOFILE` exhausted, `accept` backs off on a
//! growing timer (a bounded number of `accept(2)` calls, not a spin) and accepts as soon as
//! descriptors are free again.
//!
//! Lowering the limit affects the whole process, so the test re-runs this test binary as a
//! child (`KNOTE_NET_EMFILE_CHILD=1`, just this test) and does the work there.

use std::fs::File;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use knote_executor::runtime::Builder;
use knote_executor::time::{sleep, timeout, Instant};
use knote_net::TcpListener;

const CHILD_ENV: &str = "KNOTE_NET_EMFILE_CHILD";
const TEST_NAME: &str = "accept_backs_off_when_out_of_descriptors_and_recovers";

/// The accept loop's delays (1 ms doubling to 200 ms): the most `accept(2)` calls that fit in
/// `elapsed` if every sleep lasts at least its delay.
fn most_attempts(elapsed: Duration) -> u64 {
    let (mut delay, mut spent, mut attempts) = (Duration::from_millis(1), Duration::ZERO, 1);
    while spent + delay <= elapsed {
        spent += delay;
        attempts += 1;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
    attempts
}

#[test]
fn accept_backs_off_when_out_of_descriptors_and_recovers() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the test binary as a child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child did not run the test:\n{text}"
    );
}

fn set_fd_limit(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid for writes.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = soft as libc::rlim_t;
    // SAFETY: `lim` is a valid rlimit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

fn child() {
    // The child's watchdog: SIGALRM's default action ends it (and the parent's assertion
    // fails) if it hangs.
    // SAFETY: alarm(2) only schedules a signal.
    unsafe { libc::alarm(30) };
    let rt = Builder::new_current_thread().build().unwrap();
    // In a task, as a server's accept loop runs.
    let task = rt.spawn(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A connection waiting in the backlog (the kernel completes the handshake).
        let mut client = std::net::TcpStream::connect(addr).unwrap();

        // Use up every descriptor the (lowered) limit allows.
        set_fd_limit(128);
        let mut hogs = Vec::new();
        loop {
            match File::open("/dev/null") {
                Ok(f) => hogs.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("open /dev/null: {e}"),
            }
            assert!(hogs.len() < 200, "the descriptor limit did not take effect");
        }

        let start = Instant::now();
        let accepting = async {
            let (mut stream, peer) = listener.accept().await.expect("accept after recovery");
            assert_eq!(peer, client.local_addr().unwrap());
            futures_util::io::AsyncWriteExt::write_all(&mut stream, b"recovered")
                .await
                .unwrap();
        };
        let starve = async {
            sleep(Duration::from_millis(300)).await;
            let starved = listener.accept_metrics();
            let elapsed = start.elapsed();
            assert_eq!(starved.accepted, 0, "accepted with no descriptor to give");
            assert!(
                starved.backoffs >= 3,
                "the loop retries (with back-off) while starved: {starved:?}"
            );
            assert!(
                starved.attempts <= most_attempts(elapsed),
                "accept(2) called more often than the back-off allows in {elapsed:?} \
                 (a spin?): {starved:?}"
            );
            assert_eq!(
                starved.attempts, starved.backoffs,
                "every attempt failed with EMFILE"
            );
            drop(std::mem::take(&mut hogs)); // descriptors free again
            starved
        };
        let ((), starved) = timeout(Duration::from_secs(10), async {
            futures_util::join!(accepting, starve)
        })
        .await
        .expect("accept did not recover once descriptors were free");
        let after = listener.accept_metrics();
        assert_eq!(after.accepted, 1);
        assert_eq!(
            after.attempts,
            starved.attempts + 1,
            "one more call accepted it"
        );

        let mut buf = [0; 9];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"recovered");
        client.write_all(b"x").unwrap();
    });
    rt.block_on(task).unwrap();
}
