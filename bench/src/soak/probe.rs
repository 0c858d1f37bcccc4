//! What the soak reads about its own process: open file descriptors, resident memory and live
//! child processes. Linux has them in `/proc`; elsewhere each reads as unknown (`Ok(None)`).

use std::collections::BTreeMap;
use std::io;

/// The open file descriptors of this process (`/proc/self/fd`), each with what it is (the
/// link's target: a path, `socket:[…]`, `anon_inode:[eventpoll]`, …), or `None` where there
/// is no such directory.
#[cfg(target_os = "linux")]
pub(crate) fn fd_table() -> io::Result<Option<BTreeMap<u32, String>>> {
    // Listed first, and the listing closed, so that its own descriptor is gone when the
    // links are read.
    let listed = std::fs::read_dir("/proc/self/fd")?
        .map(|entry| Ok(entry?.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut table = BTreeMap::new();
    for name in listed {
        let Some(fd) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            Ok(target) => {
                table.insert(fd, target.to_string_lossy().into_owned());
            }
            // The listing's own descriptor, closed since (or one another thread closed).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(table))
}

/// Open file descriptors: unknown outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn fd_table() -> io::Result<Option<BTreeMap<u32, String>>> {
    Ok(None)
}

/// How many file descriptors this process has open, if known.
pub(crate) fn open_fds() -> io::Result<Option<usize>> {
    Ok(fd_table()?.map(|table| table.len()))
}

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
#[cfg(target_os = "linux")]
pub(crate) fn rss_bytes() -> io::Result<Option<u64>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    match crate::sys::parse_vm_rss(&status) {
        Some(bytes) => Ok(Some(bytes)),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/self/status has no readable VmRSS line",
        )),
    }
}

/// Resident set size: unknown outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn rss_bytes() -> io::Result<Option<u64>> {
    Ok(None)
}

/// Child processes of this process still in the process table, zombies included: the
/// processes of `/proc/*/stat` whose parent is this one.
#[cfg(target_os = "linux")]
pub(crate) fn live_children() -> io::Result<Option<usize>> {
    let me = std::process::id();
    let mut children = 0;
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                if parse_stat_ppid(&stat) == Some(me) {
                    children += 1;
                }
            }
            // The process ended between the listing and the read: it is no child of ours
            // any more (a child of ours that ended stays, as a zombie, until it is reaped).
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(children))
}

/// Live child processes: unknown outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn live_children() -> io::Result<Option<usize>> {
    Ok(None)
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses (hence the last `)`).
#[cfg(any(target_os = "linux", test))]
pub(crate) fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ppid_survives_odd_command_names() {
        assert_eq!(parse_stat_ppid("42 (echo) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("42 (a) b (c)) Z 9 1 1"), Some(9));
        assert_eq!(parse_stat_ppid("42 (echo"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured_on_linux() {
        assert!(open_fds().unwrap().unwrap() >= 3);
        assert!(rss_bytes().unwrap().unwrap() > 0);
        let mut child = Guard(
            std::process::Command::new("sleep")
                .arg("5")
                .spawn()
                .unwrap(),
        );
        assert!(live_children().unwrap().unwrap() >= 1);
        child.0.kill().unwrap();
        child.0.wait().unwrap();
    }

    /// Kills and reaps the child if the test fails before it does.
    #[cfg(target_os = "linux")]
    struct Guard(std::process::Child);
    #[cfg(target_os = "linux")]
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                self.0.kill().ok();
                self.0.wait().ok();
            }
        }
    }
}
