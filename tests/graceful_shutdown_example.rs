//! The `graceful_shutdown` example, for real: the test binary re-runs itself as a child that
//! runs the example's server (its `run`, Ctrl-C handling and all); the parent opens
//! connections, sends the child `SIGINT` with `kill(2)`, and checks that it stops accepting,
//! finishes the idle connections (their clients read EOF), cuts off the one stuck writing to
//! a client that does not read once the deadline passes, and exits 0 reporting 2 drained and
//! 1 cut off. Also the command line, and `serve` in-process with a plain future as the
//! shutdown trigger.

#[allow(dead_code)]
#[path = "../examples/graceful_shutdown.rs"]
mod graceful_shutdown;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use graceful_shutdown::{parse_args, serve, Command, Options, Report};
use knote::net::TcpListener;
use knote::runtime::Builder;

const CHILD_ENV: &str = "KNOTE_GRACEFUL_SHUTDOWN_CHILD";
const TEST_NAME: &str = "sigint_drains_in_flight_connections_and_exits";
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_millis(500);

#[test]
fn sigint_drains_in_flight_connections_and_exits() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let report = graceful_shutdown::run(&Options {
            addr: "127.0.0.1:0".into(),
            deadline: DEADLINE,
        })
        .expect("the server ran");
        eprintln!(
            "report: accepted={} drained={} cut_off={} failed={} closed_by_client={}",
            report.accepted, report.drained, report.cut_off, report.failed, report.closed_by_client
        );
        return;
    }
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test binary as a child");
    let lines = {
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                if tx.send(line.expect("the child's stderr")).is_err() {
                    return;
                }
            }
        });
        rx
    };
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(&mut child, &lines)));
    if result.is_err() {
        // Cleanup of a failed run only: the child may be gone already.
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The next stderr line of the child that starts with `prefix` (earlier ones skipped).
fn wait_for(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let until = Instant::now() + IO_TIMEOUT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no {prefix:?} line from the child: {e}"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
}

fn drive(child: &mut Child, lines: &mpsc::Receiver<String>) {
    let addr: SocketAddr = wait_for(lines, "graceful_shutdown: listening on ")
        .parse()
        .expect("an address");

    // Two connections in flight, idle between requests.
    let mut idle: Vec<std::net::TcpStream> = (0..2)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let msg = format!("request {i}");
            s.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0; msg.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
            s
        })
        .collect();

    // One connection whose server side is stuck writing: its client writes and never reads,
    // until both directions' buffers are full (writes keep failing with WouldBlock).
    let mut stuck = std::net::TcpStream::connect(addr).unwrap();
    stuck.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut blocked_in_a_row = 0;
    for _ in 0..10_000 {
        match stuck.write(&chunk) {
            Ok(_) => blocked_in_a_row = 0,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked_in_a_row += 1;
                if blocked_in_a_row == 20 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("writing to the stuck connection: {e}"),
        }
    }
    assert_eq!(
        blocked_in_a_row, 20,
        "the stuck connection's buffers filled"
    );

    // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    let signalled = Instant::now();

    wait_for(lines, "graceful_shutdown: interrupted, no longer accepting");
    let err = std::net::TcpStream::connect(addr).expect_err("no longer accepting");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // The idle connections were told to finish: their clients read EOF.
    for s in &mut idle {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    let report = wait_for(lines, "report: ");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < IO_TIMEOUT,
            "the child did not exit after the deadline"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "the child failed: {status}");
    assert_eq!(
        report, "accepted=3 drained=2 cut_off=1 failed=0 closed_by_client=0",
        "what the server reported"
    );
    assert!(
        signalled.elapsed() >= DEADLINE,
        "the stuck connection was given until the deadline"
    );
    drop(stuck);
}

/// In-process: a connection whose client closed first is counted as such, an idle one as
/// drained, and with none stuck `serve` returns without waiting for the deadline.
#[test]
fn serve_counts_how_connections_ended() {
    let rt = Builder::new_current_thread().build().unwrap();
    let report: Report = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, triggered) = knote::sync::oneshot::channel::<()>();
        let server = knote::spawn(serve(
            listener,
            async move { triggered.await.map_err(std::io::Error::other) },
            Duration::from_secs(30),
            || {},
        ));
        let clients = knote::spawn_blocking(move || {
            let mut closed = std::net::TcpStream::connect(addr).unwrap();
            closed.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            closed.write_all(b"x").unwrap();
            let mut b = [0; 1];
            closed.read_exact(&mut b).unwrap();
            closed.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            closed.read_to_end(&mut rest).unwrap(); // the server closes after our EOF
            let mut idle = std::net::TcpStream::connect(addr).unwrap();
            idle.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            idle.write_all(b"y").unwrap();
            idle.read_exact(&mut b).unwrap();
            trigger.send(()).unwrap();
            idle.read_to_end(&mut rest).unwrap(); // told to finish: EOF
            assert!(rest.is_empty());
        });
        clients.await.unwrap();
        knote::time::timeout(IO_TIMEOUT, server)
            .await
            .expect("serve returned well before its 30 s deadline")
            .unwrap()
            .unwrap()
    });
    assert_eq!(
        report,
        Report {
            accepted: 2,
            closed_by_client: 1,
            drained: 1,
            cut_off: 0,
            failed: 0
        }
    );
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert_eq!(
        args(&[]),
        Ok(Command::Serve(Options {
            addr: "127.0.0.1:7004".into(),
            deadline: Duration::from_millis(5000)
        }))
    );
    assert_eq!(
        args(&["[::1]:9", "--deadline-ms", "250"]),
        Ok(Command::Serve(Options {
            addr: "[::1]:9".into(),
            deadline: Duration::from_millis(250)
        }))
    );
    assert!(args(&["--deadline-ms"]).is_err());
    assert!(args(&["--deadline-ms", "soon"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["a:1", "b:2"]).is_err());
}
