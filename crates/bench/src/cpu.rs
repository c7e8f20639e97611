//! Server CPU time from `/proc`: utime + stime of a process and every
//! descendant (PostgreSQL runs one backend per connection), plus the time of
//! the descendants that already exited (cutime + cstime).

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

/// Ticks used so far by each root and its live descendants, summed.
pub fn tree_ticks(roots: &[u32]) -> Result<u64, Error> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut own: HashMap<u32, u64> = HashMap::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // A process may exit between the listing and the read: skip it.
        if let Ok((ppid, ticks, _)) = stat(pid) {
            children.entry(ppid).or_default().push(pid);
            own.insert(pid, ticks);
        }
    }
    let mut total = 0;
    for &root in roots {
        let (_, ticks, reaped) = stat(root)?;
        total += ticks + reaped;
        let mut stack = children.get(&root).cloned().unwrap_or_default();
        while let Some(p) = stack.pop() {
            total += own.get(&p).copied().unwrap_or(0);
            stack.extend(children.get(&p).cloned().unwrap_or_default());
        }
    }
    Ok(total)
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
    }
}
