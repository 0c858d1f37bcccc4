//! The `READ` and `WRITE` rows of the filter table of SEMANTICS.md: sockets (stream,
//! listening, datagram), pipes, regular files, `EV_EOF`, `NOTE_LOWAT`.

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use common::*;
use knote_reactor::{note, Filter, Flags, Kevent};

// ---- READ ------------------------------------------------------------------------------------

#[test]
fn read_unix_socket_data_is_bytes_readable() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    assert!(poll(&kq).is_empty(), "READ on an empty socket");
    put(&b, 5);
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 5);
    put(&b, 7);
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 12);
    let mut buf = [0u8; 10];
    (&a).read_exact(&mut buf).unwrap();
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 2);
    (&a).read_exact(&mut buf[..2]).unwrap();
    assert!(poll(&kq).is_empty(), "READ after draining the socket");
}

#[test]
fn read_tcp_socket_data_is_bytes_readable() {
    let kq = kq();
    let (client, server) = tcp_pair();
    register(&kq, &[Kevent::read(&server, Flags::ADD, 1)]);
    (&client).write_all(b"hello").unwrap();
    let ev = wait_until(&kq, |e| e.ident() == id(&server) && e.data() == 5)
        .expect("READ with data == 5 on the TCP server side");
    assert_eq!(ev.filter(), Filter::READ);
    assert!(!ev.is_eof());
}

#[test]
fn read_tcp_listener_data_is_the_accept_queue_length() {
    let kq = kq();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    register(&kq, &[Kevent::read(&listener, Flags::ADD, 1)]);
    assert!(
        poll(&kq).is_empty(),
        "READ on a listener with no connection"
    );
    let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Handshakes complete asynchronously: wait until all three are queued.
    let ev = wait_until(&kq, |e| e.ident() == id(&listener) && e.data() == 3)
        .expect("listener READ with data == 3 after three connects");
    assert_eq!(ev.filter(), Filter::READ);
    let (s1, _) = listener.accept().unwrap();
    assert_eq!(
        find(&poll(&kq), id(&listener), Filter::READ)
            .unwrap()
            .data(),
        2
    );
    let (s2, _) = listener.accept().unwrap();
    let (s3, _) = listener.accept().unwrap();
    assert!(
        poll(&kq).is_empty(),
        "READ on a listener with an empty queue"
    );
    drop((s1, s2, s3, clients));
}

#[test]
fn read_unix_listener_reports_pending_connections() {
    let kq = kq();
    let path = TempPath(temp_path("unix-listener"));
    let listener = UnixListener::bind(&path.0).unwrap();
    register(&kq, &[Kevent::read(&listener, Flags::ADD, 1)]);
    assert!(poll(&kq).is_empty());
    let c1 = UnixStream::connect(&path.0).unwrap();
    let c2 = UnixStream::connect(&path.0).unwrap();
    let ev = wait_for(&kq, id(&listener), Filter::READ);
    // Documented shim difference (SEMANTICS.md): a listening Unix socket reports 1, not the queue length.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!(ev.data(), 1, "{ev:?}");
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    assert_eq!(ev.data(), 2, "{ev:?}");
    drop((c1, c2));
}

#[test]
fn read_udp_socket_data() {
    let kq = kq();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    register(&kq, &[Kevent::read(&rx, Flags::ADD, 1)]);
    assert!(poll(&kq).is_empty());
    tx.send_to(&[1u8; 10], rx.local_addr().unwrap()).unwrap();
    tx.send_to(&[2u8; 20], rx.local_addr().unwrap()).unwrap();
    // Documented shim difference (SEMANTICS.md): the shim reports the size of the next datagram, FreeBSD the
    // total queued.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let expected = 10;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let expected = 30;
    wait_until(&kq, |e| e.ident() == id(&rx) && e.data() == expected)
        .unwrap_or_else(|| panic!("UDP READ with data == {expected}"));
    let mut buf = [0u8; 64];
    assert_eq!(rx.recv(&mut buf).unwrap(), 10);
    assert_eq!(find(&poll(&kq), id(&rx), Filter::READ).unwrap().data(), 20);
    assert_eq!(rx.recv(&mut buf).unwrap(), 20);
    assert!(poll(&kq).is_empty());
}

#[test]
fn read_pipe_data_is_bytes_in_the_pipe() {
    let kq = kq();
    let (r, w) = pipe();
    register(&kq, &[Kevent::read(&r, Flags::ADD, 1)]);
    assert!(poll(&kq).is_empty());
    put(&w, 10);
    assert_eq!(find(&poll(&kq), id(&r), Filter::READ).unwrap().data(), 10);
    let mut buf = [0u8; 4];
    (&r).read_exact(&mut buf).unwrap();
    assert_eq!(find(&poll(&kq), id(&r), Filter::READ).unwrap().data(), 6);
}

#[test]
fn a_knote_whose_condition_no_longer_holds_is_not_returned() {
    let kq = kq();
    let (a, b) = unix_pair();
    let (r, w) = pipe();
    register(
        &kq,
        &[
            Kevent::read(&a, Flags::ADD, 1),
            Kevent::read(&r, Flags::ADD | Flags::CLEAR, 2),
        ],
    );
    // Data arrives and is consumed before anyone collects: nothing to report.
    put(&b, 3);
    put(&w, 3);
    let mut buf = [0u8; 3];
    (&a).read_exact(&mut buf).unwrap();
    (&r).read_exact(&mut buf).unwrap();
    let events = poll(&kq);
    assert!(events.is_empty(), "stale readiness reported: {events:?}");
    // Same after a reported event (the level knote is re-checked, not replayed).
    put(&b, 2);
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 2);
    (&a).read_exact(&mut buf[..2]).unwrap();
    let events = poll(&kq);
    assert!(events.is_empty(), "stale readiness reported: {events:?}");
}

#[test]
fn read_eof_when_the_pipe_writer_is_gone() {
    let kq = kq();
    let (r, w) = pipe();
    register(&kq, &[Kevent::read(&r, Flags::ADD, 1)]);
    put(&w, 2);
    drop(w);
    let ev = wait_until(&kq, |e| e.ident() == id(&r) && e.is_eof()).expect("READ with EV_EOF");
    assert_eq!(ev.data(), 2, "EV_EOF with the bytes still in the pipe");
}

#[test]
fn two_kqueues_watch_one_socket_independently() {
    let kq1 = kq();
    let kq2 = kq();
    let (a, b) = unix_pair();
    register(&kq1, &[Kevent::read(&a, Flags::ADD | Flags::CLEAR, 1)]);
    register(&kq2, &[Kevent::read(&a, Flags::ADD, 2)]);
    put(&b, 3);
    assert_eq!(find(&poll(&kq1), id(&a), Filter::READ).unwrap().udata(), 1);
    assert!(poll(&kq1).is_empty());
    for _ in 0..2 {
        let ev = find(&poll(&kq2), id(&a), Filter::READ).expect("level knote in kq2");
        assert_eq!((ev.udata(), ev.data()), (2, 3));
    }
    register(&kq2, &[Kevent::read(&a, Flags::DELETE, 0)]);
    put(&b, 1);
    assert_eq!(find(&poll(&kq1), id(&a), Filter::READ).unwrap().data(), 4);
    assert!(poll(&kq2).is_empty());
}

#[test]
fn read_regular_file_data_is_bytes_from_the_offset_to_eof() {
    let kq = kq();
    let path = TempPath(temp_path("regular"));
    std::fs::write(&path.0, vec![b'r'; 100]).unwrap();
    let mut file = std::fs::File::open(&path.0).unwrap();
    register(&kq, &[Kevent::read(&file, Flags::ADD, 1)]);
    let ev = find(&poll(&kq), id(&file), Filter::READ).expect("READ on a regular file");
    assert_eq!(ev.data(), 100);
    assert_eq!(ev.udata(), 1);
    file.seek(SeekFrom::Start(30)).unwrap();
    assert_eq!(
        find(&poll(&kq), id(&file), Filter::READ).unwrap().data(),
        70
    );
    // Growth is seen by the next call.
    let mut appender = OpenOptions::new().append(true).open(&path.0).unwrap();
    appender.write_all(&[b'a'; 20]).unwrap();
    assert_eq!(
        find(&poll(&kq), id(&file), Filter::READ).unwrap().data(),
        90
    );
}

#[test]
fn read_regular_file_growth_during_a_wait() {
    let kq = kq();
    let path = TempPath(temp_path("regular-grow"));
    std::fs::write(&path.0, b"").unwrap();
    let file = std::fs::File::open(&path.0).unwrap();
    register(&kq, &[Kevent::read(&file, Flags::ADD, 1)]);
    let appender_path = path.0.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        let mut f = OpenOptions::new().append(true).open(appender_path).unwrap();
        f.write_all(&[b'g'; 9]).unwrap();
    });
    let start = std::time::Instant::now();
    let events = wait(&kq, 8, Some(Duration::from_millis(300)));
    writer.join().unwrap();
    // Documented shim difference (SEMANTICS.md): regular files are evaluated at each call, so growth
    // during a blocking wait does not end the wait (it runs to its timeout, whose final
    // evaluation may or may not report the growth); the next call sees it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "growth woke the waiter after {:?}",
            start.elapsed()
        );
        assert!(
            events
                .iter()
                .all(|e| e.ident() == id(&file) && e.data() == 9),
            "{events:?}"
        );
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = start;
        assert_eq!(
            find(&events, id(&file), Filter::READ).map(|e| e.data()),
            Some(9)
        );
    }
    assert_eq!(find(&poll(&kq), id(&file), Filter::READ).unwrap().data(), 9);
}

#[test]
fn write_regular_file_is_always_ready() {
    let kq = kq();
    let path = TempPath(temp_path("regular-write"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path.0)
        .unwrap();
    register(&kq, &[Kevent::write(&file, Flags::ADD, 1)]);
    assert!(find(&poll(&kq), id(&file), Filter::WRITE).is_some());
    assert!(find(&poll(&kq), id(&file), Filter::WRITE).is_some());
}

#[test]
fn read_eof_on_peer_shutdown_with_data_still_buffered() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::read(&a, Flags::ADD, 1)]);
    put(&b, 3);
    b.shutdown(Shutdown::Write).unwrap();
    let ev = wait_until(&kq, |e| e.ident() == id(&a) && e.is_eof()).expect("READ with EV_EOF");
    assert_eq!(ev.data(), 3, "EV_EOF comes with the bytes still buffered");
    let mut buf = [0u8; 3];
    (&a).read_exact(&mut buf).unwrap();
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("EOF stays reported");
    assert!(ev.is_eof());
    assert_eq!(ev.data(), 0);
}

#[test]
fn read_eof_on_tcp_peer_shutdown_with_data_still_buffered() {
    let kq = kq();
    let (client, server) = tcp_pair();
    register(&kq, &[Kevent::read(&server, Flags::ADD, 1)]);
    (&client).write_all(b"abcd").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let ev = wait_until(&kq, |e| e.ident() == id(&server) && e.is_eof()).expect("READ with EV_EOF");
    assert_eq!(ev.data(), 4);
    assert_eq!(ev.fflags(), 0, "no socket error on an orderly shutdown");
}

#[test]
fn read_eof_carries_the_socket_error_in_fflags() {
    let kq = kq();
    let (client, server) = tcp_pair();
    register(&kq, &[Kevent::read(&server, Flags::ADD, 1)]);
    // SO_LINGER with a zero timeout: close sends a RST.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid `struct linger` and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(client);
    let ev = wait_until(&kq, |e| e.ident() == id(&server) && e.is_eof()).expect("READ with EV_EOF");
    assert_eq!(
        ev.fflags(),
        libc::ECONNRESET as u32,
        "fflags = socket error: {ev:?}"
    );
}

#[test]
fn read_lowat_sets_a_per_knote_threshold() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(
        &kq,
        &[Kevent::read(&a, Flags::ADD, 1)
            .with_fflags(note::LOWAT)
            .with_data(10)],
    );
    put(&b, 5);
    assert!(
        wait(&kq, 8, Some(QUIET)).is_empty(),
        "READ below the NOTE_LOWAT mark"
    );
    put(&b, 5);
    let ev = find(&poll(&kq), id(&a), Filter::READ).expect("READ at the NOTE_LOWAT mark");
    assert_eq!(ev.data(), 10);
    // The mark can be modified in place.
    register(
        &kq,
        &[Kevent::read(&a, Flags::ADD, 1)
            .with_fflags(note::LOWAT)
            .with_data(11)],
    );
    assert!(poll(&kq).is_empty());
    put(&b, 1);
    assert_eq!(find(&poll(&kq), id(&a), Filter::READ).unwrap().data(), 11);
}

#[test]
fn read_lowat_is_overridden_by_eof() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(
        &kq,
        &[Kevent::read(&a, Flags::ADD, 1)
            .with_fflags(note::LOWAT)
            .with_data(100)],
    );
    put(&b, 2);
    assert!(poll(&kq).is_empty());
    drop(b);
    let ev = wait_for(&kq, id(&a), Filter::READ);
    assert!(ev.is_eof(), "{ev:?}");
    assert_eq!(ev.data(), 2);
}

// ---- WRITE -----------------------------------------------------------------------------------

#[test]
fn write_tcp_data_is_free_send_space() {
    let kq = kq();
    let (client, server) = tcp_pair();
    register(&kq, &[Kevent::write(&client, Flags::ADD, 1)]);
    let ev = wait_for(&kq, id(&client), Filter::WRITE);
    let buffer = sndbuf(&client);
    assert!(ev.data() > 0, "{ev:?}");
    assert!(
        ev.data() <= buffer,
        "free space {} > SO_SNDBUF {buffer}",
        ev.data()
    );
    assert!(!ev.is_eof());
    drop(server);
}

#[test]
fn write_unix_socket_data_is_positive() {
    let kq = kq();
    let (a, _b) = unix_pair();
    register(&kq, &[Kevent::write(&a, Flags::ADD, 1)]);
    let ev = find(&poll(&kq), id(&a), Filter::WRITE).expect("WRITE on a fresh socket");
    assert!(ev.data() > 0, "{ev:?}");
}

#[test]
fn write_pipe_data_is_capacity_minus_bytes_queued() {
    let kq = kq();
    let (r, w) = pipe();
    register(&kq, &[Kevent::write(&w, Flags::ADD, 1)]);
    let empty = find(&poll(&kq), id(&w), Filter::WRITE)
        .expect("WRITE on an empty pipe")
        .data();
    assert!(empty > 0);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: F_GETPIPE_SZ on an open pipe fd takes no argument.
        let capacity = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
        assert_eq!(empty, i64::from(capacity), "free space of an empty pipe");
    }
    put(&w, 100);
    let ev = find(&poll(&kq), id(&w), Filter::WRITE).expect("WRITE with room left");
    assert_eq!(ev.data(), empty - 100);
    put(&w, 28);
    let ev = find(&poll(&kq), id(&w), Filter::WRITE).expect("WRITE with room left");
    assert_eq!(ev.data(), empty - 128);
    let mut buf = [0u8; 128];
    (&r).read_exact(&mut buf).unwrap();
    let ev = find(&poll(&kq), id(&w), Filter::WRITE).expect("WRITE after draining");
    assert_eq!(ev.data(), empty);
}

#[test]
fn write_stops_when_the_pipe_is_full() {
    let kq = kq();
    let (r, w) = pipe();
    set_nonblocking(&w);
    register(&kq, &[Kevent::write(&w, Flags::ADD, 1)]);
    assert!(find(&poll(&kq), id(&w), Filter::WRITE).is_some());
    fill(&w);
    let events = poll(&kq);
    assert!(events.is_empty(), "WRITE on a full pipe: {events:?}");
    let mut buf = vec![0u8; 64 * 1024];
    let _ = (&r).read(&mut buf).unwrap();
    assert!(wait_until(&kq, |e| e.ident() == id(&w)).is_some());
}

#[test]
fn write_clear_fires_again_once_a_full_buffer_drains() {
    let kq = kq();
    let (a, b) = unix_pair();
    let (r, w) = pipe();
    set_nonblocking(&a);
    set_nonblocking(&w);
    register(
        &kq,
        &[
            Kevent::write(&a, Flags::ADD | Flags::CLEAR, 1),
            Kevent::write(&w, Flags::ADD | Flags::CLEAR, 2),
        ],
    );
    let events = poll(&kq);
    assert_eq!(events.len(), 2, "both writable at first: {events:?}");
    assert!(poll(&kq).is_empty(), "EV_CLEAR WRITE fired twice");
    // Fill both until EAGAIN: no event while full.
    let sent_socket = fill(&a);
    let sent_pipe = fill(&w);
    let events = wait(&kq, 8, Some(QUIET));
    assert!(events.is_empty(), "WRITE while full: {events:?}");
    // Drain the readers: the edge-triggered knotes fire again (the async-runtime pattern:
    // write until EAGAIN, then wait for the next WRITE).
    set_nonblocking(&b);
    set_nonblocking(&r);
    let drain = |mut f: &std::fs::File, want: usize| {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < want {
            got += f.read(&mut buf).expect("read");
        }
    };
    drain(&r, sent_pipe);
    let mut buf = vec![0u8; 64 * 1024];
    let start = std::time::Instant::now();
    let mut got = 0;
    while got < sent_socket && start.elapsed() < GUARD {
        match (&b).read(&mut buf) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let mut seen = Vec::new();
    let start = std::time::Instant::now();
    while seen.len() < 2 && start.elapsed() < GUARD {
        for ev in wait(&kq, 8, Some(Duration::from_millis(20))) {
            assert!(ev.data() > 0, "{ev:?}");
            seen.push(ev.udata());
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        [1, 2],
        "each EV_CLEAR WRITE fires once after draining"
    );
}

#[test]
fn write_eof_when_the_pipe_reader_is_gone() {
    let kq = kq();
    let (r, w) = pipe();
    register(&kq, &[Kevent::write(&w, Flags::ADD, 1)]);
    assert!(!find(&poll(&kq), id(&w), Filter::WRITE).unwrap().is_eof());
    drop(r);
    let ev = wait_until(&kq, |e| e.ident() == id(&w) && e.is_eof()).expect("WRITE with EV_EOF");
    assert_eq!(ev.filter(), Filter::WRITE);
    assert_eq!(ev.udata(), 1);
}

#[test]
fn write_eof_when_the_socket_peer_is_gone() {
    let kq = kq();
    let (a, b) = unix_pair();
    register(&kq, &[Kevent::write(&a, Flags::ADD, 1)]);
    assert!(!find(&poll(&kq), id(&a), Filter::WRITE).unwrap().is_eof());
    drop(b);
    let ev = wait_until(&kq, |e| e.ident() == id(&a) && e.is_eof()).expect("WRITE with EV_EOF");
    assert_eq!(ev.filter(), Filter::WRITE);
}

#[test]
fn write_never_fires_on_a_listening_socket() {
    let kq = kq();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    register(&kq, &[Kevent::write(&listener, Flags::ADD, 1)]);
    assert!(wait(&kq, 8, Some(QUIET)).is_empty());
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    // Pending connections make the listener readable, never writable.
    register(&kq, &[Kevent::read(&listener, Flags::ADD, 2)]);
    let ev = wait_for(&kq, id(&listener), Filter::READ);
    assert_eq!(ev.udata(), 2);
    for _ in 0..3 {
        let events = wait(&kq, 8, Some(Duration::from_millis(10)));
        assert!(
            of(&events, id(&listener), Filter::WRITE).is_empty(),
            "WRITE on a listener: {events:?}"
        );
    }
    drop(client);
}
