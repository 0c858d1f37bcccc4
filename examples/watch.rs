//! `tail -F` on knote's file watching: print lines as they are appended to a log file, and
//! notice when it is truncated or rotated (renamed or deleted, then created afresh).
//!
//! ```text
//! cargo run --example watch -- PATH
//! ```
//!
//! The file is watched through its open descriptor ([`knote::fs::watch`], `EVFILT_VNODE`), so
//! a rename does not confuse it: the rest of the old file is printed, then the directory is
//! watched until a file appears at the path again, and that one is followed from its start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use knote::fs::{watch, Notes};

const USAGE: &str = "usage: watch PATH\n\n\
    Prints the lines appended to the file at PATH as they arrive (like `tail -F`), and says\n\
    when it is truncated or replaced (renamed or deleted, then created again).";

/// What the follower reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline.
    Text(String),
    /// The file shrank: following it again from its new end.
    Truncated,
    /// The file was renamed or deleted: the next lines come from the file created at the path.
    Replaced,
}

/// Follows the file at `path`, handing each complete line (and each truncation or replacement)
/// to `emit` until it says `Break`. Starts at the end of the file, or at its start with
/// `from_start`.
pub async fn tail(
    path: &Path,
    from_start: bool,
    mut emit: impl FnMut(Line) -> ControlFlow<()>,
) -> io::Result<()> {
    let mut file = File::open(path)?;
    if !from_start {
        file.seek(SeekFrom::End(0))?;
    }
    loop {
        if follow(&file, &mut emit).await?.is_break() {
            return Ok(());
        }
        if emit(Line::Replaced).is_break() {
            return Ok(());
        }
        file = reopen(path).await?;
    }
}

/// Follows one open file until it is renamed or deleted (`Continue`) or `emit` stops
/// (`Break`).
async fn follow(
    file: &File,
    emit: &mut impl FnMut(Line) -> ControlFlow<()>,
) -> io::Result<ControlFlow<()>> {
    let notes = Notes::WRITE | Notes::EXTEND | Notes::ATTRIB | Notes::RENAME | Notes::DELETE;
    let mut changes = watch(file, notes)?;
    let mut partial = Vec::new();
    // Whatever is there already (from the start, or nothing at the end).
    if drain(file, &mut partial, emit)?.is_break() {
        return Ok(ControlFlow::Break(()));
    }
    while let Some(notes) = changes.next().await {
        let mut reader = file;
        let offset = reader.stream_position()?;
        if file.metadata()?.len() < offset {
            reader.seek(SeekFrom::Start(0))?;
            partial.clear();
            if emit(Line::Truncated).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        if drain(file, &mut partial, emit)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        if notes.intersects(Notes::RENAME | Notes::DELETE) {
            if !partial.is_empty() {
                let last = String::from_utf8_lossy(&partial).into_owned();
                if emit(Line::Text(last)).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            return Ok(ControlFlow::Continue(()));
        }
    }
    // Revoked (its file system went away): nothing more will come from it.
    Ok(ControlFlow::Continue(()))
}

/// Reads to the end of `file`, handing over each complete line; keeps an unfinished one.
fn drain(
    mut file: &File,
    partial: &mut Vec<u8>,
    emit: &mut impl FnMut(Line) -> ControlFlow<()>,
) -> io::Result<ControlFlow<()>> {
    let mut buf = [0u8; 8192];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        partial.extend_from_slice(&buf[..n]);
        while let Some(end) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            if emit(Line::Text(text)).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
}

/// Waits for a file to exist at `path` again (watching its directory) and opens it.
async fn reopen(path: &Path) -> io::Result<File> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Watch first, then look: a file created in between is seen by the look.
    let mut entries = watch(File::open(&parent)?, Notes::WRITE)?;
    loop {
        match File::open(path) {
            Ok(file) => return Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if entries.next().await.is_none() {
            return Err(io::Error::other(format!(
                "{}: its directory went away",
                path.display()
            )));
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `--help`: print the usage and succeed.
    Help,
    /// Anything but one argument: print the usage and fail.
    Usage,
    /// Follow the file at this path.
    Follow(PathBuf),
}

/// Reads the arguments (without the program name).
pub fn parse(mut args: impl Iterator<Item = std::ffi::OsString>) -> Command {
    match (args.next(), args.next()) {
        (Some(arg), None) if arg == "--help" || arg == "-h" => Command::Help,
        (Some(path), None) => Command::Follow(PathBuf::from(path)),
        _ => Command::Usage,
    }
}

fn main() -> ExitCode {
    let path = match parse(std::env::args_os().skip(1)) {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Usage => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
        Command::Follow(path) => path,
    };
    let rt = match knote::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("watch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown = path.display().to_string();
    let result = rt.block_on(tail(&path, false, |line| {
        match line {
            Line::Text(text) => println!("{text}"),
            Line::Truncated => eprintln!("watch: {shown}: file truncated"),
            Line::Replaced => eprintln!("watch: {shown} has been replaced; following the new file"),
        }
        ControlFlow::Continue(())
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("watch: {shown}: {e}");
            ExitCode::FAILURE
        }
    }
}
