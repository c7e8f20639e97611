//! The "only X does Y" rules of ARCHITECTURE.md, checked over the source tree.
//! Each rule names the files that may do a thing; any other source file that
//! does it fails the test with its path and line.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The lines of non-test source under `crates/*/src` containing `needle`,
/// outside the files `allowed` (paths relative to the workspace, `/`-separated
/// prefixes). Code after a `#[cfg(test)]` line is test code and not checked.
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = workspace();
    let mut found = Vec::new();
    for file in sources(&root.join("crates")) {
        let rel = file
            .strip_prefix(&root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if !rel.contains("/src/") || allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("");
            if code.contains(needle) {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

fn assert_none(rule: &str, found: Vec<String>) {
    assert!(found.is_empty(), "{rule}; found:\n{}", found.join("\n"));
}

#[test]
fn only_the_wire_module_builds_json() {
    let found = offenders(concat!("json", "!"), &["crates/server/src/wire/"])
        .into_iter()
        .filter(|l| l.starts_with("crates/server/"))
        .collect();
    assert_none("JSON shapes are built only in crates/server/src/wire/", found);
}

#[test]
fn only_the_clock_reads_the_time() {
    for needle in ["SystemTime::now", "clock_timestamp()", "system_now()"] {
        assert_none(
            "the clock is read only in crates/store/src/clock.rs",
            offenders(needle, &["crates/store/src/clock.rs", "crates/testkit/"]),
        );
    }
}

#[test]
fn only_error_rs_renders_problems() {
    assert_none(
        "problem+json is rendered only in crates/server/src/error.rs",
        offenders(
            concat!("urn:lockstep:", "problem"),
            &["crates/server/src/error.rs"],
        ),
    );
}

#[test]
fn the_core_does_no_io() {
    for needle in [
        "std::fs",
        "std::net",
        "tokio",
        "SystemTime",
        "Instant::now",
        "getrandom",
        "rand::",
    ] {
        assert_none(
            "crates/core/src performs no I/O, reads no clock, makes no randomness",
            {
                offenders(needle, &[])
                    .into_iter()
                    .filter(|l| l.starts_with("crates/core/src/"))
                    .collect()
            },
        );
    }
}

#[test]
fn the_checker_catches_a_planted_offender() {
    // The rules above pass only if `offenders` can find something: it must
    // see the one place that is allowed to build JSON.
    assert!(!offenders(concat!("json", "!"), &[]).is_empty());
    assert!(!offenders("SystemTime::now", &[]).is_empty());
    assert!(!offenders(concat!("urn:lockstep:", "problem"), &[]).is_empty());
}
