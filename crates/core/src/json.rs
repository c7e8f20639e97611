//! JSON limits: nesting depth measured explicitly, and serialized value size.

use crate::{Error, Limits};
use serde_json::Value;

/// The deepest container nesting in raw JSON text (`[[1]]` is 2, `1` is 0),
/// ignoring brackets inside strings. Runs before parsing so a hostile body cannot
/// exhaust the parser's stack.
pub fn text_depth(text: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The container nesting depth of a parsed value (`[[1]]` is 2, `1` is 0).
pub fn value_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks a record value against the depth and size limits; returns its
/// serialized length.
pub fn check_value(value: &Value, limits: &Limits) -> Result<usize, Error> {
    if value_depth(value) > limits.json_depth_max {
        return Err(Error::invalid(format!(
            "value nesting is deeper than {}",
            limits.json_depth_max
        )));
    }
    let len = serialized_len(value);
    if len > limits.value_bytes_max {
        return Err(Error::PayloadTooLarge(format!(
            "value is {len} bytes serialized, the limit is {}",
            limits.value_bytes_max
        )));
    }
    Ok(len)
}

/// Length of the compact serialization of `value`, without allocating it.
fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    // Writing a Value into an infallible sink cannot fail.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depths() {
        assert_eq!(text_depth(b"1"), 0);
        assert_eq!(text_depth(br#"[[1],{"a":"[[[["}]"#), 2);
        assert_eq!(text_depth(br#"["\"[["]"#), 1);
        assert_eq!(value_depth(&json!(1)), 0);
        assert_eq!(value_depth(&json!({"a": [1, {"b": []}]})), 4);
    }

    #[test]
    fn value_limits() {
        let l = Limits::default();
        assert_eq!(check_value(&json!("ab"), &l), Ok(4));
        let mut deep = json!(1);
        for _ in 0..128 {
            deep = json!([deep]);
        }
        assert!(check_value(&deep, &l).is_ok());
        assert!(check_value(&json!([deep]), &l).is_err());
        let big = Value::String("x".repeat(l.value_bytes_max));
        assert!(matches!(check_value(&big, &l), Err(Error::PayloadTooLarge(_))));
    }
}
