//! One HTTP/1.1 keep-alive connection per client (hyper's connection API, no
//! pool): a closed-loop client sends its next request on the same socket.

use crate::error::Error;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// An answer: status and body.
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
    /// Whether `Idempotent-Replayed: true` came with it.
    pub replayed: bool,
}

impl Answer {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// An error naming the request and this answer.
    pub fn unexpected(&self, what: &str) -> Error {
        Error::Unexpected(format!(
            "{what}: {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        ))
    }
}

/// A keep-alive connection to one server; reconnects after a failure.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// `http://HOST:PORT` (a trailing `/` is allowed) as a socket address.
pub fn parse_base(url: &str) -> Result<SocketAddr, Error> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::Usage(format!("{url:?}: only http:// URLs")))?;
    rest.trim_end_matches('/')
        .parse()
        .map_err(|e| Error::Usage(format!("{url:?}: {e}")))
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Conn {
    /// Opens the connection.
    pub async fn connect(addr: SocketAddr) -> Result<Self, Error> {
        let host = HeaderValue::from_str(&addr.to_string()).map_err(|e| Error::Http(e.to_string()))?;
        let sender = Some(Self::open(addr).await?);
        Ok(Conn { addr, host, sender })
    }

    async fn open(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Error> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        tokio::spawn(async move {
            // Ends when the server closes or the sender is dropped; the next
            // request then fails and reconnects.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends one request with a JSON body (or none) and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(&'static str, &str)],
    ) -> Result<Answer, Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Http(e.to_string()))?;
        // Taken out while in use: a failed exchange leaves no sender, and the
        // next request reconnects.
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => Self::open(self.addr).await?,
        };
        sender.ready().await.map_err(http_error)?;
        let answer = sender.send_request(req).await.map_err(http_error)?;
        let status = answer.status();
        let replayed = answer
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes() == b"true");
        let body = answer.into_body().collect().await.map_err(http_error)?.to_bytes();
        self.sender = Some(sender);
        Ok(Answer {
            status,
            body,
            replayed,
        })
    }
}

fn http_error(e: hyper::Error) -> Error {
    Error::Http(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("c/1 x"), "c%2F1%20x");
        assert_eq!(segment("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn bases_parse() {
        assert!(parse_base("http://127.0.0.1:7707/").is_ok());
        assert!(parse_base("https://127.0.0.1:7707").is_err());
    }
}
