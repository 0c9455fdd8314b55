//! users_service over real HTTP, against SQLite and PostgreSQL.
//!
//! Each scenario is an `async fn(Backend)`; [`on_both_databases!`] turns it into two tests,
//! `<module>::sqlite::<name>` and `<module>::postgres::<name>`. The PostgreSQL variants need
//! `TEST_POSTGRES_URL` (set by `cargo xtask test`) and fail, never skip, without it.

/// Generates a SQLite and a PostgreSQL test for each named scenario of the current module.
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(crate::helpers::Backend::Postgres).await;
                }
            )+
        }
    };
}

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
mod shedding;
