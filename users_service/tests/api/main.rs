//! users_service over real HTTP, against SQLite and PostgreSQL.
//!
//! Each scenario is an `async fn(Backend)`; `testkit::on_both_databases!` turns it into two tests,
//! `<module>::<name>::on_sqlite` and `<module>::<name>::on_postgres`. The PostgreSQL variants need
//! `TEST_POSTGRES_URL` (set by `cargo xtask test`) and fail, never skip, without it.

mod access_tokens;
mod account;
mod admin;
mod cli;
mod helpers;
mod login;
mod ops;
mod refresh_tokens;
mod register;
mod replicas;
mod revocations;
mod shedding;
