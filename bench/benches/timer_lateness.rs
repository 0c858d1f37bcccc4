//! Timer lateness, knote vs tokio in one run: one task sleeps 300 times in a row on a
//! current-thread runtime, and each wake-up's lateness (the time past the deadline at which the
//! task runs again) is recorded. Printed: p50 and p99 per duration (100 µs, 1 ms, 10 ms), both
//! runtimes interleaved round by round (knote, tokio, knote, ...) so that load on the machine
//! hits both alike.
//!
//! `cargo bench -p knote-bench --bench timer_lateness` (about 8 s). `KNOTE_LATENESS_ROUNDS=N`
//! changes the rounds per duration (default 3, each 100 sleeps per runtime).

use std::time::{Duration, Instant};

const DURATIONS: [Duration; 3] = [
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(10),
];
const PER_ROUND: usize = 100;

fn knote_round(rt: &knote::Runtime, d: Duration, out: &mut Vec<Duration>) {
    rt.block_on(async {
        for _ in 0..PER_ROUND {
            let deadline = Instant::now() + d;
            knote::time::sleep(d).await;
            out.push(Instant::now().saturating_duration_since(deadline));
        }
    });
}

fn tokio_round(rt: &tokio::runtime::Runtime, d: Duration, out: &mut Vec<Duration>) {
    rt.block_on(async {
        for _ in 0..PER_ROUND {
            let deadline = Instant::now() + d;
            tokio::time::sleep(d).await;
            out.push(Instant::now().saturating_duration_since(deadline));
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) one round, as a
    // smoke test.
    let default_rounds = if std::env::args().any(|a| a == "--bench") {
        3
    } else {
        1
    };
    let rounds: usize = std::env::var("KNOTE_LATENESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_rounds);
    let knote_rt = knote::runtime::Builder::new_current_thread()
        .build()
        .expect("knote runtime");
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("lateness of a sleep, one task sleeping {PER_ROUND}x{rounds} times, current-thread");
    println!(
        "{:>8}  {:>10} {:>10}  {:>10} {:>10}",
        "sleep", "knote p50", "knote p99", "tokio p50", "tokio p99"
    );
    for d in DURATIONS {
        let mut knote = Vec::new();
        let mut tokio = Vec::new();
        for round in 0..rounds {
            if round % 2 == 0 {
                knote_round(&knote_rt, d, &mut knote);
                tokio_round(&tokio_rt, d, &mut tokio);
            } else {
                tokio_round(&tokio_rt, d, &mut tokio);
                knote_round(&knote_rt, d, &mut knote);
            }
        }
        knote.sort();
        tokio.sort();
        println!(
            "{:>8?}  {:>8}µs {:>8}µs  {:>8}µs {:>8}µs",
            d,
            percentile(&knote, 0.5).as_micros(),
            percentile(&knote, 0.99).as_micros(),
            percentile(&tokio, 0.5).as_micros(),
            percentile(&tokio, 0.99).as_micros(),
        );
    }
}
