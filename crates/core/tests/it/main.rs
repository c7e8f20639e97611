//! The one integration-test binary of lockstep-core.

mod fuzz;
mod model;
