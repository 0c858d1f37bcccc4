//! The reaper: children dropped before they were waited for are reaped by one detached thread,
//! so none is left a zombie.
//!
//! The thread owns a kqueue of its own (not a runtime's: it must outlive every runtime, and a
//! child dropped outside any runtime is reaped too) with one `EVFILT_PROC` `NOTE_EXIT` knote per
//! adopted child, `udata` = the pid. It sleeps in `kevent` until one exits, then reaps exactly
//! that one: no `SIGCHLD` handler, no sweep of every child. It starts with the first adoption.

use std::collections::HashMap;
use std::io;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use knote_reactor::{note, Flags, Kevent, Kqueue};

use crate::loom::Locked;

struct Reaper {
    kq: Kqueue,
    children: Mutex<HashMap<u32, Child>>,
    /// Cleared if the thread ever stops (its kqueue failed).
    serving: AtomicBool,
}

static REAPER: OnceLock<Option<&'static Reaper>> = OnceLock::new();

/// Reaps `child` itself: it has exited (its exit was reported, or the kernel no longer lets a
/// knote be added for it), so `wait` returns as soon as the kernel has made it a zombie.
fn reap_exited(mut child: Child) {
    if let Ok(None) = child.try_wait() {
        // Reported exited but not yet collectable: the kernel is finishing its exit.
        // A failure here means it was collected already; there is nothing left to do.
        drop(child.wait());
    }
}

fn start() -> Option<&'static Reaper> {
    let kq = Kqueue::new().ok()?;
    let reaper: &'static Reaper = Box::leak(Box::new(Reaper {
        kq,
        children: Mutex::new(HashMap::new()),
        serving: AtomicBool::new(true),
    }));
    std::thread::Builder::new()
        .name("knote-reaper".into())
        .spawn(move || run(reaper))
        .ok()?;
    Some(reaper)
}

fn run(reaper: &'static Reaper) {
    let mut events = [Kevent::zeroed(); 64];
    loop {
        let n = match reaper.kq.kevent(&[], &mut events, None) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // The kqueue is unusable: later adoptions go to `adopt`'s fallback, and what
                // is left is reaped by blocking waits, one thread each.
                reaper.serving.store(false, Ordering::SeqCst);
                let orphans: Vec<Child> =
                    reaper.children.locked().drain().map(|(_, c)| c).collect();
                for child in orphans {
                    wait_on_a_thread(child);
                }
                return;
            }
        };
        for event in &events[..n] {
            let pid = event.udata() as u32;
            let child = reaper.children.locked().remove(&pid);
            if let Some(child) = child {
                reap_exited(child);
            }
        }
    }
}

/// The last resort when no kqueue can be had: a thread blocked in `waitpid` for this child.
fn wait_on_a_thread(mut child: Child) {
    let spawned = std::thread::Builder::new()
        .name("knote-reap-one".into())
        .spawn(move || drop(child.wait()));
    // Without a thread either, the child is left to the process's own exit; there is no one
    // to report to from a drop.
    drop(spawned);
}

/// Takes a child that is being dropped unwaited-for and reaps it when it exits.
pub(crate) fn adopt(mut child: Child) {
    match child.try_wait() {
        Ok(Some(_)) | Err(_) => return, // reaped now, or collected already
        Ok(None) => {}
    }
    let reaper = match *REAPER.get_or_init(start) {
        Some(reaper) if reaper.serving.load(Ordering::SeqCst) => reaper,
        _ => {
            wait_on_a_thread(child);
            return;
        }
    };
    let pid = child.id();
    // Into the map first: the exit may be reported as soon as the knote is added.
    reaper.children.locked().insert(pid, child);
    let change = Kevent::proc(
        pid as i32,
        Flags::ADD,
        note::EXIT | note::EXITSTATUS,
        pid as usize,
    );
    let added = reaper.kq.apply(&[change]);
    if !reaper.serving.load(Ordering::SeqCst) {
        // The thread stopped meanwhile (its drain after clearing `serving` either took this
        // child or comes before the insert above): whoever still finds it reaps it.
        if let Some(child) = reaper.children.locked().remove(&pid) {
            wait_on_a_thread(child);
        }
        return;
    }
    if let Err(e) = added {
        if let Some(child) = reaper.children.locked().remove(&pid) {
            if e.raw_os_error() == Some(libc::ESRCH) {
                // Exited before the knote could be added (a zombie, on some kernels).
                reap_exited(child);
            } else {
                wait_on_a_thread(child);
            }
        }
    }
}
