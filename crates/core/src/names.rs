//! Validation of namespaces and keys (SPEC §2).

use crate::{Error, Limits};

/// Checks a namespace name: `[a-z0-9][a-z0-9._-]{0,62}`.
pub fn validate_namespace(ns: &str) -> Result<(), Error> {
    let bytes = ns.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .iter()
        .skip(1)
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && bytes.len() <= 63 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "namespace {ns:?} must match [a-z0-9][a-z0-9._-]{{0,62}}"
        )))
    }
}

/// Checks a key, name or id: 1..=limit bytes of UTF-8 without control characters.
pub fn validate_key(key: &str, limits: &Limits) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::invalid("key must not be empty"));
    }
    if key.len() > limits.key_bytes_max {
        return Err(Error::invalid(format!(
            "key is {} bytes, the limit is {}",
            key.len(),
            limits.key_bytes_max
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid("key must not contain control characters"));
    }
    Ok(())
}

/// The largest revision there can be: revisions are stored as signed 64-bit
/// integers by both backends.
pub const REVISION_MAX: u64 = i64::MAX as u64;

/// Checks a number given where a revision (a version, a fence, a cursor
/// position) is expected: larger than any revision can be is a 400.
pub fn validate_revision(what: &str, n: u64) -> Result<u64, Error> {
    if n > REVISION_MAX {
        return Err(Error::invalid(format!(
            "{what} {n} cannot be a revision (at most {REVISION_MAX})"
        )));
    }
    Ok(n)
}

/// Checks a string that is stored or compared as a column (a lease holder, a
/// fingerprint, a prefix): no control characters, as names (SPEC §2). JSON
/// values may hold any character; these may not.
pub fn validate_text(what: &str, s: &str) -> Result<(), Error> {
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        for ok in ["a", "shop-1", "a.b_c", &"x".repeat(63)] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "-a", "a b", "a/b", &"x".repeat(64), "é"] {
            assert!(validate_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        let l = Limits::default();
        for ok in ["a", "a/b:c", "ünï", &"x".repeat(512)] {
            assert!(validate_key(ok, &l).is_ok(), "{ok}");
        }
        for bad in ["", "a\nb", "\u{7f}", &"x".repeat(513)] {
            assert!(validate_key(bad, &l).is_err(), "{bad:?}");
        }
    }
}

/// The smallest string greater than every string that starts with `prefix`, for a
/// range scan in byte (= code point) order; `None` when no such string exists.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            c => char::from_u32(c + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod bound_tests {
    use super::prefix_upper_bound;

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }
}
