//! The read queries a [`crate::Store`] hands its backend, each one value, and
//! the bounds every backend derives from them the same way: which keys a
//! prefix listing covers, where a feed page starts and in which order.

use lockstep_core::gate::TicketState;
use lockstep_core::Millis;

/// A page of a listing by name (records or feeds): names of `ns` starting with
/// `prefix`, after `after`, in byte order, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePage {
    /// Namespace.
    pub ns: String,
    /// Names start with this.
    pub prefix: String,
    /// The last name of the previous page.
    pub after: Option<String>,
    /// Most names answered.
    pub limit: usize,
}

/// The key range of a [`NamePage`]: names `op` `lower` (`>` after a cursor
/// inside the prefix, else `>=` the prefix) and below `upper` (none: no bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRange {
    /// `">"` or `">="`.
    pub op: &'static str,
    /// The lower bound.
    pub lower: String,
    /// The first name past the prefix, if any.
    pub upper: Option<String>,
}

impl NamePage {
    /// The page of `ns` by its parts.
    pub fn new(ns: &str, prefix: &str, after: Option<&str>, limit: usize) -> NamePage {
        NamePage {
            ns: ns.to_owned(),
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        }
    }

    /// The names this page covers.
    pub fn range(&self) -> NameRange {
        let (op, lower) = match &self.after {
            Some(a) if *a >= self.prefix => (">", a.clone()),
            _ => (">=", self.prefix.clone()),
        };
        NameRange {
            op,
            lower,
            upper: lockstep_core::names::prefix_upper_bound(&self.prefix),
        }
    }

    /// The limit as a SQL integer.
    pub fn sql_limit(&self) -> i64 {
        sql_limit(self.limit)
    }
}

/// A page of a feed's visible entries in `(at, id)` order, newest first when
/// `desc`, after the position `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPage {
    /// Namespace.
    pub ns: String,
    /// Feed name.
    pub feed: String,
    /// Newest first.
    pub desc: bool,
    /// The position of the previous page's last entry.
    pub after: Option<(Millis, String)>,
    /// Most entries answered.
    pub limit: usize,
}

impl EntryPage {
    /// The comparison past the cursor (`>` or `<`), the SQL order (`ASC` or
    /// `DESC`) and the cursor position (the start of the order without one).
    pub fn cursor(&self) -> (&'static str, &'static str, (i64, String)) {
        let (cmp, order, start) = if self.desc {
            ("<", "DESC", (i64::MAX, String::new()))
        } else {
            (">", "ASC", (i64::MIN, String::new()))
        };
        let position = self.after.as_ref().map_or(start, |(at, id)| (at.0, id.clone()));
        (cmp, order, position)
    }

    /// The limit as a SQL integer.
    pub fn sql_limit(&self) -> i64 {
        sql_limit(self.limit)
    }
}

/// A page of a gate's tickets by id, optionally of one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPage {
    /// Namespace.
    pub ns: String,
    /// Gate id.
    pub gate: String,
    /// Only tickets in this state.
    pub state: Option<TicketState>,
    /// The last id of the previous page.
    pub after: Option<String>,
    /// Most tickets answered.
    pub limit: usize,
}

impl TicketPage {
    /// The state filter as stored.
    pub fn state_name(&self) -> Option<&'static str> {
        self.state.map(TicketState::as_str)
    }

    /// The limit as a SQL integer.
    pub fn sql_limit(&self) -> i64 {
        sql_limit(self.limit)
    }
}

/// A page of the change log of `ns` after revision `after`, of keys starting
/// with `prefix` and of `kind` (a wire name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeQuery {
    /// Namespace.
    pub ns: String,
    /// Changes after this revision.
    pub after: u64,
    /// Keys start with this ("" for all).
    pub prefix: String,
    /// Only this kind.
    pub kind: Option<String>,
    /// Most changes answered (a single revision may exceed it).
    pub limit: usize,
}

impl ChangeQuery {
    /// The first key past the prefix, if any.
    pub fn upper(&self) -> Option<String> {
        lockstep_core::names::prefix_upper_bound(&self.prefix)
    }

    /// One more than the limit, as a SQL integer: the extra row tells whether
    /// the page ends inside a revision.
    pub fn sql_fetch(&self) -> i64 {
        sql_limit(self.limit.saturating_add(1))
    }
}

/// A row count as a SQL integer (saturating).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
