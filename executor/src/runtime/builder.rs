//! `Builder`: runtime options.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::handle::Inner;
use super::{blocking, current_thread, multi_thread, Handle, LocalRuntime, Runtime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    CurrentThread,
    MultiThread,
}

type NameFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Builds a [`Runtime`] (or a [`LocalRuntime`]) with non-default options.
///
/// ```
/// let rt = knote_executor::runtime::Builder::new_multi_thread()
///     .worker_threads(2)
///     .thread_name("my-worker")
///     .build()?;
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Builder {
    kind: Kind,
    worker_threads: Option<usize>,
    thread_name: NameFn,
    stack_size: Option<usize>,
    event_capacity: usize,
    max_blocking_threads: usize,
    keep_alive: Duration,
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        let counter = Arc::new(AtomicUsize::new(0));
        Builder {
            kind,
            worker_threads: None,
            thread_name: Arc::new(move || {
                format!("knote-{}", counter.fetch_add(1, Ordering::Relaxed))
            }),
            stack_size: None,
            event_capacity: 1024,
            max_blocking_threads: 512,
            keep_alive: Duration::from_secs(10),
        }
    }

    /// A runtime whose tasks all run on the thread that calls `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder::new(Kind::CurrentThread)
    }

    /// A runtime with worker threads (one per core unless [`worker_threads`] says otherwise).
    ///
    /// [`worker_threads`]: Builder::worker_threads
    pub fn new_multi_thread() -> Builder {
        Builder::new(Kind::MultiThread)
    }

    /// How many worker threads (multi-thread runtimes only). Default: the number of cores.
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "worker_threads must be at least 1");
        self.worker_threads = Some(n);
        self
    }

    /// Names every thread the runtime starts `name`. Default: `knote-N`.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        let name = name.into();
        self.thread_name = Arc::new(move || name.clone());
        self
    }

    /// Names the runtime's threads by calling `f` for each.
    pub fn thread_name_fn(
        &mut self,
        f: impl Fn() -> String + Send + Sync + 'static,
    ) -> &mut Builder {
        self.thread_name = Arc::new(f);
        self
    }

    /// Stack size of the runtime's threads. Default: the standard library's.
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// How many events one wait on a kqueue may return. Default: 1024.
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn event_capacity(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "event_capacity must be at least 1");
        self.event_capacity = n;
        self
    }

    /// The most threads the blocking pool may have at once. Default: 512.
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "max_blocking_threads must be at least 1");
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for work before it exits. Default: 10 s.
    pub fn thread_keep_alive(&mut self, keep_alive: Duration) -> &mut Builder {
        self.keep_alive = keep_alive;
        self
    }

    /// Accepted for code written against tokio's builder, and changes nothing: every event
    /// source (I/O, timers, signals, processes, cross-thread wake-ups) is a kevent of the
    /// runtime's one kqueue, always on, so there is no driver to enable. The same holds for
    /// [`enable_io`](Builder::enable_io) and [`enable_time`](Builder::enable_time).
    pub fn enable_all(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for code written against tokio's builder; I/O is always on (see
    /// [`enable_all`](Builder::enable_all)).
    pub fn enable_io(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for code written against tokio's builder; timers are always on (see
    /// [`enable_all`](Builder::enable_all)).
    pub fn enable_time(&mut self) -> &mut Builder {
        self
    }

    fn blocking(&self) -> Arc<blocking::BlockingPool> {
        blocking::BlockingPool::new(
            self.max_blocking_threads,
            self.keep_alive,
            Arc::clone(&self.thread_name),
            self.stack_size,
        )
    }

    /// Creates the runtime (and starts its worker threads).
    pub fn build(&mut self) -> io::Result<Runtime> {
        let blocking = self.blocking();
        let handle = match self.kind {
            Kind::CurrentThread => Handle {
                inner: Inner::Current(current_thread::CurrentThread::new(
                    Arc::clone(&blocking),
                    self.event_capacity,
                )?),
            },
            Kind::MultiThread => {
                let workers = self
                    .worker_threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                let shared = multi_thread::MultiThread::new(
                    workers,
                    Arc::clone(&blocking),
                    self.event_capacity,
                )?;
                let handle = Handle {
                    inner: Inner::Multi(Arc::clone(&shared)),
                };
                if let Err(e) = shared.start(&handle, &*self.thread_name, self.stack_size) {
                    shared.shutdown(&handle, None);
                    return Err(e);
                }
                handle
            }
        };
        blocking.set_handle(&handle);
        Ok(Runtime::from_handle(handle))
    }

    /// Creates an embedding runtime (see [`LocalRuntime`]); for current-thread builders only.
    pub fn build_local(&mut self) -> io::Result<LocalRuntime> {
        if self.kind != Kind::CurrentThread {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "build_local needs Builder::new_current_thread",
            ));
        }
        let blocking = self.blocking();
        let shared =
            current_thread::CurrentThread::new(Arc::clone(&blocking), self.event_capacity)?;
        let handle = Handle {
            inner: Inner::Current(shared),
        };
        blocking.set_handle(&handle);
        Ok(LocalRuntime::from_handle(handle))
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("kind", &self.kind)
            .field("worker_threads", &self.worker_threads)
            .field("event_capacity", &self.event_capacity)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}
