//! `EVFILT_VNODE`: each note, a knote following its file through rename and unlink,
//! directories, the flags, fd identity, what is not a vnode, and (on the Linux shim) the
//! inotify queue overflowing.
//!
//! The semantics are FreeBSD's (`vfs_subr.c`: `filt_vfsvnode`, the `vop_*_post` hints): a hint
//! that shares a bit with the requested notes is reported whole, so an append reported to a
//! knote asking for `WRITE` alone says `WRITE | EXTEND`.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use knote_reactor::{note, Filter, Flags, Kevent, Kqueue};

const SHIM: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// A scratch directory, removed with its contents when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let path = temp_path(tag);
        fs::create_dir(&path).unwrap();
        Scratch(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Creates `name` with `contents` and opens it for reading and writing.
    fn file(&self, name: &str, contents: &[u8]) -> (PathBuf, File) {
        let path = self.join(name);
        fs::write(&path, contents).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn watch(kq: &Kqueue, fd: &impl AsRawFd, flags: Flags, fflags: u32) {
    register(
        kq,
        &[Kevent::vnode(fd.as_raw_fd(), Flags::ADD | flags, fflags, 7)],
    );
}

/// The notes of the next VNODE event on `fd` (panics if none comes within the guard).
fn notes(kq: &Kqueue, fd: &impl AsRawFd) -> u32 {
    let ev = wait_for(kq, id(fd), Filter::VNODE);
    assert_eq!(ev.udata(), 7);
    assert_eq!(ev.data(), 0, "VNODE events carry no data: {ev:?}");
    assert_no_action_flags(&ev);
    ev.fflags()
}

/// Asserts that no VNODE event on `fd` comes within `QUIET`.
fn quiet(kq: &Kqueue, fd: &impl AsRawFd) {
    let events = wait(kq, 16, Some(QUIET));
    assert_eq!(find(&events, id(fd), Filter::VNODE), None, "{events:?}");
}

fn open_dir(path: &Path) -> File {
    File::open(path).unwrap()
}

#[test]
fn append_reports_write_and_extend_overwrite_only_write() {
    let dir = Scratch::new("vn-write");
    let (_, mut file) = dir.file("f", b"0123");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::WRITE | note::EXTEND);
    quiet(&kq, &file);
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(b"more").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(b"xy").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE);
    quiet(&kq, &file);
}

#[test]
fn only_the_notes_asked_for_fire() {
    let dir = Scratch::new("vn-only");
    let (path, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::ATTRIB);
    file.write_all(b"data").unwrap();
    quiet(&kq, &file);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(notes(&kq, &file), note::ATTRIB);
    // Asking for WRITE alone still gets the whole hint of an append (filt_vfsvnode).
    register(
        &kq,
        &[Kevent::vnode(
            file.as_raw_fd(),
            Flags::ADD | Flags::CLEAR,
            note::WRITE,
            7,
        )],
    );
    file.write_all(b"more").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
}

#[test]
fn attrib_on_chmod_and_on_truncation() {
    let dir = Scratch::new("vn-attrib");
    let (path, file) = dir.file("f", b"0123456789");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::ATTRIB);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(notes(&kq, &file), note::ATTRIB);
    // Truncation is VOP_SETATTR on FreeBSD: NOTE_ATTRIB.
    file.set_len(3).unwrap();
    assert_ne!(notes(&kq, &file) & note::ATTRIB, 0);
}

#[test]
fn unlink_reports_delete_and_the_knote_follows_the_open_file() {
    let dir = Scratch::new("vn-unlink");
    let (path, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::DELETE | note::WRITE);
    fs::remove_file(&path).unwrap();
    assert_eq!(notes(&kq, &file), note::DELETE);
    file.write_all(b"still here").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
}

#[test]
fn link_and_unlink_of_a_second_name() {
    let dir = Scratch::new("vn-link");
    let (path, file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::LINK | note::DELETE);
    fs::hard_link(&path, dir.join("g")).unwrap();
    assert_eq!(notes(&kq, &file), note::LINK);
    // FreeBSD's VOP_REMOVE says NOTE_DELETE for any of the links.
    fs::remove_file(dir.join("g")).unwrap();
    assert_eq!(notes(&kq, &file), note::DELETE);
}

#[test]
fn rename_reports_rename_and_the_knote_follows_the_file() {
    let dir = Scratch::new("vn-rename");
    let (path, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::RENAME | note::WRITE);
    fs::rename(&path, dir.join("g")).unwrap();
    assert_eq!(notes(&kq, &file), note::RENAME);
    // A new file at the old name is not this knote's.
    fs::write(&path, b"other").unwrap();
    quiet(&kq, &file);
    file.write_all(b"x").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
}

#[test]
fn a_rename_over_the_file_deletes_it() {
    let dir = Scratch::new("vn-replace");
    let (path, file) = dir.file("f", b"old");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::DELETE);
    fs::write(dir.join("new"), b"new").unwrap();
    fs::rename(dir.join("new"), &path).unwrap();
    assert_eq!(notes(&kq, &file), note::DELETE);
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[test]
fn open_close_close_write_and_read() {
    let dir = Scratch::new("vn-open");
    let (path, file) = dir.file("f", b"contents");
    let kq = kq();
    let all = note::OPEN | note::CLOSE | note::CLOSE_WRITE | note::READ;
    watch(&kq, &file, Flags::CLEAR, note::OPEN);
    let reader = File::open(&path).unwrap();
    assert_eq!(notes(&kq, &file), note::OPEN);
    register(
        &kq,
        &[Kevent::vnode(
            file.as_raw_fd(),
            Flags::ADD | Flags::CLEAR,
            all,
            7,
        )],
    );
    std::io::Read::read_exact(&mut &reader, &mut [0u8; 4]).unwrap();
    assert_eq!(notes(&kq, &file), note::READ);
    drop(reader);
    assert_eq!(notes(&kq, &file), note::CLOSE);
    let writer = OpenOptions::new().write(true).open(&path).unwrap();
    assert_eq!(notes(&kq, &file), note::OPEN);
    drop(writer);
    assert_eq!(notes(&kq, &file), note::CLOSE_WRITE);
}

#[test]
fn directories_report_entry_changes_and_subdirectory_links() {
    let dir = Scratch::new("vn-dir");
    let other = Scratch::new("vn-dir-other");
    let d = open_dir(&dir.0);
    let kq = kq();
    watch(
        &kq,
        &d,
        Flags::CLEAR,
        note::WRITE | note::LINK | note::EXTEND,
    );
    let (_, mut child) = dir.file("a", b"");
    assert_eq!(notes(&kq, &d), note::WRITE);
    // Writing to an entry is the entry's business, not the directory's.
    child.write_all(b"data").unwrap();
    quiet(&kq, &d);
    fs::create_dir(dir.join("sub")).unwrap();
    assert_eq!(notes(&kq, &d), note::WRITE | note::LINK);
    fs::remove_dir(dir.join("sub")).unwrap();
    assert_eq!(notes(&kq, &d), note::WRITE | note::LINK);
    fs::rename(dir.join("a"), dir.join("b")).unwrap();
    assert_eq!(notes(&kq, &d), note::WRITE);
    fs::rename(dir.join("b"), other.join("b")).unwrap();
    assert_eq!(notes(&kq, &d), note::WRITE | note::EXTEND);
    fs::remove_file(other.join("b")).unwrap();
    quiet(&kq, &d);
}

#[test]
fn level_triggered_knotes_keep_reporting_their_notes() {
    let dir = Scratch::new("vn-level");
    let (path, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::empty(), note::WRITE | note::ATTRIB);
    file.write_all(b"x").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
    // Without EV_CLEAR the notes stay, and accumulate.
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let got = wait_until(&kq, |e| {
        e.filter() == Filter::VNODE && e.fflags() & note::ATTRIB != 0
    })
    .expect("ATTRIB");
    assert_eq!(got.fflags(), note::WRITE | note::EXTEND | note::ATTRIB);
    register(&kq, &[Kevent::vnode(file.as_raw_fd(), Flags::DELETE, 0, 0)]);
    quiet(&kq, &file);
}

#[test]
fn clear_reports_each_batch_once() {
    let dir = Scratch::new("vn-clear");
    let (_, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::WRITE);
    file.write_all(b"x").unwrap();
    let ev = wait_for(&kq, id(&file), Filter::VNODE);
    assert!(ev.flags().contains(Flags::CLEAR), "{ev:?}");
    quiet(&kq, &file);
}

#[test]
fn oneshot_reports_once_and_deletes_the_knote() {
    let dir = Scratch::new("vn-oneshot");
    let (_, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::ONESHOT, note::WRITE);
    file.write_all(b"x").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
    file.write_all(b"y").unwrap();
    quiet(&kq, &file);
    let gone = receipt(&kq, Kevent::vnode(file.as_raw_fd(), Flags::DELETE, 0, 0));
    assert_eq!(gone, i64::from(libc::ENOENT));
}

#[test]
fn dispatch_disables_after_delivery_and_keeps_the_notes_for_enable() {
    let dir = Scratch::new("vn-dispatch");
    let (path, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::DISPATCH, note::WRITE | note::ATTRIB);
    file.write_all(b"x").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    quiet(&kq, &file);
    // Re-enabled, it reports what fired meanwhile; without EV_CLEAR nothing was reset.
    let enable = Kevent::vnode(
        file.as_raw_fd(),
        Flags::ENABLE,
        note::WRITE | note::ATTRIB,
        7,
    );
    register(&kq, &[enable]);
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND | note::ATTRIB);
}

#[test]
fn dispatch_with_clear_reports_only_what_fired_while_disabled() {
    let dir = Scratch::new("vn-dispatch-clear");
    let (path, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(
        &kq,
        &file,
        Flags::DISPATCH | Flags::CLEAR,
        note::WRITE | note::ATTRIB,
    );
    file.write_all(b"x").unwrap();
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    quiet(&kq, &file);
    let enable = Kevent::vnode(
        file.as_raw_fd(),
        Flags::ENABLE,
        note::WRITE | note::ATTRIB,
        7,
    );
    register(&kq, &[enable]);
    assert_eq!(notes(&kq, &file), note::ATTRIB);
}

#[test]
fn disabled_at_add_reports_after_enable() {
    let dir = Scratch::new("vn-disable");
    let (_, mut file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR | Flags::DISABLE, note::WRITE);
    file.write_all(b"x").unwrap();
    quiet(&kq, &file);
    register(
        &kq,
        &[Kevent::vnode(
            file.as_raw_fd(),
            Flags::ENABLE,
            note::WRITE,
            7,
        )],
    );
    assert_eq!(notes(&kq, &file), note::WRITE | note::EXTEND);
}

#[test]
fn deleted_knotes_report_nothing_and_changes_need_a_knote() {
    let dir = Scratch::new("vn-delete");
    let (_, mut file) = dir.file("f", b"");
    let kq = kq();
    let fd = file.as_raw_fd();
    let enable = Kevent::vnode(fd, Flags::ENABLE, note::WRITE, 7);
    assert_eq!(receipt(&kq, enable), i64::from(libc::ENOENT));
    watch(&kq, &file, Flags::CLEAR, note::WRITE);
    register(&kq, &[Kevent::vnode(fd, Flags::DELETE, 0, 0)]);
    file.write_all(b"x").unwrap();
    quiet(&kq, &file);
}

#[test]
fn two_knotes_on_one_file_are_independent() {
    let dir = Scratch::new("vn-shared");
    let (path, mut a) = dir.file("f", b"");
    let b = File::open(&path).unwrap();
    let kq = kq();
    watch(&kq, &a, Flags::CLEAR, note::WRITE);
    a.write_all(b"before b").unwrap();
    // b's knote starts after that write, even though both share the inode's watch.
    watch(&kq, &b, Flags::CLEAR, note::WRITE);
    assert_eq!(notes(&kq, &a), note::WRITE | note::EXTEND);
    quiet(&kq, &b);
    a.write_all(b"x").unwrap();
    let events = wait(&kq, 16, Some(GUARD));
    let mut seen = events.clone();
    if find(&seen, id(&a), Filter::VNODE).is_none() || find(&seen, id(&b), Filter::VNODE).is_none()
    {
        seen.extend(wait(&kq, 16, Some(GUARD)));
    }
    assert!(find(&seen, id(&a), Filter::VNODE).is_some(), "{seen:?}");
    assert!(find(&seen, id(&b), Filter::VNODE).is_some(), "{seen:?}");
    // Deleting one leaves the other watching.
    register(&kq, &[Kevent::vnode(a.as_raw_fd(), Flags::DELETE, 0, 0)]);
    a.write_all(b"y").unwrap();
    assert_eq!(notes(&kq, &b), note::WRITE | note::EXTEND);
    quiet(&kq, &a);
}

#[test]
fn a_closed_and_reused_fd_never_reports_the_old_file() {
    let dir = Scratch::new("vn-reuse");
    let (old_path, old) = dir.file("old", b"");
    let (_, mut new) = dir.file("new", b"");
    let kq = kq();
    watch(&kq, &old, Flags::CLEAR, note::WRITE);
    let fd = old.as_raw_fd();
    // dup2 closes the number and reuses it for the other file in one step.
    // SAFETY: both fds are open and owned by this test; `old`'s File now owns the new file's
    // duplicate at that number and closes it when dropped.
    assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), fd) }, fd);
    fs::OpenOptions::new()
        .append(true)
        .open(&old_path)
        .unwrap()
        .write_all(b"old file written")
        .unwrap();
    new.write_all(b"new file written").unwrap();
    quiet(&kq, &old);
    let gone = receipt(&kq, Kevent::vnode(fd, Flags::DELETE, 0, 0));
    assert_eq!(gone, i64::from(libc::ENOENT));
}

#[test]
fn a_closed_fd_is_ebadf() {
    let dir = Scratch::new("vn-ebadf");
    let (_, file) = dir.file("f", b"");
    let kq = kq();
    let closed = dup(&file);
    let number = closed.as_raw_fd();
    drop(closed);
    // The number may be taken again by another test thread, by a file (accepted) or by a
    // socket or pipe (EINVAL); only a number that is still closed must be EBADF.
    let errno = receipt(&kq, Kevent::vnode(number, Flags::ADD, note::WRITE, 0));
    assert!(
        [0, i64::from(libc::EBADF), i64::from(libc::EINVAL)].contains(&errno),
        "errno {errno}"
    );
    let errno = receipt(&kq, Kevent::vnode(i32::MAX, Flags::ADD, note::WRITE, 0));
    assert_eq!(errno, i64::from(libc::EBADF));
}

#[test]
fn sockets_and_pipes_are_not_vnodes() {
    let kq = kq();
    let (a, _b) = unix_pair();
    let errno = receipt(
        &kq,
        Kevent::vnode(a.as_raw_fd(), Flags::ADD, note::WRITE, 0),
    );
    assert_eq!(errno, i64::from(libc::EINVAL));
    let (r, _w) = pipe();
    let errno = receipt(
        &kq,
        Kevent::vnode(r.as_raw_fd(), Flags::ADD, note::WRITE, 0),
    );
    assert_eq!(errno, i64::from(libc::EINVAL));
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[test]
fn a_named_fifo_is_a_vnode() {
    let dir = Scratch::new("vn-fifo");
    let path = dir.join("fifo");
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // O_RDWR opens a FIFO without waiting for a peer (Linux and FreeBSD).
    let fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let kq = kq();
    watch(&kq, &fifo, Flags::CLEAR, note::ATTRIB);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(notes(&kq, &fifo), note::ATTRIB);
}

/// Difference: Linux sends no event to a directory removed while open (the removal shows only
/// in its parent), so the shim cannot report `NOTE_DELETE` for it; FreeBSD does.
#[test]
fn rmdir_of_a_watched_directory() {
    let dir = Scratch::new("vn-rmdir");
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    let d = open_dir(&sub);
    let kq = kq();
    watch(&kq, &d, Flags::CLEAR, note::DELETE);
    fs::remove_dir(&sub).unwrap();
    if SHIM {
        quiet(&kq, &d);
    } else {
        assert_eq!(notes(&kq, &d), note::DELETE);
    }
}

/// Difference: Linux cannot unmount a file system while a file on it is open (a lazy unmount
/// waits for the last close), so the shim never reports `NOTE_REVOKE` to a live knote; FreeBSD's
/// forced unmount revokes the vnode (`NOTE_REVOKE` with `EV_EOF`). Needs mount privileges.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn unmount_under_an_open_file() {
    let dir = Scratch::new("vn-revoke");
    let mnt = std::ffi::CString::new(dir.0.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: all strings are NUL-terminated; a tmpfs mount takes no data.
    let mounted = unsafe {
        libc::mount(
            c"none".as_ptr(),
            mnt.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if mounted != 0 {
        println!(
            "skipped: no privilege to mount tmpfs ({})",
            std::io::Error::last_os_error()
        );
        return;
    }
    let (_, file) = dir.file("f", b"");
    let kq = kq();
    watch(&kq, &file, Flags::CLEAR, note::REVOKE);
    // SAFETY: `mnt` is the NUL-terminated mount point mounted above.
    assert_eq!(unsafe { libc::umount2(mnt.as_ptr(), libc::MNT_DETACH) }, 0);
    quiet(&kq, &file);
}

/// The inotify queue overflowing (`IN_Q_OVERFLOW`) loses events; every knote is then
/// re-examined: the append is derived from the file's size, and the notes nothing records
/// (here `NOTE_READ`) are reported as possibly lost.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn overflow_reports_what_could_have_happened() {
    let max: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        max <= 1 << 22,
        "max_queued_events {max} is too large to fill in a test"
    );
    let dir = Scratch::new("vn-overflow");
    let (_, mut watched) = dir.file("watched", b"");
    let (noisy_path, noisy) = dir.file("noisy", b"");
    let kq = kq();
    watch(
        &kq,
        &watched,
        Flags::CLEAR,
        note::WRITE | note::EXTEND | note::READ,
    );
    watch(&kq, &noisy, Flags::CLEAR, note::OPEN | note::CLOSE);
    // Each open and close is one event (alternating, so none are merged): fill the queue.
    for _ in 0..max / 2 + 8 {
        drop(File::open(&noisy_path).unwrap());
    }
    // Lost: the queue is full.
    watched.write_all(b"lost write").unwrap();
    let mut seen = Vec::new();
    for _ in 0..8 {
        seen.extend(wait(&kq, 16, Some(GUARD)));
        if find(&seen, id(&watched), Filter::VNODE).is_some()
            && find(&seen, id(&noisy), Filter::VNODE).is_some()
        {
            break;
        }
    }
    let of = |f: &File| find(&seen, id(f), Filter::VNODE).map(|e| e.fflags());
    assert_eq!(
        of(&watched),
        Some(note::WRITE | note::EXTEND | note::READ),
        "{seen:?}"
    );
    assert_eq!(of(&noisy), Some(note::OPEN | note::CLOSE), "{seen:?}");
    // Afterwards events flow as before.
    watched.write_all(b"x").unwrap();
    assert_eq!(notes(&kq, &watched), note::WRITE | note::EXTEND);
}
