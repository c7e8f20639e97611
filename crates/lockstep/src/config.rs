//! The config file of `lockstep serve --config FILE` (TOML, docs/configuration.md):
//! its shape with unknown keys refused, its checks, and how flags and
//! `LOCKSTEP_*` variables override it.

use anyhow::{bail, Context};
use lockstep_core::Limits;
use lockstep_server::auth::{TokenSet, TokenSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7707";
/// Default data location of embedded mode.
pub const DEFAULT_DATABASE: &str = "sqlite:./lockstep-data/lockstep.db";
/// Default PostgreSQL pool size.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Largest PostgreSQL pool size accepted.
pub const POOL_SIZE_MAX: usize = 1024;

/// The whole file. Every table refuses keys it does not know, naming them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// `HOST:PORT` to listen on.
    pub listen: Option<String>,
    /// `sqlite:PATH` or `postgres://…`.
    pub database: Option<String>,
    /// PostgreSQL connection pool size.
    pub pool_size: Option<usize>,
    /// HTTPS certificate and key.
    pub tls: Option<TlsFiles>,
    /// Limits (SPEC §3); each key is optional.
    #[serde(default)]
    pub limits: LimitsTable,
    /// CORS (parsed and kept; applied by the CORS layer).
    #[serde(default)]
    pub cors: Cors,
    /// Capability signing keys.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// The `[[tokens]]` tables.
    #[serde(default)]
    pub tokens: Vec<TokenSpec>,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[cors]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Origins browsers may call from, e.g. `https://app.example.com`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// `[capabilities]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Signing keys: the first signs, all verify.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// `[limits]`: the names and units of `lockstep_core::Limits`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LimitsTable {
    pub body_bytes_max: Option<usize>,
    pub value_bytes_max: Option<usize>,
    pub key_bytes_max: Option<usize>,
    pub txn_items_max: Option<usize>,
    pub page_size_max: Option<usize>,
    pub page_size_default: Option<usize>,
    pub json_depth_max: Option<usize>,
    pub record_ttl_ms_max: Option<u64>,
    pub lease_ttl_ms_min: Option<u64>,
    pub lease_ttl_ms_max: Option<u64>,
    pub lease_wait_ms_max: Option<u64>,
    pub lease_holder_bytes_max: Option<usize>,
    pub lease_waiters_max: Option<usize>,
    pub idempotency_ttl_ms: Option<u64>,
    pub idempotency_lock_ms: Option<u64>,
    pub idempotency_fingerprint_bytes_max: Option<usize>,
    pub changes_keep_ms: Option<u64>,
    pub changes_keep_count: Option<u64>,
    pub import_entries_max: Option<usize>,
    pub watch_read_changes_max: Option<usize>,
    pub capability_ttl_ms_max: Option<u64>,
    pub token_requests_per_s: Option<u64>,
    pub token_waiting_acquires_max: Option<usize>,
    pub token_watches_max: Option<usize>,
    pub request_timeout_ms: Option<u64>,
}

impl File {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<File> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        File::parse(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    /// Parses the text of a config file.
    pub fn parse(text: &str) -> anyhow::Result<File> {
        // The message names the unknown key and the keys allowed. The line is
        // given by number, never quoted: it could hold a pasted secret.
        let file: File = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|before| before.matches('\n').count() + 1);
            match line {
                Some(n) => anyhow::anyhow!("line {n}: {}", e.message().trim_end()),
                None => anyhow::anyhow!("{}", e.message().trim_end()),
            }
        })?;
        file.tokens()?;
        file.limits(Limits::default())?;
        lockstep_server::capabilities::CapabilityKeys::new(&file.capabilities.keys)
            .map_err(anyhow::Error::msg)?;
        Ok(file)
    }

    /// The checked token set.
    pub fn tokens(&self) -> anyhow::Result<TokenSet> {
        TokenSet::from_specs(&self.tokens).map_err(anyhow::Error::msg)
    }

    /// `base` with the file's limits applied, checked for values that cannot work.
    pub fn limits(&self, base: Limits) -> anyhow::Result<Limits> {
        let t = &self.limits;
        let mut l = base;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = t.$f { l.$f = v; } )* };
        }
        set!(
            body_bytes_max,
            value_bytes_max,
            key_bytes_max,
            txn_items_max,
            page_size_max,
            page_size_default,
            json_depth_max,
            record_ttl_ms_max,
            lease_ttl_ms_min,
            lease_ttl_ms_max,
            lease_wait_ms_max,
            lease_holder_bytes_max,
            lease_waiters_max,
            idempotency_ttl_ms,
            idempotency_lock_ms,
            idempotency_fingerprint_bytes_max,
            changes_keep_ms,
            changes_keep_count,
            import_entries_max,
            watch_read_changes_max,
            capability_ttl_ms_max,
            token_requests_per_s,
            token_waiting_acquires_max,
            token_watches_max,
            request_timeout_ms
        );
        check_limits(&l)?;
        Ok(l)
    }
}

/// Refuses limits that cannot work, naming the key and what it must be.
pub fn check_limits(l: &Limits) -> anyhow::Result<()> {
    let d = Limits::default();
    if l.request_timeout_ms <= l.lease_wait_ms_max {
        bail!(
            "limits.request_timeout_ms ({}) must be longer than limits.lease_wait_ms_max ({}): a waiting acquire must be able to finish",
            l.request_timeout_ms,
            l.lease_wait_ms_max
        );
    }
    let positive: [(&str, u64); 19] = [
        ("body_bytes_max", l.body_bytes_max as u64),
        ("value_bytes_max", l.value_bytes_max as u64),
        ("key_bytes_max", l.key_bytes_max as u64),
        ("txn_items_max", l.txn_items_max as u64),
        ("page_size_max", l.page_size_max as u64),
        ("page_size_default", l.page_size_default as u64),
        ("json_depth_max", l.json_depth_max as u64),
        ("record_ttl_ms_max", l.record_ttl_ms_max),
        ("lease_ttl_ms_min", l.lease_ttl_ms_min),
        ("lease_ttl_ms_max", l.lease_ttl_ms_max),
        ("lease_holder_bytes_max", l.lease_holder_bytes_max as u64),
        ("idempotency_ttl_ms", l.idempotency_ttl_ms),
        ("idempotency_lock_ms", l.idempotency_lock_ms),
        (
            "idempotency_fingerprint_bytes_max",
            l.idempotency_fingerprint_bytes_max as u64,
        ),
        ("changes_keep_ms", l.changes_keep_ms),
        ("changes_keep_count", l.changes_keep_count),
        ("import_entries_max", l.import_entries_max as u64),
        ("watch_read_changes_max", l.watch_read_changes_max as u64),
        ("capability_ttl_ms_max", l.capability_ttl_ms_max),
    ];
    for (name, v) in positive {
        if v == 0 {
            bail!("limits.{name} must be at least 1");
        }
    }
    let at_most: [(&str, u64, u64); 4] = [
        ("json_depth_max", l.json_depth_max as u64, d.json_depth_max as u64),
        ("key_bytes_max", l.key_bytes_max as u64, 1024),
        ("record_ttl_ms_max", l.record_ttl_ms_max, d.record_ttl_ms_max),
        ("txn_items_max", l.txn_items_max as u64, 10_000),
    ];
    for (name, v, max) in at_most {
        if v > max {
            bail!("limits.{name} must be at most {max} (it is {v})");
        }
    }
    let ordered: [(&str, u64, &str, u64); 4] = [
        (
            "value_bytes_max",
            l.value_bytes_max as u64,
            "body_bytes_max",
            l.body_bytes_max as u64,
        ),
        (
            "page_size_default",
            l.page_size_default as u64,
            "page_size_max",
            l.page_size_max as u64,
        ),
        (
            "lease_ttl_ms_min",
            l.lease_ttl_ms_min,
            "lease_ttl_ms_max",
            l.lease_ttl_ms_max,
        ),
        (
            "lease_wait_ms_max",
            l.lease_wait_ms_max,
            "idempotency_lock_ms",
            l.idempotency_lock_ms,
        ),
    ];
    for (small, a, big, b) in ordered {
        if a > b {
            bail!("limits.{small} ({a}) must not be larger than limits.{big} ({b})");
        }
    }
    Ok(())
}

/// Refuses an impossible pool size.
pub fn check_pool_size(n: usize) -> anyhow::Result<usize> {
    if !(1..=POOL_SIZE_MAX).contains(&n) {
        bail!("the pool size must be between 1 and {POOL_SIZE_MAX} connections (it is {n})");
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn example() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/lockstep.example.toml");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_example_file_loads() {
        let f = File::parse(&example()).unwrap();
        assert_eq!(f.listen.as_deref(), Some("0.0.0.0:7707"));
        assert!(f.database.is_some());
        assert_eq!(f.pool_size, Some(16));
        assert!(f.tls.is_some());
        assert!(!f.cors.allowed_origins.is_empty());
        assert!(!f.capabilities.keys.is_empty());
        assert_eq!(f.tokens().unwrap().len(), f.tokens.len());
        assert!(f.tokens.len() >= 3);
        let limits = f.limits(Limits::default()).unwrap();
        assert_eq!(limits.body_bytes_max, 2 * 1024 * 1024);
    }

    #[test]
    fn every_key_of_the_example_is_documented() {
        fn keys(t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                out.push(k.clone());
                match v {
                    toml::Value::Table(t) => keys(t, out),
                    toml::Value::Array(a) => a
                        .iter()
                        .filter_map(toml::Value::as_table)
                        .for_each(|t| keys(t, out)),
                    _ => {}
                }
            }
        }
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
        )
        .unwrap();
        let table: toml::Table = toml::from_str(&example()).unwrap();
        let mut all = Vec::new();
        keys(&table, &mut all);
        for k in &all {
            let documented = doc.contains(&format!("`{k}`")) || doc.contains(&format!("[{k}]"));
            assert!(documented, "docs/configuration.md does not document `{k}`");
        }
        // The example sets every limit, so a new limit shows up here.
        let limits = table["limits"].as_table().unwrap();
        let d = format!("{:?}", Limits::default());
        assert_eq!(limits.len(), d.matches(": ").count(), "{d}");
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let f = File::parse("").unwrap();
        assert!(f.listen.is_none() && f.tokens.is_empty());
        assert_eq!(f.limits(Limits::default()).unwrap(), Limits::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        for (text, key) in [
            ("lisen = \"127.0.0.1:1\"", "lisen"),
            ("[limits]\nbody_bytes = 3", "body_bytes"),
            ("[tls]\ncert = \"a\"\nkey = \"b\"\nchain = \"c\"", "chain"),
            ("[cors]\norigins = []", "origins"),
            ("[capabilities]\nkey = \"k\"", "key"),
            (
                "[[tokens]]\nname = \"a\"\nrole = \"reader\"\nnamespaces = [\"*\"]\nsecret = \"x\"\nsecret_sha256 = \"\"",
                "secret",
            ),
        ] {
            let err = format!("{:#}", File::parse(text).unwrap_err());
            assert!(err.contains(&format!("`{key}`")), "{text:?} → {err}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let hash = lockstep_server::auth::secret_sha256_hex("s");
        for (text, needle) in [
            ("[limits]\nbody_bytes_max = 0".to_owned(), "limits.body_bytes_max must be at least 1"),
            ("[limits]\nvalue_bytes_max = 3000000".to_owned(), "value_bytes_max"),
            ("[limits]\njson_depth_max = 100000".to_owned(), "json_depth_max must be at most 128"),
            ("[capabilities]\nkeys = [\"short\"]".to_owned(), "capabilities.keys[0] is shorter than 32 bytes"),
            ("[limits]\nbody_bytes_max = -1".to_owned(), "invalid value"),
            (
                format!("[[tokens]]\nname = \"a\"\nrole = \"root\"\nnamespaces = [\"*\"]\nsecret_sha256 = \"{hash}\""),
                "unknown variant `root`",
            ),
            (
                format!("[[tokens]]\nname = \"a\"\nrole = \"admin\"\nnamespaces = []\nsecret_sha256 = \"{hash}\""),
                "namespaces is empty",
            ),
            (
                "[[tokens]]\nname = \"a\"\nrole = \"admin\"\nnamespaces = [\"*\"]\nsecret_sha256 = \"00\"".to_owned(),
                "64 hex digits",
            ),
        ] {
            let err = format!("{:#}", File::parse(&text).unwrap_err());
            assert!(err.contains(needle), "{text:?} → {err}");
        }
        assert!(check_pool_size(0).is_err());
        assert!(check_pool_size(POOL_SIZE_MAX + 1).is_err());
        assert_eq!(check_pool_size(1).unwrap(), 1);
    }
}
