//! The route table: every endpoint once, with its handler and its documentation.
//! The router and `/openapi.json` are both built from this table, so the
//! published API cannot drift from what is served.

use crate::auth::Access;
use crate::capabilities;
use crate::routes::{changes, feeds, gates, idempotency, leases, records, system, txn};
use crate::wire::{self, openapi, openapi::schema, openapi::SchemaFn, Page};
use crate::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use lockstep_api as api;
use serde_json::Value;
use std::sync::Arc;

/// One endpoint: a method on a path, its handler and its documentation.
pub struct Endpoint {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) id: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) query: &'static [(&'static str, &'static str, &'static str)],
    pub(crate) body: Option<(&'static [&'static str], SchemaFn)>,
    /// The schema of each 2xx answer by status (0: every 2xx status).
    pub(crate) returns: Vec<(u16, SchemaFn)>,
    /// Whether it takes `Idempotency-Key` (and may answer `Idempotent-Replayed`).
    pub(crate) idempotent: bool,
    /// Whether it reads `If-Match`/`If-None-Match`.
    pub(crate) preconditions: bool,
    /// Whether its answer carries the record's `ETag`.
    pub(crate) etag: bool,
    pub(crate) responses: &'static [(u16, &'static str)],
    pub(crate) produces: &'static str,
    pub(crate) access: Option<Access>,
    pub(crate) route: MethodRouter<AppState>,
}

fn ep<H, T>(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    handler: H,
) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let route = on(filter(method), handler);
    Endpoint {
        method,
        path,
        id,
        summary,
        query: &[],
        body: None,
        returns: Vec::new(),
        idempotent: false,
        preconditions: false,
        etag: false,
        responses: &[],
        produces: "application/json",
        access: None,
        route,
    }
}

impl Endpoint {
    fn query(mut self, q: &'static [(&'static str, &'static str, &'static str)]) -> Self {
        self.query = q;
        self
    }
    fn body(mut self, types: &'static [&'static str], schema: SchemaFn) -> Self {
        self.body = Some((types, schema));
        self
    }
    /// The schema of every 2xx answer.
    fn returns(self, schema: SchemaFn) -> Self {
        self.returns_at(0, schema)
    }
    /// The schema of the answer with this status.
    fn returns_at(mut self, status: u16, schema: SchemaFn) -> Self {
        self.returns.push((status, schema));
        self
    }
    fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
    fn preconditions(mut self) -> Self {
        self.preconditions = true;
        self
    }
    fn etag(mut self) -> Self {
        self.etag = true;
        self
    }
    fn produces(mut self, content_type: &'static str) -> Self {
        self.produces = content_type;
        self
    }
    fn responses(mut self, r: &'static [(u16, &'static str)]) -> Self {
        self.responses = r;
        self
    }
    /// Who may call the endpoint (SPEC §11); checked by [`crate::auth::check`].
    fn access(mut self, a: Access) -> Self {
        self.access = Some(a);
        self
    }

    /// The method, lower case.
    pub fn method(&self) -> &'static str {
        self.method
    }
    /// The path template.
    pub fn path(&self) -> &'static str {
        self.path
    }
    /// The access rule; `None` (a route added without one) is treated as admin.
    pub fn access_rule(&self) -> Option<Access> {
        self.access
    }
}

fn filter(method: &str) -> MethodFilter {
    match method {
        "put" => MethodFilter::PUT,
        "post" => MethodFilter::POST,
        "patch" => MethodFilter::PATCH,
        "delete" => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

const NS: &str = "/v1/ns/{ns}";
const WRITE_ERRORS: &[(u16, &str)] = &[
    (400, "invalid_request"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (503, "unavailable"),
];

/// Every endpoint of the API.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        ep("get", "/v1/info", "info", "Version, backend and durability.", system::info)
            .returns(schema::<api::system::Info>)
            .responses(&[(200, "`{version, backend, durability}`")])
            .access(Access::Token),
        ep("get", "/v1/namespaces", "listNamespaces", "The namespaces that hold anything, by name (admin).", records::namespaces)
            .returns(schema::<Page<api::records::Namespaces>>)
            .query(&[("limit", "integer", "page size 1..=1000, default 100"), ("cursor", "string", "opaque cursor from next_cursor")])
            .responses(&[(200, "`{namespaces, next_cursor}`"), (400, "invalid_request"), (403, "forbidden")])
            .access(Access::Admin),
        ep("delete", NS, "deleteNamespace", "Remove a namespace and everything in it (admin).", records::delete_namespace)
            .returns(schema::<api::records::NamespaceDeleted>)
            .responses(&[(200, "`{namespace, deleted, records}`"), (400, "invalid_request"), (403, "forbidden")])
            .access(Access::Admin),
        ep("get", "/v1/ns/{ns}/records", "listRecords", "List live records in key order.", records::list)
            .returns(schema::<Page<api::records::Records>>)
            .query(&[("prefix", "string", "only keys starting with this"), ("limit", "integer", "page size 1..=1000, default 100"), ("cursor", "string", "opaque cursor from next_cursor")])
            .responses(&[(200, "`{records, next_cursor}`"), (400, "invalid_request")])
            .access(Access::Read),
        ep("get", "/v1/ns/{ns}/records/{*key}", "getRecord", "Read a record; ETag is its version.", records::get)
            .returns(schema::<api::records::Record>)
            .preconditions()
            .etag()
            .responses(&[(200, "`{key, value, version, created_at, updated_at, expires_at}`"), (304, "If-None-Match matched"), (404, "not_found")])
            .access(Access::Read),
        ep("put", "/v1/ns/{ns}/records/{*key}", "putRecord", "Create or replace a record, optionally only at an expected version.", records::put)
            .returns(schema::<api::records::RecordPut>)
            .idempotent()
            .preconditions()
            .etag()
            .body(&["application/json"], schema::<crate::routes::records::PutBody>)
            .responses(&[(200, "replaced: `{key, version, revision}`"), (201, "created: `{key, version, revision}`"), (409, "version_mismatch, with `current`"), (412, "precondition_failed"), (400, "invalid_request"), (413, "payload_too_large"), (415, "unsupported_media_type"), (503, "unavailable")])
            .access(Access::Write),
        ep("patch", "/v1/ns/{ns}/records/{*key}", "patchRecord", "Patch a record on the server (RFC 7396 or RFC 6902).", records::patch)
            .returns(schema::<api::records::RecordPatched>)
            .idempotent()
            .preconditions()
            .etag()
            .query(&[("expected_version", "integer", "409 unless the current version is this")])
            .body(&["application/merge-patch+json", "application/json-patch+json"], openapi::patch_record)
            .responses(&[(200, "`{key, version, value, revision}`"), (404, "not_found"), (409, "version_mismatch or patch_test_failed, with `current`"), (412, "precondition_failed"), (422, "invalid_patch"), (400, "invalid_request"), (415, "unsupported_media_type")])
            .access(Access::Write),
        ep("delete", "/v1/ns/{ns}/records/{*key}", "deleteRecord", "Delete a record, optionally only at an expected version.", records::delete)
            .returns(schema::<api::records::RecordDeleted>)
            .idempotent()
            .preconditions()
            .query(&[("expected_version", "integer", "409 unless the current version is this")])
            .responses(&[(200, "`{key, deleted, revision}`"), (404, "not_found"), (409, "version_mismatch"), (412, "precondition_failed")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/txn", "txn", "Compare, then apply one branch atomically.", txn::txn)
            .returns(schema::<api::records::TxnResult>)
            .idempotent()
            .body(&["application/json"], schema::<lockstep_core::txn::Txn>)
            .responses(&[(200, "`{succeeded, failed, results, revision}`"), (404, "not_found (patch of an absent record)"), (422, "invalid_patch"), (400, "invalid_request"), (413, "payload_too_large")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/leases/{name}/acquire", "acquireLease", "Acquire a lease: a fresh owner token and a larger fence; optionally wait in line.", leases::acquire)
            .returns(schema::<api::leases::Lease>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::leases::AcquireBody>)
            .responses(&[(200, "`{name, token, fence, holder, acquired_at, expires_at}`"), (409, "lease_held, with `holder`, `expires_at`, `waiters`"), (400, "invalid_request")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/leases/{name}/renew", "renewLease", "Extend a held lease.", leases::renew)
            .returns(schema::<api::leases::Lease>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::leases::RenewBody>)
            .responses(&[(200, "the lease with its new `expires_at`"), (409, "lease_lost: the token does not hold it; stop"), (400, "invalid_request")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/leases/{name}/release", "releaseLease", "Compare-and-clear: release only if the token holds the lease.", leases::release)
            .returns(schema::<api::leases::LeaseReleased>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::leases::ReleaseBody>)
            .responses(&[(200, "`{released, revision}`"), (400, "invalid_request")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/leases/{name}/break", "breakLease", "Clear a live lease whatever its token (admin).", leases::break_lease)
            .returns(schema::<api::leases::LeaseBroken>)
            .idempotent()
            .responses(&[(200, "`{broken, revision}`"), (403, "forbidden")])
            .access(Access::Admin),
        ep("get", "/v1/ns/{ns}/leases/{name}", "getLease", "Who holds a lease, until when, and its last fence.", leases::get)
            .returns(schema::<api::leases::LeaseState>)
            .responses(&[(200, "`{name, held, holder, acquired_at, expires_at, fence}`"), (400, "invalid_request")])
            .access(Access::Read),
        ep("post", "/v1/ns/{ns}/feeds/{name}/entries", "appendEntry", "Append an entry; idempotent by id.", feeds::append)
            .returns(schema::<api::feeds::EntryAppended>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::feeds::AppendBody>)
            .responses(&[(201, "`{id, at, data, read, revision, cursor, created: true}`"), (200, "the original entry with `created: false`"), (400, "invalid_request")])
            .access(Access::Write),
        ep("get", "/v1/ns/{ns}/feeds/{name}/entries", "listEntries", "Page a feed's visible entries by (at, id).", feeds::entries)
            .returns(schema::<Page<api::feeds::Entries>>)
            .query(&[("limit", "integer", "page size 1..=1000, default 100"), ("cursor", "string", "opaque cursor"), ("order", "string", "desc (default) or asc")])
            .responses(&[(200, "`{entries, next_cursor, unread_count}`"), (400, "invalid_request")])
            .access(Access::Read),
        ep("delete", "/v1/ns/{ns}/feeds/{name}/entries/{id}", "deleteEntry", "Delete one entry.", feeds::delete_entry)
            .returns(schema::<api::feeds::EntryDeleted>)
            .idempotent()
            .responses(&[(200, "`{id, deleted, revision}`"), (404, "not_found"), (400, "invalid_request")])
            .access(Access::Write),
        ep("get", "/v1/ns/{ns}/feeds/{name}", "getFeed", "A feed's configuration in force and its counts.", feeds::get)
            .returns(schema::<api::feeds::Feed>)
            .responses(&[(200, "`{feed, config, own_config, entries, unread_count}`"), (400, "invalid_request")])
            .access(Access::Read),
        ep("put", "/v1/ns/{ns}/feeds/{name}", "configureFeed", "Set a feed's cap, maximum age and scrubbed fields.", feeds::put_config)
            .returns(schema::<api::feeds::FeedConfigured>)
            .idempotent()
            .body(&["application/json"], schema::<lockstep_core::feed::FeedConfig>)
            .responses(&[(200, "`{feed, config, revision}`"), (400, "invalid_request")])
            .access(Access::Write),
        ep("put", "/v1/ns/{ns}/feed-defaults", "configureFeedDefaults", "The configuration of every feed of the namespace without its own.", feeds::put_defaults)
            .returns(schema::<api::feeds::FeedConfigured>)
            .idempotent()
            .body(&["application/json"], schema::<lockstep_core::feed::FeedConfig>)
            .responses(&[(200, "`{feed: \"\", config, revision}`"), (400, "invalid_request")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/feeds/{name}/read", "markRead", "Mark entries read: by ids, up to a cursor, or all.", feeds::read)
            .returns(schema::<api::feeds::MarkedRead>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::feeds::ReadBody>)
            .responses(&[(200, "`{revision}`"), (400, "invalid_request")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/feeds/{name}/import", "importFeed", "Import a legacy JSON array of entries, each id once; a bad element refuses the whole batch.", feeds::import)
            .returns(schema::<api::feeds::FeedImported>)
            .idempotent()
            .query(&[("id_field", "string", "the member holding each element's id (default id)"), ("at_field", "string", "the member holding its time, RFC 3339 or epoch milliseconds (default at)"), ("data_field", "string", "the member holding its payload object (default data); without it, every other member is the payload")])
            .body(&["application/json"], openapi::import_feed)
            .responses(&[(200, "`{imported, skipped, revision}`"), (400, "invalid_request"), (413, "payload_too_large")])
            .access(Access::Write),
        ep("get", "/v1/ns/{ns}/feeds", "listFeeds", "Feeds by name with entry and unread counts.", feeds::list)
            .returns(schema::<Page<api::feeds::Feeds>>)
            .query(&[("prefix", "string", "only feeds starting with this"), ("limit", "integer", "page size"), ("cursor", "string", "opaque cursor")])
            .responses(&[(200, "`{feeds, next_cursor}`"), (400, "invalid_request")])
            .access(Access::Read),
        ep("put", "/v1/ns/{ns}/gates/{name}", "putGate", "Create a gate (open, epoch 1), or update its policy and meta.", gates::put)
            .returns(schema::<api::gates::Gate>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::gates::PutBody>)
            .responses(&[(201, "created: the gate"), (200, "updated: the gate"), (410, "gate_closed (deleted)"), (400, "invalid_request")])
            .access(Access::Write),
        ep("get", "/v1/ns/{ns}/gates/{name}", "getGate", "Read a gate: state, epoch, policy, meta.", gates::get)
            .returns(schema::<api::gates::Gate>)
            .responses(&[(200, "`{id, state, epoch, policy, meta, revision, created_at, updated_at}`"), (404, "not_found")])
            .access(Access::Read),
        ep("delete", "/v1/ns/{ns}/gates/{name}", "deleteGate", "The delete transition: terminal, voids the open tickets of the old epoch.", gates::delete)
            .returns(schema::<api::gates::GateTransitioned>)
            .idempotent()
            .responses(&[(200, "the gate with `changed`, `voided`, `pending`, `revision`"), (404, "not_found"), (400, "invalid_request")])
            .access(Access::Admin),
        ep("post", "/v1/ns/{ns}/gates/{name}/{transition}", "transitionGate", "pause, resume, revoke, delete or reopen; terminal ones void the old epoch's open tickets.", gates::transition)
            .returns(schema::<api::gates::GateTransitioned>)
            .idempotent()
            .responses(&[(200, "the gate with `changed`, `voided`, `pending`, `revision`"), (404, "not_found"), (409, "invalid_transition"), (410, "gate_closed"), (400, "invalid_request (unknown transition)")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/gates/{name}/tickets", "admitTicket", "Admit a ticket under the current epoch.", gates::admit)
            .returns(schema::<api::gates::TicketAdmitted>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::gates::AdmitBody>)
            .responses(&[(201, "the ticket"), (200, "the same open ticket, `created: false`"), (409, "ticket_conflict"), (410, "gate_closed"), (423, "gate_paused"), (404, "not_found")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/gates/{name}/capabilities", "mintCapability", "Sign a capability for this gate at its current epoch: ticket operations only, until it expires or the epoch moves on.", capabilities::mint)
            .returns(schema::<api::gates::Capability>)
            .body(&["application/json"], schema::<crate::capabilities::MintBody>)
            .responses(&[(201, "`{capability, expires_at, epoch, gate, ops}`"), (404, "not_found"), (410, "gate_closed"), (400, "invalid_request"), (403, "forbidden")])
            .access(Access::Write),
        ep("get", "/v1/ns/{ns}/gates/{name}/tickets", "listTickets", "List a gate's tickets by id.", gates::tickets)
            .returns(schema::<Page<api::gates::Tickets>>)
            .query(&[("state", "string", "open, committed, finalized, voided or aborted"), ("limit", "integer", "page size"), ("cursor", "string", "opaque cursor")])
            .responses(&[(200, "`{tickets, next_cursor}`"), (400, "invalid_request")])
            .access(Access::Read),
        ep("post", "/v1/ns/{ns}/gates/{name}/tickets/{ticket}/{op}", "ticketOp", "check, commit, finalize (optionally appending a feed entry atomically) or abort a ticket; see docs/gates.md.", gates::ticket_op)
            .returns(schema::<api::gates::Ticket>)
            .idempotent()
            .body(&["application/json"], schema::<crate::routes::gates::FinalizeBody>)
            .responses(&[(200, "the ticket"), (404, "not_found"), (409, "ticket_conflict"), (410, "gate_closed"), (423, "gate_paused"), (400, "invalid_request")])
            .access(Access::Write),
        ep("post", "/v1/ns/{ns}/idempotency/{scope}/{key}", "beginIdempotency", "Own a key for the app's own endpoint, or replay its stored response.", idempotency::begin)
            .returns_at(201, schema::<api::idempotency::IdempotencyStarted>)
            .returns_at(200, schema::<api::idempotency::IdempotencyReplayed>)
            .body(&["application/json"], schema::<crate::routes::idempotency::BeginBody>)
            .responses(&[(201, "`{state: \"started\", token}`: the caller owns the key"), (200, "`{state: \"completed\", response}`: replay"), (409, "idempotency_key_in_use"), (422, "idempotency_key_reused"), (400, "invalid_request")])
            .access(Access::Write),
        ep("get", "/v1/ns/{ns}/idempotency/{scope}/{key}", "getIdempotency", "A key's state: started (with locked_until, stale) or completed (with response); never the owner's token.", idempotency::get)
            .returns(schema::<api::idempotency::IdempotencyKey>)
            .responses(&[(200, "`{scope, key, state, locked_until?, stale?, response?, expires_at}`"), (404, "not_found"), (400, "invalid_request")])
            .access(Access::Read),
        ep("put", "/v1/ns/{ns}/idempotency/{scope}/{key}", "completeIdempotency", "Store the response of an owned key.", idempotency::complete)
            .returns(schema::<api::idempotency::IdempotencyCompleted>)
            .body(&["application/json"], schema::<crate::routes::idempotency::CompleteBody>)
            .responses(&[(200, "`{state: \"completed\"}`"), (409, "lease_lost: a stale owner"), (400, "invalid_request")])
            .access(Access::Write),
        ep("delete", "/v1/ns/{ns}/idempotency/{scope}/{key}", "giveUpIdempotency", "Give an owned key up so a retry may run.", idempotency::give_up)
            .returns(schema::<api::idempotency::IdempotencyGivenUp>)
            .body(&["application/json"], schema::<crate::routes::idempotency::GiveUpBody>)
            .responses(&[(200, "`{released: true}`"), (409, "lease_lost: a stale owner"), (400, "invalid_request")])
            .access(Access::Write),
        ep("get", "/v1/ns/{ns}/changes", "listChanges", "Page the change log in (revision, index) order; pages hold whole revisions.", changes::list)
            .returns(schema::<Page<api::changes::Changes>>)
            .query(&[("after", "string", "a revision: only changes after it; default: the oldest kept"), ("cursor", "string", "the next_cursor of the previous page (instead of after)"), ("prefix", "string", "only keys starting with this (record key, lease name, gate id, feed/entry id)"), ("kind", "string", "record, lease, feed, gate or idempotency"), ("limit", "integer", "page size 1..=1000, default 100")])
            .responses(&[(200, "`{changes: [{revision, index, kind, key, op, actor, forced, at}], next_cursor}`"), (400, "invalid_request"), (410, "compacted: `after` is older than what is kept")])
            .access(Access::Read),
        ep("get", "/v1/ns/{ns}/watch", "watchChanges", "Stream changes as Server-Sent Events: one `change` event per revision, id = revision; `Last-Event-ID` resumes.", changes::watch)
            .produces("text/event-stream")
            .query(&[("after", "string", "a revision: stream changes after it; default: from now"), ("prefix", "string", "only keys starting with this"), ("kind", "string", "record, lease, feed, gate or idempotency")])
            .responses(&[(200, "text/event-stream; each event's data is `{revision, changes}`"), (400, "invalid_request"), (410, "compacted: the start is older than what is kept")])
            .access(Access::Read),
        ep("get", "/healthz", "healthz", "The process is up.", system::healthz).responses(&[(200, "ok")]).returns(schema::<api::system::HealthStatus>).access(Access::Open),
        ep("get", "/readyz", "readyz", "Storage is reachable.", system::readyz).responses(&[(200, "ready"), (503, "unavailable")]).returns(schema::<api::system::HealthStatus>).access(Access::Open),
        ep("get", "/metrics", "metrics", "Prometheus metrics.", system::metrics).produces("text/plain").responses(&[(200, "text exposition")]).access(Access::Token),
        ep("get", "/openapi.json", "openapi", "This document.", system::openapi).responses(&[(200, "OpenAPI 3.1")]).access(Access::Open),
    ]
    .into_iter()
    .map(|e| if e.responses.is_empty() { e.responses(WRITE_ERRORS) } else { e })
    .collect()
}

/// The access rule of the endpoint `method` on the path template `path`;
/// `None` when the path is not in the table. An endpoint without a rule is
/// treated as admin-only, so a route added without one is never open. `HEAD`
/// (which axum answers with the `GET` handler) has the rule of `GET`; another
/// method the path does not have needs a token before it gets its 405.
pub fn access_of(method: &axum::http::Method, path: &str) -> Option<Access> {
    static RULES: std::sync::OnceLock<Vec<(&'static str, &'static str, Access)>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        endpoints()
            .iter()
            .map(|e| (e.method, e.path, e.access.unwrap_or(Access::Admin)))
            .collect()
    });
    let method = if method == axum::http::Method::HEAD {
        "get"
    } else {
        method.as_str()
    };
    let mut of_path = rules.iter().filter(|(_, p, _)| *p == path).peekable();
    of_path.peek()?;
    Some(
        of_path
            .find(|(m, _, _)| m.eq_ignore_ascii_case(method))
            .map_or(Access::Token, |(_, _, a)| *a),
    )
}

/// The router of every endpoint. Each endpoint refuses query parameters it
/// does not document (SPEC §15), here for all of them at once, before the
/// handler runs, so a refused request changes nothing.
pub fn router() -> axum::Router<AppState> {
    endpoints().into_iter().fold(axum::Router::new(), |r, e| {
        let allowed: Vec<&'static str> = e.query.iter().map(|(name, _, _)| *name).collect();
        let route = e.route.layer(axum::middleware::from_fn_with_state(
            Arc::new(allowed),
            known_query,
        ));
        r.route(e.path, route)
    })
}

/// Middleware: 400 when the query names a parameter outside `allowed`.
async fn known_query(
    State(allowed): State<Arc<Vec<&'static str>>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let query = req.uri().query().unwrap_or_default();
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    if let Some((name, _)) = pairs.iter().find(|(name, _)| !allowed.contains(&name.as_str())) {
        let known = if allowed.is_empty() {
            "this endpoint takes no query parameters".to_owned()
        } else {
            format!("known: {}", allowed.join(", "))
        };
        return Err(ApiError::invalid(format!(
            "unknown query parameter {name:?} ({known})"
        )));
    }
    Ok(next.run(req).await)
}

/// The OpenAPI 3.1 document of every endpoint.
pub fn openapi() -> Value {
    wire::openapi::document(&endpoints())
}
