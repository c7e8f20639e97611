//! The one request path: URL, auth, idempotency keys, timeouts, retries with
//! exponential backoff and full jitter, and problem decoding.

use crate::Error;
use lockstep_api::problem::Problem;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Characters left as they are in a path segment; everything else (`/`
/// included) is percent-encoded, so a key or a name is always one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment.
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// How retryable failures are retried (SPEC §14): up to `attempts` in all,
/// sleeping a random time below `base · 2ⁿ` (at most `max`) between them, or
/// the server's `Retry-After` (at most `max_retry_after`).
///
/// ```
/// use lockstep_client::Retry;
/// use std::time::Duration;
/// let r = Retry { attempts: 3, ..Retry::default() };
/// assert_eq!(r.base, Duration::from_millis(50));
/// assert_eq!(Retry::none().attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included; 1 disables retries.
    pub attempts: u32,
    /// The first backoff ceiling; it doubles with every attempt.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 6,
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl Retry {
    /// One attempt only.
    ///
    /// ```
    /// let c = lockstep_client::Client::builder("http://127.0.0.1:7707")
    ///     .retry(lockstep_client::Retry::none())
    ///     .build()?;
    /// # Ok::<(), lockstep_client::Error>(())
    /// ```
    pub fn none() -> Retry {
        Retry {
            attempts: 1,
            ..Retry::default()
        }
    }

    /// The wait before retry `n` (0-based): full jitter below the doubled
    /// ceiling, or `Retry-After` (capped) plus a little jitter.
    pub(crate) fn delay(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after) + self.base.mul_f64(random_fraction());
        }
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        ceiling.mul_f64(random_fraction())
    }
}

/// Random bytes from the operating system; the standard library's randomly
/// seeded hasher when it has none (keys then stay distinct, if weaker).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, x) in b.iter_mut().enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            *x = h.finish() as u8;
        }
    }
    b
}

/// A uniform fraction in [0, 1).
fn random_fraction() -> f64 {
    (u64::from_le_bytes(random_bytes::<8>()) >> 11) as f64 / (1u64 << 53) as f64
}

/// A fresh idempotency key: 16 random bytes in hex.
pub(crate) fn random_key() -> String {
    random_bytes::<16>().iter().map(|b| format!("{b:02x}")).collect()
}

/// `Retry-After` in seconds (an HTTP date is not honoured: the server sends seconds).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// One request to the API.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: Method,
    /// The path from the server root, already percent-encoded.
    pub path: String,
    /// Query pairs.
    pub query: Vec<(String, String)>,
    /// The JSON body, serialized.
    pub body: Option<Vec<u8>>,
    /// The body's media type (default `application/json`).
    pub content_type: &'static str,
    /// The `Idempotency-Key` (writes get a generated one).
    pub key: Option<String>,
    /// Extra time for an answer that waits on the server (a waiting acquire).
    pub extra_time: Duration,
    /// The retry policy (the client's unless overridden).
    pub retry: Option<Retry>,
}

impl Req {
    /// A read.
    pub fn get(path: String) -> Req {
        Req {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            content_type: "application/json",
            key: None,
            extra_time: Duration::ZERO,
            retry: None,
        }
    }

    /// A write with a generated idempotency key, so a retry never applies twice.
    pub fn write(method: Method, path: String) -> Req {
        Req {
            method,
            key: Some(random_key()),
            ..Req::get(path)
        }
    }

    /// With a JSON body.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Result<Req, Error> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Config(format!("the request body does not serialize: {e}")))?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// With the query pairs of a query struct (`None` members left out).
    pub fn query<Q: Serialize>(mut self, q: &Q) -> Result<Req, Error> {
        let v = serde_json::to_value(q)
            .map_err(|e| Error::Config(format!("the query does not serialize: {e}")))?;
        if let serde_json::Value::Object(m) = v {
            for (k, v) in m {
                let text = match v {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) if s.is_empty() => continue,
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                self.query.push((k, text));
            }
        }
        Ok(self)
    }
}

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct Answer<T> {
    pub status: u16,
    pub body: T,
    /// `Idempotent-Replayed: true`: the stored answer of an earlier attempt.
    pub replayed: bool,
}

/// The transport of a client: one reqwest client and its settings.
#[derive(Debug)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub base: String,
    pub timeout: Option<Duration>,
    pub retry: Retry,
}

impl Transport {
    /// The full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `req` with retries; the parsed 2xx body.
    pub async fn send<T: DeserializeOwned>(&self, req: &Req) -> Result<Answer<T>, Error> {
        let raw = self.send_raw(req).await?;
        let body = if raw.body.is_empty() {
            serde_json::from_slice(b"null")
        } else {
            serde_json::from_slice(&raw.body)
        }
        .map_err(|e| Error::Decode(format!("{} {}: {e}", req.method, req.path)))?;
        Ok(Answer {
            status: raw.status,
            body,
            replayed: raw.replayed,
        })
    }

    /// Sends `req` with retries; the raw 2xx body.
    pub async fn send_raw(&self, req: &Req) -> Result<Answer<Vec<u8>>, Error> {
        let policy = req.retry.unwrap_or(self.retry);
        let attempts = policy.attempts.max(1);
        let mut n = 0;
        loop {
            match self.once(req).await {
                Ok(a) => return Ok(a),
                Err((e, ra)) => {
                    n += 1;
                    if n >= attempts || !e.is_retryable() {
                        return Err(e);
                    }
                    tokio::time::sleep(policy.delay(n - 1, ra)).await;
                }
            }
        }
    }

    /// One attempt: the answer, or the error with the server's `Retry-After`.
    async fn once(&self, req: &Req) -> Result<Answer<Vec<u8>>, (Error, Option<Duration>)> {
        let mut rb = self
            .http
            .request(req.method.clone(), self.url(&req.path))
            .header(reqwest::header::ACCEPT, "application/json");
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        if let Some(body) = &req.body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, req.content_type)
                .body(body.clone());
        }
        if let Some(k) = &req.key {
            rb = rb.header("idempotency-key", k.as_str());
        }
        if let Some(t) = self.timeout {
            rb = rb.timeout(t + req.extra_time);
        }
        let resp = rb.send().await.map_err(|e| (Error::from_reqwest(e), None))?;
        let status = resp.status().as_u16();
        let ra = retry_after(resp.headers());
        let replayed = resp.headers().get("idempotent-replayed") == Some(&HeaderValue::from_static("true"));
        let bytes = resp.bytes().await.map_err(|e| (Error::from_reqwest(e), ra))?;
        if (200..300).contains(&status) {
            return Ok(Answer {
                status,
                body: bytes.to_vec(),
                replayed,
            });
        }
        Err((problem_of(status, &bytes), ra))
    }
}

/// The error of a non-2xx answer.
pub(crate) fn problem_of(status: u16, bytes: &[u8]) -> Error {
    match serde_json::from_slice::<Problem>(bytes) {
        Ok(problem) => Error::Api {
            status,
            problem: Box::new(problem),
        },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let detail: String = text.chars().take(500).collect();
            Error::from_status(
                status,
                if detail.is_empty() {
                    format!("HTTP {status}")
                } else {
                    detail
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_their_ceiling() {
        let r = Retry::default();
        for n in 0..10 {
            assert!(r.delay(n, None) <= r.max);
        }
        let d = r.delay(0, Some(Duration::from_secs(100)));
        assert!(d >= r.max_retry_after && d <= r.max_retry_after + r.base);
    }

    #[test]
    fn keys_are_fresh_hex() {
        let (a, b) = (random_key(), random_key());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn segments_encode_slashes() {
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
