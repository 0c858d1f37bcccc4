//! Server processes: `knote-bench` re-executes itself (`knote-bench serve SERVER ...`) so the
//! server and the load generator are separate processes, pinned apart. The child prints
//! `listening on ADDR` on stdout and serves until its stdin is closed.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a server child prints once it listens.
pub const LISTENING: &str = "listening on ";
/// How long a stopped server may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// A running server child; dropping it kills the child if [`stop`](ServerProcess::stop) was
/// not called.
pub struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `server` (a name `knote-bench serve` takes) pinned to `cpus` (all it may use
    /// when empty), multi-thread servers with `workers` workers. With `strace_out`, the child
    /// runs under `strace -c -f -o FILE`.
    pub fn start(
        server: &str,
        cpus: &[usize],
        workers: usize,
        strace_out: Option<&Path>,
    ) -> io::Result<ServerProcess> {
        let exe = std::env::current_exe()?;
        let mut command = match strace_out {
            Some(out) => {
                let mut c = Command::new("strace");
                c.arg("-c").arg("-f").arg("-o").arg(out).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let cpu_list: Vec<String> = cpus.iter().map(usize::to_string).collect();
        command
            .arg("serve")
            .arg(server)
            .arg("127.0.0.1:0")
            .arg("--cpus")
            .arg(if cpu_list.is_empty() {
                "all".to_owned()
            } else {
                cpu_list.join(",")
            })
            .arg("--workers")
            .arg(workers.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start server {server}: {e}")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = read.ok().and_then(|_| {
            line.trim()
                .strip_prefix(LISTENING)
                .and_then(|a| a.parse().ok())
        });
        match addr {
            Some(addr) => Ok(ServerProcess { child, addr }),
            None => {
                // Reap it before reporting (it failed or printed something else).
                let _killed = child.kill();
                let status = child.wait()?;
                Err(io::Error::other(format!(
                    "server {server} did not start ({status}); it printed {line:?}"
                )))
            }
        }
    }

    /// The child's process id (strace's, when it runs under strace).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the child's stdin (it exits then) and waits for it, killing it if it takes
    /// longer than a few seconds (an error then: the figures of a stuck server are not used).
    pub fn stop(mut self) -> io::Result<()> {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!("the server exited with {status}")))
                };
            }
            if Instant::now() >= deadline {
                self.child.kill()?;
                self.child.wait()?;
                return Err(io::Error::other(
                    "the server did not exit when its stdin closed; killed it",
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // After `stop` this finds the child reaped; otherwise (an error unwound the run) the
        // child must not outlive the tool.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _killed = self.child.kill();
            let _reaped = self.child.wait();
        }
    }
}

/// In the child: ends the process once stdin reaches its end (the parent closed it or died).
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = io::stdin();
        loop {
            match stdin.read(&mut sink) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
}

/// Runs `knote-bench idle-tasks RUNTIME N` and returns the bytes per idle task it printed
/// (`None` when it could not read its resident set).
pub fn idle_tasks(runtime: &str, n: usize) -> io::Result<Option<f64>> {
    let output = Command::new(std::env::current_exe()?)
        .arg("idle-tasks")
        .arg(runtime)
        .arg(n.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "idle-tasks {runtime} {n} failed ({}): {text}",
            output.status
        )));
    }
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(crate::idle_tasks::PREFIX))
        .ok_or_else(|| io::Error::other(format!("idle-tasks printed {text:?}")))?;
    if value.trim() == "n/a" {
        return Ok(None);
    }
    value
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| io::Error::other(format!("idle-tasks printed {text:?}")))
}
