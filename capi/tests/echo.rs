//! `examples/c/echo.c`, a FreeBSD-style kevent echo server, built through the pkg-config file
//! against the shared library, run on loopback, and talked to.
#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `knote-kqueue.pc.in` rendered for the uninstalled build: libdir is the test's library
/// directory, includedir the package's `include/`. Returns the directory holding the `.pc`.
fn render_pc() -> PathBuf {
    let template = std::fs::read_to_string(support::package_dir().join("knote-kqueue.pc.in"))
        .expect("capi/knote-kqueue.pc.in");
    let lib_dir = support::lib_dir();
    let rendered = template
        .replace("@PREFIX@", &support::package_dir().display().to_string())
        .replace("@LIBDIR@", &lib_dir.display().to_string())
        .replace(
            "@INCLUDEDIR@",
            &support::include_dir().display().to_string(),
        )
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    assert!(
        !rendered.contains('@'),
        "a placeholder was left: {rendered}"
    );
    let dir = support::out_dir().join("pkgconfig");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("knote-kqueue.pc"), rendered).unwrap();
    dir
}

fn pkg_config(pc_dir: &Path, args: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", pc_dir)
        .args(args)
        .arg("knote-kqueue")
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "pkg-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// Builds the echo server with the flags pkg-config gives (or, where pkg-config is not
/// installed, the same flags by hand).
fn build_echo() -> PathBuf {
    let pc_dir = render_pc();
    let flags = match pkg_config(&pc_dir, &["--cflags", "--libs"]) {
        Some(flags) => {
            let statics = pkg_config(&pc_dir, &["--static", "--libs"]).unwrap();
            assert!(statics.iter().any(|f| f == "-lpthread"), "{statics:?}");
            flags
        }
        None => vec![
            format!("-I{}", support::include_dir().display()),
            format!("-L{}", support::lib_dir().display()),
            "-lknote_capi".to_string(),
        ],
    };
    assert!(flags.iter().any(|f| f == "-lknote_capi"), "{flags:?}");
    let source = support::package_dir().join("../examples/c/echo.c");
    support::compile("echo", &source, &flags)
}

/// The server, started with `args`; its library found through `LD_LIBRARY_PATH`.
fn spawn(echo: &Path, args: &[&str]) -> Child {
    Command::new(echo)
        .args(args)
        .env("LD_LIBRARY_PATH", support::lib_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the echo server")
}

/// Waits (bounded) for the child to exit; kills it and fails if it does not.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the echo server did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn echo_back(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn the_echo_example_echoes_and_exits_after_its_connections() {
    let mut server = spawn(build_echo_once(), &["127.0.0.1", "0", "3"]);
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .unwrap();

    // One client, a short message and a long one (more than a socket buffer: the server
    // waits for room to write while the client is still sending).
    let mut a = connect(port);
    echo_back(&mut a, b"hello");
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = a.try_clone().unwrap();
    let payload = big.clone();
    let sender = std::thread::spawn(move || writer.write_all(&payload).unwrap());
    let mut back = vec![0; big.len()];
    a.read_exact(&mut back).unwrap();
    sender.join().unwrap();
    assert!(back == big, "the long message came back altered");
    drop(a);

    // Two at once, interleaved.
    let mut b = connect(port);
    let mut c = connect(port);
    for round in 0..20 {
        echo_back(&mut b, format!("b{round}").as_bytes());
        echo_back(&mut c, format!("c{round}").as_bytes());
    }
    drop(b);
    drop(c);

    let status = wait_exit(&mut server);
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn the_echo_example_refuses_bad_arguments() {
    let echo = build_echo_once();
    let mut usage = spawn(echo, &["127.0.0.1"]);
    assert_eq!(wait_exit(&mut usage).code(), Some(2));
    let mut bad = spawn(echo, &["not-an-address", "0"]);
    assert_eq!(wait_exit(&mut bad).code(), Some(2));
}

fn build_echo_once() -> &'static PathBuf {
    static ECHO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ECHO.get_or_init(build_echo)
}
