//! System calls per operation from `strace -c -f` summaries: two runs of the same server, one
//! with no operations (set-up and tear-down only) and one with a fixed count; the difference
//! divided by the count is the cost of one operation (`benches/syscalls.sh`'s method).

use std::collections::BTreeMap;

/// Calls by system call name, from the table `strace -c` writes.
pub type Calls = BTreeMap<String, u64>;

/// Reads a `strace -c` table: data rows are `% time, seconds, usecs/call, calls, [errors,]
/// syscall`; the header, the rules and the `total` row are skipped. A name that appears twice
/// (one table per personality) is summed.
pub fn parse_summary(text: &str) -> Calls {
    let mut calls = Calls::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 || fields.last() == Some(&"total") {
            continue;
        }
        let Ok(n) = fields[3].parse::<u64>() else {
            continue;
        };
        if fields[0].parse::<f64>().is_err() {
            continue;
        }
        *calls
            .entry(fields[fields.len() - 1].to_owned())
            .or_default() += n;
    }
    calls
}

/// The calls per operation: `(full - base) / count`, by name (names whose difference is under
/// 0.005 per operation left out), and their total.
pub fn per_operation(base: &Calls, full: &Calls, count: u64) -> (f64, BTreeMap<String, f64>) {
    let mut each = BTreeMap::new();
    for (name, &n) in full {
        let before = base.get(name).copied().unwrap_or(0);
        let per = (n as f64 - before as f64) / count.max(1) as f64;
        if per >= 0.005 {
            each.insert(name.clone(), per);
        }
    }
    (each.values().sum(), each)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.10    0.012000           3      4000           write
 40.00    0.010000           2      4100       100 read
 10.00    0.002000           1      1500           epoll_wait
  4.90    0.001000          10        64           accept4
------ ----------- ----------- --------- --------- ----------------
100.00    0.025000           2      9664       100 total
";

    #[test]
    fn parses_rows_with_and_without_errors() {
        let calls = parse_summary(TABLE);
        assert_eq!(calls.len(), 4);
        assert_eq!(calls["write"], 4000);
        assert_eq!(calls["read"], 4100);
        assert_eq!(calls["accept4"], 64);
        assert!(!calls.contains_key("total"));
    }

    #[test]
    fn sums_repeated_names_and_ignores_noise() {
        let text = format!("{TABLE}strace: Process 12 attached\nSystem call usage summary for 32 bit mode:\n  1.00 0.0001 1 10 write\n");
        assert_eq!(parse_summary(&text)["write"], 4010);
    }

    #[test]
    fn per_operation_subtracts_the_setup() {
        let base = parse_summary(
            "  10.0 0.1 1 64 accept4\n 10.0 0.1 1 100 read\n 10.0 0.1 1 36 write\n 1.0 0.1 1 3 mmap\n",
        );
        let full = parse_summary(TABLE);
        let (total, each) = per_operation(&base, &full, 2000);
        assert_eq!(each["read"], 2.0);
        assert_eq!(each["write"], (4000.0 - 36.0) / 2000.0);
        assert_eq!(each["epoll_wait"], 0.75);
        assert!(!each.contains_key("accept4"));
        assert!((total - (2.0 + 1.982 + 0.75)).abs() < 1e-9);
    }
}
