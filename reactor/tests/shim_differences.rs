//! The rows of SEMANTICS.md's difference table: on Linux each test pins the shim's documented
//! behaviour, elsewhere the FreeBSD behaviour it stands in for.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::time::Duration;

use knote_reactor::{note, Filter, Flags, Kevent, Kqueue};

const SHIM: bool = cfg!(any(target_os = "linux", target_os = "android"));

fn wait(kq: &Kqueue, timeout_ms: u64) -> Vec<Kevent> {
    let mut events = [Kevent::zeroed(); 16];
    let n = kq
        .kevent(&[], &mut events, Some(Duration::from_millis(timeout_ms)))
        .unwrap();
    events[..n].to_vec()
}

fn add(kq: &Kqueue, change: Kevent) {
    kq.apply(&[change]).unwrap();
}

fn fast() -> Kqueue {
    Kqueue::builder().exact_data(false).build().unwrap()
}

fn dup(fd: RawFd) -> OwnedFd {
    // SAFETY: dup of a valid fd returns a new fd that we own.
    let new = unsafe { libc::dup(fd) };
    assert!(new >= 0);
    // SAFETY: `new` is a fresh fd owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(new) }
}

#[test]
fn fast_mode_reports_readiness_without_data() {
    let kq = fast();
    let (mut a, b) = UnixStream::pair().unwrap();
    add(&kq, Kevent::read(b.as_raw_fd(), Flags::ADD, 1));
    a.write_all(b"12345").unwrap();
    let events = wait(&kq, 5000);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].udata(), 1);
    assert_eq!(events[0].data(), if SHIM { 0 } else { 5 });

    // NOTE_LOWAT still measures, so the threshold works in fast mode too.
    add(
        &kq,
        Kevent::read(b.as_raw_fd(), Flags::ADD, 2)
            .with_fflags(note::LOWAT)
            .with_data(8),
    );
    assert!(wait(&kq, 0).is_empty(), "5 bytes are below the mark");
    a.write_all(b"6789").unwrap();
    let events = wait(&kq, 5000);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data(), 9);
}

/// Closing an fd without EV_DELETE while a dup keeps the file open. The number is closed by
/// `dup2`-ing another file onto it, so no other test thread can take it in between.
#[test]
fn closed_fd_with_live_dup_in_fast_mode() {
    let kq = fast();
    let (mut a, b) = UnixStream::pair().unwrap();
    let (other, _other_peer) = UnixStream::pair().unwrap();
    let b_fd = b.as_raw_fd();
    add(&kq, Kevent::read(b_fd, Flags::ADD | Flags::CLEAR, 0xb0));
    let keep = dup(b_fd);
    // SAFETY: both fds are open; `b_fd` stays owned by `b`, now naming `other`'s file.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), b_fd) }, b_fd);
    a.write_all(b"x").unwrap();
    let events = wait(&kq, 200);
    if SHIM {
        // The old file's new edge is still reported under the old udata …
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].udata(), 0xb0);
        // … until the knote is deleted (ENOENT: the number names another file now, and epoll
        // has no registration for that one).
        let deleted = kq.apply(&[Kevent::read(b_fd, Flags::DELETE, 0)]);
        assert_eq!(deleted.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        a.write_all(b"y").unwrap();
        assert!(wait(&kq, 50).is_empty());
    } else {
        assert!(events.is_empty());
    }
    drop(keep);
}

/// One of two knotes on an fd closed without EV_DELETE, its number then reused (by `dup2`, so
/// no other test thread can take the number in between): kqueue says ENOENT. So does the shim
/// in exact mode (it checks the file's identity); in fast mode nothing notices the close.
#[test]
fn delete_one_of_two_knotes_on_a_closed_and_reused_fd() {
    for exact in [true, false] {
        let kq = Kqueue::builder().exact_data(exact).build().unwrap();
        let (_a, b) = UnixStream::pair().unwrap();
        let (r, _w) = UnixStream::pair().unwrap();
        let fd = b.as_raw_fd();
        kq.apply(&[
            Kevent::read(fd, Flags::ADD, 1),
            Kevent::write(fd, Flags::ADD, 2),
        ])
        .unwrap();
        // SAFETY: both fds are open; `fd` stays owned by `b`, now naming `r`'s file.
        assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), fd) }, fd);
        let result = kq.apply(&[Kevent::read(fd, Flags::DELETE, 0)]);
        if SHIM && !exact {
            result.unwrap();
        } else {
            assert_eq!(
                result.unwrap_err().raw_os_error(),
                Some(libc::ENOENT),
                "exact = {exact}"
            );
        }
    }
}

/// READ and WRITE with EV_CLEAR share one registration on the shim.
#[test]
fn same_mode_edges_share_a_registration() {
    let kq = fast();
    let (mut a, b) = UnixStream::pair().unwrap();
    let fd = b.as_raw_fd();
    kq.apply(&[
        Kevent::read(fd, Flags::ADD | Flags::CLEAR, 1),
        Kevent::write(fd, Flags::ADD | Flags::CLEAR, 2),
    ])
    .unwrap();
    let first = wait(&kq, 5000);
    assert_eq!(first.len(), 1, "registration reports WRITE: {first:?}");
    assert_eq!(first[0].udata(), 2);
    a.write_all(b"x").unwrap();
    let mut udatas: Vec<usize> = wait(&kq, 5000).iter().map(Kevent::udata).collect();
    udatas.sort();
    if SHIM {
        assert_eq!(
            udatas,
            [1, 2],
            "the READ edge re-reports standing WRITE readiness"
        );
    } else {
        assert_eq!(udatas, [1]);
    }
}

/// Different modes get separate registrations: no leak either way.
#[test]
fn different_modes_stay_independent() {
    let kq = fast();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let fd = b.as_raw_fd();
    kq.apply(&[
        Kevent::read(fd, Flags::ADD | Flags::CLEAR, 1),
        Kevent::write(fd, Flags::ADD, 2),
    ])
    .unwrap();
    for round in 0..3 {
        a.write_all(b"x").unwrap();
        let mut udatas: Vec<usize> = wait(&kq, 5000).iter().map(Kevent::udata).collect();
        udatas.sort();
        assert_eq!(udatas, [1, 2], "round {round}: one READ edge, level WRITE");
        let only_write: Vec<usize> = wait(&kq, 0).iter().map(Kevent::udata).collect();
        assert_eq!(
            only_write,
            [2],
            "round {round}: READ is an edge, WRITE a level"
        );
        let mut buf = [0u8; 8];
        let _ = b.read(&mut buf).unwrap();
    }
}

#[test]
fn proc_of_a_non_child() {
    // `sh` starts a sleeper in the background and exits: the sleeper is not our child.
    let out = std::process::Command::new("sh")
        .args(["-c", "sleep 0.3 >/dev/null 2>&1 & echo $!"])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let kq = Kqueue::new().unwrap();
    add(&kq, Kevent::proc(pid, Flags::ADD, note::EXIT, 9));
    let events = wait(&kq, 10_000);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].is_eof());
    assert_eq!(events[0].fflags() & note::EXIT, note::EXIT);
    if SHIM {
        assert_eq!(
            events[0].data(),
            0,
            "Linux keeps no status for non-children"
        );
    }
}

#[test]
fn proc_fork_notes_are_accepted_but_only_exit_is_reported_on_the_shim() {
    let mut child = std::process::Command::new("sh")
        .args(["-c", "read _; (true); exit 3"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let kq = Kqueue::new().unwrap();
    add(
        &kq,
        Kevent::proc(
            child.id() as i32,
            Flags::ADD,
            note::EXIT | note::EXITSTATUS | note::FORK,
            5,
        ),
    );
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut seen_exit = false;
    for _ in 0..10 {
        for ev in wait(&kq, 2000) {
            if SHIM {
                assert_eq!(ev.fflags(), note::EXIT);
            }
            if ev.fflags() & note::EXIT != 0 {
                assert_eq!((ev.data() >> 8) & 0xff, 3);
                seen_exit = true;
            }
        }
        if seen_exit {
            break;
        }
    }
    assert!(seen_exit);
    assert_eq!(child.wait().unwrap().code(), Some(3), "not reaped by knote");
}

#[test]
fn udp_read_data() {
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    b.send_to(&[1; 10], a.local_addr().unwrap()).unwrap();
    b.send_to(&[2; 20], a.local_addr().unwrap()).unwrap();
    let kq = Kqueue::new().unwrap();
    add(&kq, Kevent::read(a.as_raw_fd(), Flags::ADD, 1));
    // Both datagrams are queued once the second is readable on a loopback socket.
    let mut events = wait(&kq, 5000);
    for _ in 0..50 {
        if SHIM || events.first().is_some_and(|e| e.data() >= 30) {
            break;
        }
        events = wait(&kq, 10);
    }
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data(), if SHIM { 10 } else { 30 });
}

#[test]
fn unix_listener_read_data() {
    let dir = std::env::temp_dir().join(format!("knote-unix-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = UnixListener::bind(&dir).unwrap();
    let _clients: Vec<UnixStream> = (0..3).map(|_| UnixStream::connect(&dir).unwrap()).collect();
    let kq = Kqueue::new().unwrap();
    add(&kq, Kevent::read(listener.as_raw_fd(), Flags::ADD, 1));
    let events = wait(&kq, 5000);
    let _ = std::fs::remove_file(&dir);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data(), if SHIM { 1 } else { 3 });
}

#[test]
fn write_data_is_buffer_size_minus_queued() {
    let (a, _b) = UnixDatagram::pair().unwrap();
    let kq = Kqueue::new().unwrap();
    add(&kq, Kevent::write(a.as_raw_fd(), Flags::ADD, 1));
    let events = wait(&kq, 5000);
    assert_eq!(events.len(), 1);
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_SNDBUF writes one int into `size`, whose length `len` gives.
    let ret = unsafe {
        libc::getsockopt(
            a.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut size as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(ret, 0);
    assert!(events[0].data() > 0);
    if SHIM {
        assert_eq!(events[0].data(), i64::from(size), "nothing queued yet");
    }
}

#[test]
fn regular_files_are_evaluated_per_call() {
    let path = std::env::temp_dir().join(format!("knote-regular-{}", std::process::id()));
    std::fs::write(&path, [7u8; 100]).unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    let kq = Kqueue::new().unwrap();
    kq.apply(&[
        Kevent::read(file.as_raw_fd(), Flags::ADD, 1),
        Kevent::write(file.as_raw_fd(), Flags::ADD, 2),
    ])
    .unwrap();
    let events = wait(&kq, 1000);
    let read = events.iter().find(|e| e.filter() == Filter::READ).unwrap();
    assert_eq!(read.data(), 100);
    let mut buf = [0u8; 40];
    file.read_exact(&mut buf).unwrap();
    let events = wait(&kq, 1000);
    let read = events.iter().find(|e| e.filter() == Filter::READ).unwrap();
    assert_eq!(read.data(), 60);
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).unwrap();
    let events = wait(&kq, 0);
    assert!(
        events.iter().all(|e| e.filter() != Filter::READ),
        "at EOF READ does not fire: {events:?}"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn signal_kill_and_stop_are_refused_by_the_shim() {
    let kq = Kqueue::new().unwrap();
    for signo in [libc::SIGKILL, libc::SIGSTOP] {
        let result = kq.apply(&[Kevent::signal(signo, Flags::ADD, 0)]);
        if SHIM {
            assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        }
    }
}

/// A signal no other test in this binary uses.
fn spare_signal(k: libc::c_int) -> libc::c_int {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return libc::SIGRTMAX() - k;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return [libc::SIGUSR1, libc::SIGUSR2, libc::SIGINFO][k as usize - 1];
}

extern "C" fn count_handler(_: libc::c_int) {
    HANDLER_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}
static HANDLER_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A `sigaction()` by the program replaces the shim's counting handler: deliveries are not
/// counted until the next `EV_ADD` of a SIGNAL knote for that signal puts it back, chaining to
/// the program's new handler. FreeBSD counts throughout.
#[test]
fn a_later_sigaction_pauses_the_shims_counting_until_the_next_add() {
    let signo = spare_signal(1);
    // SAFETY: ignoring a real-time signal nobody else in this test binary uses.
    unsafe { libc::signal(signo, libc::SIG_IGN) };
    let kq = Kqueue::new().unwrap();
    add(&kq, Kevent::signal(signo, Flags::ADD, 1));
    // SAFETY: raise() delivers to this thread; the disposition is ours (counted, ignored).
    unsafe { libc::raise(signo) };
    assert_eq!(wait(&kq, 5000).first().map(Kevent::data), Some(1));
    // The program now installs a handler of its own.
    let handler: extern "C" fn(libc::c_int) = count_handler;
    // SAFETY: `count_handler` is async-signal-safe (one atomic add).
    unsafe { libc::signal(signo, handler as libc::sighandler_t) };
    // SAFETY: as above; the program's handler runs.
    unsafe { libc::raise(signo) };
    assert_eq!(HANDLER_RUNS.load(std::sync::atomic::Ordering::SeqCst), 1);
    let events = wait(&kq, 50);
    if SHIM {
        assert!(events.is_empty(), "counted without the shim's handler");
    } else {
        assert_eq!(events.first().map(Kevent::data), Some(1));
    }
    // EV_ADD on the existing knote: counting resumes, and the program's handler still runs.
    add(&kq, Kevent::signal(signo, Flags::ADD, 2));
    // SAFETY: as above.
    unsafe { libc::raise(signo) };
    assert_eq!(HANDLER_RUNS.load(std::sync::atomic::Ordering::SeqCst), 2);
    let events = wait(&kq, 5000);
    assert_eq!(events.first().map(|e| (e.data(), e.udata())), Some((1, 2)));
}

#[test]
fn an_ignored_observed_signal_does_not_interrupt_a_wait() {
    let signo = spare_signal(2);
    // SAFETY: ignoring a real-time signal nobody else in this test binary uses.
    unsafe { libc::signal(signo, libc::SIG_IGN) };
    let kq = std::sync::Arc::new(Kqueue::new().unwrap());
    add(&kq, Kevent::signal(signo, Flags::ADD, 7));
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let kq = kq.clone();
        std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut events = [Kevent::zeroed(); 4];
            kq.kevent(&[], &mut events, Some(Duration::from_secs(10)))
                .map(|n| events[..n].to_vec())
        })
    };
    let thread = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: the thread is alive (it is blocked in kevent until this signal's event).
    unsafe { libc::pthread_kill(thread, signo) };
    let events = waiter.join().unwrap().expect("not interrupted");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].udata(), 7);
    assert_eq!(events[0].data(), 1);
}

/// Whether the kqueue's fd polls readable right now.
fn kq_fd_readable(kq: &Kqueue) -> bool {
    let mut pfd = libc::pollfd {
        fd: kq.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    assert!(rc >= 0, "poll: {}", std::io::Error::last_os_error());
    rc == 1
}

/// A delivered level knote goes back on the queue and is re-checked at the next call: until
/// then the kqueue's fd may read as readable although the data is gone (FreeBSD's queued level
/// knote does the same); one call that finds nothing ends it.
#[test]
fn a_drained_level_knote_leaves_the_kqueue_fd_readable_until_one_call() {
    let kq = Kqueue::new().unwrap();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    add(&kq, Kevent::read(b.as_raw_fd(), Flags::ADD, 1));
    a.write_all(b"abc").unwrap();
    assert_eq!(wait(&kq, 5000).len(), 1);
    let mut buf = [0u8; 8];
    assert_eq!(b.read(&mut buf).unwrap(), 3);
    if SHIM {
        assert!(
            kq_fd_readable(&kq),
            "the requeued knote keeps the fd readable"
        );
    }
    assert!(wait(&kq, 0).is_empty(), "drained data reported");
    assert!(!kq_fd_readable(&kq), "readable with nothing to report");
}

/// Observing an ignored signal makes it a delivered one: a thread blocked in a system call that
/// `SA_RESTART` does not restart (here `poll`) fails with `EINTR` on the shim, where FreeBSD's
/// kernel discards the ignored signal and the call goes on.
#[test]
fn observing_an_ignored_signal_interrupts_another_threads_poll_on_the_shim() {
    let signo = spare_signal(3);
    // SAFETY: ignoring a signal nobody else in this test binary uses.
    unsafe { libc::signal(signo, libc::SIG_IGN) };
    let kq = Kqueue::new().unwrap();
    add(&kq, Kevent::signal(signo, Flags::ADD, 3));
    let (r, mut w) = UnixStream::pair().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let poller = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        let mut pfd = libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; bounded wait (a hang guard).
        let rc = unsafe { libc::poll(&mut pfd, 1, 10_000) };
        let err = std::io::Error::last_os_error().raw_os_error();
        (rc, err, r)
    });
    let thread = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: the thread is alive: it is blocked in poll until the byte below.
    unsafe { libc::pthread_kill(thread, signo) };
    std::thread::sleep(Duration::from_millis(50));
    w.write_all(b"x").unwrap();
    let (rc, err, _r) = poller.join().unwrap();
    if SHIM {
        assert_eq!(
            (rc, err),
            (-1, Some(libc::EINTR)),
            "poll was not interrupted"
        );
    } else {
        assert_eq!(rc, 1, "poll interrupted by an ignored signal");
    }
    assert_eq!(wait(&kq, 5000).first().map(Kevent::data), Some(1));
}

#[test]
fn a_peers_write_shutdown_re_reports_an_edge_triggered_write_knote() {
    // Linux wakes a socket's writers on any state change, the peer's SHUT_WR included, and an
    // edge-triggered epoll registration reports the standing write space again; FreeBSD's
    // filt_sowrite is activated only by the send buffer (space freed, or the send side shut).
    let kq = fast();
    let (a, b) = UnixStream::pair().unwrap();
    add(&kq, Kevent::write(&a, Flags::ADD | Flags::CLEAR, 1));
    let first = wait(&kq, 1000);
    assert_eq!(first.len(), 1, "initial write space");
    assert!(wait(&kq, 0).is_empty(), "EV_CLEAR: reported once");
    b.shutdown(std::net::Shutdown::Write).unwrap();
    let after = wait(&kq, 100);
    if SHIM {
        assert_eq!(after.len(), 1, "the shim reports the write space again");
        assert_eq!(after[0].filter(), Filter::WRITE);
        assert!(!after[0].is_eof(), "our send side is still open");
    } else {
        assert!(
            after.is_empty(),
            "FreeBSD: the peer's SHUT_WR leaves our send buffer alone"
        );
    }
}
