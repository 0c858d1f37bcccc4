//! The `axum_hello` example's app, served on knote through hyper-util, with no tokio runtime
//! anywhere in the process: a handler checks, and reports, that there is none.

#[allow(dead_code)]
#[path = "../examples/axum_hello.rs"]
mod axum_hello;

use std::time::Duration;

use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use knote::hyper::{KnoteExecutor, KnoteIo};
use knote::net::{TcpListener, TcpStream};

/// The example's app plus a route that answers whether its handler runs inside a tokio
/// runtime.
fn app() -> axum::Router {
    axum_hello::app().route(
        "/tokio",
        get(|| async {
            match tokio::runtime::Handle::try_current() {
                Ok(_) => "inside a tokio runtime",
                Err(_) => "no tokio runtime",
            }
        }),
    )
}

async fn get_over_h1(addr: std::net::SocketAddr, path: &str) -> (StatusCode, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(KnoteIo::new(stream))
        .await
        .unwrap();
    let driver = knote::spawn(conn);
    let request = Request::get(path)
        .header("host", "knote.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    driver.await.unwrap().unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_over_h2(addr: std::net::SocketAddr, paths: &[&str]) -> Vec<(StatusCode, String)> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(KnoteExecutor::new(), KnoteIo::new(stream))
            .await
            .unwrap();
    let driver = knote::spawn(conn);
    let mut out = Vec::new();
    for path in paths {
        let request = Request::get(format!("http://knote.test{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        out.push((status, String::from_utf8(body.to_vec()).unwrap()));
    }
    drop(sender);
    driver.await.unwrap().unwrap();
    out
}

fn serve_and_ask(current_thread: bool) {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let rt = if current_thread {
        knote::runtime::Builder::new_current_thread().build()
    } else {
        knote::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
    }
    .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = knote::spawn(axum_hello::serve(listener, app(), Some(4)));
        knote::time::timeout(Duration::from_secs(20), async {
            assert_eq!(
                get_over_h1(addr, "/tokio").await,
                (StatusCode::OK, "no tokio runtime".to_owned())
            );
            assert_eq!(
                get_over_h1(addr, "/").await,
                (StatusCode::OK, "Hello from axum on knote!".to_owned())
            );
            assert_eq!(get_over_h1(addr, "/nowhere").await.0, StatusCode::NOT_FOUND);
            assert_eq!(
                get_over_h2(addr, &["/hello/kqueue", "/tokio"]).await,
                [
                    (StatusCode::OK, "Hello, kqueue!".to_owned()),
                    (StatusCode::OK, "no tokio runtime".to_owned())
                ]
            );
            assert_eq!(server.await.unwrap().unwrap(), 0, "no connection failed");
        })
        .await
        .expect("the axum exchange took longer than 20 s");
    });
}

#[test]
fn axum_on_knote_current_thread_without_tokio() {
    serve_and_ask(true);
}

#[test]
fn axum_on_knote_multi_thread_without_tokio() {
    serve_and_ask(false);
}

#[test]
fn axum_hello_command_line() {
    use axum_hello::{parse_args, Command, Options};
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    assert_eq!(
        args(&["127.0.0.1:0", "--max-conns", "1"]),
        Ok(Command::Serve(Options {
            addr: "127.0.0.1:0".into(),
            current_thread: false,
            max_conns: Some(1)
        }))
    );
    assert_eq!(args(&["-h"]), Ok(Command::Help));
    assert!(args(&["--nope"]).is_err());
}
