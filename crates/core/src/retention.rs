//! Feed retention planning for the sweeper (SPEC §8): which configuration
//! governs a feed, which window and scrub deadline the storage queries use,
//! and the commands that apply what they found. The storage runs only the
//! queries the plan asks for.

use crate::feed::{self, FeedConfig, Window};
use crate::{Command, Millis};
use std::collections::BTreeMap;

/// Stored feed configurations by `(namespace, feed)`; feed `""` is the
/// namespace default.
pub type Configs = BTreeMap<(String, String), FeedConfig>;

/// Whether any configuration asks for retention work at all.
pub fn any_retention(configs: &Configs) -> bool {
    configs.values().any(FeedConfig::has_retention)
}

/// The configuration governing `feed` of `ns`: its own, else the namespace
/// default; `None` when neither exists (nothing to do).
pub fn config_for<'a>(configs: &'a Configs, ns: &str, feed: &str) -> Option<&'a FeedConfig> {
    configs
        .get(&(ns.to_owned(), feed.to_owned()))
        .or_else(|| configs.get(&(ns.to_owned(), String::new())))
}

/// What to look for in one feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The visibility window: entries outside it are purged.
    pub window: Window,
    /// Entries at or before this time are due for scrubbing (when scrubbed).
    pub scrub_due: Option<Millis>,
}

/// The plan for a feed under `config` at `now`.
pub fn plan(config: &FeedConfig, now: Millis) -> Plan {
    Plan {
        window: feed::window(config, now),
        scrub_due: config.scrub.as_ref().map(|s| {
            Millis(
                now.0
                    .saturating_sub(i64::try_from(s.after_ms).unwrap_or(i64::MAX)),
            )
        }),
    }
}

/// What the storage found for one feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The oldest position the entry cap keeps, when the cap cuts anything.
    pub boundary: Option<(Millis, String)>,
    /// Entries outside the window.
    pub purge: Vec<String>,
    /// Entries due for scrubbing.
    pub scrub: Vec<String>,
}

/// The sweeper commands that apply `found` to `feed` of `ns`.
pub fn commands(ns: &str, feed: &str, found: Found) -> Vec<(String, Command)> {
    let mut out = Vec::new();
    if !found.purge.is_empty() {
        out.push((
            ns.to_owned(),
            Command::PurgeEntries {
                feed: feed.to_owned(),
                ids: found.purge,
                before: found.boundary,
            },
        ));
    }
    if !found.scrub.is_empty() {
        out.push((
            ns.to_owned(),
            Command::ScrubEntries {
                feed: feed.to_owned(),
                ids: found.scrub,
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Scrub;

    fn cfg(max_entries: Option<u64>, scrub_after: Option<u64>) -> FeedConfig {
        FeedConfig {
            max_entries,
            scrub: scrub_after.map(|after_ms| Scrub {
                fields: vec!["secret".into()],
                after_ms,
            }),
            ..FeedConfig::default()
        }
    }

    #[test]
    fn a_feed_falls_back_to_the_namespace_default() {
        let mut configs = Configs::new();
        assert!(!any_retention(&configs));
        configs.insert(("ns".into(), String::new()), cfg(Some(5), None));
        configs.insert(("ns".into(), "own".into()), cfg(None, Some(10)));
        assert!(any_retention(&configs));
        assert_eq!(config_for(&configs, "ns", "other"), Some(&cfg(Some(5), None)));
        assert_eq!(config_for(&configs, "ns", "own"), Some(&cfg(None, Some(10))));
        assert_eq!(config_for(&configs, "elsewhere", "own"), None);
    }

    #[test]
    fn scrubbing_is_due_after_its_delay() {
        let p = plan(&cfg(Some(3), Some(1_000)), Millis(5_000));
        assert_eq!(p.scrub_due, Some(Millis(4_000)));
        assert_eq!(p.window.max_entries, Some(3));
        assert_eq!(plan(&cfg(None, None), Millis(5_000)).scrub_due, None);
    }

    #[test]
    fn only_found_work_makes_commands() {
        assert!(commands("ns", "f", Found::default()).is_empty());
        let found = Found {
            boundary: Some((Millis(7), "b".into())),
            purge: vec!["a".into()],
            scrub: vec!["c".into()],
        };
        let cmds = commands("ns", "f", found);
        assert_eq!(cmds.len(), 2);
        assert!(matches!(
            &cmds[0].1,
            Command::PurgeEntries {
                before: Some((Millis(7), _)),
                ..
            }
        ));
        assert!(matches!(&cmds[1].1, Command::ScrubEntries { ids, .. } if ids == &["c"]));
    }
}
