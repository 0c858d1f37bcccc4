//! The two runtimes under test, built the same way for every workload: current-thread, or
//! multi-thread with a given number of workers (tokio with its I/O and time drivers, as a
//! network service has them).

use std::io;

/// knote's current-thread runtime (`workers: None`) or its multi-thread one.
pub fn knote_runtime(workers: Option<usize>) -> io::Result<knote::Runtime> {
    match workers {
        None => knote::runtime::Builder::new_current_thread().build(),
        Some(n) => knote::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .build(),
    }
}

/// tokio's current-thread runtime (`workers: None`) or its multi-thread one, drivers enabled.
pub fn tokio_runtime(workers: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    match workers {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}
