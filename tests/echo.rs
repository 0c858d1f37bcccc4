//! The `echo` example's service, driven by real loopback clients on both runtime flavours,
//! and its command line. The example file is compiled in as a module, so what is tested is
//! what `cargo run --example echo` runs.

#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use echo::{parse_args, serve, Command, Options};
use knote::net::TcpListener;
use knote::runtime::Builder;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn run_clients(current_thread: bool) {
    let rt = if current_thread {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().worker_threads(2).build()
    }
    .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    // Blocking clients on their own threads, while this thread drives the runtime (a
    // current-thread runtime runs its tasks only inside `block_on`).
    let clients = move || -> u64 {
        (0..8usize)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    let message: Vec<u8> = (0..100_000 + i).map(|j| (j * 7 + i) as u8).collect();
                    let writer = {
                        let mut s = s.try_clone().unwrap();
                        let message = message.clone();
                        std::thread::spawn(move || {
                            s.write_all(&message).unwrap();
                            s.shutdown(Shutdown::Write).unwrap();
                        })
                    };
                    let mut back = Vec::new();
                    s.read_to_end(&mut back).unwrap();
                    writer.join().unwrap();
                    assert!(back == message, "client {i}: the echo differs");
                    message.len() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|c| c.join().unwrap())
            .sum()
    };
    let (sent, stats) = rt.block_on(async {
        let server = knote::spawn(serve(listener, Some(8)));
        let sent = knote::spawn_blocking(clients)
            .await
            .expect("the clients passed");
        let stats = knote::time::timeout(IO_TIMEOUT, server)
            .await
            .expect("the server stopped after its last client")
            .unwrap()
            .unwrap();
        (sent, stats)
    });
    assert_eq!(stats.accepted, 8);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.bytes, sent);
}

#[test]
fn echoes_on_a_current_thread_runtime() {
    run_clients(true);
}

#[test]
fn echoes_on_a_multi_thread_runtime() {
    run_clients(false);
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(
        args(&[]),
        Ok(Command::Serve(Options {
            addr: "127.0.0.1:7000".into(),
            current_thread: false,
            max_conns: None
        }))
    );
    assert_eq!(
        args(&["[::1]:9", "--current-thread", "--max-conns", "3"]),
        Ok(Command::Serve(Options {
            addr: "[::1]:9".into(),
            current_thread: true,
            max_conns: Some(3)
        }))
    );
    assert!(args(&["--max-conns"]).is_err());
    assert!(args(&["--max-conns", "many"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["a:1", "b:2"]).is_err());
}
