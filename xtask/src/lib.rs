//! Project automation behind `cargo xtask`.
//!
//! - [`tools`]: finding and installing what the suite needs (Debian packages, a project-local
//!   Python virtualenv for Traefik, hadolint and the model converter), with progress output.
//! - [`postgres`]: a throwaway PostgreSQL server for the test runs.
//! - [`stack`]: the native launcher (`cargo xtask up`), also used by the end-to-end tests.
//! - [`docker`]: the Compose stack on the local Docker engine (`cargo xtask docker up|down`).
//! - [`swarm`]: the same images as a Docker Swarm stack (`cargo xtask swarm up|down`).
//! - [`model`]: obtaining and converting the ONNX model.
//! - [`checks`]: configuration checks with the real tools (Traefik, promtool, compose schema, hadolint).
//! - [`fuzz`]: `cargo xtask fuzz`, the fuzz targets of `fuzz/` for a bounded time each.
//! - [`test`]: `cargo xtask test`, which runs all of the above.
//! - [`bench`]: `cargo xtask bench`, which runs the `benches` crate.
//! - [`cargo`]: running cargo from a process cargo started.

pub mod bench;
pub mod cargo;
pub mod checks;
pub mod docker;
pub mod fuzz;
pub mod model;
pub mod postgres;
pub mod stack;
pub mod swarm;
pub mod test;
pub mod tools;
