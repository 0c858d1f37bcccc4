//! The `unix_echo` example, compiled in as a module: blocking clients on a socket path get
//! their bytes back on both runtime flavours, the socket file is gone afterwards, a path that
//! exists is a clear error; and its command line.

#[allow(dead_code)]
#[path = "../examples/unix_echo.rs"]
mod unix_echo;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use knote::runtime::Builder;
use unix_echo::{default_path, parse_args, serve_path, Command, Options};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENTS: usize = 6;

fn socket_path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("knote-unix-echo-{}-{tag}.sock", std::process::id()));
    if p.exists() {
        std::fs::remove_file(&p).unwrap(); // a leftover of a crashed earlier run
    }
    p
}

fn echoes(current_thread: bool) {
    let rt = if current_thread {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().worker_threads(2).build()
    }
    .unwrap();
    let path = socket_path(if current_thread { "ct" } else { "mt" });
    let (stats, sent) = rt.block_on(async {
        let server = {
            let path = path.clone();
            knote::spawn(async move { serve_path(&path, Some(CLIENTS)).await })
        };
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let path = path.clone();
                knote::spawn_blocking(move || {
                    // The server binds in its task: retry until the path is there (bounded).
                    let mut s = (0..1000)
                        .find_map(|_| match UnixStream::connect(&path) {
                            Ok(s) => Some(s),
                            Err(_) => {
                                std::thread::sleep(Duration::from_millis(5));
                                None
                            }
                        })
                        .expect("the server binds");
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    let message: Vec<u8> = (0..200_000 + c).map(|j| (j * 13 + c) as u8).collect();
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
                    assert!(back == message, "client {c}: the echo differs");
                    message.len() as u64
                })
            })
            .collect();
        let mut sent = 0;
        for c in clients {
            sent += c.await.expect("the client passed");
        }
        let stats = knote::time::timeout(IO_TIMEOUT, server)
            .await
            .expect("the server stopped after its last client")
            .unwrap()
            .unwrap();
        (stats, sent)
    });
    assert_eq!(stats.accepted, CLIENTS);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.bytes, sent);
    assert!(!path.exists(), "the server removed its socket file");
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
fn a_path_that_exists_is_a_clear_error() {
    let path = socket_path("exists");
    std::fs::write(&path, b"not a socket").unwrap();
    let rt = Builder::new_current_thread().build().unwrap();
    let err = rt
        .block_on(serve_path(&path, Some(1)))
        .expect_err("the path is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains("cannot bind"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket", "left alone");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(
        args(&[]),
        Ok(Command::Serve(Options {
            path: default_path(),
            max_conns: None
        }))
    );
    assert!(default_path().starts_with(std::env::temp_dir()));
    assert_eq!(
        args(&["/run/x.sock", "--max-conns", "2"]),
        Ok(Command::Serve(Options {
            path: "/run/x.sock".into(),
            max_conns: Some(2)
        }))
    );
    assert!(args(&["--max-conns"]).is_err());
    assert!(args(&["--max-conns", "two"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["a", "b"]).is_err());
}
