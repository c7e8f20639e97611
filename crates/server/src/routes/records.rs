//! `/v1/ns/{ns}/records`: versioned records with optimistic concurrency (SPEC §4).

use crate::extract::{content_type_is, read_body, Caller, Json, Key, Ns, Query};
use crate::idempotency::{render, run, Idem, Reply};
use crate::routes::paging::Page;
use crate::{wire, ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
pub use lockstep_api::records::{ListQuery, NamespacesQuery, PreconditionQuery, PutRecordBody as PutBody};
use lockstep_core::command::answer::{RecordDeleted, RecordPatched, RecordPut};
use lockstep_core::record::{EtagMatch, PatchDoc, PutRecord};
use lockstep_core::{names, Command, Precondition};

fn parse_etags(raw: &str) -> Result<EtagMatch, ApiError> {
    if raw.trim() == "*" {
        return Ok(EtagMatch::Any);
    }
    let mut versions = Vec::new();
    for tag in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        let inner = opaque
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .ok_or_else(|| ApiError::invalid(format!("malformed entity tag {tag:?}")))?;
        // A weak tag never matches strongly; a tag that is no version of ours
        // never matches. Tags compare as strings (RFC 9110 §8.8.3.2): "05" and
        // "+5" are not "5".
        let ours = !inner.starts_with(['0', '+']) || inner == "0";
        if let (false, true, Ok(v)) = (tag.starts_with("W/"), ours, inner.parse::<u64>()) {
            versions.push(v);
        }
    }
    Ok(EtagMatch::Versions(versions))
}

/// The precondition of a write: the `If-Match`/`If-None-Match` headers (412) or
/// the body/query `expected_version` (409); both at once is a 400.
fn precondition(headers: &HeaderMap, expected: Option<u64>) -> Result<Precondition, ApiError> {
    let text = |name: header::HeaderName| {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::invalid(format!("{name} is not text")))
            })
            .transpose()
    };
    let from_header = match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("give If-Match or If-None-Match, not both")),
        (Some(m), None) => Some(Precondition::IfMatch(parse_etags(m)?)),
        (None, Some(m)) => Some(Precondition::IfNoneMatch(parse_etags(m)?)),
        (None, None) => None,
    };
    match (from_header, expected) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "give a precondition either in headers or as expected_version, not both",
        )),
        (Some(p), None) => Ok(p),
        (None, Some(v)) => Ok(Precondition::ExpectedVersion(names::validate_revision(
            "expected_version",
            v,
        )?)),
        (None, None) => Ok(Precondition::None),
    }
}

/// `GET /records/{key}`; `If-None-Match` answers 304 when it matches.
pub async fn get(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Key(key): Key,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = st
        .store
        .get(&ns, &key)
        .await?
        .ok_or_else(|| lockstep_core::Error::NotFound(format!("record {key:?} does not exist")))?;
    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let m = parse_etags(inm)?;
        if Precondition::IfNoneMatch(m).check(Some(&rec)).is_err() {
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            resp.headers_mut().insert(header::ETAG, wire::etag(rec.version));
            return Ok(resp);
        }
    }
    let mut resp = axum::Json(wire::records::record(&rec)).into_response();
    resp.headers_mut().insert(header::ETAG, wire::etag(rec.version));
    Ok(resp)
}

/// `PUT /records/{key}`.
pub async fn put(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Key(key): Key,
    caller: Caller,
    Idem(idem): Idem,
    headers: HeaderMap,
    Json(body): Json<PutBody>,
) -> Result<Response, ApiError> {
    if body.force && !caller.admin {
        return Err(lockstep_core::Error::Forbidden("force needs the admin role".into()).into());
    }
    let req = PutRecord {
        value: body.value,
        precondition: precondition(&headers, body.expected_version)?,
        ttl_ms: body.ttl_ms,
        force: body.force,
    };
    let answer = render(|RecordPut { record, created }, revision| {
        let body = lockstep_api::records::RecordPut {
            key: record.key.clone(),
            version: record.version,
            revision,
        };
        Ok(Reply::created(created, body)?.with_etag(record.version))
    });
    run(&st, &ns, &caller.name, idem, Command::Put { key, req }, answer).await
}

/// `PATCH /records/{key}`: merge patch or JSON Patch, by `Content-Type`.
pub async fn patch(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Key(key): Key,
    caller: Caller,
    Idem(idem): Idem,
    Query(q): Query<PreconditionQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let precondition = precondition(req.headers(), q.expected_version)?;
    let merge = content_type_is(req.headers(), "application/merge-patch+json");
    let json_patch = content_type_is(req.headers(), "application/json-patch+json");
    if !merge && !json_patch {
        return Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/merge-patch+json or application/json-patch+json".into(),
        ));
    }
    let bytes = read_body(req, &st.limits).await?;
    let doc = if merge {
        PatchDoc::Merge(crate::extract::parse_json(&bytes, &st.limits)?)
    } else {
        PatchDoc::Json(crate::extract::parse_json(&bytes, &st.limits)?)
    };
    let answer = render(|RecordPatched { record }, revision| {
        let body = lockstep_api::records::RecordPatched {
            key: record.key.clone(),
            version: record.version,
            value: record.value.clone(),
            revision,
        };
        Ok(Reply::ok(body)?.with_etag(record.version))
    });
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::Patch {
            key,
            doc,
            precondition,
        },
        answer,
    )
    .await
}

/// `DELETE /records/{key}`.
pub async fn delete(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Key(key): Key,
    caller: Caller,
    Idem(idem): Idem,
    Query(q): Query<PreconditionQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let precondition = precondition(&headers, q.expected_version)?;
    let answer = render(|RecordDeleted { key }, revision| {
        Reply::ok(lockstep_api::records::RecordDeleted {
            key: key.clone(),
            deleted: true,
            revision,
        })
    });
    run(
        &st,
        &ns,
        &caller.name,
        idem,
        Command::Delete { key, precondition },
        answer,
    )
    .await
}

/// `GET /records?prefix=&limit=&cursor=`: key order, opaque cursors.
pub async fn list(
    State(st): State<AppState>,
    Ns(ns): Ns,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let page = Page::new(
        &st,
        format!("{ns}\0records\0{}", q.prefix),
        q.limit,
        q.cursor.as_deref(),
    )?;
    let records = st
        .store
        .list(&ns, &q.prefix, page.after.as_deref(), page.fetch())
        .await?;
    let (records, next_cursor) = page.cut(records, |r| r.key.clone());
    let items = lockstep_api::records::Records {
        records: records.iter().map(wire::records::record).collect(),
    };
    Ok(axum::Json(wire::Page { items, next_cursor }).into_response())
}

/// `DELETE /v1/ns/{ns}` (admin): removes the namespace and everything in it.
pub async fn delete_namespace(
    State(st): State<AppState>,
    Ns(ns): Ns,
    caller: Caller,
) -> Result<Response, ApiError> {
    if !caller.admin {
        return Err(
            lockstep_core::Error::Forbidden("deleting a namespace needs the admin role".into()).into(),
        );
    }
    let removed = st.store.delete_namespace(&ns).await?;
    let body = lockstep_api::records::NamespaceDeleted {
        namespace: ns.clone(),
        deleted: true,
        records: removed,
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /v1/namespaces` (admin): the namespaces that hold anything, by name.
pub async fn namespaces(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<NamespacesQuery>,
) -> Result<Response, ApiError> {
    if !caller.admin {
        return Err(lockstep_core::Error::Forbidden("listing namespaces needs the admin role".into()).into());
    }
    let page = Page::new(&st, "\0namespaces".into(), q.limit, q.cursor.as_deref())?;
    let names = st.store.namespaces(page.after.as_deref(), page.fetch()).await?;
    let (names, next_cursor) = page.cut(names, Clone::clone);
    let items = lockstep_api::records::Namespaces { namespaces: names };
    Ok(axum::Json(wire::Page { items, next_cursor }).into_response())
}

#[cfg(test)]
#[path = "records_fuzz.rs"]
mod fuzz;
