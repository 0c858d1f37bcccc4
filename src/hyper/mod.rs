//! hyper on knote: the runtime pieces hyper 1.x asks of its host — I/O, an executor and a
//! timer — implemented with knote's, so that unmodified hyper servers and clients (HTTP/1 and
//! HTTP/2, and hyper-util's `server::conn::auto` builder, and frameworks on top such as axum)
//! run on a knote runtime with no tokio runtime in the process.
//!
//! hyper 1.x owns no runtime: it is handed a connection that implements its
//! [`rt::Read`](hyper::rt::Read)/[`rt::Write`](hyper::rt::Write), an
//! [`rt::Executor`](hyper::rt::Executor) for the tasks it spawns (HTTP/2 streams, the client's
//! connection driver) and an [`rt::Timer`](hyper::rt::Timer) for its timeouts. This module
//! has one of each:
//!
//! - [`KnoteIo`] wraps a [`knote::net`](crate::net) stream. Reads go with `read(2)` straight
//!   into hyper's read buffer without zeroing its spare capacity first, writes are vectored
//!   (`writev`), and shutting down shuts the socket's write side.
//! - [`KnoteExecutor`] spawns `Send` futures on the runtime ([`crate::spawn`]);
//!   [`LocalExecutor`] spawns `!Send` ones on the current thread ([`crate::spawn_local`]), which
//!   current-thread HTTP/2 (hyper's `LocalExecutor`-style builders) needs.
//! - [`KnoteTimer`] gives hyper knote's timers, read on knote's clock, so hyper's timeouts
//!   follow a paused test clock ([`time::pause`](crate::time::pause)) too.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use knote::hyper::{KnoteIo, KnoteTimer};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let listener = knote::net::TcpListener::bind("127.0.0.1:3000").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     knote::spawn(async move {
//!         let service = hyper::service::service_fn(|_req| async {
//!             Ok::<_, Infallible>(hyper::Response::new(String::from("hello")))
//!         });
//!         let served = hyper::server::conn::http1::Builder::new()
//!             .timer(KnoteTimer::new())
//!             .serve_connection(KnoteIo::new(stream), service)
//!             .await;
//!         if let Err(err) = served {
//!             eprintln!("connection: {err}");
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! (This example needs hyper's `server` and `http1` features, which `knote` does not turn on
//! itself: it implements the `rt` traits, which every hyper build has.)

mod executor;
mod io;
mod timer;

pub use executor::{KnoteExecutor, LocalExecutor};
pub use io::{KnoteIo, Stream};
pub use timer::{KnoteSleep, KnoteTimer};
