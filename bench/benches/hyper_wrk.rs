//! HTTP hello world under `wrk`: the `hyper_hello` example's service function, served by
//! hyper's HTTP/1 connection builder on knote (`knote::hyper`) and on tokio (hyper-util's
//! `TokioIo`/`TokioTimer`), the runtime being the only difference. Each flavour
//! (current-thread, multi-thread with two workers) is run in interleaved rounds, knote then
//! tokio, each round a fresh server in this process and one `wrk -c64 -t1` run against it;
//! it prints every round's requests per second and the ratio of the medians knote ÷ tokio,
//! with the spread of the per-round ratios. It prints the same for requests per CPU-second
//! of this process (the server: wrk is a child, not counted) — on a machine where wrk or
//! other load is the bottleneck, the server is partly idle and requests per second say more
//! about the load generator than the runtime, while CPU per request still measures the server.
//!
//! ```text
//! cargo bench -p knote-bench --bench hyper_wrk
//! HYPER_WRK_ROUNDS=7 HYPER_WRK_SECS=5 HYPER_WRK_FLAVOURS=current cargo bench ...
//! ```
//!
//! `HYPER_WRK_SIDE=knote` (or `tokio`) runs one side only, for `strace -c -f` or a profiler
//! on one runtime at a time (no ratio is printed then).
//!
//! wrk is pinned to the last CPU with `taskset` (when there are two or more and taskset is
//! installed), and a current-thread server to CPU 0, so load and server do not share a core.

#[allow(dead_code)]
#[path = "../../examples/hyper_hello.rs"]
mod hyper_hello;
// The servers, shared with knote-bench's hyper workloads.
#[path = "../src/hyper_servers.rs"]
mod hyper_servers;
#[path = "../src/runtimes.rs"]
mod runtimes;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Which runtime serves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Knote,
    Tokio,
}

/// A server on its own thread; dropping it stops the server and joins its thread.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
    }
}

fn pin_to_cpu(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: a zeroed cpu_set_t is an empty set, CPU_SET writes inside it, and
    // sched_setaffinity(0) reads it for this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!(
                "hyper_wrk: cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

fn start(side: Side, multi: bool, pin_server: bool) -> Server {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        if pin_server && !multi {
            pin_to_cpu(0);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let workers = multi.then_some(2);
        // The stop signal (or its sender dropped) ends the server.
        let stop = async {
            let _stopped = stop_rx.await;
        };
        match side {
            Side::Knote => hyper_servers::serve_knote(listener, workers, stop),
            Side::Tokio => hyper_servers::serve_tokio(listener, workers, stop),
        }
        .unwrap();
    });
    let addr = addr_rx.recv().expect("the server did not start");
    Server {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// This process's CPU time so far (user + system, all threads; not its children).
fn cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One wrk run: requests per second, and requests per CPU-second of the server.
#[derive(Clone, Copy, Default)]
struct Run {
    rate: f64,
    per_cpu: f64,
}

/// Runs wrk against `addr`.
fn wrk(addr: SocketAddr, secs: u64, pin: Option<usize>) -> Run {
    let cpu_before = cpu_seconds();
    let url = format!("http://{addr}/");
    let duration = format!("{secs}s");
    let wrk_args = ["-c64", "-t1", "-d", duration.as_str(), url.as_str()];
    let output = match pin {
        Some(cpu) => Command::new("taskset")
            .arg("-c")
            .arg(cpu.to_string())
            .arg("wrk")
            .args(wrk_args)
            .output(),
        None => Command::new("wrk").args(wrk_args).output(),
    }
    .unwrap_or_else(|e| panic!("hyper_wrk: cannot run wrk (is it installed?): {e}"));
    let cpu = cpu_seconds() - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("Non-2xx"),
        "the server answered errors: {text}"
    );
    let rate: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}"));
    // "  123456 requests in 5.00s, ..."
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output: {text}"));
    Run {
        rate,
        per_cpu: requests / cpu.max(1e-9),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not a valid value: {v:?}")),
        Err(_) => default,
    }
}

fn main() {
    let rounds: usize = env_or("HYPER_WRK_ROUNDS", 5);
    let secs: u64 = env_or("HYPER_WRK_SECS", 5);
    let flavours: String = env_or("HYPER_WRK_FLAVOURS", "current,multi".to_owned());
    let sides: Vec<Side> = match env_or("HYPER_WRK_SIDE", String::new()).as_str() {
        "" => vec![Side::Knote, Side::Tokio],
        "knote" => vec![Side::Knote],
        "tokio" => vec![Side::Tokio],
        other => panic!("HYPER_WRK_SIDE: unknown side {other:?} (knote, tokio)"),
    };
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset").arg("-V").output().is_ok();
    let wrk_cpu = (cpus >= 2 && taskset).then(|| cpus - 1);
    for flavour in flavours.split(',') {
        let multi = match flavour {
            "current" => false,
            "multi" => true,
            other => panic!("HYPER_WRK_FLAVOURS: unknown flavour {other:?} (current, multi)"),
        };
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let mut pair = [Run::default(); 2];
            for &side in &sides {
                let server = start(side, multi, wrk_cpu.is_some());
                // A moment for the listener, then the load.
                thread::sleep(Duration::from_millis(50));
                let run = wrk(server.addr, secs, wrk_cpu);
                drop(server);
                if sides.len() == 1 {
                    println!(
                        "hyper_wrk {flavour} round {round}: {side:?} {:.0} req/s, {:.0} req/CPU-s",
                        run.rate, run.per_cpu
                    );
                }
                pair[(side == Side::Tokio) as usize] = run;
            }
            if sides.len() == 1 {
                continue;
            }
            println!(
                "hyper_wrk {flavour} round {round}: knote {:.0} req/s {:.0} req/CPU-s, \
                 tokio {:.0} req/s {:.0} req/CPU-s",
                pair[0].rate, pair[0].per_cpu, pair[1].rate, pair[1].per_cpu
            );
            runs[0].push(pair[0]);
            runs[1].push(pair[1]);
        }
        if sides.len() == 1 {
            continue;
        }
        for (what, get) in [
            ("req/s", (|r: &Run| r.rate) as fn(&Run) -> f64),
            ("req/CPU-s", |r: &Run| r.per_cpu),
        ] {
            let mut knote: Vec<f64> = runs[0].iter().map(get).collect();
            let mut tokio: Vec<f64> = runs[1].iter().map(get).collect();
            let mut ratios: Vec<f64> = knote.iter().zip(&tokio).map(|(k, t)| k / t).collect();
            let (k, t) = (median(&mut knote), median(&mut tokio));
            median(&mut ratios);
            println!(
                "hyper_wrk {flavour} {what}: median knote {k:.0}, tokio {t:.0}, ratio of medians \
                 knote/tokio {:.3} (per-round ratios {:.3}..{:.3}, {rounds} rounds of {secs} s)",
                k / t,
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    }
}
