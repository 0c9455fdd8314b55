//! images_service over real HTTP: the very router the binary serves, on 127.0.0.1:0, against
//! SQLite and PostgreSQL, with real image files made by the `image` crate.
//!
//! Each scenario is an `async fn(Backend)`; `testkit::on_both_databases!` turns it into
//! `<module>::<name>::on_sqlite` and `<module>::<name>::on_postgres`. The PostgreSQL variant fails
//! (never skips) when `TEST_POSTGRES_URL` is unset.

mod auth;
mod crash;
mod helpers;
mod images;
mod ops;
mod upload;
