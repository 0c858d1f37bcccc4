//! `fs::watch`: a file's VNODE notes as a stream, on both runtimes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use knote_executor::fs::{watch, Notes};
use knote_executor::runtime::Builder;
use knote_executor::time::timeout;

const GUARD: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(50);

/// A scratch directory, removed with its contents when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("knote-fs-test-{}-{tag}-{n}", std::process::id()));
        fs::create_dir(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn appender(path: &PathBuf) -> File {
    OpenOptions::new().append(true).open(path).unwrap()
}

#[test]
#[cfg_attr(miri, ignore)]
fn appends_renames_and_deletes_arrive_in_order() {
    let dir = Scratch::new("order");
    let path = dir.0.join("log");
    fs::write(&path, b"").unwrap();
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let file = File::open(&path).unwrap();
        let mut changes = watch(
            file,
            Notes::WRITE | Notes::EXTEND | Notes::RENAME | Notes::DELETE,
        )
        .unwrap();
        appender(&path).write_all(b"line\n").unwrap();
        let got = timeout(GUARD, changes.next()).await.unwrap();
        assert_eq!(got, Some(Notes::WRITE | Notes::EXTEND));
        let moved = dir.0.join("log.1");
        fs::rename(&path, &moved).unwrap();
        assert_eq!(
            timeout(GUARD, changes.next()).await.unwrap(),
            Some(Notes::RENAME)
        );
        fs::remove_file(&moved).unwrap();
        assert_eq!(
            timeout(GUARD, changes.next()).await.unwrap(),
            Some(Notes::DELETE)
        );
        // Nothing else happened.
        assert!(timeout(QUIET, changes.next()).await.is_err());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn only_the_notes_asked_for_are_yielded() {
    let dir = Scratch::new("masked");
    let path = dir.0.join("f");
    fs::write(&path, b"").unwrap();
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let file = File::open(&path).unwrap();
        // kqueue reports an append's whole hint (WRITE | EXTEND); the stream keeps WRITE.
        let mut changes = watch(&file, Notes::WRITE).unwrap();
        appender(&path).write_all(b"x").unwrap();
        assert_eq!(
            timeout(GUARD, changes.next()).await.unwrap(),
            Some(Notes::WRITE)
        );
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(timeout(QUIET, changes.next()).await.is_err());
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_directory_reports_new_entries_through_the_stream_trait() {
    let dir = Scratch::new("dir");
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let d = File::open(&dir.0).unwrap();
        let mut changes = watch(d, Notes::WRITE | Notes::LINK).unwrap();
        fs::write(dir.0.join("entry"), b"").unwrap();
        let got = timeout(GUARD, StreamExt::next(&mut changes)).await.unwrap();
        assert_eq!(got, Some(Notes::WRITE));
        fs::create_dir(dir.0.join("sub")).unwrap();
        let got = timeout(GUARD, StreamExt::next(&mut changes)).await.unwrap();
        assert_eq!(got, Some(Notes::WRITE | Notes::LINK));
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn bad_input_gets_clear_errors() {
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = watch(&a, Notes::WRITE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        let dir = Scratch::new("errors");
        let file = File::create(dir.0.join("f")).unwrap();
        let err = watch(&file, Notes::empty()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let unsupported = Notes::all() - Notes::supported();
        if !unsupported.is_empty() {
            let err = watch(&file, unsupported).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
        }
    });
    // Outside a runtime there is nothing to register with.
    let dir = Scratch::new("no-runtime");
    let file = File::create(dir.0.join("f")).unwrap();
    assert!(watch(&file, Notes::WRITE).is_err());
}

#[test]
#[cfg_attr(miri, ignore)]
fn into_inner_stops_watching_and_returns_the_file() {
    let dir = Scratch::new("inner");
    let path = dir.0.join("f");
    fs::write(&path, b"").unwrap();
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let changes = watch(File::open(&path).unwrap(), Notes::WRITE).unwrap();
        assert_eq!(changes.notes(), Notes::WRITE);
        let file = changes.into_inner();
        // The knote is gone, so the same fd can be watched afresh.
        let mut again = watch(file, Notes::WRITE).unwrap();
        appender(&path).write_all(b"x").unwrap();
        assert_eq!(
            timeout(GUARD, again.next()).await.unwrap(),
            Some(Notes::WRITE)
        );
    });
}
