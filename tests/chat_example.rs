//! The `chat` example, compiled in as a module: three clients, each sees every other's lines
//! (and not its own), on both runtime flavours; an over-long line ends that client's session
//! only; and its command line.

#[allow(dead_code)]
#[path = "../examples/chat.rs"]
mod chat;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chat::{parse_args, serve, Command, Options, MAX_LINE};
use knote::net::TcpListener;
use knote::runtime::{Builder, Runtime};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CLIENTS: usize = 3;
const LINES_EACH: usize = 4;

fn runtime(current_thread: bool) -> Runtime {
    if current_thread {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().worker_threads(2).build()
    }
    .unwrap()
}

/// Runs the server for `conns` connections while `clients` runs on the blocking pool.
fn with_server<T: Send + 'static>(
    rt: &Runtime,
    conns: usize,
    clients: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> (chat::Stats, T) {
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = knote::spawn(serve(listener, Some(conns)));
        let out = knote::spawn_blocking(move || clients(addr))
            .await
            .expect("the clients passed");
        let stats = knote::time::timeout(IO_TIMEOUT, server)
            .await
            .expect("the server stopped after its last client")
            .unwrap()
            .unwrap();
        (stats, out)
    })
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("a line within the timeout");
    assert!(line.ends_with('\n'), "a whole line, got {line:?}");
    line.trim_end().to_owned()
}

fn everyone_hears_everyone_else(current_thread: bool) {
    let rt = runtime(current_thread);
    let (stats, ()) = with_server(&rt, CLIENTS, |addr| {
        let all_welcomed = Arc::new(Barrier::new(CLIENTS));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let all_welcomed = Arc::clone(&all_welcomed);
                std::thread::spawn(move || {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let welcome = read_line(&mut r);
                    let id: usize = welcome
                        .strip_prefix("welcome ")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("a greeting, got {welcome:?}"));
                    // Everyone is subscribed once everyone was greeted: no line is missed.
                    all_welcomed.wait();
                    for i in 0..LINES_EACH {
                        writeln!(s, "line {i} from {id}").unwrap();
                    }
                    let mut heard: Vec<String> = (0..(CLIENTS - 1) * LINES_EACH)
                        .map(|_| read_line(&mut r))
                        .collect();
                    s.shutdown(Shutdown::Write).unwrap();
                    let mut rest = String::new();
                    std::io::Read::read_to_string(&mut r, &mut rest).unwrap();
                    assert_eq!(rest, "", "client {id}: nothing after the others' lines");
                    heard.sort();
                    (id, heard)
                })
            })
            .collect();
        let heard: Vec<(usize, Vec<String>)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let mut ids: Vec<usize> = heard.iter().map(|(id, _)| *id).collect();
        ids.sort();
        assert_eq!(ids, (1..=CLIENTS).collect::<Vec<_>>());
        for (id, lines) in heard {
            let mut want: Vec<String> = (1..=CLIENTS)
                .filter(|&other| other != id)
                .flat_map(|other| {
                    (0..LINES_EACH).map(move |i| format!("{other}: line {i} from {other}"))
                })
                .collect();
            want.sort();
            assert_eq!(lines, want, "client {id} hears the others, not itself");
        }
    });
    assert_eq!(stats.accepted, CLIENTS);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.lines, (CLIENTS * LINES_EACH) as u64);
}

#[test]
fn three_clients_on_a_current_thread_runtime() {
    everyone_hears_everyone_else(true);
}

#[test]
fn three_clients_on_a_multi_thread_runtime() {
    everyone_hears_everyone_else(false);
}

#[test]
fn an_over_long_line_ends_that_session() {
    let rt = runtime(true);
    let (stats, ()) = with_server(&rt, 1, |addr| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert_eq!(read_line(&mut r), "welcome 1");
        let long = vec![b'x'; MAX_LINE + 1];
        // The server may close before reading it all: a failed write is the same ending.
        if s.write_all(&long).and_then(|()| s.write_all(b"\n")).is_ok() {
            let mut rest = Vec::new();
            match std::io::Read::read_to_end(&mut r, &mut rest) {
                Ok(_) => assert!(rest.is_empty()),
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
            }
        }
    });
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.lines, 0);
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(
        args(&[]),
        Ok(Command::Serve(Options {
            addr: "127.0.0.1:7003".into(),
            max_conns: None
        }))
    );
    assert_eq!(
        args(&["[::1]:9", "--max-conns", "3"]),
        Ok(Command::Serve(Options {
            addr: "[::1]:9".into(),
            max_conns: Some(3)
        }))
    );
    assert!(args(&["--max-conns"]).is_err());
    assert!(args(&["--max-conns", "x"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["a:1", "b:2"]).is_err());
}
