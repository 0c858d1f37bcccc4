//! What the tool asks of the operating system: CPU affinity (Linux only; elsewhere a no-op),
//! the fd limit, resident memory, and a description of the machine.

use std::io;

use serde::Serialize;

/// The CPUs this process may run on (on systems without affinity: `0..parallelism`).
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size into it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((0..libc::CPU_SETSIZE as usize)
                .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
                .collect())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok((0..n).collect())
    }
}

/// Restricts the calling thread (and the threads and processes it starts later) to `cpus`.
/// Does nothing where affinity is not supported (everywhere but Linux) or `cpus` is empty.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if cpus.is_empty() {
            return Ok(());
        }
        // SAFETY: a zeroed cpu_set_t is an empty set, CPU_SET stays inside it (the index is
        // checked against CPU_SETSIZE), and sched_setaffinity(0) only reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in cpus {
                if cpu >= libc::CPU_SETSIZE as usize {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("CPU {cpu} is beyond CPU_SETSIZE"),
                    ));
                }
                libc::CPU_SET(cpu, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                let err = io::Error::last_os_error();
                return Err(io::Error::new(
                    err.kind(),
                    format!("sched_setaffinity to CPUs {cpus:?}: {err}"),
                ));
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        Ok(())
    }
}

/// Whether [`set_affinity`] does anything on this system.
pub const PINNING_SUPPORTED: bool = cfg!(target_os = "linux");

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    // SAFETY: a zeroed rlimit is a valid value for getrlimit to overwrite.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let mut raised = limit;
        raised.rlim_cur = limit.rlim_max;
        // macOS refuses more than OPEN_MAX for an "unlimited" hard limit: keep the old limit
        // then, which is still a working one.
        // SAFETY: `raised` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur as u64)
}

/// The resident set size of process `pid` in bytes, from `/proc/<pid>/status` (`VmRSS`);
/// `None` where there is no such file (systems without Linux's procfs).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` line of a `/proc/<pid>/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

/// The machine the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Its host name.
    pub hostname: String,
    /// The kernel, as `uname -srm` would say it.
    pub kernel: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// The CPU model from `/proc/cpuinfo`, where there is one.
    pub cpu_model: Option<String>,
}

impl Machine {
    /// Describes this machine.
    pub fn this() -> Machine {
        // SAFETY: a zeroed utsname is valid for uname to fill.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `uts` is a valid, writable utsname.
        let uname_ok = unsafe { libc::uname(&mut uts) } == 0;
        let field = |chars: &[libc::c_char]| {
            let bytes: Vec<u8> = chars
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let (hostname, kernel) = if uname_ok {
            (
                field(&uts.nodename),
                format!(
                    "{} {} {}",
                    field(&uts.sysname),
                    field(&uts.release),
                    field(&uts.machine)
                ),
            )
        } else {
            let err = io::Error::last_os_error();
            ("unknown".to_owned(), format!("unknown (uname: {err})"))
        };
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| parse_cpu_model(&text));
        Machine {
            hostname,
            kernel,
            cpus: allowed_cpus().map_or(1, |cpus| cpus.len()),
            cpu_model,
        }
    }
}

/// The first `model name` of a `/proc/cpuinfo` text.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn cpu_model_line() {
        let info = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU @ 2.0GHz\n";
        assert_eq!(parse_cpu_model(info).as_deref(), Some("Some CPU @ 2.0GHz"));
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn own_rss_and_cpus() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes(std::process::id()).unwrap() > 0);
        }
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
