//! The `udp_echo` example, compiled in as a module: datagrams from several client sockets
//! (an empty one and a large one among them) come back to their own sender unchanged, on both
//! runtime flavours; and its command line.

#[allow(dead_code)]
#[path = "../examples/udp_echo.rs"]
mod udp_echo;

use std::time::Duration;

use knote::net::UdpSocket;
use knote::runtime::Builder;
use udp_echo::{parse_args, serve, Command, Options};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENTS: usize = 3;
const PER_CLIENT: usize = 20;

fn datagram(client: usize, i: usize) -> Vec<u8> {
    // Sizes from empty to 60 000 bytes, each byte naming its client and datagram.
    let len = match i {
        0 => 0,
        1 => 60_000,
        _ => i * 37,
    };
    (0..len).map(|j| (client * 101 + i * 7 + j) as u8).collect()
}

fn echoes(current_thread: bool) {
    let rt = if current_thread {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().worker_threads(2).build()
    }
    .unwrap();
    let (stats, sent) = rt.block_on(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let total = (CLIENTS * PER_CLIENT) as u64;
        let server = knote::spawn(async move { serve(&socket, Some(total)).await });
        // Blocking clients on the blocking pool, in lockstep: each waits for its reply before
        // the next datagram, so loopback loses none.
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                knote::spawn_blocking(move || {
                    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    s.connect(addr).unwrap(); // replies from elsewhere are filtered out
                    let mut buf = vec![0; 65_536];
                    let mut bytes = 0;
                    for i in 0..PER_CLIENT {
                        let d = datagram(c, i);
                        assert_eq!(s.send(&d).unwrap(), d.len());
                        let n = s.recv(&mut buf).expect("a reply within the timeout");
                        assert!(buf[..n] == d[..], "client {c} datagram {i} differs");
                        bytes += d.len() as u64;
                    }
                    bytes
                })
            })
            .collect();
        let mut sent = 0;
        for c in clients {
            sent += c.await.expect("the client passed");
        }
        let stats = knote::time::timeout(IO_TIMEOUT, server)
            .await
            .expect("the server stopped after its last datagram")
            .unwrap()
            .unwrap();
        (stats, sent)
    });
    assert_eq!(stats.datagrams, (CLIENTS * PER_CLIENT) as u64);
    assert_eq!(stats.bytes, sent);
}

#[test]
fn echoes_on_a_current_thread_runtime() {
    echoes(true);
}

#[test]
fn echoes_on_a_multi_thread_runtime() {
    echoes(false);
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(
        args(&[]),
        Ok(Command::Serve(Options {
            addr: "127.0.0.1:7002".into(),
            max_datagrams: None
        }))
    );
    assert_eq!(
        args(&["[::1]:9", "--max-datagrams", "5"]),
        Ok(Command::Serve(Options {
            addr: "[::1]:9".into(),
            max_datagrams: Some(5)
        }))
    );
    assert!(args(&["--max-datagrams"]).is_err());
    assert!(args(&["--max-datagrams", "-1"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["a:1", "b:2"]).is_err());
}
