//! A single-threaded TCP echo server written the way a C kqueue program is, on knote's reactor
//! alone: one kqueue, one change list that rides along with every wait, `udata` = the fd.
//!
//! ```text
//! cargo run --release --example reactor_echo -- [ADDR] [MAX_CONNS]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:7000`. With `MAX_CONNS` the server stops accepting after that
//! many connections and exits once they have all closed, so scripts and benchmarks can make it
//! stop by itself.
//!
//! It is the hand-written baseline of knote's network benchmarks, so the steady state (read,
//! write back, wait) allocates nothing and makes no system call beyond `kevent`, `read` and
//! `write`:
//!
//! - the listener is watched with a level-triggered `EVFILT_READ` and drained with `accept` until
//!   `EWOULDBLOCK`; running out of fds (`EMFILE`/`ENFILE`) or memory disables that knote and arms
//!   a one-shot `EVFILT_TIMER` that re-enables it, so the loop neither spins nor gives up;
//! - each connection has an edge-triggered (`EV_CLEAR`) `EVFILT_READ` whose `udata` is its fd,
//!   and is read until `EWOULDBLOCK`, echoing as it goes;
//! - bytes the socket would not take are kept in that connection's pending buffer, and an
//!   `EV_CLEAR | EV_DISPATCH` `EVFILT_WRITE` knote (re-armed with `EV_ENABLE`) says when to
//!   flush them; until then the connection is not read (backpressure);
//! - end of file (`read` returns 0, which is where `EV_EOF` leads once buffered bytes are
//!   drained) or an error queues `EV_DELETE` for the connection's knotes and closes it.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use knote::reactor::{ChangeList, Filter, Flags, Kevent, Kqueue, TimerUnit};

/// Event list size: how many events one wait can return.
const MAX_EVENTS: usize = 1024;
/// One read buffer shared by all connections: the loop handles one connection at a time.
const READ_BUF: usize = 64 * 1024;
/// How long accepting pauses after the process or system ran out of fds or memory.
const BACKOFF: Duration = Duration::from_millis(100);
/// The `EVFILT_TIMER` ident of the accept back-off timer (timer idents are not fds).
const BACKOFF_TIMER: usize = 1;

/// What [`serve`] did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted and registered.
    pub accepted: usize,
    /// Times accepting was paused because `accept` failed for lack of fds or memory.
    pub backoffs: usize,
    /// Times a reply did not fit in the socket and waited for the connection's WRITE knote.
    pub blocked_writes: usize,
}

/// Runs the echo server on `listener` until it has accepted `max_conns` connections (forever if
/// `None`) and all of them have closed.
///
/// The listener is switched to nonblocking mode. Errors of one connection close that
/// connection; an error of the kqueue itself, or a failed change on the listener's knote, ends
/// the server with that error.
pub fn serve(listener: TcpListener, max_conns: Option<usize>) -> io::Result<Stats> {
    if max_conns == Some(0) {
        return Ok(Stats::default());
    }
    listener.set_nonblocking(true)?;
    // The loop never looks at `data` (it reads until EWOULDBLOCK), so it does not pay the
    // shim's per-event ioctl for it.
    let kq = Kqueue::builder().exact_data(false).build()?;
    let mut server = Server::new(listener, max_conns);
    let mut events = vec![Kevent::zeroed(); MAX_EVENTS];

    loop {
        if server.finished() {
            return Ok(server.stats);
        }
        let timeout = if !server.closing.is_empty() {
            // Connections closed in the last batch keep their fds open until this call has
            // applied their EV_DELETEs (below): poll instead of sleeping, because their peers
            // are waiting for our FIN. One call per batch of closes, and it collects events too.
            Some(Duration::ZERO)
        } else {
            // Only set when the back-off timer could not be armed (see `on_change_error`).
            server
                .fallback_deadline
                .map(|deadline| deadline.saturating_duration_since(Instant::now()))
        };
        let result = server.changes.submit(&kq, &mut events, timeout);
        // The EV_DELETEs of connections closed since the last wait were in that list; only now
        // may their fds be closed, so a new connection cannot reuse a number whose old knotes are
        // still being deleted.
        server.closing.clear();
        let n = match result {
            Ok(n) => n,
            // The changes were applied before the wait was interrupted: just wait again.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if server
            .fallback_deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            server.fallback_deadline = None;
            server.resume_accepting();
        }

        for event in &events[..n] {
            if event.is_error() {
                server.on_change_error(event)?;
                continue;
            }
            match event.filter() {
                Filter::READ if event.ident() == server.listener_ident => server.accept_all(),
                Filter::READ => server.on_readable(event.udata(), event.is_eof()),
                Filter::WRITE => server.on_writable(event.udata()),
                Filter::TIMER => server.resume_accepting(),
                _ => {}
            }
        }
    }
}

/// Whether the listener's READ knote is being reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Accepting {
    /// Enabled: READ on the listener means connections are waiting.
    Yes,
    /// Disabled after an accept failure until the back-off timer fires.
    Paused,
    /// Deleted: `max_conns` connections were accepted.
    Done,
}

/// One connection, found by its fd (its `udata`) in `Server::conns`.
struct Conn {
    stream: TcpStream,
    /// Echo bytes the socket would not take yet; `pending[sent..]` is still to be written.
    pending: Vec<u8>,
    sent: usize,
    /// Its WRITE knote exists (enabled, or disabled by `EV_DISPATCH` after a delivery).
    write_knote: bool,
    /// An edge-triggered READ arrived that has not been drained yet (output was blocked).
    read_ready: bool,
    /// A READ event carried `EV_EOF`: read to the end, since no further edge will come.
    eof: bool,
}

/// What to do with a connection once the borrow of its slot has ended.
enum Next {
    Wait,
    ArmWrite,
    Close,
}

/// The server's state between waits.
struct Server {
    listener: TcpListener,
    listener_ident: usize,
    accepting: Accepting,
    max_conns: Option<usize>,
    /// Changes queued now, submitted with the next wait.
    changes: ChangeList,
    /// Connections indexed by fd: a C program's `udata` pointer, without the pointer.
    conns: Vec<Option<Conn>>,
    live: usize,
    /// Closed connections whose fds stay open until their EV_DELETEs have been submitted.
    closing: Vec<TcpStream>,
    buf: Box<[u8]>,
    fallback_deadline: Option<Instant>,
    stats: Stats,
}

impl Server {
    fn new(listener: TcpListener, max_conns: Option<usize>) -> Server {
        let fd = listener.as_raw_fd();
        let mut changes = ChangeList::with_capacity(MAX_EVENTS);
        // Level-triggered: `accept_all` drains the queue anyway, and a level knote re-fires by
        // itself when it is re-enabled after a back-off with connections still queued.
        changes.push(Kevent::read(fd, Flags::ADD, fd as usize));
        Server {
            listener,
            listener_ident: fd as usize,
            accepting: Accepting::Yes,
            max_conns,
            changes,
            conns: Vec::new(),
            live: 0,
            closing: Vec::with_capacity(64),
            buf: vec![0; READ_BUF].into_boxed_slice(),
            fallback_deadline: None,
            stats: Stats::default(),
        }
    }

    /// All the connections it was asked for have been served and closed.
    fn finished(&self) -> bool {
        self.accepting == Accepting::Done && self.live == 0
    }

    fn accept_all(&mut self) {
        while self.accepting == Accepting::Yes {
            if self.max_conns.is_some_and(|max| self.stats.accepted >= max) {
                // Enough: stop watching the listener. It stays open until `serve` returns, so
                // this delete can ride along with the next wait.
                self.accepting = Accepting::Done;
                let fd = self.listener.as_raw_fd();
                self.changes
                    .push(Kevent::read(fd, Flags::DELETE, self.listener_ident));
                return;
            }
            match self.listener.accept() {
                Ok((stream, _peer)) => self.register(stream),
                Err(err) => match err.kind() {
                    io::ErrorKind::WouldBlock => return,
                    // The connection was reset while queued, or a signal came: take the next.
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted => continue,
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM, and anything unexpected: the condition
                    // lasts, so retrying now would spin on a level-triggered listener.
                    _ => return self.pause_accepting(&err),
                },
            }
        }
    }

    fn pause_accepting(&mut self, err: &io::Error) {
        self.stats.backoffs += 1;
        self.accepting = Accepting::Paused;
        eprintln!(
            "reactor_echo: accept: {err}; pausing accepts for {} ms",
            BACKOFF.as_millis()
        );
        let fd = self.listener.as_raw_fd();
        // DISABLE, not DELETE: the knote keeps its registration, and EV_ENABLE reports it again
        // at once if connections are still queued then.
        self.changes
            .push(Kevent::read(fd, Flags::DISABLE, self.listener_ident));
        self.changes.push(Kevent::timer(
            BACKOFF_TIMER,
            Flags::ADD | Flags::ONESHOT,
            TimerUnit::Millis,
            BACKOFF.as_millis() as i64,
            0,
        ));
    }

    fn resume_accepting(&mut self) {
        if self.accepting == Accepting::Paused {
            self.accepting = Accepting::Yes;
            let fd = self.listener.as_raw_fd();
            self.changes
                .push(Kevent::read(fd, Flags::ENABLE, self.listener_ident));
        }
    }

    fn register(&mut self, stream: TcpStream) {
        if let Err(err) = stream.set_nonblocking(true) {
            // Dropping the stream closes it; the client sees a reset, the server goes on.
            eprintln!("reactor_echo: set_nonblocking: {err}; dropping the connection");
            return;
        }
        // An echo is request/response: Nagle's algorithm would hold back the second segment of a
        // reply that did not fit in one write.
        let _ = stream.set_nodelay(true);
        let fd = stream.as_raw_fd();
        let slot = fd as usize;
        if slot >= self.conns.len() {
            // Grows with the highest fd seen, then stays: no allocation in the steady state.
            self.conns.resize_with(slot + 1, || None);
        }
        self.conns[slot] = Some(Conn {
            stream,
            pending: Vec::new(),
            sent: 0,
            write_knote: false,
            read_ready: false,
            eof: false,
        });
        self.live += 1;
        self.stats.accepted += 1;
        self.changes
            .push(Kevent::read(fd, Flags::ADD | Flags::CLEAR, slot));
    }

    fn on_readable(&mut self, slot: usize, eof: bool) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            // Closed earlier in this batch of events.
            return;
        };
        conn.eof |= eof;
        let next = echo(conn, &mut self.buf);
        self.then(slot, next);
    }

    fn on_writable(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let next = match flush(conn) {
            // Everything written: read what arrived while output was blocked.
            Next::Wait if conn.read_ready => echo(conn, &mut self.buf),
            next => next,
        };
        self.then(slot, next);
    }

    fn then(&mut self, slot: usize, next: Next) {
        match next {
            Next::Wait => {}
            Next::ArmWrite => {
                let Some(conn) = self.conns[slot].as_mut() else {
                    return;
                };
                self.stats.blocked_writes += 1;
                // EV_DISPATCH: one report per arming, so a socket that stays writable while
                // nothing is pending does not wake the loop; EV_ENABLE re-arms the same knote.
                let flags = if conn.write_knote {
                    Flags::ENABLE
                } else {
                    conn.write_knote = true;
                    Flags::ADD | Flags::CLEAR | Flags::DISPATCH
                };
                self.changes.push(Kevent::write(slot, flags, slot));
            }
            Next::Close => self.close(slot),
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(conn) = self.conns[slot].take() else {
            return;
        };
        self.live -= 1;
        self.changes.push(Kevent::read(slot, Flags::DELETE, slot));
        if conn.write_knote {
            self.changes.push(Kevent::write(slot, Flags::DELETE, slot));
        }
        // Closed right after the next wait has applied the deletes (see `serve`).
        self.closing.push(conn.stream);
    }

    /// A queued change came back as an `EV_ERROR` entry (its flags are replaced by `EV_ERROR`).
    fn on_change_error(&mut self, event: &Kevent) -> io::Result<()> {
        let err = event
            .error()
            .unwrap_or_else(|| io::Error::other("EV_ERROR entry without an errno"));
        if event.filter() == Filter::TIMER {
            // The back-off timer could not be armed (the shim may need an fd for it, and fds are
            // what ran out). Fall back to the wait's own timeout.
            eprintln!("reactor_echo: back-off timer: {err}; using the wait timeout instead");
            self.fallback_deadline = Some(Instant::now() + BACKOFF);
            return Ok(());
        }
        if event.ident() == self.listener_ident {
            // Without a working listener knote the server would hang or spin: give up loudly.
            return Err(io::Error::new(
                err.kind(),
                format!("reactor_echo: change on the listener failed: {err}"),
            ));
        }
        // A connection's READ or WRITE change failed: that connection cannot make progress.
        // (An error batch holds only error entries and no accept ran since that wait, so the
        // slot still holds the connection the change was for, or nothing if it was a delete.)
        eprintln!(
            "reactor_echo: {:?} change on fd {} failed: {err}",
            event.filter(),
            event.ident()
        );
        if self.conns.get(event.ident()).is_some_and(Option::is_some) {
            self.close(event.ident());
        }
        Ok(())
    }
}

/// Reads until `EWOULDBLOCK`, writing each chunk back; stops reading when the socket will not
/// take the whole reply, keeping the rest in `conn.pending`.
///
/// A read shorter than the buffer emptied the socket's queue: with `EV_CLEAR`, anything that
/// arrives later is a new edge, so the read that would only say `EWOULDBLOCK` is skipped (one
/// system call less per round trip) — unless `EV_EOF` was seen, since no edge follows EOF.
fn echo(conn: &mut Conn, buf: &mut [u8]) -> Next {
    if conn.sent < conn.pending.len() {
        // Output is blocked: remember the edge and drain it once the pending bytes are out.
        conn.read_ready = true;
        return Next::Wait;
    }
    loop {
        let n = match conn.stream.read(buf) {
            // EOF (EV_EOF's bytes, if any, were read before this): done.
            Ok(0) => return Next::Close,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                conn.read_ready = false;
                return Next::Wait;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Next::Close,
        };
        let mut written = 0;
        while written < n {
            match conn.stream.write(&buf[written..n]) {
                Ok(0) => return Next::Close,
                Ok(k) => written += k,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    conn.pending.clear();
                    conn.pending.extend_from_slice(&buf[written..n]);
                    conn.sent = 0;
                    // More may be readable: the edge is not consumed yet.
                    conn.read_ready = true;
                    return Next::ArmWrite;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        if n < buf.len() && !conn.eof {
            conn.read_ready = false;
            return Next::Wait;
        }
    }
}

/// Writes `conn.pending[conn.sent..]` until done or `EWOULDBLOCK`.
fn flush(conn: &mut Conn) -> Next {
    while conn.sent < conn.pending.len() {
        match conn.stream.write(&conn.pending[conn.sent..]) {
            Ok(0) => return Next::Close,
            Ok(k) => conn.sent += k,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Next::ArmWrite,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
    // Keep the buffer's capacity for the next time this connection's output blocks.
    conn.pending.clear();
    conn.sent = 0;
    Next::Wait
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let max_conns = match args.next().map(|arg| arg.parse::<usize>()) {
        None => None,
        Some(Ok(max)) => Some(max),
        Some(Err(_)) => {
            eprintln!("usage: reactor_echo [ADDR] [MAX_CONNS]");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("reactor_echo: bind {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(local) => eprintln!("reactor_echo: listening on {local}"),
        Err(_) => eprintln!("reactor_echo: listening on {addr}"),
    }
    match serve(listener, max_conns) {
        Ok(stats) => {
            eprintln!(
                "reactor_echo: served {} connections ({} accept back-offs, {} blocked writes)",
                stats.accepted, stats.backoffs, stats.blocked_writes
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("reactor_echo: {err}");
            ExitCode::FAILURE
        }
    }
}
