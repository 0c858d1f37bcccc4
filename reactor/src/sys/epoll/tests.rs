//! White-box tests of the shim's fast-path promises: its system call budget, and the size of a knote.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::os::counts;
use crate::{Flags, Kevent, Kqueue};

fn fast_kqueue() -> Kqueue {
    Kqueue::builder().exact_data(false).build().unwrap()
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no timerfd or epoll_pwait2")]
fn read_and_write_in_one_change_list_cost_one_epoll_ctl() {
    for exact in [false, true] {
        let kq = Kqueue::builder().exact_data(exact).build().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        counts::take();
        let changes = [
            Kevent::read(fd, Flags::ADD | Flags::CLEAR, 1),
            Kevent::write(fd, Flags::ADD | Flags::CLEAR, 2),
        ];
        kq.kevent(&changes, &mut [], None).unwrap();
        let (ctl, wait, other) = counts::take();
        assert_eq!((ctl, wait, other), (1, 0, 0), "exact = {exact}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no timerfd or epoll_pwait2")]
fn waiting_with_nothing_to_change_costs_one_epoll_wait() {
    let kq = fast_kqueue();
    let (mut a, b) = UnixStream::pair().unwrap();
    let fd = b.as_raw_fd();
    let changes = [
        Kevent::read(fd, Flags::ADD | Flags::CLEAR, 1),
        Kevent::write(fd, Flags::ADD | Flags::CLEAR, 2),
    ];
    let mut events = [Kevent::zeroed(); 8];
    // The registration reports WRITE (writable at once); drain it.
    let n = kq
        .kevent(&changes, &mut events, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(n, 1);
    counts::take();

    // An idle poll: one epoll_wait and nothing else.
    assert_eq!(
        kq.kevent(&[], &mut events, Some(Duration::ZERO)).unwrap(),
        0
    );
    assert_eq!(counts::take(), (0, 1, 0));

    // A wait that finds an edge: still one epoll_wait.
    a.write_all(b"x").unwrap();
    let n = kq
        .kevent(&[], &mut events, Some(Duration::from_secs(5)))
        .unwrap();
    assert!(n >= 1 && events[..n].iter().any(|e| e.udata() == 1));
    assert_eq!(counts::take(), (0, 1, 0));
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no timerfd or epoll_pwait2")]
fn edge_knotes_leave_nothing_queued_so_the_next_wait_is_one_call() {
    let kq = fast_kqueue();
    busy_waits_are_one_call(&kq, &mut [Kevent::zeroed(); 8]);
}

/// Registers a fresh socket pair's edge READ knote (udata 1) on `kq`, then three times: data
/// in, and the wait that reports it is one `epoll_wait` and nothing else, reporting that fd
/// alone.
fn busy_waits_are_one_call(kq: &Kqueue, events: &mut [Kevent]) {
    let (mut a, b) = UnixStream::pair().unwrap();
    kq.kevent(
        &[Kevent::read(b.as_raw_fd(), Flags::ADD | Flags::CLEAR, 1)],
        &mut [],
        None,
    )
    .unwrap();
    for _ in 0..3 {
        a.write_all(b"ping").unwrap();
        counts::take();
        let n = kq
            .kevent(&[], events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!((n, events[0].udata()), (1, 1));
        assert_eq!(counts::take(), (0, 1, 0));
    }
}

/// Idle registrations cost a busy wait nothing: with 300 idle fds' edge knotes registered (and
/// their initial WRITE reports delivered), a wait that finds one busy fd's edge is still one
/// `epoll_wait` and nothing else (no `poll(2)` re-check walk), and reports that fd alone. (The
/// scale goal of issue 9: 10,000 idle connections must not slow the busy ones.)
#[test]
#[cfg_attr(miri, ignore = "Miri has no timerfd or epoll_pwait2")]
fn idle_edge_knotes_add_nothing_to_a_busy_wait() {
    const IDLE: usize = 300;
    let kq = fast_kqueue();
    let idle: Vec<(UnixStream, UnixStream)> =
        (0..IDLE).map(|_| UnixStream::pair().unwrap()).collect();
    let changes: Vec<Kevent> = idle
        .iter()
        .enumerate()
        .flat_map(|(i, (_, b))| {
            let fd = b.as_raw_fd();
            [
                Kevent::read(fd, Flags::ADD | Flags::CLEAR, 10 + i),
                Kevent::write(fd, Flags::ADD | Flags::CLEAR, 10 + i),
            ]
        })
        .collect();
    let mut events = vec![Kevent::zeroed(); 2 * IDLE];
    kq.kevent(&changes, &mut [], None).unwrap();
    // Every idle fd is writable at once: take those reports.
    let mut reported = 0;
    while reported < IDLE {
        let n = kq
            .kevent(&[], &mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(n > 0, "{reported} of {IDLE} initial WRITE reports");
        reported += n;
    }
    assert_eq!(reported, IDLE);
    busy_waits_are_one_call(&kq, &mut events);
}

/// A knote is 80 bytes: every registered fd has one (two with a WRITE knote), so every idle
/// connection pays for it. `Ext` is as big as its largest variant, which is why VNODE's
/// 120-byte state is boxed (inline, a knote was 176 bytes).
#[test]
fn a_knote_is_80_bytes() {
    assert_eq!(std::mem::size_of::<super::knote::Knote>(), 80);
    assert!(std::mem::size_of::<super::Ext>() <= 32);
}
