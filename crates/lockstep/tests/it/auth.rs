//! End to end through the real binary: start-up rules (SPEC §11), the config
//! file and its overrides, `lockstep token new`, SIGHUP reloads of tokens and
//! of the TLS certificate, HTTPS with ALPN, secrets kept out of the log, and
//! PostgreSQL NOTICEs kept out of it too.

#![allow(clippy::unwrap_used)]

use crate::common;

use http_body_util::BodyExt;
use lockstep_server::auth::secret_sha256_hex;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A `lockstep serve` child process with its log.
struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// `scheme://127.0.0.1:PORT` (a wildcard address is reached over loopback).
    url: String,
    port: u16,
}

impl Proc {
    fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the log has `needle` in a line after the first `skip` lines.
    fn wait_log(&self, skip: usize, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<String> = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            if let Some(l) = lines.iter().skip(skip).find(|l| l.contains(needle)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}; the log:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_len(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lockstep() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockstep"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LOCKSTEP_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_BACKTRACE", "0");
    cmd
}

/// Starts `lockstep serve ARGS`; `Err` holds the exit status and the output
/// of a server that stopped before listening.
fn serve(args: &[&str], envs: &[(&str, &str)]) -> Result<Proc, (Option<ExitStatus>, String)> {
    let mut cmd = lockstep();
    cmd.arg("serve").args(args);
    cmd.env("RUST_LOG", "debug");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<Option<String>>();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut l) = log.lock() {
                    l.push(line.clone());
                }
                let _ = tx.send(Some(line));
            }
            let _ = tx.send(None);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left);
        let output = || log.lock().map(|l| l.join("\n")).unwrap_or_default();
        match line {
            Ok(Some(l)) if l.contains("lockstep listening on ") => {
                let url = l
                    .split("listening on ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap()
                    .replace("0.0.0.0", "127.0.0.1");
                let port = url.rsplit(':').next().unwrap().parse().unwrap();
                return Ok(Proc {
                    child,
                    log,
                    url,
                    port,
                });
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                let status = match child.wait_timeout() {
                    Some(s) => Some(s),
                    None => {
                        let _ = child.kill();
                        child.wait().ok()
                    }
                };
                return Err((status, output()));
            }
        }
    }
}

trait WaitTimeout {
    fn wait_timeout(&mut self) -> Option<ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn token_table(name: &str, role: &str, ns: &str, secret: &str) -> String {
    format!(
        "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nnamespaces = [\"{ns}\"]\nsecret_sha256 = \"{}\"\n",
        secret_sha256_hex(secret)
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

async fn get(url: &str, secret: Option<&str>) -> u16 {
    let mut req = crate::common::reqwest_client().get(url);
    if let Some(s) = secret {
        req = req.bearer_auth(s);
    }
    req.send().await.unwrap().status().as_u16()
}

#[test]
fn start_up_rules_and_impossible_values() {
    let dir = common::tempdir();
    let db = common::sqlite_db(&dir);
    let refused = |args: &[&str], needle: &str| {
        let (status, out) = match serve(args, &[]) {
            Ok(p) => panic!("started: {}", p.output()),
            Err(e) => e,
        };
        assert!(status.is_some_and(|s| !s.success()), "{status:?}");
        assert!(out.contains(needle), "expected {needle:?} in:\n{out}");
    };
    // No tokens on a network address: refused, with how to make one.
    refused(
        &["--listen", "0.0.0.0:0", "--database", &db],
        "lockstep token new",
    );
    refused(
        &["--listen", "127.0.0.1:0", "--database", &db, "--pool-size", "0"],
        "pool size must be between 1 and 1024",
    );
    refused(
        &["--listen", "localhost", "--database", &db],
        "expected HOST:PORT",
    );
    refused(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--tls-cert",
            "x.pem",
        ],
        "--tls-cert needs --tls-key",
    );
    let cfg = dir.path().join("bad.toml");
    write(&cfg, "listen = \"127.0.0.1:0\"\nlisten_backlog = 5\n");
    refused(
        &["--config", cfg.to_str().unwrap()],
        "unknown field `listen_backlog`",
    );
    write(&cfg, "[limits]\npage_size_default = 5000\n");
    refused(
        &["--config", cfg.to_str().unwrap(), "--database", &db],
        "limits.page_size_default (5000) must not be larger than limits.page_size_max (1000)",
    );

    // A host name is resolved; with no tokens, open mode warns.
    let p = serve(&["--listen", "localhost:0", "--database", &db], &[]).unwrap();
    assert!(p.url.starts_with("http://127.0.0.1:") || p.url.starts_with("http://[::1]:"));
    assert!(p.output().contains("open mode"), "{}", p.output());
}

#[test]
fn flags_and_environment_override_the_file() {
    let dir = common::tempdir();
    let from_file = format!("sqlite:{}", dir.path().join("file.db").display());
    let from_flag = format!("sqlite:{}", dir.path().join("flag.db").display());
    let cfg = dir.path().join("lockstep.toml");
    write(
        &cfg,
        &format!("listen = \"127.0.0.1:1\"\ndatabase = \"{from_file}\"\npool_size = 0\n"),
    );
    let cfg = cfg.to_str().unwrap();
    // The file alone: pool_size = 0 is refused.
    match serve(&["--config", cfg], &[]) {
        Ok(p) => panic!("started: {}", p.output()),
        Err((_, out)) => assert!(out.contains("pool size"), "{out}"),
    }
    // Flags win over the file: listen, database, pool size.
    let p = serve(
        &[
            "--config",
            cfg,
            "--listen",
            "127.0.0.1:0",
            "--database",
            &from_flag,
            "--pool-size",
            "2",
        ],
        &[],
    )
    .unwrap();
    assert!(p.output().contains("flag.db"), "{}", p.output());
    drop(p);
    // So do LOCKSTEP_* variables.
    let p = serve(
        &["--config", cfg],
        &[
            ("LOCKSTEP_LISTEN", "127.0.0.1:0"),
            ("LOCKSTEP_POOL_SIZE", "3"),
            ("LOCKSTEP_DATABASE", &from_flag),
        ],
    )
    .unwrap();
    assert!(p.output().contains("flag.db"), "{}", p.output());
}

#[tokio::test]
async fn token_new_then_serve_on_a_network_address() {
    let out = lockstep()
        .args([
            "token", "new", "--name", "shop-api", "--role", "writer", "--ns", "shop-*", "--ns", "billing",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (secret, table) = stdout.split_once('\n').unwrap();
    assert!(secret.starts_with("lst_") && secret.len() == 4 + 43, "{secret:?}");
    assert!(secret[4..]
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    assert_eq!(
        table.trim(),
        format!(
            "[[tokens]]\nname = \"shop-api\"\nrole = \"writer\"\nnamespaces = [\"shop-*\", \"billing\"]\nsecret_sha256 = \"{}\"",
            secret_sha256_hex(secret)
        )
    );
    // Bad input is refused, not printed.
    let bad = lockstep()
        .args([
            "token", "new", "--name", "system", "--role", "writer", "--ns", "*",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success() && bad.stdout.is_empty());

    // The printed table, pasted into a config file, serves on 0.0.0.0.
    let dir = common::tempdir();
    let cfg = dir.path().join("lockstep.toml");
    write(
        &cfg,
        &format!(
            "listen = \"0.0.0.0:0\"\ndatabase = \"{}\"\n\n{table}",
            common::sqlite_db(&dir)
        ),
    );
    let p = serve(&["--config", cfg.to_str().unwrap()], &[]).unwrap();
    assert!(
        p.output().contains("terminate TLS in front"),
        "no TLS warning:\n{}",
        p.output()
    );
    let records = format!("{}/v1/ns/shop-eu/records/k", p.url);
    assert_eq!(get(&records, None).await, 401);
    assert_eq!(get(&records, Some("lst_wrong")).await, 401);
    assert_eq!(get(&records, Some(secret)).await, 404);
    assert_eq!(
        get(&format!("{}/v1/ns/other/records/k", p.url), Some(secret)).await,
        403
    );
    assert_eq!(get(&format!("{}/healthz", p.url), None).await, 200);
    assert_eq!(get(&format!("{}/metrics", p.url), None).await, 401);
    assert_eq!(get(&format!("{}/metrics", p.url), Some(secret)).await, 200);
    let put = crate::common::reqwest_client()
        .put(&records)
        .bearer_auth(secret)
        .json(&serde_json::json!({"value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let changes: serde_json::Value = crate::common::reqwest_client()
        .get(format!("{}/v1/ns/shop-eu/changes", p.url))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changes["changes"][0]["actor"], "shop-api");
    // `lockstep bench --token` writes with it (LOCKSTEP_TOKEN works too).
    let bench = lockstep()
        .args([
            "bench",
            "--url",
            &p.url,
            "--ns",
            "shop-bench",
            "--seconds",
            "1",
            "--clients",
            "2",
        ])
        .args(["--scenarios", "records"])
        .env("LOCKSTEP_TOKEN", secret)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&bench.stdout);
    assert!(bench.status.success() && text.contains("errors 0"), "{text}");
    // The secret never reaches the log (at debug level).
    let log = p.output();
    assert!(!log.contains(secret), "the secret is in the log:\n{log}");
    assert!(
        !log.contains(&secret[4..20]),
        "part of the secret is in the log:\n{log}"
    );
}

#[tokio::test]
async fn sighup_reloads_tokens_and_keeps_them_when_the_file_is_bad() {
    let dir = common::tempdir();
    let cfg = dir.path().join("lockstep.toml");
    let head = format!(
        "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\n\n",
        common::sqlite_db(&dir)
    );
    let (keep, revoke, added) = ("lst_keep-secret", "lst_revoked-secret", "lst_added-secret");
    write(
        &cfg,
        &format!(
            "{head}{}{}",
            token_table("keep", "reader", "*", keep),
            token_table("gone", "reader", "*", revoke)
        ),
    );
    let p = serve(&["--config", cfg.to_str().unwrap()], &[]).unwrap();
    let url = format!("{}/v1/ns/app/records/k", p.url);
    assert_eq!(get(&url, Some(revoke)).await, 404);
    assert_eq!(get(&url, Some(added)).await, 401);

    // Revoke one token and add another; no restart.
    write(
        &cfg,
        &format!(
            "{head}{}{}",
            token_table("keep", "reader", "*", keep),
            token_table("new", "reader", "*", added)
        ),
    );
    let at = p.log_len();
    p.hangup();
    p.wait_log(at, "tokens reloaded");
    assert_eq!(get(&url, Some(revoke)).await, 401);
    assert_eq!(get(&url, Some(added)).await, 404);
    assert_eq!(get(&url, Some(keep)).await, 404);

    // A file that does not parse keeps the tokens in force, and says why,
    // without quoting the line (here a pasted secret).
    write(
        &cfg,
        &format!("{head}[[tokens]]\nname = \"x\"\nsecret = \"{revoke}\"\n"),
    );
    let at = p.log_len();
    p.hangup();
    let line = p.wait_log(at, "tokens in force stay");
    assert!(line.contains("unknown field `secret`"), "{line}");
    assert_eq!(get(&url, Some(added)).await, 404);
    assert_eq!(get(&url, Some(revoke)).await, 401);
    let log = p.output();
    for s in [keep, revoke, added] {
        assert!(!log.contains(s), "{s} is in the log:\n{log}");
    }
}

// ---------------------------------------------------------------------------
// TLS.

struct Cert {
    der: CertificateDer<'static>,
}

fn make_cert(dir: &Path) -> Cert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    write(&dir.join("cert.pem"), &ck.cert.pem());
    write(&dir.join("key.pem"), &ck.key_pair.serialize_pem());
    Cert {
        der: ck.cert.der().clone(),
    }
}

fn client_config(trusted: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let mut c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

async fn tls_connect(
    port: u16,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

fn request(path: &str, secret: &str) -> hyper::Request<http_body_util::Empty<hyper::body::Bytes>> {
    hyper::Request::get(format!("https://localhost{path}"))
        .header("authorization", format!("Bearer {secret}"))
        .body(http_body_util::Empty::new())
        .unwrap()
}

#[tokio::test]
async fn https_with_alpn_and_a_certificate_renewed_on_sighup() {
    let dir = common::tempdir();
    let first = make_cert(dir.path());
    let secret = "lst_tls-secret";
    let cfg = dir.path().join("lockstep.toml");
    write(
        &cfg,
        &format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n{}",
            common::sqlite_db(&dir),
            dir.path().join("cert.pem").display(),
            dir.path().join("key.pem").display(),
            token_table("ops", "admin", "*", secret)
        ),
    );
    let p = serve(&["--config", cfg.to_str().unwrap()], &[]).unwrap();
    assert!(p.url.starts_with("https://"), "{}", p.url);

    // HTTP/2, chosen by ALPN.
    let tls = tls_connect(p.port, client_config(&first.der, &[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let io = hyper_util::rt::TokioIo::new(tls);
    let (mut h2, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = h2.send_request(request("/v1/info", secret)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["backend"], "sqlite");

    // HTTP/1.1 when the client offers only that.
    let tls = tls_connect(p.port, client_config(&first.der, &[b"http/1.1"]))
        .await
        .unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = h1
        .send_request(request("/v1/ns/app/records/k", secret))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = crate::common::reqwest_client()
        .get(format!("http://127.0.0.1:{}/healthz", p.port))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // A renewed certificate is served after SIGHUP; the old one no longer is.
    let second = make_cert(dir.path());
    let at = p.log_len();
    p.hangup();
    p.wait_log(at, "TLS certificate reloaded");
    assert!(tls_connect(p.port, client_config(&first.der, &[b"http/1.1"]))
        .await
        .is_err());
    let tls = tls_connect(p.port, client_config(&second.der, &[b"http/1.1"]))
        .await
        .unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = h1.send_request(request("/v1/info", secret)).await.unwrap();
    assert_eq!(resp.status(), 200);

    // A broken key file keeps the certificate in force.
    write(&dir.path().join("key.pem"), "not a key");
    let at = p.log_len();
    p.hangup();
    p.wait_log(at, "TLS certificate in force stays");
    assert!(tls_connect(p.port, client_config(&second.der, &[b"http/1.1"]))
        .await
        .is_ok());
    assert!(!p.output().contains(secret));

    // SIGTERM stops a TLS server cleanly too.
    let mut p = p;
    let status = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Wait without blocking the runtime: the client connections above must
    // be able to see the server's GOAWAY and close.
    let mut exit = None;
    for _ in 0..500 {
        if let Ok(Some(s)) = p.child.try_wait() {
            exit = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}\n{}", p.output());
}

#[tokio::test]
async fn postgres_notices_stay_out_of_the_info_log() {
    let Some(pg) = common::fresh_pg().await else {
        return;
    };
    // The second start finds the schema there: PostgreSQL answers NOTICEs
    // ("… already exists, skipping") that must not be logged at INFO.
    for _ in 0..2 {
        let p = serve(
            &[
                "--listen",
                "127.0.0.1:0",
                "--database",
                &pg.url,
                "--pool-size",
                "2",
            ],
            &[("RUST_LOG", "info")],
        )
        .unwrap();
        let log = p.output();
        assert!(!log.contains("NOTICE"), "{log}");
    }
}
