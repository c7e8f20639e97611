//! The OpenAPI 3.1 document: built from the route table (`api.rs`). The
//! schemas of request and response bodies are derived (schemars, JSON Schema
//! 2020-12) from the Rust types that parse and serialize them, so the document
//! cannot drift from the wire; parameters carry the limits the server enforces.

use crate::api::Endpoint;
use crate::auth::Access;
use lockstep_core::Limits;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

/// How an endpoint documents a body: the schema of a Rust type, in a generator.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` (a `$ref` into `components/schemas` for a named type).
pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// A generator whose definitions land in `components/schemas`.
fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    settings.into_generator()
}

/// The problem+json content every refusal answers.
fn problem() -> Value {
    json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}})
}

/// A header object with a string schema.
fn header(description: &str) -> Value {
    json!({"description": description, "schema": {"type": "string"}})
}

/// The schema of a path parameter: names are 1..=`key_bytes_max` bytes
/// without control characters; a namespace has its own pattern.
fn path_param(name: &str, limits: &Limits) -> Value {
    match name {
        "ns" => json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,62}$", "maxLength": 63}),
        "transition" => json!({"type": "string", "enum": ["pause", "resume", "revoke", "delete", "reopen"]}),
        "op" => json!({"type": "string", "enum": ["check", "commit", "finalize", "abort"]}),
        _ => json!({"type": "string", "minLength": 1, "maxLength": limits.key_bytes_max,
                    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"}),
    }
}

/// The schema of a query parameter, with the constraint the server enforces.
fn query_param(name: &str, ty: &str, limits: &Limits) -> Value {
    match name {
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": limits.page_size_max}),
        "expected_version" => {
            json!({"type": "integer", "minimum": 0, "maximum": lockstep_core::names::REVISION_MAX})
        }
        "after" => json!({"type": "string", "pattern": "^[0-9]+$"}),
        "kind" => json!({"type": "string", "enum": ["record", "lease", "feed", "gate", "idempotency"]}),
        "order" => json!({"type": "string", "enum": ["asc", "desc"]}),
        "state" => json!({"type": "string", "enum": ["open", "committed", "finalized", "voided", "aborted"]}),
        "cursor" => json!({"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$",
                           "description": "opaque: the next_cursor of the previous page"}),
        _ => json!({"type": ty}),
    }
}

/// The OpenAPI 3.1 document of every endpoint.
pub fn document(endpoints: &[Endpoint]) -> Value {
    let limits = Limits::default();
    let mut requests = generator(false);
    let mut answers = generator(true);
    let mut paths = Map::new();
    for e in endpoints {
        let path = e.path.replace("{*key}", "{key}");
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": path_param(name, &limits)}))
            .collect();
        params.extend(e.query.iter().map(|(name, ty, desc)| {
            json!({"name": name, "in": "query", "required": false, "description": desc,
                   "schema": query_param(name, ty, &limits)})
        }));
        params.extend(request_headers(e));
        let access = e.access.unwrap_or(Access::Admin);
        let mut responses = Map::new();
        for (status, desc) in statuses(e, access) {
            if status >= 400 {
                responses.insert(status.to_string(), refusal(status, &desc));
                continue;
            }
            let mut r = json!({"description": desc});
            let mut headers = Map::new();
            headers.insert(
                "X-Request-Id".into(),
                header("the request's id (echoed, or generated)"),
            );
            if (200..300).contains(&status) {
                let schema = e
                    .returns
                    .iter()
                    .find(|(s, _)| *s == status)
                    .or_else(|| e.returns.iter().find(|(s, _)| *s == 0))
                    .map(|(_, f)| Value::from(f(&mut answers)));
                r["content"] = match (e.produces, schema) {
                    ("application/json", Some(schema)) => json!({"application/json": {"schema": schema}}),
                    ("text/event-stream", _) => json!({"text/event-stream": {"schema": {
                        "description": "one Server-Sent Event: `change` (id = revision, data = a WatchEvent as JSON) or `error` (data = a Problem as JSON); comments keep the stream alive",
                        "type": "object", "required": ["data"], "properties": {
                            "event": {"type": "string", "enum": ["change", "error"]},
                            "id": {"type": "string", "pattern": "^[0-9]+$"},
                            "data": {"type": "string", "contentMediaType": "application/json"},
                            "retry": {"type": "integer", "minimum": 0}}}}}),
                    ("application/json", None) => json!({"application/json": {"schema": {"type": "object"}}}),
                    (other, _) => json!({other: {"schema": {"type": "string"}}}),
                };
                if e.etag {
                    headers.insert(
                        "ETag".into(),
                        header("the record's version as a strong tag: `\"N\"`"),
                    );
                }
                if e.idempotent {
                    headers.insert("Idempotent-Replayed".into(), json!({"description": "`true` when the answer is the stored one of an earlier request with the same Idempotency-Key", "schema": {"type": "string", "enum": ["true"]}}));
                }
            } else if status == 304 {
                headers.insert("ETag".into(), header("the record's version"));
            }
            r["headers"] = Value::Object(headers);
            responses.insert(status.to_string(), r);
        }
        let mut op =
            json!({"operationId": e.id, "summary": e.summary, "parameters": params, "responses": responses});
        op["x-lockstep-access"] = json!(access.as_str());
        if access == Access::Open {
            op["security"] = json!([]);
        }
        if let Some((types, f)) = &e.body {
            let schema = Value::from(f(&mut requests));
            let content: Map<String, Value> = types
                .iter()
                .map(|t| ((*t).to_owned(), json!({"schema": schema})))
                .collect();
            op["requestBody"] = json!({"required": true, "content": content});
        }
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[e.method] = op;
    }
    for item in paths.values_mut() {
        let other = other_methods(item);
        item[OTHER_METHODS] = other;
    }
    // Answers first, then requests: a type on both sides (a feed config, a
    // gate policy) keeps its request schema, which accepts what is answered.
    schema::<lockstep_api::problem::Problem>(&mut answers);
    schema::<lockstep_api::changes::WatchEvent>(&mut answers);
    let mut schemas = answers.take_definitions(true);
    schemas.extend(requests.take_definitions(true));
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "lockstep", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Coordination primitives over HTTP/JSON: versioned records, transactions, leases, feeds, gates, idempotency keys, the change log. A method a path does not list answers 405 `method_not_allowed` (problem+json): each path item names those methods, and every status they can answer, in `x-lockstep-other-methods`."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
            "description": "a token of the config file, or a gate capability for ticket operations; `x-lockstep-access` names the role each operation needs"}},
            "schemas": schemas}
    })
}

/// The request headers an endpoint reads.
fn request_headers(e: &Endpoint) -> Vec<Value> {
    let mut h = Vec::new();
    if e.idempotent {
        h.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "a key of 1..=255 printable ASCII characters: a retry with the same key and request replays the first answer (SPEC §9)",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!#-~]+$"}}));
    }
    if e.preconditions {
        h.push(json!({"name": "If-Match", "in": "header", "required": false,
            "description": "`*` or strong tags `\"N\"`: 412 unless the record's version is one of them",
            "schema": {"type": "string", "pattern": "^\\s*(\\*|(W/)?\"[^\"]*\"(\\s*,\\s*(W/)?\"[^\"]*\")*)\\s*$"}}));
        h.push(json!({"name": "If-None-Match", "in": "header", "required": false,
            "description": "`*` or tags: on a read, 304 when one matches; on a write, 412",
            "schema": {"type": "string", "pattern": "^\\s*(\\*|(W/)?\"[^\"]*\"(\\s*,\\s*(W/)?\"[^\"]*\")*)\\s*$"}}));
    }
    if e.produces == "text/event-stream" {
        h.push(json!({"name": "Last-Event-ID", "in": "header", "required": false,
            "description": "the last revision seen: resume after it",
            "schema": {"type": "string", "pattern": "^[0-9]+$"}}));
    }
    h
}

/// Every status the endpoint can answer: its own list, plus what its access
/// rule, its body and the service itself add.
fn statuses(e: &Endpoint, access: Access) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = e.responses.iter().map(|(s, d)| (*s, (*d).to_owned())).collect();
    let mut add = |status: u16, desc: &str| {
        if !out.iter().any(|(s, _)| *s == status) {
            out.push((status, desc.to_owned()));
        }
    };
    if access != Access::Open {
        add(
            401,
            "unauthorized: no or unknown token, or an expired or forged capability",
        );
        add(429, "too_many_requests: over the token's rate");
        if access.role().is_some() {
            add(403, "forbidden: the token's role or namespaces do not allow it, or a capability outside its gate and operations");
        } else {
            add(
                403,
                "forbidden: a gate capability, which allows only ticket operations",
            );
        }
    }
    // Every endpoint refuses a query parameter it does not document.
    add(400, "invalid_request");
    let mutating = is_mutating(e.method);
    if e.body.is_some() || mutating {
        // A mutating request with an Idempotency-Key has its body read (up to
        // the limit) before the handler, whether the handler reads it or not.
        add(413, "payload_too_large");
    }
    if e.body.is_some() {
        add(415, "unsupported_media_type");
    }
    if e.idempotent {
        add(
            409,
            "idempotency_key_in_use (Retry-After), or the operation's own conflict",
        );
        add(
            422,
            "idempotency_key_reused: the key was used for another request",
        );
    }
    if touches_storage(e.id) {
        add(
            503,
            "unavailable: storage unreachable or overloaded, or the request timed out; nothing was applied",
        );
        add(
            500,
            "internal: a bug or corrupt data (details in the server log only)",
        );
    }
    out.sort_by_key(|(s, _)| *s);
    out
}

/// The request body of `patchRecord`: an RFC 7396 merge patch (any JSON
/// value) or an RFC 6902 JSON Patch array; parsed by hand, so described here.
pub fn patch_record(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "description": "application/merge-patch+json: any JSON value; application/json-patch+json: an array of operations",
        "anyOf": [
            {"type": "array", "items": {"type": "object", "required": ["op", "path"], "properties": {
                "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                "path": {"type": "string"}, "from": {"type": "string"}, "value": true}}},
            true
        ]
    })
}

/// The request body of `importFeed`: a JSON array of at most
/// `import_entries_max` legacy objects (their members are named by the query).
pub fn import_feed(g: &mut SchemaGenerator) -> Schema {
    let limits = Limits::default();
    let mut s = schema::<Vec<serde_json::Map<String, Value>>>(g);
    s.insert("maxItems".into(), limits.import_entries_max.into());
    s
}

/// The extension member of each path item that documents the methods the path
/// does not have: OpenAPI 3.1 has no field for them.
pub const OTHER_METHODS: &str = "x-lockstep-other-methods";

/// The methods of an OpenAPI path item, as its field names.
pub const PATH_ITEM_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Whether a method (lower case) runs the `Idempotency-Key` middleware.
fn is_mutating(method: &str) -> bool {
    matches!(method, "post" | "put" | "patch" | "delete")
}

/// Whether an endpoint may reach storage (and so answer 503 or 500).
fn touches_storage(id: &str) -> bool {
    id != "healthz" && id != "openapi"
}

/// A problem+json answer with the headers of its status.
fn refusal(status: u16, description: &str) -> Value {
    let mut headers = Map::new();
    headers.insert(
        "X-Request-Id".into(),
        header("the request's id (echoed, or generated)"),
    );
    if matches!(status, 409 | 423 | 429 | 503) {
        headers.insert("Retry-After".into(), json!({"description": "seconds to wait before a retry (503, 423, 429 and 409 idempotency_key_in_use)", "schema": {"type": "integer", "minimum": 0}}));
    }
    if status == 401 {
        headers.insert("WWW-Authenticate".into(), header("`Bearer realm=\"lockstep\"`"));
    }
    if status == 405 {
        headers.insert("Allow".into(), header("the methods the path has"));
    }
    json!({"description": description, "content": problem(), "headers": headers})
}

/// What a path answers to the methods it does not have: 405 once past the
/// door, where such a request needs a token (any role; `api::access_of`) and
/// a mutating one goes through the `Idempotency-Key` middleware. `HEAD` is
/// served wherever `GET` is; `OPTIONS` is a CORS preflight when CORS is
/// configured.
fn other_methods(item: &Value) -> Value {
    let has = |m: &str| item.get(m).is_some() || (m == "head" && item.get("get").is_some());
    let methods: Vec<&str> = PATH_ITEM_METHODS.into_iter().filter(|m| !has(m)).collect();
    let mut responses = Map::new();
    let mut add = |status: u16, desc: &str| {
        responses.insert(status.to_string(), refusal(status, desc));
    };
    add(405, "method_not_allowed: the path does not have this method");
    add(
        401,
        "unauthorized: no or unknown token (checked before the method)",
    );
    add(
        403,
        "forbidden: a gate capability, which allows only ticket operations",
    );
    add(429, "too_many_requests: over the token's rate");
    add(
        503,
        "unavailable: the request timed out, or storage (capability keys) is unreachable",
    );
    add(
        500,
        "internal: a bug or corrupt data (details in the server log only)",
    );
    if methods.iter().any(|m| is_mutating(m)) {
        add(
            400,
            "invalid_request: a malformed Idempotency-Key (POST, PUT, PATCH, DELETE)",
        );
        add(
            413,
            "payload_too_large: a body over the limit with an Idempotency-Key (POST, PUT, PATCH, DELETE)",
        );
    }
    responses.sort_keys();
    json!({"description": "The methods this path does not have; each answers one of these statuses, 405 when its caller is let in. `options` is a CORS preflight where CORS is configured.",
           "methods": methods, "responses": responses})
}
