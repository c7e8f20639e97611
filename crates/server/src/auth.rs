//! Authentication and roles (SPEC §11): bearer tokens from the config file,
//! stored only as SHA-256 digests and compared in constant time, and the one
//! middleware that checks every request against its route's [`Access`] rule.

use crate::extract::path_param;
use crate::extract::Caller;
use crate::{ApiError, AppState};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lockstep_core::capability::{self, CapOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// The prefix of every secret `lockstep token new` makes (recognizable in
/// secret scanners and logs).
pub const SECRET_PREFIX: &str = "lst_";

/// The actor name of requests in open mode (no tokens configured).
pub const ANONYMOUS: &str = "anonymous";

/// Names a token may not take: they already mean something in the change log.
const RESERVED_NAMES: &[&str] = &[ANONYMOUS, "system"];

/// What a token may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads (GET) in its namespaces.
    Reader,
    /// Reads and writes in its namespaces.
    Writer,
    /// Everything, including `force`, lease `break`, gate `delete` and
    /// namespace deletion; server-wide admin routes need the `*` glob too.
    Admin,
}

impl Role {
    /// The role's name as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
}

/// The access rule of one route of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed: `/healthz`, `/readyz`, `/openapi.json`.
    Open,
    /// Any valid token, whatever its role and namespaces (`/v1/info`, `/metrics`).
    Token,
    /// A reader (or more) whose namespaces match the path's `{ns}`.
    Read,
    /// A writer (or more) whose namespaces match the path's `{ns}`.
    Write,
    /// An admin whose namespaces match the path's `{ns}`; on a route without
    /// `{ns}`, an admin whose namespaces include `*`.
    Admin,
}

impl Access {
    /// The role the rule needs, if any.
    pub fn role(self) -> Option<Role> {
        match self {
            Access::Open | Access::Token => None,
            Access::Read => Some(Role::Reader),
            Access::Write => Some(Role::Writer),
            Access::Admin => Some(Role::Admin),
        }
    }

    /// How the rule is written in the docs and `/openapi.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Token => "token",
            Access::Read => "reader",
            Access::Write => "writer",
            Access::Admin => "admin",
        }
    }
}

/// One `[[tokens]]` table of the config file, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// The token's name: what the change log records as `actor`.
    pub name: String,
    /// `admin`, `writer` or `reader`.
    pub role: Role,
    /// Globs (`*`, `?`) of the namespaces the token may use.
    pub namespaces: Vec<String>,
    /// Lower-case hex SHA-256 of the secret.
    pub secret_sha256: String,
}

/// A checked token: its name, role, namespace globs and the digest of its secret.
#[derive(Debug, Clone)]
pub struct Token {
    name: String,
    role: Role,
    namespaces: Vec<String>,
    digest: [u8; 32],
}

impl Token {
    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether one of the token's globs matches `ns`.
    pub fn allows_namespace(&self, ns: &str) -> bool {
        self.namespaces
            .iter()
            .any(|g| glob_match(g.as_bytes(), ns.as_bytes()))
    }

    /// Whether the token may use every namespace (a `*` glob).
    pub fn allows_all(&self) -> bool {
        self.namespaces.iter().any(|g| g == "*")
    }
}

/// The tokens in force.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    tokens: Vec<Token>,
}

impl TokenSet {
    /// Checks the tables of a config file: names valid and unique, roles,
    /// globs valid, digests 64 hex digits and unique.
    pub fn from_specs(specs: &[TokenSpec]) -> Result<TokenSet, String> {
        let mut tokens: Vec<Token> = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let at = format!("tokens[{i}] ({:?})", s.name);
            validate_token_name(&s.name).map_err(|e| format!("{at}: {e}"))?;
            if s.namespaces.is_empty() {
                return Err(format!(
                    "{at}: namespaces is empty; give at least one glob, e.g. [\"*\"]"
                ));
            }
            for g in &s.namespaces {
                validate_glob(g).map_err(|e| format!("{at}: {e}"))?;
            }
            let digest = parse_digest(&s.secret_sha256).map_err(|e| format!("{at}: {e}"))?;
            if tokens.iter().any(|t| t.name == s.name) {
                return Err(format!("{at}: the name is used by another token"));
            }
            if tokens.iter().any(|t| t.digest == digest) {
                return Err(format!("{at}: the secret is used by another token"));
            }
            tokens.push(Token {
                name: s.name.clone(),
                role: s.role,
                namespaces: s.namespaces.clone(),
                digest,
            });
        }
        Ok(TokenSet { tokens })
    }

    /// Whether no token is configured (open mode on loopback).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The token whose secret is `secret`. Every digest is compared in
    /// constant time, and all of them are compared, so the time taken says
    /// nothing about which bytes matched.
    pub fn find(&self, secret: &str) -> Option<&Token> {
        let digest = sha256(secret);
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.digest.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        found
    }
}

/// The token set in force, replaceable at run time (SIGHUP).
#[derive(Debug)]
pub struct Auth {
    tokens: RwLock<Arc<TokenSet>>,
    open_allowed: bool,
}

impl Auth {
    /// Open mode: no tokens, every caller is an admin named `anonymous`
    /// (only for a loopback listener).
    pub fn open() -> Auth {
        Auth {
            tokens: RwLock::new(Arc::default()),
            open_allowed: true,
        }
    }

    /// `tokens` in force. With `open_allowed` false (a non-loopback listener)
    /// an empty set never means open mode: every request needs a token.
    pub fn new(tokens: TokenSet, open_allowed: bool) -> Auth {
        Auth {
            tokens: RwLock::new(Arc::new(tokens)),
            open_allowed,
        }
    }

    /// The tokens in force now.
    pub fn current(&self) -> Arc<TokenSet> {
        match self.tokens.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `tokens` in force. An empty set is refused where open mode is not
    /// allowed, so a reload can never open a network listener to everyone.
    pub fn replace(&self, tokens: TokenSet) -> Result<(), String> {
        if tokens.is_empty() && !self.open_allowed {
            return Err(
                "the new token set is empty; keeping the old one (open mode is for loopback only)".into(),
            );
        }
        let tokens = Arc::new(tokens);
        match self.tokens.write() {
            Ok(mut t) => *t = tokens,
            Err(poisoned) => *poisoned.into_inner() = tokens,
        }
        Ok(())
    }

    /// The name of the token the request presents, if it is a known one.
    pub fn name_of(&self, headers: &HeaderMap) -> Option<String> {
        let secret = bearer(headers)?;
        self.current().find(secret).map(|t| t.name.clone())
    }

    /// Decides who calls a route with rule `access` in namespace `ns`.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        access: Access,
        ns: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let set = self.current();
        if set.is_empty() && self.open_allowed {
            return Ok(Caller {
                name: ANONYMOUS.into(),
                admin: true,
                capability: None,
            });
        }
        let secret = bearer(headers).ok_or_else(|| {
            ApiError::Unauthorized("this request needs `Authorization: Bearer <token>`".into())
        })?;
        let token = set
            .find(secret)
            .ok_or_else(|| ApiError::Unauthorized("the bearer token is not known".into()))?;
        let forbidden = |why: String| ApiError::Core(lockstep_core::Error::Forbidden(why));
        if let Some(needed) = access.role() {
            if token.role < needed {
                return Err(forbidden(format!(
                    "token {:?} has role {}; this request needs {}",
                    token.name,
                    token.role.as_str(),
                    needed.as_str()
                )));
            }
            match ns {
                Some(ns) if !token.allows_namespace(ns) => {
                    return Err(forbidden(format!(
                        "token {:?} may not use namespace {ns:?}",
                        token.name
                    )));
                }
                None if access == Access::Admin && !token.allows_all() => {
                    return Err(forbidden(format!(
                        "token {:?} is not an admin of every namespace (\"*\")",
                        token.name
                    )));
                }
                _ => {}
            }
        }
        Ok(Caller {
            name: token.name.clone(),
            admin: token.role == Role::Admin,
            capability: None,
        })
    }
}

/// The secret of an `Authorization: Bearer <secret>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// Middleware: checks the request against its route's access rule (from the
/// route table) and hands the [`Caller`] to the handler. Unmatched paths and
/// methods pass through to the 404 and 405 fallbacks.
pub async fn check(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(matched) = req.extensions().get::<MatchedPath>().cloned() else {
        return next.run(req).await;
    };
    let route = matched.as_str();
    let Some(access) = crate::api::access_of(req.method(), route) else {
        return next.run(req).await;
    };
    if access == Access::Open {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let ns = if route.contains("{ns}") {
        match namespace_param(&mut parts).await {
            Ok(ns) => Some(ns),
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let presented = bearer(&parts.headers)
        .filter(|b| b.starts_with(capability::PREFIX))
        .map(str::to_owned);
    let decided = match presented {
        Some(c) => capability_caller(&st, &mut parts, route, &c, ns.as_deref()).await,
        None => st.auth.authorize(&parts.headers, access, ns.as_deref()),
    };
    match decided {
        Ok(caller) => {
            let served = crate::metrics::ServedTo::of(&caller);
            // The caller's request rate (429), counted once it is known who calls.
            let rated = st.quotas.request(&caller.name, st.limits.token_requests_per_s);
            let mut resp = match rated {
                Ok(()) => {
                    parts.extensions.insert(caller);
                    next.run(Request::from_parts(parts, body)).await
                }
                Err(e) => e.into_response(),
            };
            resp.extensions_mut().insert(served);
            resp
        }
        Err(e) => {
            let mut resp = e.into_response();
            // A known token refused (403): its name is counted; an unknown one is not.
            if let Some(name) = st.auth.name_of(&parts.headers) {
                resp.extensions_mut().insert(crate::metrics::ServedTo(name));
            }
            resp
        }
    }
}

/// The caller of a request made with a capability: a valid signature (else
/// 401), and a ticket route of the capability's gate with one of its
/// operations (else 403). Its epoch and expiry are decided by the command.
async fn capability_caller(
    st: &AppState,
    parts: &mut axum::http::request::Parts,
    route: &str,
    presented: &str,
    ns: Option<&str>,
) -> Result<Caller, ApiError> {
    let keys = st.capability_keys.get(&st.store).await?;
    let claims = capability::verify(presented, &keys).map_err(|e| ApiError::Unauthorized(format!("{e}")))?;
    // Expired is 401 at the door (this instance's clock) and again inside the
    // operation's transaction (the storage's clock), which decides.
    if claims.check().expires_at <= st.store.clock().now() {
        return Err(ApiError::Unauthorized("the capability has expired".into()));
    }
    let forbidden = |why: &str| ApiError::Core(lockstep_core::Error::Forbidden(why.into()));
    let op = match route {
        "/v1/ns/{ns}/gates/{name}/tickets" if parts.method == axum::http::Method::POST => Some(CapOp::Admit),
        "/v1/ns/{ns}/gates/{name}/tickets/{ticket}/{op}" if parts.method == axum::http::Method::POST => {
            path_param(parts, "op").await?.as_deref().and_then(CapOp::parse)
        }
        _ => None,
    }
    .ok_or_else(|| forbidden("a capability allows only ticket operations"))?;
    let gate = path_param(parts, "name").await?.unwrap_or_default();
    if !claims.allows(ns.unwrap_or_default(), &gate, op) {
        return Err(forbidden(&format!(
            "the capability does not allow {} on this gate",
            op.as_str()
        )));
    }
    Ok(Caller {
        name: format!("capability:{}", claims.gate),
        admin: false,
        capability: Some(claims),
    })
}

/// The decoded `{ns}` of the path.
async fn namespace_param(parts: &mut axum::http::request::Parts) -> Result<String, ApiError> {
    Ok(path_param(parts, "ns").await?.unwrap_or_default())
}

/// Makes a new secret: `lst_` and 32 random bytes in unpadded base64url.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Lower-case hex SHA-256 of a secret, as `secret_sha256` holds it.
pub fn secret_sha256_hex(secret: &str) -> String {
    sha256(secret).iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn parse_digest(hex: &str) -> Result<[u8; 32], String> {
    let bad = || "secret_sha256 must be 64 hex digits (the SHA-256 of the secret)".to_owned();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A token name: 1..=64 of `A-Z a-z 0-9 . _ -`, not a reserved actor name.
pub fn validate_token_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "token name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("token name {name:?} is reserved"));
    }
    Ok(())
}

/// A namespace glob: namespace characters (`a-z 0-9 . _ -`) and `*`, `?`.
pub fn validate_glob(glob: &str) -> Result<(), String> {
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '*' | '?');
    if glob.is_empty() || glob.len() > 128 || !glob.chars().all(ok_char) {
        return Err(format!(
            "namespace glob {glob:?} must be 1 to 128 characters of a-z, 0-9, '.', '_', '-', '*' or '?'"
        ));
    }
    Ok(())
}

/// Whether `name` matches `glob`, where `*` is any run of characters and `?`
/// one character. Linear backtracking over the last `*`.
fn glob_match(glob: &[u8], name: &[u8]) -> bool {
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let check = |glob: &str, name: &str, expected: bool| {
            assert_eq!(
                glob_match(glob.as_bytes(), name.as_bytes()),
                expected,
                "{glob} ~ {name}"
            );
        };
        check("*", "shop", true);
        check("shop-*", "shop-eu", true);
        check("shop-*", "shop-", true);
        check("shop-*", "shop", false);
        check("shop-*", "xshop-eu", false);
        check("a?c", "abc", true);
        check("a?c", "ac", false);
        check("*-eu", "shop-eu", true);
        check("*-eu", "shop-us", false);
        check("a*b*c", "axxbyyc", true);
        check("a*b*c", "axxbyy", false);
        check("app", "app", true);
        check("app", "apps", false);
    }

    #[test]
    fn secrets_and_digests() {
        let s = new_secret().unwrap_or_default();
        assert!(s.starts_with(SECRET_PREFIX));
        assert_eq!(s.len(), SECRET_PREFIX.len() + 43);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        let hex = secret_sha256_hex(&s);
        assert_eq!(parse_digest(&hex).ok(), Some(sha256(&s)));
        assert!(parse_digest("00").is_err());
        assert!(parse_digest(&"zz".repeat(32)).is_err());
        assert!(parse_digest(&"+f".repeat(32)).is_err());
        assert!(parse_digest(&hex.to_uppercase()).is_ok());
    }

    #[test]
    fn token_sets_refuse_bad_tables() {
        let spec = |name: &str, ns: &[&str], hex: String| TokenSpec {
            name: name.into(),
            role: Role::Writer,
            namespaces: ns.iter().map(|s| (*s).to_owned()).collect(),
            secret_sha256: hex,
        };
        let a = secret_sha256_hex("a");
        let b = secret_sha256_hex("b");
        assert!(TokenSet::from_specs(&[spec("app", &["shop-*"], a.clone())]).is_ok());
        for bad in [
            vec![spec("", &["*"], a.clone())],
            vec![spec("system", &["*"], a.clone())],
            vec![spec("a b", &["*"], a.clone())],
            vec![spec("app", &[], a.clone())],
            vec![spec("app", &["Shop"], a.clone())],
            vec![spec("app", &["*"], "12".into())],
            vec![spec("app", &["*"], a.clone()), spec("app", &["*"], b.clone())],
            vec![spec("x", &["*"], a.clone()), spec("y", &["*"], a.clone())],
        ] {
            assert!(TokenSet::from_specs(&bad).is_err(), "{bad:?}");
        }
        let set = TokenSet::from_specs(&[spec("x", &["*"], a), spec("y", &["*"], b)]).unwrap_or_default();
        assert_eq!(set.find("b").map(Token::name), Some("y"));
        assert!(set.find("c").is_none());
    }

    #[test]
    fn empty_set_is_refused_off_loopback() {
        let auth = Auth::new(TokenSet::default(), false);
        assert!(auth.replace(TokenSet::default()).is_err());
        assert!(Auth::open().replace(TokenSet::default()).is_ok());
        let denied = auth.authorize(&HeaderMap::new(), Access::Read, Some("app"));
        assert!(matches!(denied, Err(ApiError::Unauthorized(_))));
    }
}
