//! The `watch` example's follower (`tail -F`), driven by a writer that appends, truncates and
//! rotates the file. The example is compiled in as a module, so this tests what
//! `cargo run --example watch` runs; every wait has a deadline.

#[allow(dead_code)]
#[path = "../examples/watch.rs"]
mod watch;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use watch::{parse, tail, Command, Line};

const GUARD: Duration = Duration::from_secs(10);

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// Waits until the follower has reported `n` items.
fn wait_for(seen: &Mutex<Vec<Line>>, n: usize) {
    let start = Instant::now();
    while seen.lock().unwrap().len() < n {
        assert!(
            start.elapsed() < GUARD,
            "follower reported only {:?}",
            seen.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn follows_appends_truncation_and_rotation() {
    let dir = std::env::temp_dir().join(format!("knote-watch-example-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    let path = dir.join("app.log");
    fs::write(&path, "first\n").unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let follower = {
        let (seen, path) = (Arc::clone(&seen), path.clone());
        thread::spawn(move || {
            let rt = knote::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(tail(&path, true, |line| {
                let last = line == Line::Text("end".into());
                seen.lock().unwrap().push(line);
                if last {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }))
        })
    };
    let text = |s: &str| Line::Text(s.to_string());
    wait_for(&seen, 1);
    // A line written in two pieces is reported once, whole.
    append(&path, "second, in ");
    append(&path, "two writes\n");
    wait_for(&seen, 2);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, "after truncation\n");
    wait_for(&seen, 4);
    let rotated: PathBuf = dir.join("app.log.1");
    fs::rename(&path, &rotated).unwrap();
    wait_for(&seen, 5);
    fs::write(&path, "new file\n").unwrap();
    wait_for(&seen, 6);
    append(&path, "end\n");
    follower.join().unwrap().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            text("first"),
            text("second, in two writes"),
            Line::Truncated,
            text("after truncation"),
            Line::Replaced,
            text("new file"),
            text("end"),
        ]
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse(a.iter().map(|s| s.into()).collect::<Vec<_>>().into_iter());
    assert_eq!(args(&["--help"]), Command::Help);
    assert_eq!(args(&["-h"]), Command::Help);
    assert_eq!(args(&[]), Command::Usage);
    assert_eq!(args(&["a", "b"]), Command::Usage);
    assert_eq!(args(&["log"]), Command::Follow(PathBuf::from("log")));
}
