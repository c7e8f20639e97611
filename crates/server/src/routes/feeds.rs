//! `/v1/ns/{ns}/feeds`: append-only feeds with idempotent appends, cursors,
//! retention, scrubbing and read marks (SPEC §8).

use crate::extract::{Caller, Json, Name, Ns, Path, Query};
use crate::idempotency::{render, run, Idem, IdemRequest, Reply};
use crate::routes::paging::Page;
use crate::{wire, ApiError, AppState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
pub use lockstep_api::feeds::{AppendBody, EntriesQuery, FeedsQuery, ImportQuery, ReadBody};
use lockstep_core::command::answer::{Appended, EntryDeleted, Imported, MarkedRead};
use lockstep_core::feed::{self, FeedConfig, LegacyFields, NewEntry, ReadSelector};
use lockstep_core::{cursor, names, Command, Millis, RowKey};
use serde_json::Value;

fn decode_position(ns: &str, feed: &str, c: &str) -> Result<(Millis, String), ApiError> {
    let p = cursor::decode(c, &feed::cursor_scope(ns, feed))?;
    Ok(feed::parse_position(&p)?)
}

/// `POST /feeds/{feed}/entries`: 201 new, 200 with the original when the id exists.
pub async fn append(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(feed): Name,
    caller: Caller,
    Idem(idem): Idem,
    Json(body): Json<AppendBody>,
) -> Result<Response, ApiError> {
    let at = body.at.as_deref().map(Millis::parse_rfc3339).transpose()?;
    let entry = NewEntry::new(body.id, body.data, at, &st.limits)?;
    let scope_ns = ns.clone();
    let answer = render(move |Appended { entry, created }, _| {
        let body = lockstep_api::feeds::EntryAppended {
            entry: wire::feeds::entry(&scope_ns, entry),
            created,
        };
        Reply::created(created, body)
    });
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::Append { feed, entry },
        answer,
    )
    .await
}

/// `GET /feeds/{feed}/entries?limit=&cursor=&order=desc|asc`.
pub async fn entries(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(feed): Name,
    Query(q): Query<EntriesQuery>,
) -> Result<Response, ApiError> {
    let desc = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "order must be desc or asc, not {other:?}"
            )))
        }
    };
    let page = Page::new(&st, feed::cursor_scope(&ns, &feed), q.limit, q.cursor.as_deref())?;
    let after = page.after.as_deref().map(feed::parse_position).transpose()?;
    let fetched = st
        .store
        .list_entries(&ns, &feed, desc, after, page.fetch())
        .await?;
    let (entries, next_cursor) = page.cut(fetched.entries, |e| feed::position(e.at, &e.id));
    let items = lockstep_api::feeds::Entries {
        entries: entries.into_iter().map(|e| wire::feeds::entry(&ns, e)).collect(),
        unread_count: fetched.unread_count,
    };
    Ok(axum::Json(wire::Page { items, next_cursor }).into_response())
}

/// `GET /feeds/{feed}`: the configuration in force (its own, else the
/// namespace default, `own_config` telling which) and the counts. A feed
/// that never had an entry reads as empty, like its listing.
pub async fn get(State(st): State<AppState>, Ns(ns): Ns, Name(name): Name) -> Result<Response, ApiError> {
    let keys = vec![
        RowKey::FeedConfig(name.clone()),
        RowKey::FeedConfig(String::new()),
    ];
    let (snapshot, _) = st.store.read_rows(&ns, keys).await?;
    let own = matches!(snapshot.get(&RowKey::FeedConfig(name.clone())), Some(Some(_)));
    let config = lockstep_core::command::feed_config(&snapshot, &name);
    // The first feed at or after the name in byte order is this one, if it has entries.
    let counts = st
        .store
        .list_feeds(&ns, &name, None, 1)
        .await?
        .into_iter()
        .find(|f| f.feed == name);
    let (entries, unread) = counts.map_or((0, 0), |f| (f.entries, f.unread_count));
    let body = lockstep_api::feeds::Feed {
        feed: name.clone(),
        config: config.clone(),
        own_config: own,
        entries,
        unread_count: unread,
    };
    Ok(axum::Json(body).into_response())
}

async fn configure(
    st: &AppState,
    ns: &str,
    feed: String,
    caller: &Caller,
    idem: Option<IdemRequest>,
    config: FeedConfig,
) -> Result<Response, ApiError> {
    let name = feed.clone();
    let answer = render(move |config: FeedConfig, revision| {
        Reply::ok(lockstep_api::feeds::FeedConfigured {
            feed: name.clone(),
            config: config.clone(),
            revision,
        })
    });
    run(
        st,
        ns,
        &caller.name,
        idem,
        Command::Configure { feed, config },
        answer,
    )
    .await
}

/// `PUT /feeds/{feed}`: the feed's retention and scrub configuration.
pub async fn put_config(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(feed): Name,
    caller: Caller,
    Idem(idem): Idem,
    Json(config): Json<FeedConfig>,
) -> Result<Response, ApiError> {
    configure(&st, &ns, feed, &caller, idem, config).await
}

/// `PUT /feed-defaults`: the configuration of every feed without its own.
pub async fn put_defaults(
    State(st): State<AppState>,
    Ns(ns): Ns,
    caller: Caller,
    Idem(idem): Idem,
    Json(config): Json<FeedConfig>,
) -> Result<Response, ApiError> {
    configure(&st, &ns, String::new(), &caller, idem, config).await
}

/// `POST /feeds/{feed}/read`: `{ids}`, `{up_to: cursor}` or `{all: true}`.
pub async fn read(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(feed): Name,
    caller: Caller,
    Idem(idem): Idem,
    Json(body): Json<ReadBody>,
) -> Result<Response, ApiError> {
    let selector = match (body.ids, body.up_to, body.all) {
        (Some(ids), None, None) => {
            for id in &ids {
                names::validate_key(id, &st.limits)?;
            }
            if ids.len() > st.limits.page_size_max {
                return Err(ApiError::invalid(format!(
                    "at most {} ids",
                    st.limits.page_size_max
                )));
            }
            ReadSelector::Ids(ids)
        }
        (None, Some(c), None) => {
            let (at, id) = decode_position(&ns, &feed, &c)?;
            ReadSelector::UpTo(at, id)
        }
        (None, None, Some(true)) => ReadSelector::All,
        _ => return Err(ApiError::invalid("give exactly one of ids, up_to or all: true")),
    };
    let answer = render(|MarkedRead, revision| Reply::ok(lockstep_api::feeds::MarkedRead { revision }));
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::MarkRead { feed, selector },
        answer,
    )
    .await
}

/// `DELETE /feeds/{feed}/entries/{id}`.
pub async fn delete_entry(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Path((_, feed, id)): Path<(String, String, String)>,
    caller: Caller,
    Idem(idem): Idem,
) -> Result<Response, ApiError> {
    names::validate_key(&feed, &st.limits)?;
    names::validate_key(&id, &st.limits)?;
    let entry_id = id.clone();
    let answer = render(move |EntryDeleted, revision| {
        Reply::ok(lockstep_api::feeds::EntryDeleted {
            id: entry_id.clone(),
            deleted: true,
            revision,
        })
    });
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::DeleteEntry { feed, id },
        answer,
    )
    .await
}

/// `POST /feeds/{feed}/import`: a legacy JSON array, each id imported once. A
/// bad element refuses the whole batch, naming its index.
pub async fn import(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Name(feed): Name,
    caller: Caller,
    Idem(idem): Idem,
    Query(q): Query<ImportQuery>,
    Json(items): Json<Vec<Value>>,
) -> Result<Response, ApiError> {
    let max = st.limits.import_entries_max;
    if items.len() > max {
        return Err(lockstep_core::Error::PayloadTooLarge(format!(
            "an import takes at most {max} entries; split the array"
        ))
        .into());
    }
    let defaults = LegacyFields::default();
    let fields = LegacyFields {
        id: q.id_field.unwrap_or(defaults.id),
        at: q.at_field.unwrap_or(defaults.at),
        data: q.data_field.unwrap_or(defaults.data),
    };
    let entries = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            fields.read(v, &st.limits).map_err(|e| match e {
                lockstep_core::Error::InvalidRequest(d) => {
                    ApiError::invalid(format!("element {i} of the import: {d}; nothing was imported"))
                }
                other => other.into(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let answer = render(|Imported { imported, skipped }, revision| {
        Reply::ok(lockstep_api::feeds::FeedImported {
            imported,
            skipped,
            revision,
        })
    });
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::Import { feed, entries },
        answer,
    )
    .await
}

/// `GET /feeds?prefix=&limit=&cursor=`: feeds with entry and unread counts.
pub async fn list(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Query(q): Query<FeedsQuery>,
) -> Result<Response, ApiError> {
    let page = Page::new(
        &st,
        format!("{ns}\0feeds\0{}", q.prefix),
        q.limit,
        q.cursor.as_deref(),
    )?;
    let feeds = st
        .store
        .list_feeds(&ns, &q.prefix, page.after.as_deref(), page.fetch())
        .await?;
    let (feeds, next_cursor) = page.cut(feeds, |f| f.feed.clone());
    let items = lockstep_api::feeds::Feeds {
        feeds: feeds.iter().map(wire::feeds::summary).collect(),
    };
    Ok(axum::Json(wire::Page { items, next_cursor }).into_response())
}
