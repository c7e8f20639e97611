//! Server CPU time and memory from `/proc`: utime + stime of a process and
//! every descendant (PostgreSQL runs one backend per connection), plus the
//! time of the descendants that already exited (cutime + cstime); and the
//! resident set (VmRSS) of the same processes.

use crate::error::Error;
use std::collections::HashMap;

/// Clock ticks of one process: (ppid, own ticks, reaped children's ticks).
fn stat(pid: u32) -> Result<(u32, u64, u64), Error> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| Error::Unexpected(format!("/proc/{pid}/stat: {text}")))
}

/// Parses a `/proc/PID/stat` line (the command name may hold spaces and
/// parentheses, so fields are counted after the last `)`).
fn parse_stat(text: &str) -> Option<(u32, u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..=17.
    let n = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    let ppid = n(1)?;
    Some((u32::try_from(ppid).ok()?, n(11)? + n(12)?, n(13)? + n(14)?))
}

/// Each root and its live descendants.
fn trees(roots: &[u32]) -> Result<Vec<u32>, Error> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // A process may exit between the listing and the read: skip it.
        if let Ok((ppid, _, _)) = stat(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut all = Vec::new();
    let mut stack = roots.to_vec();
    while let Some(p) = stack.pop() {
        all.push(p);
        stack.extend(children.get(&p).cloned().unwrap_or_default());
    }
    Ok(all)
}

/// Ticks used so far by each root and its live descendants, summed.
pub fn tree_ticks(roots: &[u32]) -> Result<u64, Error> {
    let mut total = 0;
    for &root in roots {
        let (_, _, reaped) = stat(root)?;
        total += reaped;
    }
    for pid in trees(roots)? {
        match stat(pid) {
            Ok((_, ticks, _)) => total += ticks,
            // A root must be there; a descendant may have exited meanwhile.
            Err(e) if roots.contains(&pid) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(total)
}

/// The resident set of each root and its live descendants, summed, in KiB.
pub fn tree_rss_kb(roots: &[u32]) -> Result<u64, Error> {
    let mut total = 0;
    for pid in trees(roots)? {
        match std::fs::read_to_string(format!("/proc/{pid}/status")) {
            Ok(text) => total += parse_rss_kb(&text).unwrap_or(0),
            Err(e) if roots.contains(&pid) => return Err(e.into()),
            Err(_) => {}
        }
    }
    Ok(total)
}

/// `VmRSS:   12345 kB` of a `/proc/PID/status`.
fn parse_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0";
        assert_eq!(parse_stat(line), Some((7, 33, 77)));
    }

    #[test]
    fn reads_its_own_process() {
        assert!(tree_ticks(&[std::process::id()]).is_ok());
        assert!(tree_rss_kb(&[std::process::id()]).is_ok_and(|kb| kb > 0));
    }

    #[test]
    fn parses_the_resident_set() {
        assert_eq!(
            parse_rss_kb("Name:\tx\nVmRSS:\t   6880 kB\nVmData: 1 kB\n"),
            Some(6880)
        );
        assert_eq!(parse_rss_kb("Name:\tx\n"), None);
    }
}
