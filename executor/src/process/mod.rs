//! Child processes: [`Command`] mirrors `std::process::Command`, and the [`Child`] it spawns is
//! waited for on the runtime's kqueue, with its pipes as async streams.
//!
//! - **Waiting** registers one `EVFILT_PROC` `NOTE_EXIT` knote for the child (at the first
//!   [`Child::wait`]), so an exit wakes exactly the task waiting for that child: there is no
//!   `SIGCHLD` handler and no sweep of every waiter on each exit. After the exit is reported the
//!   child is reaped (`waitpid`) and its status kept.
//! - **The exit/registration race**: a child may exit before its knote is added. Some kernels
//!   then refuse the `EV_ADD` with `ESRCH`, others report the exit at once; either way `wait`
//!   looks again with a non-blocking `waitpid` after registering, and on `ESRCH` collects the
//!   (already exited) child directly.
//! - **No zombies**: a [`Child`] dropped before it was reaped is handed to a detached reaper
//!   (one thread with its own kqueue and a PROC knote per orphan, started at the first
//!   orphan), which reaps it when it exits; with [`Command::kill_on_drop`] it is sent `SIGKILL`
//!   first. A detached reaper, rather than an orphan list reaped on later operations, so that a
//!   program that drops a child and spawns nothing more leaves no zombie either.
//! - **Pipes** ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`]) are the pipes std creates
//!   (close-on-exec already), switched to non-blocking and wrapped in an
//!   [`AsyncFd`](crate::io::AsyncFd); they implement futures-io's `AsyncRead`/`AsyncWrite`
//!   (and tokio's, with the `tokio-io` feature).
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use knote_executor::process::{Command, Stdio};
//!
//! let out = Command::new("echo").arg("hello").output().await?;
//! assert!(out.status.success());
//! assert_eq!(out.stdout, b"hello\n");
//! # Ok(())
//! # }
//! ```

mod pipe;
mod reaper;

use std::ffi::OsStr;
use std::future::poll_fn;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Output};

use knote_reactor::{note, Flags, Kevent};

use crate::io::KnoteRegistration;

pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::Stdio;

/// A process builder, as `std::process::Command`, whose children are waited for
/// asynchronously.
#[derive(Debug)]
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    stdin_set: bool,
}

impl Command {
    /// A command to run `program` (looked up in `PATH` if it has no `/`), inheriting this
    /// process's environment, working directory and standard streams.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command {
            std: std::process::Command::new(program),
            kill_on_drop: false,
            stdin_set: false,
        }
    }

    /// Adds an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Sets the child's standard input ([`Stdio::piped`] gives [`Child::stdin`]).
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the child's standard output ([`Stdio::piped`] gives [`Child::stdout`]).
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// Sets the child's standard error ([`Stdio::piped`] gives [`Child::stderr`]).
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// Whether a [`Child`] dropped while it runs is sent `SIGKILL` (default: no, it keeps
    /// running; either way it is reaped when it exits).
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// The std command underneath, for what this type does not mirror (`uid`, `pre_exec`, …
    /// through std's `CommandExt`).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the child. Its pipes (where [`Stdio::piped`] was asked for) are registered with
    /// the current runtime.
    ///
    /// Errors: no runtime (before anything is started); what `fork`/`exec` say (program not
    /// found, …); registering the pipes.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let handle = crate::runtime::Handle::try_current().map_err(io::Error::other)?;
        let mut std = self.std.spawn()?;
        let stdin = std.stdin.take();
        let stdout = std.stdout.take();
        let stderr = std.stderr.take();
        let mut child = Child {
            stdin: None,
            stdout: None,
            stderr: None,
            std: Some(std),
            exit: None,
            status: None,
            kill_on_drop: self.kill_on_drop,
        };
        // On an error here the child is dropped like any other: killed if asked, reaped.
        child.stdin = stdin.map(|p| ChildStdin::new(p, &handle)).transpose()?;
        child.stdout = stdout.map(|p| ChildStdout::new(p, &handle)).transpose()?;
        child.stderr = stderr.map(|p| ChildStderr::new(p, &handle)).transpose()?;
        Ok(child)
    }

    /// Runs the child to its end, with the standard streams inherited as configured, and
    /// returns its exit status.
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        // As std: the parent keeps no ends of pipes the caller asked for.
        child.stdin.take();
        child.stdout.take();
        child.stderr.take();
        child.wait().await
    }

    /// Runs the child to its end, capturing its standard output and error (standard input is
    /// null unless set), as `std::process::Command::output`.
    ///
    /// Unlike std's, this leaves the command's standard output and error set to
    /// [`Stdio::piped`] for later spawns (as tokio's does): std's builder cannot say what it
    /// was set to, so it cannot be put back.
    pub async fn output(&mut self) -> io::Result<Output> {
        self.std.stdout(Stdio::piped());
        self.std.stderr(Stdio::piped());
        if !self.stdin_set {
            self.std.stdin(Stdio::null());
        }
        let child = self.spawn();
        if !self.stdin_set {
            // Back to inheriting for later spawns, as configured.
            self.std.stdin(Stdio::inherit());
        }
        child?.wait_with_output().await
    }
}

/// Wraps a std command (its standard input counts as set: [`Command::output`] leaves it as it
/// is).
impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            stdin_set: true,
        }
    }
}

/// A running (or exited, not yet waited-for) child process, from [`Command::spawn`].
///
/// Dropping it does not kill the child unless [`Command::kill_on_drop`] was set; in every case
/// the child is reaped when it exits (no zombie is left).
#[derive(Debug)]
pub struct Child {
    /// The write end of the child's standard input, if [`Stdio::piped`].
    pub stdin: Option<ChildStdin>,
    /// The read end of the child's standard output, if [`Stdio::piped`].
    pub stdout: Option<ChildStdout>,
    /// The read end of the child's standard error, if [`Stdio::piped`].
    pub stderr: Option<ChildStderr>,
    /// `None` only in `drop` (handed to the reaper).
    std: Option<std::process::Child>,
    /// The child's PROC knote, from the first `wait` until its exit is reported.
    exit: Option<KnoteRegistration>,
    /// Its status, once reaped.
    status: Option<ExitStatus>,
    kill_on_drop: bool,
}

impl Child {
    fn std(&mut self) -> &mut std::process::Child {
        self.std.as_mut().expect("present until drop")
    }

    /// The child's process id while it has not been reaped; `None` once it has (through
    /// this `Child`), since the pid may then name another process.
    pub fn id(&self) -> Option<u32> {
        match (&self.std, self.status) {
            (Some(std), None) => Some(std.id()),
            _ => None,
        }
    }

    /// Keeps the status of a reaped child (and drops its knote, if any).
    fn reaped(&mut self, status: ExitStatus) -> ExitStatus {
        self.status = Some(status);
        self.exit = None;
        status
    }

    /// Reaps the child if it has exited, without waiting; its status, or `None` while it
    /// runs. Once reaped, the status is kept and returned again.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        Ok(self.std().try_wait()?.map(|s| self.reaped(s)))
    }

    /// Reaps a child known to have exited: it is collectable at once (or in a moment, when
    /// its exit was reported while the kernel was finishing it), so this `waitpid` does not
    /// wait for the child to run.
    fn reap_exited(&mut self) -> io::Result<ExitStatus> {
        let status = match self.std().try_wait()? {
            Some(status) => status,
            None => self.std().wait()?,
        };
        Ok(self.reaped(status))
    }

    /// Waits for the child to exit and reaps it; returns its status. Closes the child's
    /// standard input first (so a child reading it to its end can finish).
    ///
    /// Cancel-safe: dropping the future leaves the child as it was, and a later `wait` (on
    /// the same runtime) picks up where this one stopped.
    ///
    /// Errors: no runtime (for a child still running); what `kevent` or `waitpid` say.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        if self.exit.is_none() {
            let pid = self.std().id() as i32;
            let change = Kevent::proc(pid, Flags::ADD, note::EXIT | note::EXITSTATUS, 0);
            match KnoteRegistration::new(change) {
                Ok(registration) => self.exit = Some(registration),
                // Exited before the knote could be added: it is a zombie, collected at once.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return self.reap_exited(),
                Err(e) => return Err(e),
            }
            // Exited between the first look and the add (on kernels that then report
            // nothing for it).
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
        }
        if let Some(exit) = &self.exit {
            poll_fn(|cx| exit.poll_event(cx)).await;
        }
        self.reap_exited()
    }

    /// Sends `SIGKILL` to the child (nothing, if it has been reaped already), without
    /// waiting.
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        self.std().kill()
    }

    /// Sends `SIGKILL` to the child and waits for it to exit.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Waits for the child to exit while reading all of its standard output and error (those
    /// that are piped), as `std::process::Child::wait_with_output`.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let (out, err, status) = futures_util::future::join3(
            pipe::read_all(stdout),
            pipe::read_all(stderr),
            self.wait(),
        )
        .await;
        Ok(Output {
            status: status?,
            stdout: out?,
            stderr: err?,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(mut std) = self.std.take() else {
            return;
        };
        // Delete the PROC knote before the pid can be reused by another process.
        self.exit = None;
        if self.status.is_some() {
            return;
        }
        if self.kill_on_drop {
            // The only failure is a child that has exited meanwhile, which the reaper
            // collects all the same; a drop has no one to report to.
            drop(std.kill());
        }
        reaper::adopt(std);
    }
}
