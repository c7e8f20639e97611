//! The integration tests of lockstep-server, one binary: the router in
//! process, driven with `tower::ServiceExt::oneshot`.

mod common;

mod access;
mod capabilities;
mod http_fuzz;
mod openapi_auth;
mod openapi_schemas;
mod openapi_statuses;
mod problem_codes;
mod quotas;
mod rules;
