//! SEMANTICS.md's "Traps on the way to epoll", one or more tests each. Trap 6 (sub-millisecond
//! timers, the pollable kqueue fd) is also covered by `timer.rs` and `pollable.rs`, trap 7
//! (signals observed, not consumed) by `signal.rs`.

mod common;

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use knote_reactor::{note, Filter, Flags, Kevent, TimerUnit};

// ---- 1. one registration per fd --------------------------------------------------------------

#[test]
fn trap1_read_clear_and_write_level_on_one_socket_keep_their_modes() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD | Flags::CLEAR, 1),
            Kevent::write(&a, Flags::ADD, 2),
        ],
    );
    put(&b, 4);
    let events = poll(&kq);
    assert!(find(&events, id(&a), Filter::READ).is_some(), "{events:?}");
    assert!(find(&events, id(&a), Filter::WRITE).is_some(), "{events:?}");
    for round in 0..3 {
        let events = poll(&kq);
        assert!(
            find(&events, id(&a), Filter::READ).is_none(),
            "round {round}: EV_CLEAR READ fired again without new data: {events:?}"
        );
        let write = find(&events, id(&a), Filter::WRITE);
        assert!(
            write.is_some(),
            "round {round}: level WRITE stopped firing: {events:?}"
        );
        assert!(!write.unwrap().flags().contains(Flags::CLEAR));
    }
    put(&b, 1);
    let events = poll(&kq);
    assert_eq!(
        find(&events, id(&a), Filter::READ).map(|e| e.data()),
        Some(5),
        "{events:?}"
    );
    assert!(find(&events, id(&a), Filter::WRITE).is_some());
    assert!(find(&poll(&kq), id(&a), Filter::READ).is_none());
}

#[test]
fn trap1_read_level_and_write_clear_on_one_socket_keep_their_modes() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 4);
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::write(&a, Flags::ADD | Flags::CLEAR, 2),
        ],
    );
    let events = poll(&kq);
    assert!(find(&events, id(&a), Filter::READ).is_some(), "{events:?}");
    assert!(find(&events, id(&a), Filter::WRITE).is_some(), "{events:?}");
    for round in 0..3 {
        let events = poll(&kq);
        assert!(
            find(&events, id(&a), Filter::READ).is_some(),
            "round {round}: level READ stopped firing: {events:?}"
        );
        assert!(
            find(&events, id(&a), Filter::WRITE).is_none(),
            "round {round}: EV_CLEAR WRITE fired again: {events:?}"
        );
    }
}

#[test]
fn trap1_oneshot_read_and_level_write_on_one_socket() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 1);
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD | Flags::ONESHOT, 1),
            Kevent::write(&a, Flags::ADD, 2),
        ],
    );
    let events = poll(&kq);
    assert!(find(&events, id(&a), Filter::READ).is_some(), "{events:?}");
    for _ in 0..2 {
        let events = poll(&kq);
        assert!(find(&events, id(&a), Filter::READ).is_none(), "{events:?}");
        assert!(find(&events, id(&a), Filter::WRITE).is_some(), "{events:?}");
    }
    // Deleting WRITE leaves nothing; the READ knote was deleted by EV_ONESHOT.
    register(&kq, &[Kevent::write(&a, Flags::DELETE, 0)]);
    assert!(poll(&kq).is_empty());
    assert_eq!(
        receipt(&kq, Kevent::read(&a, Flags::DELETE, 0)),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn trap1_write_is_not_starved_behind_read_with_a_one_slot_list() {
    let kq = kq();
    let (a, b) = unix_pair();
    put(&b, 4);
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::write(&a, Flags::ADD, 2),
        ],
    );
    let mut seen_read = 0;
    let mut seen_write = 0;
    for _ in 0..4 {
        let events = wait(&kq, 1, Some(Duration::ZERO));
        assert_eq!(events.len(), 1, "both are ready: one event per call");
        match events[0].filter() {
            f if f == Filter::READ => seen_read += 1,
            f if f == Filter::WRITE => seen_write += 1,
            other => panic!("unexpected filter {other:?}"),
        }
    }
    assert!(
        seen_read >= 1 && seen_write >= 1,
        "over 4 one-slot calls: READ {seen_read} times, WRITE {seen_write} times"
    );
}

#[test]
fn trap1_deleting_one_filter_keeps_the_other() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::write(&a, Flags::ADD, 2),
        ],
    );
    register(&kq, &[Kevent::write(&a, Flags::DELETE, 0)]);
    assert!(poll(&kq).is_empty(), "WRITE deleted, nothing to read yet");
    put(&b, 2);
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].filter(), Filter::READ);
    register(&kq, &[Kevent::write(&a, Flags::ADD, 3)]);
    register(&kq, &[Kevent::read(&a, Flags::DELETE, 0)]);
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].filter(), Filter::WRITE);
    assert_eq!(events[0].udata(), 3);
}

// ---- 2. errors must not wait -----------------------------------------------------------------

#[test]
fn trap2_an_error_entry_returns_at_once_despite_a_long_timeout() {
    let kq = kq();
    let start = Instant::now();
    let events = submit(
        &kq,
        &[Kevent::read(1_000_000, Flags::ADD, 0)],
        8,
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    assert!(start.elapsed() < GUARD, "waited {:?}", start.elapsed());
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].is_error());
    assert_eq!(events[0].data(), i64::from(libc::EBADF));
}

#[test]
fn trap2_a_receipt_returns_at_once_despite_a_long_timeout() {
    let kq = kq();
    let start = Instant::now();
    let events = submit(
        &kq,
        &[Kevent::user(1, Flags::ADD | Flags::RECEIPT, 0, 0)],
        8,
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    assert!(start.elapsed() < GUARD, "waited {:?}", start.elapsed());
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].is_error());
    assert_eq!(events[0].data(), 0);
}

#[test]
fn trap2_error_entries_are_returned_instead_of_pending_events() {
    let kq = kq();
    register(
        &kq,
        &[Kevent::user(1, Flags::ADD, 0, 0), Kevent::trigger(1, 0)],
    );
    let events = submit(
        &kq,
        &[
            Kevent::user(2, Flags::DELETE, 0, 0),
            Kevent::user(3, Flags::ADD | Flags::RECEIPT, 0, 0),
        ],
        8,
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(Kevent::is_error), "{events:?}");
    assert_eq!(events[0].data(), i64::from(libc::ENOENT));
    assert_eq!(events[1].data(), 0);
}

// ---- 3. write space --------------------------------------------------------------------------

#[test]
fn trap3_write_data_is_free_space_not_unsent_bytes() {
    let kq = kq();
    let (client, server) = tcp_pair();
    register(&kq, &[Kevent::write(&client, Flags::ADD, 1)]);
    let fresh = wait_for(&kq, id(&client), Filter::WRITE).data();
    let buffer = sndbuf(&client);
    assert!(
        fresh >= buffer / 2,
        "a fresh socket's free space {fresh} is far below SO_SNDBUF {buffer} (unsent bytes?)"
    );
    assert!(fresh <= buffer, "free space {fresh} > SO_SNDBUF {buffer}");
    // Fill the send buffer without the peer reading.
    set_nonblocking(&client);
    let written = fill(&client);
    assert!(written > 0);
    for ev in wait(&kq, 8, Some(QUIET)) {
        assert!(
            ev.ident() != id(&client) || ev.data() < fresh,
            "WRITE on a full send buffer with data {} (fresh: {fresh})",
            ev.data()
        );
    }
    // Drain the peer: room again.
    set_nonblocking(&server);
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let mut drained = 0;
    while drained < written && start.elapsed() < GUARD {
        match (&server).read(&mut buf) {
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(drained, written);
    let ev = wait_until(&kq, |e| e.ident() == id(&client) && e.data() >= fresh / 2)
        .expect("WRITE with room again after the peer drained");
    assert_eq!(ev.filter(), Filter::WRITE);
}

// ---- 4. listen backlog -----------------------------------------------------------------------

#[test]
fn trap4_listen_backlog_is_the_exact_count() {
    let kq = kq();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    register(&kq, &[Kevent::read(&listener, Flags::ADD, 1)]);
    let clients: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_until(&kq, |e| e.ident() == id(&listener) && e.data() == 5)
        .expect("listener READ with data == 5");
    let accepted: Vec<_> = (0..2).map(|_| listener.accept().unwrap()).collect();
    assert_eq!(
        find(&poll(&kq), id(&listener), Filter::READ)
            .unwrap()
            .data(),
        3
    );
    drop((accepted, clients));
}

#[test]
fn trap4_listen_backlog_on_ipv6_loopback() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        return; // no IPv6 loopback here
    };
    let kq = kq();
    let addr = listener.local_addr().unwrap();
    register(&kq, &[Kevent::read(&listener, Flags::ADD, 1)]);
    let clients: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_until(&kq, |e| e.ident() == id(&listener) && e.data() == 2)
        .expect("IPv6 listener READ with data == 2");
    drop(clients);
}

// ---- 5. fd identity --------------------------------------------------------------------------

#[test]
fn trap5_a_closed_and_reused_fd_never_delivers_the_old_file() {
    const OLD: usize = 0x01D_F11E;
    const NEW: usize = 0x0E5_F11E;
    let kq = kq(); // exact mode: see shim difference (h) for fast mode
    let (a, b) = unix_pair();
    let number = a.as_raw_fd();
    register(&kq, &[Kevent::read(&a, Flags::ADD, OLD)]);
    // Keep the old file open through a dup, then close the registered fd without EV_DELETE.
    let keep = dup(&a);
    drop(a);
    let (r, w) = pipe();
    let reused = r.as_raw_fd() == number;
    if reused {
        // The number now names a readable file (not registered by anyone)...
        put(&w, 2);
    } else {
        eprintln!("fd {number} was not reused (parallel tests): skipped the reuse half");
    }
    // ... and the old file becomes readable too.
    put(&b, 4);
    let check = |events: &[Kevent]| {
        assert!(
            events.iter().all(|e| e.udata() != OLD),
            "an event of the closed registration: {events:?}"
        );
    };
    let events = poll(&kq);
    check(&events);
    assert!(events.is_empty(), "nothing is registered: {events:?}");
    check(&wait(&kq, 8, Some(QUIET)));
    if reused {
        // A new registration at the number sees the pipe, not the socket.
        register(&kq, &[Kevent::read(&r, Flags::ADD, NEW)]);
        let events = poll(&kq);
        check(&events);
        let ev = find(&events, id(&r), Filter::READ).expect("READ on the new pipe");
        assert_eq!(ev.udata(), NEW);
        assert_eq!(ev.data(), 2, "data of the pipe, not of the old socket");
        let mut buf = [0u8; 2];
        (&r).read_exact(&mut buf).unwrap();
        // The pipe is empty now: neither the old socket's new data nor its standing
        // readiness may show up under either udata.
        put(&b, 1);
        let events = wait(&kq, 8, Some(QUIET));
        check(&events);
        assert!(events.is_empty(), "the new pipe is empty: {events:?}");
        put(&w, 3);
        let ev = find(&poll(&kq), id(&r), Filter::READ).expect("READ on the new pipe");
        assert_eq!((ev.udata(), ev.data()), (NEW, 3));
    }
    drop((keep, r, w));
}

#[test]
fn trap5_dup2_over_a_registered_fd_drops_the_old_knote() {
    const OLD: usize = 0x01D;
    const NEW: usize = 0x0E5;
    let kq = kq();
    let (a, b) = unix_pair();
    let (r, w) = pipe();
    let number = a.as_raw_fd();
    register(&kq, &[Kevent::read(&a, Flags::ADD, OLD)]);
    let keep = dup(&a);
    // dup2 closes `number` (dropping its knotes) and makes it name the pipe, atomically.
    // SAFETY: both fds are open; `number` stays owned by `a`, which now closes the pipe's dup.
    let rc = unsafe { libc::dup2(r.as_raw_fd(), number) };
    assert_eq!(rc, number, "dup2: {}", io::Error::last_os_error());
    // Both the file now at `number` and the old file are readable.
    put(&w, 3);
    put(&b, 4);
    let events = wait(&kq, 8, Some(QUIET));
    assert!(
        events.is_empty(),
        "the replaced registration reported (udata {OLD:#x} is the old one): {events:?}"
    );
    register(&kq, &[Kevent::read(number, Flags::ADD, NEW)]);
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].udata(), NEW);
    assert_eq!(events[0].data(), 3);
    drop((keep, a, r, w));
}

/// Registers READ (level, udata `OLD`) on a fresh socket, then `dup2`s a dup of it over the
/// registered number: the number is closed (kqueue drops its knotes at close) and the very same
/// open file is put back at it. Returns (kqueue, registered end, peer, dup, number).
fn same_file_back_at_a_closed_number() -> (
    knote_reactor::Kqueue,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
    std::os::fd::OwnedFd,
    i32,
) {
    let kq = kq();
    let (a, b) = unix_pair();
    let number = a.as_raw_fd();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 0x01D)]);
    let keep = dup(&a);
    // SAFETY: both fds are open; `number` stays owned by `a` (now naming the same file again).
    let rc = unsafe { libc::dup2(keep.as_raw_fd(), number) };
    assert_eq!(rc, number, "dup2: {}", io::Error::last_os_error());
    (kq, a, b, keep, number)
}

/// The same open file put back at a closed number: undetectable on the shim (epoll keys on
/// (file, fd), so its registration survives, and the file's identity is unchanged). The
/// difference table of SEMANTICS.md says so; on Linux this pins that the old knote carries on.
#[test]
fn trap5_the_same_file_back_at_a_closed_number_has_no_knotes() {
    let (kq, _a, b, _keep, _number) = same_file_back_at_a_closed_number();
    // Nothing was registered since the close: kqueue dropped the knote (whose udata might
    // point to a record the program freed at close) and must never return it.
    put(&b, 4);
    let events = wait(&kq, 8, Some(QUIET));
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0].udata(),
            0x01D,
            "the knote carries on, as documented"
        );
    } else {
        assert!(
            events.is_empty(),
            "a knote dropped by close reported (udata 0x1d): {events:?}"
        );
    }
}

#[test]
fn trap5_a_new_knote_on_the_same_file_back_at_a_closed_number_has_its_own_mode() {
    let (kq, _a, b, _keep, number) = same_file_back_at_a_closed_number();
    put(&b, 4);
    // A new registration is a new knote: EV_CLEAR reports the standing data once, and the
    // dropped knote's level mode must not leak into it.
    register(
        &kq,
        &[Kevent::read(number, Flags::ADD | Flags::CLEAR, 0x0E5)],
    );
    let events = poll(&kq);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].udata(), events[0].data()), (0x0E5, 4));
    let events = poll(&kq);
    if cfg!(any(target_os = "linux", target_os = "android")) {
        // Documented: the shim cannot see that close, so EV_ADD modifies the surviving level
        // knote in place (new udata, old mode).
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].udata(), 0x0E5);
        assert!(!events[0].flags().contains(Flags::CLEAR));
    } else {
        assert!(
            events.is_empty(),
            "the new EV_CLEAR knote behaved level-triggered: {events:?}"
        );
    }
}

#[test]
fn trap5_enable_or_disable_after_the_number_was_reused_is_enoent() {
    let kq = kq();
    let (a, _b) = unix_pair();
    let (r, _w) = pipe();
    let number = a.as_raw_fd();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    let keep = dup(&a);
    // SAFETY: both fds are open; `number` stays owned by `a` (now naming the pipe).
    let rc = unsafe { libc::dup2(r.as_raw_fd(), number) };
    assert_eq!(rc, number, "dup2: {}", io::Error::last_os_error());
    // The knote went away with the close: the number is valid, the knote absent.
    for flags in [Flags::ENABLE, Flags::DISABLE] {
        assert_eq!(
            receipt(&kq, Kevent::read(number, flags, 1)),
            i64::from(libc::ENOENT),
            "{flags:?} on a knote dropped by close"
        );
    }
    drop((keep, a));
}

#[test]
fn trap5_closing_the_fd_drops_its_knotes() {
    let kq = kq();
    let (a, b) = unix_pair();
    let (r, w) = pipe();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::write(&a, Flags::ADD, 2),
            Kevent::read(&r, Flags::ADD, 3),
        ],
    );
    let keep = dup(&a);
    drop(a);
    put(&b, 1);
    put(&w, 1);
    let events = poll(&kq);
    assert_eq!(
        events.len(),
        1,
        "only the pipe is still registered: {events:?}"
    );
    assert_eq!(events[0].udata(), 3);
    drop((keep, r));
}

// ---- 6. sub-millisecond waits (see also timer.rs, pollable.rs) ----------------------------------

#[test]
fn trap6_microsecond_timers_fire_and_count() {
    let kq = kq();
    let start = Instant::now();
    register(
        &kq,
        &[
            Kevent::timer(1, Flags::ADD | Flags::ONESHOT, TimerUnit::Micros, 200, 1),
            Kevent::timer(2, Flags::ADD, TimerUnit::Nanos, 50_000, 2),
        ],
    );
    let ev = wait_for(&kq, 1, Filter::TIMER);
    assert!(start.elapsed() >= Duration::from_micros(180));
    assert_eq!(ev.data(), 1);
    std::thread::sleep(Duration::from_millis(10));
    let ev = wait_for(&kq, 2, Filter::TIMER);
    assert!(
        ev.data() >= 2,
        "a 50 µs timer expired {} times in 10 ms",
        ev.data()
    );
}

// ---- 8. cost of data: fast mode --------------------------------------------------------------

/// Fast mode's `data` for fd events: 0 on the shim (documented difference (a)), exact natively.
fn fast_data(exact: i64) -> i64 {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        0
    } else {
        exact
    }
}

#[test]
fn trap8_fast_mode_still_reports_readiness() {
    let kq = fast_kq();
    let (a, b) = unix_pair();
    let (r, w) = pipe();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::read(&r, Flags::ADD, 2),
        ],
    );
    assert!(poll(&kq).is_empty(), "nothing is readable yet");
    put(&b, 5);
    put(&w, 7);
    let events = poll(&kq);
    let sock = find(&events, id(&a), Filter::READ).expect("socket READ in fast mode");
    let pip = find(&events, id(&r), Filter::READ).expect("pipe READ in fast mode");
    assert_eq!(sock.udata(), 1);
    assert_eq!(pip.udata(), 2);
    assert_eq!(sock.data(), fast_data(5));
    assert_eq!(pip.data(), fast_data(7));
    // Level-triggered in fast mode too, and draining ends readiness.
    assert!(find(&poll(&kq), id(&a), Filter::READ).is_some());
    let mut buf = [0u8; 5];
    (&a).read_exact(&mut buf).unwrap();
    assert!(find(&poll(&kq), id(&a), Filter::READ).is_none());
    // WRITE and EOF.
    register(&kq, &[Kevent::write(&w, Flags::ADD, 3)]);
    let ev = find(&poll(&kq), id(&w), Filter::WRITE).expect("pipe WRITE in fast mode");
    if cfg!(any(target_os = "linux", target_os = "android")) {
        assert_eq!(ev.data(), 0);
    } else {
        assert!(ev.data() > 0);
    }
    drop(b);
    let ev = wait_until(&kq, |e| e.ident() == id(&a) && e.is_eof()).expect("EOF in fast mode");
    assert_eq!(ev.filter(), Filter::READ);
}

#[test]
fn trap8_fast_mode_listener_and_clear() {
    let kq = fast_kq();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    register(&kq, &[Kevent::read(&listener, Flags::ADD, 1)]);
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let ev = wait_for(&kq, id(&listener), Filter::READ);
    assert_eq!(ev.data(), fast_data(1));
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD | Flags::CLEAR, 2)]);
    put(&b, 1);
    assert!(find(&poll(&kq), id(&a), Filter::READ).is_some());
    assert!(find(&poll(&kq), id(&a), Filter::READ).is_none());
    put(&b, 1);
    assert!(find(&poll(&kq), id(&a), Filter::READ).is_some());
    drop(client);
}

#[test]
fn trap8_fast_mode_keeps_exact_data_with_lowat_and_for_non_fd_filters() {
    let kq = fast_kq();
    let (a, b) = unix_pair();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1)
                .with_fflags(note::LOWAT)
                .with_data(3),
            Kevent::user(2, Flags::ADD, 0, 2),
            Kevent::trigger(2, 2).with_data(42),
            Kevent::timer(3, Flags::ADD, TimerUnit::Millis, 5, 3),
        ],
    );
    put(&b, 2);
    assert!(
        find(&poll(&kq), id(&a), Filter::READ).is_none(),
        "below NOTE_LOWAT"
    );
    put(&b, 3);
    let events = poll(&kq);
    assert_eq!(
        find(&events, id(&a), Filter::READ).map(|e| e.data()),
        Some(5),
        "NOTE_LOWAT knotes get exact data in fast mode: {events:?}"
    );
    assert_eq!(find(&events, 2, Filter::USER).map(|e| e.data()), Some(42));
    std::thread::sleep(Duration::from_millis(30));
    let ev = wait_for(&kq, 3, Filter::TIMER);
    assert!(ev.data() >= 1);
}

#[test]
fn trap8_exact_mode_gives_exact_data() {
    let kq = kq();
    let (a, b) = unix_pair();
    let (r, w) = pipe();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::read(&r, Flags::ADD, 2),
            Kevent::write(&w, Flags::ADD, 3),
        ],
    );
    put(&b, 5);
    put(&w, 7);
    let events = poll(&kq);
    assert_eq!(find(&events, id(&a), Filter::READ).unwrap().data(), 5);
    assert_eq!(find(&events, id(&r), Filter::READ).unwrap().data(), 7);
    assert!(find(&events, id(&w), Filter::WRITE).unwrap().data() > 0);
}
