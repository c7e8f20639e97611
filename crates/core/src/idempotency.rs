//! Idempotency keys (SPEC §9): one entry per (scope, key) that is `started` by
//! its first request (owner token, lock) and `completed` with the stored
//! response. The HTTP `Idempotency-Key` header and the application store of
//! seeds/002 share these semantics.

use crate::{Error, Millis};
use serde::{Deserialize, Serialize};

/// A stored response: what a replay answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// `ETag`, when the answer had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The body (JSON text).
    pub body: String,
}

/// An idempotency entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemEntry {
    /// The scope (for HTTP: token name, method and path; for the app store: its scope).
    pub scope: String,
    /// The key.
    pub key: String,
    /// The request fingerprint.
    pub fingerprint: String,
    /// The current owner's token.
    pub token: String,
    /// The stored response once completed.
    pub response: Option<StoredResponse>,
    /// While started: the owner's lock runs out then, and another caller may take over.
    pub locked_until: Millis,
    /// When the entry is forgotten.
    pub expires_at: Millis,
}

/// A `begin` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// Request fingerprint.
    pub fingerprint: String,
    /// A fresh owner token (made by the shell).
    pub token: String,
    /// How long the owner holds the key before a takeover.
    pub lock_ms: u64,
    /// How long the entry is kept.
    pub ttl_ms: u64,
}

/// What `begin` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Began {
    /// The caller owns the key now (new, expired, or taken over).
    Started(IdemEntry),
    /// Completed before with the same fingerprint: replay this.
    Replay(StoredResponse),
}

/// Begin semantics.
pub fn begin(
    existing: Option<&IdemEntry>,
    scope: &str,
    key: &str,
    req: &Begin,
    now: Millis,
) -> Result<Began, Error> {
    // The fingerprint is stored and compared as a column.
    crate::names::validate_text("fingerprint", &req.fingerprint)?;
    let started = || {
        Began::Started(IdemEntry {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint: req.fingerprint.clone(),
            token: req.token.clone(),
            response: None,
            locked_until: now.plus_ms(req.lock_ms),
            expires_at: now.plus_ms(req.ttl_ms),
        })
    };
    let Some(e) = existing.filter(|e| e.expires_at > now) else {
        return Ok(started());
    };
    if e.fingerprint != req.fingerprint {
        return Err(Error::IdempotencyKeyReused(format!(
            "idempotency key {key:?} was used with a different request"
        )));
    }
    match &e.response {
        Some(r) => Ok(Began::Replay(r.clone())),
        None if e.locked_until > now => Err(Error::IdempotencyKeyInUse(format!(
            "idempotency key {key:?} is still being processed; retry"
        ))),
        None => Ok(started()),
    }
}

/// Checks that `token` still owns the started entry.
pub fn check_owner(existing: Option<&IdemEntry>, token: &str, now: Millis) -> Result<(), Error> {
    match existing {
        Some(e) if e.token == token && e.response.is_none() && e.expires_at > now => Ok(()),
        _ => Err(Error::IdempotencyKeyInUse(
            "this request no longer owns its idempotency key (it was taken over); retry".into(),
        )),
    }
}

/// Complete semantics: the owner stores the response.
pub fn complete(
    existing: Option<&IdemEntry>,
    token: &str,
    response: StoredResponse,
    now: Millis,
) -> Result<IdemEntry, Error> {
    match existing {
        Some(e) if e.token == token && e.response.is_none() && e.expires_at > now => Ok(IdemEntry {
            response: Some(response),
            ..e.clone()
        }),
        _ => Err(Error::LeaseLost(
            "the token does not own this idempotency key (any more)".into(),
        )),
    }
}

/// Release semantics: the owner gives the key up so a retry may run.
pub fn release(existing: Option<&IdemEntry>, token: &str, now: Millis) -> Result<(), Error> {
    match existing {
        Some(e) if e.token == token && e.response.is_none() && e.expires_at > now => Ok(()),
        _ => Err(Error::LeaseLost(
            "the token does not own this idempotency key (any more)".into(),
        )),
    }
}

/// Parses an `Idempotency-Key` header: an RFC 8941 string (`"abc"`, with `\"`
/// and `\\` escapes) or the bare form Stripe's clients send (visible ASCII, no
/// spaces or quotes); 1..=255 characters either way.
pub fn parse_key(header: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid(format!("malformed Idempotency-Key: {why}"));
    let key = if let Some(inner) = header.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| bad("unterminated string"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\')) => out.push(e),
                    _ => return Err(bad("bad escape")),
                },
                '"' => return Err(bad("unescaped quote")),
                ' '..='~' => out.push(c),
                _ => return Err(bad("characters must be printable ASCII")),
            }
        }
        out
    } else {
        if !header.chars().all(|c| c.is_ascii_graphic() && c != '"') {
            return Err(bad("a bare key is visible ASCII without spaces or quotes"));
        }
        header.to_owned()
    };
    if key.is_empty() || key.len() > 255 {
        return Err(bad("it must have 1..=255 characters"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fp: &str, token: &str) -> Begin {
        Begin {
            fingerprint: fp.into(),
            token: token.into(),
            lock_ms: 100,
            ttl_ms: 1000,
        }
    }

    fn started(b: Result<Began, Error>) -> IdemEntry {
        match b {
            Ok(Began::Started(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lifecycle() {
        let e = started(begin(None, "s", "k", &req("f", "A"), Millis(0)));
        assert!(matches!(
            begin(Some(&e), "s", "k", &req("f", "B"), Millis(10)),
            Err(Error::IdempotencyKeyInUse(_))
        ));
        assert!(matches!(
            begin(Some(&e), "s", "k", &req("g", "B"), Millis(10)),
            Err(Error::IdempotencyKeyReused(_))
        ));
        // Past the lock a retry takes over; the stale owner can no longer complete.
        let b = started(begin(Some(&e), "s", "k", &req("f", "B"), Millis(100)));
        let resp = StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            etag: None,
            body: "{}".into(),
        };
        assert!(complete(Some(&b), "A", resp.clone(), Millis(101)).is_err());
        let done = complete(Some(&b), "B", resp.clone(), Millis(101)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            begin(Some(&done), "s", "k", &req("f", "C"), Millis(200)),
            Ok(Began::Replay(resp))
        );
        assert!(matches!(
            begin(Some(&done), "s", "k", &req("x", "C"), Millis(200)),
            Err(Error::IdempotencyKeyReused(_))
        ));
        // Expired entries are forgotten.
        assert!(matches!(
            begin(Some(&done), "s", "k", &req("x", "C"), Millis(1100)),
            Ok(Began::Started(_))
        ));
        assert!(release(Some(&b), "B", Millis(102)).is_ok());
        assert!(release(Some(&b), "A", Millis(102)).is_err());
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key("\"8e03978e\"").as_deref(), Ok("8e03978e"));
        assert_eq!(parse_key("\"a\\\"b\"").as_deref(), Ok("a\"b"));
        assert_eq!(parse_key("req_123-abc").as_deref(), Ok("req_123-abc"));
        for bad in [
            "",
            "\"\"",
            "\"abc",
            "a b",
            "a\"b",
            "\"a\\nb\"",
            &"x".repeat(256),
            "é",
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
        assert!(parse_key(&"x".repeat(255)).is_ok());
    }
}
