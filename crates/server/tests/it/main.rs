//! The integration tests of lockstep-server, one binary: the router in
//! process, driven with `tower::ServiceExt::oneshot`.

mod common;

mod access;
mod capabilities;
mod http_fuzz;
mod openapi_schemas;
mod quotas;
mod rules;
