//! The OpenAPI 3.1 document: built from the route table (`api.rs`), with the
//! JSON Schema of each request body.

use crate::api::Endpoint;
use crate::auth::Access;
use serde_json::{json, Map, Value};

/// The OpenAPI 3.1 document of every endpoint.
pub fn document(endpoints: &[Endpoint]) -> Value {
    let mut paths = Map::new();
    for e in endpoints {
        let path = e.path.replace("{*key}", "{key}");
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(e.query.iter().map(|(name, ty, desc)| {
            json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": ty}})
        }));
        let mut responses = Map::new();
        for (status, desc) in e.responses {
            let content = if *status >= 400 {
                json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}})
            } else {
                json!({e.produces: {}})
            };
            responses.insert(
                status.to_string(),
                json!({"description": desc, "content": content}),
            );
        }
        let mut op =
            json!({"operationId": e.id, "summary": e.summary, "parameters": params, "responses": responses});
        let access = e.access.unwrap_or(Access::Admin);
        op["x-lockstep-access"] = json!(access.as_str());
        if access == Access::Open {
            op["security"] = json!([]);
        } else {
            let problem =
                json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
            op["responses"]["401"] =
                json!({"description": "unauthorized: no or unknown token", "content": problem});
            if access.role().is_some() {
                op["responses"]["403"] = json!({"description": "forbidden: the token's role or namespaces do not allow it", "content": problem});
            }
        }
        if let Some((types, schema)) = &e.body {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| ((*t).to_owned(), json!({"schema": schema})))
                .collect();
            op["requestBody"] = json!({"required": true, "content": content});
        }
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[e.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "lockstep", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Coordination primitives over HTTP/JSON: versioned records, transactions."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
            "description": "a token of the config file; `x-lockstep-access` names the role each operation needs"}},
            "schemas": {"Problem": {"type": "object", "required": ["type", "title", "status", "code"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "code": {"type": "string"},
            "current": {"description": "the current {version, value}, or null (version_mismatch, patch_test_failed)"}}}}}
    })
}

/// The JSON Schemas of request bodies, by operation.
pub mod body {
    use serde_json::{json, Value};

    /// Any JSON value of a record.
    fn value() -> Value {
        json!({"description": "any JSON value, at most 1 MiB serialized"})
    }

    /// The request body of `configureFeed` and `configureFeedDefaults`.
    pub fn feed_config() -> Value {
        json!({"type": "object", "additionalProperties": false, "properties": {
            "max_entries": {"type": "integer", "minimum": 1},
            "max_age_ms": {"type": "integer", "minimum": 1},
            "scrub": {"type": "object", "required": ["fields", "after_ms"], "properties": {
                "fields": {"type": "array", "items": {"type": "string"}}, "after_ms": {"type": "integer", "minimum": 0}}}}})
    }

    /// The request body of `putRecord`.
    pub fn put_record() -> Value {
        json!({"type": "object", "required": ["value"], "additionalProperties": false, "properties": {
                    "value": value(),
                    "expected_version": {"type": "integer", "minimum": 0, "description": "0 = must not exist; else 409 version_mismatch"},
                    "ttl_ms": {"type": "integer", "minimum": 1},
                    "force": {"type": "boolean", "description": "skip the precondition (admin)"}}})
    }

    /// The request body of `patchRecord`.
    pub fn patch_record() -> Value {
        json!({"description": "a merge patch document, or a JSON Patch array"})
    }

    /// The request body of `txn`.
    pub fn txn() -> Value {
        json!({"type": "object", "additionalProperties": false, "properties": {
                    "compare": {"type": "array", "items": {"type": "object", "description": "{key, version} | {key, exists} | {key, value} | {lease, token} | {fence: {resource, token}}"}},
                    "success": {"type": "array", "items": {"type": "object", "description": "{get|put|delete|patch|incr: {...}}"}},
                    "failure": {"type": "array", "items": {"type": "object"}}}})
    }

    /// The request body of `acquireLease`.
    pub fn acquire_lease() -> Value {
        json!({"type": "object", "required": ["ttl_ms"], "additionalProperties": false, "properties": {
                    "ttl_ms": {"type": "integer", "minimum": 100, "maximum": 86_400_000},
                    "holder": {"type": "string", "maxLength": 256},
                    "wait_ms": {"type": "integer", "minimum": 0, "maximum": 60_000, "description": "wait in line (first come, first served)"}}})
    }

    /// The request body of `renewLease`.
    pub fn renew_lease() -> Value {
        json!({"type": "object", "required": ["token", "ttl_ms"], "additionalProperties": false, "properties": {
                    "token": {"type": "string"}, "ttl_ms": {"type": "integer", "minimum": 100, "maximum": 86_400_000}}})
    }

    /// The request body of `releaseLease`.
    pub fn release_lease() -> Value {
        json!({"type": "object", "required": ["token"], "additionalProperties": false, "properties": {"token": {"type": "string"}}})
    }

    /// The request body of `appendEntry`.
    pub fn append_entry() -> Value {
        json!({"type": "object", "required": ["id", "data"], "additionalProperties": false, "properties": {
                    "id": {"type": "string"}, "data": {"type": "object"}, "at": {"type": "string", "format": "date-time"}}})
    }

    /// The request body of `markRead`.
    pub fn mark_read() -> Value {
        json!({"type": "object", "additionalProperties": false, "properties": {
                    "ids": {"type": "array", "items": {"type": "string"}}, "up_to": {"type": "string"}, "all": {"const": true}}})
    }

    /// The request body of `importFeed`.
    pub fn import_feed() -> Value {
        json!({"type": "array", "maxItems": 1000, "items": {"type": "object", "required": ["id"]}})
    }

    /// The request body of `putGate`.
    pub fn put_gate() -> Value {
        json!({"type": "object", "additionalProperties": false, "properties": {
                    "policy": {"type": "object", "properties": {"pending": {"enum": ["reject", "recover"]}}}, "meta": {}}})
    }

    /// The request body of `admitTicket`.
    pub fn admit_ticket() -> Value {
        json!({"type": "object", "additionalProperties": false, "properties": {"ticket_id": {"type": "string"}, "meta": {}}})
    }

    /// The request body of `mintCapability`.
    pub fn mint_capability() -> Value {
        json!({"type": "object", "required": ["ttl_ms"], "additionalProperties": false, "properties": {
                    "ttl_ms": {"type": "integer", "minimum": 1000, "maximum": 2_592_000_000_u64},
                    "ops": {"type": "array", "items": {"enum": ["admit", "check", "commit", "abort", "finalize"]}, "minItems": 1}}})
    }

    /// The request body of `ticketOp`.
    pub fn ticket_op() -> Value {
        json!({"type": "object", "additionalProperties": false, "properties": {
                    "append": {"type": "object", "required": ["feed", "data"], "properties": {"feed": {"type": "string"}, "data": {"type": "object"}}}}})
    }

    /// The request body of `beginIdempotency`.
    pub fn begin_idempotency() -> Value {
        json!({"type": "object", "required": ["fingerprint", "lock_ms"], "additionalProperties": false, "properties": {
                    "fingerprint": {"type": "string"}, "lock_ms": {"type": "integer", "minimum": 100, "maximum": 86_400_000}}})
    }

    /// The request body of `completeIdempotency`.
    pub fn complete_idempotency() -> Value {
        json!({"type": "object", "required": ["token", "response"], "additionalProperties": false, "properties": {"token": {"type": "string"}, "response": {}}})
    }

    /// The request body of `giveUpIdempotency`.
    pub fn give_up_idempotency() -> Value {
        json!({"type": "object", "required": ["token"], "additionalProperties": false, "properties": {"token": {"type": "string"}}})
    }
}
