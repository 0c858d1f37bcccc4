//! Per-core accept: several listeners on one port with `SO_REUSEPORT`, each on its own
//! current-thread runtime (the shared-nothing shape), all receive connections.
//!
//! Linux and Android spread connections among `SO_REUSEPORT` listeners by a hash of the
//! connection's addresses; FreeBSD needs `SO_REUSEPORT_LB` for that, and macOS does not spread
//! them at all, so the test is for the former.
#![cfg(any(target_os = "linux", target_os = "android"))]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use knote_executor::runtime::Builder;
use knote_executor::time::timeout;
use knote_net::TcpSocket;

const LISTENERS: usize = 4;
const CONNECTIONS: usize = 400;
const LIMIT: Duration = Duration::from_secs(30);

fn reuseport_socket(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind(addr).unwrap();
    socket
}

#[test]
fn reuseport_listeners_all_receive_connections() {
    // Bound here (a TcpSocket needs no runtime until it listens): the first picks the port.
    let first = reuseport_socket((Ipv4Addr::LOCALHOST, 0).into());
    let addr = first.local_addr().unwrap();
    let mut sockets = vec![first];
    sockets.extend((1..LISTENERS).map(|_| reuseport_socket(addr)));

    let total = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let workers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let total = Arc::clone(&total);
            let ready_tx = ready_tx.clone();
            thread::spawn(move || {
                let rt = Builder::new_current_thread().build().unwrap();
                rt.block_on(async move {
                    let listener = socket.listen(1024).unwrap();
                    ready_tx.send(()).unwrap();
                    let deadline = Instant::now() + LIMIT;
                    let mut mine = Vec::new();
                    while total.load(Ordering::SeqCst) < CONNECTIONS {
                        assert!(
                            Instant::now() < deadline,
                            "listener {i}: connections missing"
                        );
                        if let Ok(accepted) =
                            timeout(Duration::from_millis(20), listener.accept()).await
                        {
                            mine.push(accepted.unwrap().0);
                            total.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    mine.len()
                })
            })
        })
        .collect();
    for _ in 0..LISTENERS {
        ready_rx
            .recv_timeout(LIMIT)
            .expect("a listener did not start");
    }
    // Connections stay open until all are accepted, so each has its own source port.
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| std::net::TcpStream::connect_timeout(&addr, LIMIT).expect("connect"))
        .collect();
    let counts: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    drop(clients);
    assert_eq!(counts.iter().sum::<usize>(), CONNECTIONS, "{counts:?}");
    assert!(
        counts.iter().all(|&n| n > 0),
        "every SO_REUSEPORT listener gets connections: {counts:?}"
    );
}
