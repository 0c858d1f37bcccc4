//! The `hyper_hello` and `hyper_client` examples against each other: the server's code and the
//! client's code are compiled in as modules, so what is tested is what `cargo run --example`
//! runs. Their command lines too.

#[allow(dead_code)]
#[path = "../examples/hyper_hello.rs"]
mod hyper_hello;

#[allow(dead_code)]
#[path = "../examples/hyper_client.rs"]
mod hyper_client;

use std::time::Duration;

use knote::net::TcpListener;
use knote::runtime::Builder;

fn hello_and_fetch(current_thread: bool) {
    let rt = if current_thread {
        Builder::new_current_thread().build()
    } else {
        Builder::new_multi_thread().worker_threads(2).build()
    }
    .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = knote::spawn(hyper_hello::serve(listener, Some(3)));
        let fetched = knote::time::timeout(Duration::from_secs(20), async {
            for (target, http2) in [
                (format!("http://{addr}/anything?x=1"), false),
                (addr.to_string(), true),
                (format!("http://{addr}/"), false),
            ] {
                let args = [target]
                    .into_iter()
                    .chain(http2.then(|| "--http2".to_owned()));
                let hyper_client::Command::Fetch(options) = hyper_client::parse_args(args).unwrap()
                else {
                    panic!("not a fetch");
                };
                assert_eq!(options.http2, http2);
                let (status, body) = hyper_client::fetch(&options).await.unwrap();
                assert_eq!(status, hyper::StatusCode::OK);
                assert_eq!(&body[..], hyper_hello::HELLO.as_bytes());
            }
            server.await.unwrap().unwrap()
        })
        .await
        .expect("the examples took longer than 20 s");
        assert_eq!(
            fetched,
            hyper_hello::Stats {
                accepted: 3,
                failed: 0
            }
        );
    });
}

#[test]
fn hello_serves_the_client_current_thread() {
    hello_and_fetch(true);
}

#[test]
fn hello_serves_the_client_multi_thread() {
    hello_and_fetch(false);
}

#[test]
fn hello_command_line() {
    use hyper_hello::{parse_args, Command, Options};
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(
        args(&[]),
        Ok(Command::Serve(Options {
            addr: "127.0.0.1:3000".into(),
            current_thread: false,
            max_conns: None
        }))
    );
    assert_eq!(
        args(&["0.0.0.0:8080", "--current-thread", "--max-conns", "4"]),
        Ok(Command::Serve(Options {
            addr: "0.0.0.0:8080".into(),
            current_thread: true,
            max_conns: Some(4)
        }))
    );
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert!(args(&["--max-conns"]).is_err());
    assert!(args(&["--max-conns", "many"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["a:1", "b:2"]).is_err());
}

#[test]
fn client_command_line() {
    use hyper_client::{parse_args, Command, Options};
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(
        args(&[]),
        Ok(Command::Fetch(Options {
            authority: "127.0.0.1:3000".into(),
            path: "/".into(),
            http2: false
        }))
    );
    assert_eq!(
        args(&["localhost:8080", "--http2"]),
        Ok(Command::Fetch(Options {
            authority: "localhost:8080".into(),
            path: "/".into(),
            http2: true
        }))
    );
    assert_eq!(
        args(&["http://example.test/a/b?c=d"]),
        Ok(Command::Fetch(Options {
            authority: "example.test:80".into(),
            path: "/a/b?c=d".into(),
            http2: false
        }))
    );
    assert_eq!(args(&["--help"]), Ok(Command::Help));
    assert!(args(&["https://example.test/"]).is_err(), "no TLS");
    assert!(args(&["http://"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert!(args(&["a:1", "b:2"]).is_err());
}
