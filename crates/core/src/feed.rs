//! Feeds (SPEC §8): append-only per-entry records ordered by `(at, id)`,
//! idempotent by id, with retention (cap and age), scrubbed fields and read
//! marks. Everything here is pure; listings and counts are queries of the
//! backends that apply [`Window`].

use crate::{names, Error, Limits, Millis};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Fields removed from entries older than `after_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Scrub {
    /// Top-level field names of `data` to remove.
    pub fields: Vec<String>,
    /// Age (from `at`) after which they are removed.
    pub after_ms: u64,
}

/// Per-feed configuration (or the namespace default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Keep at most this many newest entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub max_entries: Option<u64>,
    /// Hide entries older than this (from `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub max_age_ms: Option<u64>,
    /// Fields to scrub from older entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub: Option<Scrub>,
}

impl FeedConfig {
    /// Validates a configuration.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_entries == Some(0) {
            return Err(Error::invalid("max_entries must be at least 1"));
        }
        if self.max_age_ms == Some(0) {
            return Err(Error::invalid("max_age_ms must be at least 1"));
        }
        if let Some(s) = &self.scrub {
            if s.fields.is_empty() || s.fields.iter().any(String::is_empty) {
                return Err(Error::invalid("scrub.fields must be non-empty names"));
            }
        }
        Ok(())
    }

    /// Whether retention or scrubbing has anything to do.
    pub fn has_retention(&self) -> bool {
        self.max_entries.is_some() || self.max_age_ms.is_some() || self.scrub.is_some()
    }
}

/// One feed entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The feed.
    pub feed: String,
    /// The entry id (unique within the feed).
    pub id: String,
    /// Its time; entries are ordered by `(at, id)`.
    pub at: Millis,
    /// The payload object.
    pub data: Map<String, Value>,
    /// The revision of its append.
    pub revision: u64,
    /// Whether it was marked read.
    pub read: bool,
    /// Whether the sweeper already removed the scrub fields on disk.
    pub scrubbed: bool,
}

/// The position of an entry in `(at, id)` order, as carried in cursors.
pub fn position(at: Millis, id: &str) -> String {
    format!("{}:{id}", at.0)
}

/// Parses a [`position`].
pub fn parse_position(p: &str) -> Result<(Millis, String), Error> {
    let bad = || Error::invalid("invalid cursor");
    let (at, id) = p.split_once(':').ok_or_else(bad)?;
    Ok((Millis(at.parse().map_err(|_| bad())?), id.to_owned()))
}

/// The cursor scope of a feed's entries (both orders and `up_to` share it).
pub fn cursor_scope(ns: &str, feed: &str) -> String {
    format!("{ns}\0feed\0{feed}")
}

/// Which entries of a feed are visible at `now`: newer than the age cut, and
/// among the newest `max_entries` (the backend finds the cap boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Entries with `at <= age_cut` are hidden (`i64::MIN` when no age limit).
    pub age_cut: Millis,
    /// Keep at most this many newest entries.
    pub max_entries: Option<u64>,
}

/// The visibility window of `config` at `now`.
pub fn window(config: &FeedConfig, now: Millis) -> Window {
    let age_cut = config.max_age_ms.map_or(Millis(i64::MIN), |a| {
        Millis(now.0.saturating_sub(i64::try_from(a).unwrap_or(i64::MAX)))
    });
    Window {
        age_cut,
        max_entries: config.max_entries,
    }
}

/// Whether an entry is past its age (hidden, and free to be appended again).
pub fn aged_out(at: Millis, config: &FeedConfig, now: Millis) -> bool {
    at <= window(config, now).age_cut
}

/// The entry as readers see it at `now`: scrub fields removed once it is old
/// enough, whether or not the sweeper got to it yet.
pub fn present(mut e: Entry, config: &FeedConfig, now: Millis) -> Entry {
    if let Some(s) = &config.scrub {
        if now.0.saturating_sub(e.at.0) >= i64::try_from(s.after_ms).unwrap_or(i64::MAX) {
            for f in &s.fields {
                e.data.remove(f);
            }
        }
    }
    e
}

/// An append request, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// Entry id.
    pub id: String,
    /// Payload object.
    pub data: Map<String, Value>,
    /// Its time; `None` = now (storage clock).
    pub at: Option<Millis>,
}

impl NewEntry {
    /// Validates an entry from a request or an import.
    pub fn new(id: String, data: Value, at: Option<Millis>, limits: &Limits) -> Result<NewEntry, Error> {
        names::validate_key(&id, limits)?;
        crate::json::check_value(&data, limits)?;
        match data {
            Value::Object(data) => Ok(NewEntry { id, data, at }),
            _ => Err(Error::invalid("entry data must be a JSON object")),
        }
    }
}

/// How to read the elements of a legacy array: which member holds the id, the
/// time and the payload. By default `id`, `at` and `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyFields {
    /// The member holding the entry id (a string).
    pub id: String,
    /// The member holding the time: RFC 3339 text or epoch milliseconds.
    pub at: String,
    /// The member holding the payload object.
    pub data: String,
}

impl Default for LegacyFields {
    fn default() -> Self {
        LegacyFields {
            id: "id".into(),
            at: "at".into(),
            data: "data".into(),
        }
    }
}

impl LegacyFields {
    /// Reads one element of a legacy array: an object with the id, an optional
    /// time, and the payload: the data member when present (other members are
    /// then not imported), else every member but the id and the time.
    pub fn read(&self, v: Value, limits: &Limits) -> Result<NewEntry, Error> {
        let Value::Object(mut m) = v else {
            return Err(Error::invalid("it is not a JSON object"));
        };
        let id = match m.remove(&self.id) {
            Some(Value::String(id)) => id,
            _ => return Err(Error::invalid(format!("it has no string `{}`", self.id))),
        };
        let at = match m.remove(&self.at) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Millis::parse_rfc3339(&s)?),
            Some(Value::Number(n)) => Some(epoch_ms(&n).ok_or_else(|| {
                Error::invalid(format!(
                    "`{}` {n} is not epoch milliseconds between 1970 and 9999",
                    self.at
                ))
            })?),
            Some(_) => {
                return Err(Error::invalid(format!(
                    "`{}` must be RFC 3339 text or epoch milliseconds",
                    self.at
                )))
            }
        };
        let data = match m.remove(&self.data) {
            Some(d) => d,
            None => Value::Object(m),
        };
        NewEntry::new(id, data, at, limits)
    }
}

/// Epoch milliseconds from 1970 up to the end of year 9999 (what RFC 3339 writes).
fn epoch_ms(n: &serde_json::Number) -> Option<Millis> {
    const YEAR_10000_MS: i64 = 253_402_300_800_000;
    n.as_i64()
        .filter(|ms| (0..YEAR_10000_MS).contains(ms))
        .map(Millis)
}

/// Append semantics: a live entry with the same id is returned unchanged
/// (`created: false`, even when the new data differs); an aged-out one is
/// replaced as new.
pub fn append(
    feed: &str,
    existing: Option<&Entry>,
    config: &FeedConfig,
    new: &NewEntry,
    revision: u64,
    now: Millis,
) -> (Entry, bool) {
    if let Some(e) = existing.filter(|e| !aged_out(e.at, config, now)) {
        return (e.clone(), false);
    }
    let entry = Entry {
        feed: feed.to_owned(),
        id: new.id.clone(),
        at: new.at.unwrap_or(now),
        data: new.data.clone(),
        revision,
        read: false,
        scrubbed: false,
    };
    (entry, true)
}

/// Which entries a read mark covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadSelector {
    /// These ids.
    Ids(Vec<String>),
    /// Every entry at or older than this position.
    UpTo(Millis, String),
    /// Every entry.
    All,
}

/// Removes the scrub fields on disk (the sweeper); `None` when nothing changes.
pub fn scrub_on_disk(e: &Entry, config: &FeedConfig, now: Millis) -> Option<Entry> {
    let s = config.scrub.as_ref()?;
    if e.scrubbed || now.0.saturating_sub(e.at.0) < i64::try_from(s.after_ms).unwrap_or(i64::MAX) {
        return None;
    }
    let mut out = present(e.clone(), config, now);
    out.scrubbed = true;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> FeedConfig {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn new(id: &str, data: Value) -> NewEntry {
        NewEntry::new(id.into(), data, None, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn append_is_idempotent_by_id() {
        let c = FeedConfig::default();
        let (e, created) = append("f", None, &c, &new("r1", json!({"n": 1})), 5, Millis(10));
        assert!(created);
        assert_eq!((e.at, e.revision), (Millis(10), 5));
        let (again, created) = append("f", Some(&e), &c, &new("r1", json!({"n": 2})), 6, Millis(11));
        assert!(!created);
        assert_eq!(again, e);
        // Once past its age it is gone and may be appended again as new.
        let aged = cfg(json!({"max_age_ms": 100}));
        let (_, created) = append("f", Some(&e), &aged, &new("r1", json!({})), 7, Millis(110));
        assert!(created);
    }

    #[test]
    fn scrub_and_validation() {
        let c = cfg(json!({"scrub": {"fields": ["ip"], "after_ms": 50}}));
        let (e, _) = append(
            "f",
            None,
            &c,
            &new("r1", json!({"ip": "1.2.3.4", "n": 1})),
            1,
            Millis(0),
        );
        assert_eq!(
            present(e.clone(), &c, Millis(49)).data.get("ip"),
            Some(&json!("1.2.3.4"))
        );
        assert_eq!(present(e.clone(), &c, Millis(50)).data.get("ip"), None);
        assert!(scrub_on_disk(&e, &c, Millis(10)).is_none());
        let s = scrub_on_disk(&e, &c, Millis(60)).unwrap_or_else(|| panic!("scrubbed"));
        assert!(s.scrubbed && !s.data.contains_key("ip"));
        let l = Limits::default();
        assert!(NewEntry::new("x".into(), json!([1]), None, &l).is_err());
        assert!(NewEntry::new(String::new(), json!({}), None, &l).is_err());
        assert!(cfg(json!({"max_entries": 0})).validate().is_err());
        assert!(serde_json::from_value::<FeedConfig>(json!({"max_entries": -1})).is_err());
    }

    #[test]
    fn legacy_elements() {
        let l = Limits::default();
        let fields = LegacyFields::default();
        let read = |f: &LegacyFields, v: Value| f.read(v, &l).unwrap_or_else(|e| panic!("{e}"));
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        // Without a data member, the remaining members are the data.
        let e = read(
            &fields,
            json!({"id": "a", "at": "2026-01-01T00:00:00Z", "ip": "x"}),
        );
        assert_eq!(e.data, obj(json!({"ip": "x"})));
        assert_eq!(e.at, Some(Millis(1_767_225_600_000)));
        // With one, the data member is the data; other members are not imported.
        let e = read(
            &fields,
            json!({"id": "c", "at": null, "data": {"file": "z"}, "extra": 1}),
        );
        assert_eq!(
            (e.id.as_str(), e.data, e.at),
            ("c", obj(json!({"file": "z"})), None)
        );
        // Named members, and epoch milliseconds.
        let seed = LegacyFields {
            id: "reservationId".into(),
            at: "createdAt".into(),
            data: "payload".into(),
        };
        let e = read(
            &seed,
            json!({"reservationId": "42", "createdAt": 1_767_225_600_000_i64, "file": "f", "ip": "i"}),
        );
        assert_eq!((e.id.as_str(), e.at), ("42", Some(Millis(1_767_225_600_000))));
        assert_eq!(e.data, obj(json!({"file": "f", "ip": "i"})));
        for bad in [
            json!({"at": "x"}),
            json!("a"),
            json!({"id": "a", "at": "yesterday"}),
            json!({"id": "a", "at": -1}),
            json!({"id": "a", "at": 1.5}),
            json!({"id": "a", "at": true}),
            json!({"id": "a", "data": [1]}),
            json!({"id": ""}),
            json!({"id": 5}),
        ] {
            assert!(fields.read(bad.clone(), &l).is_err(), "{bad}");
        }
        assert_eq!(
            parse_position(&position(Millis(5), "a:b")),
            Ok((Millis(5), "a:b".into()))
        );
    }
}
