//! A worker whose kqueue fails reports it (a panic naming the cause) instead of spinning on
//! the error. Its own test binary: it installs a panic hook and breaks a runtime on purpose.
#![cfg(target_os = "linux")]

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use knote_executor::runtime::Builder;

/// The fds of this process that are epoll instances (the shim's kqueues).
fn epoll_fds() -> Vec<i32> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(target) = std::fs::read_link(entry.path()) {
            if target.to_string_lossy().contains("eventpoll") {
                fds.push(fd);
            }
        }
    }
    fds
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_failing_kqueue_is_reported_not_spun_on() {
    let messages = Arc::new(Mutex::new(Vec::<String>::new()));
    let m = Arc::clone(&messages);
    std::panic::set_hook(Box::new(move |info| {
        m.lock().unwrap().push(info.to_string());
    }));
    let before = epoll_fds();
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let mine: Vec<i32> = epoll_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    assert!(!mine.is_empty(), "the runtime's kqueue was not found");
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let null = devnull.as_raw_fd();
    // From inside a task, so the worker is not asleep in the kqueue when it breaks: its next
    // wait fails (EINVAL: not an epoll fd any more), and every wait after it would too.
    rt.spawn(async move {
        for fd in mine {
            // SAFETY: replaces an fd this process owns (the runtime's kqueue) with /dev/null.
            assert!(unsafe { libc::dup2(null, fd) } >= 0);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("could not wait on its kqueue"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never reported its kqueue's failure (spinning on it?)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::panic::take_hook();
    drop(rt);
    drop(devnull);
}
