//! The `reuseport` example: per-thread `SO_REUSEPORT` listeners on one port, each on its own
//! current-thread runtime, all serve connections and echo them byte-exact.
#![cfg(any(target_os = "linux", target_os = "android"))]

#[allow(dead_code)]
#[path = "../examples/reuseport.rs"]
mod reuseport;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown};
use std::time::Duration;

#[test]
fn every_listener_serves_connections() {
    const THREADS: usize = 3;
    const PER_LISTENER: usize = 5;
    const MOST_CONNS: usize = 2000;
    let sockets = reuseport::bind_all((Ipv4Addr::LOCALHOST, 0).into(), THREADS).unwrap();
    let addr = sockets[0].local_addr().unwrap();
    assert!(sockets.iter().all(|s| s.local_addr().unwrap() == addr));
    // Each listener stops after PER_LISTENER connections; the kernel picks which listener a
    // connection goes to, so clients connect until every listener has had its share.
    let threads = reuseport::start(sockets, Some(PER_LISTENER));
    let mut echoed = 0;
    for i in 0..MOST_CONNS {
        if threads.iter().all(|t| t.is_finished()) {
            break;
        }
        // A connection queued at a listener just as it stops is reset; when all have
        // stopped, connecting is refused: both only end this client.
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let msg = format!("client {i}");
        if s.write_all(msg.as_bytes()).is_err() || s.shutdown(Shutdown::Write).is_err() {
            continue;
        }
        let mut back = String::new();
        if s.read_to_string(&mut back).is_ok() && !back.is_empty() {
            assert_eq!(back, msg);
            echoed += 1;
        }
    }
    for t in threads {
        let stats = t.join().unwrap().unwrap();
        assert_eq!(
            stats.accepted, PER_LISTENER,
            "every listener got its connections"
        );
        assert_eq!(stats.failed, 0);
    }
    assert_eq!(
        echoed,
        THREADS * PER_LISTENER,
        "every accepted connection was echoed"
    );
}
