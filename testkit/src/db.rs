//! A fresh database per test, on SQLite or PostgreSQL, and the macro that runs a scenario on both.

use std::path::Path;

use sqlx::{AnyConnection, Connection, Executor};
use uuid::Uuid;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The URL of a fresh, empty database for one test: `sqlite_file` (not yet created) on SQLite, a
/// new database in the server of `TEST_POSTGRES_URL` on PostgreSQL.
pub async fn database_url(backend: Backend, sqlite_file: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", sqlite_file.display()),
        Backend::Postgres => fresh_postgres_database().await,
    }
}

/// Creates `t_<uuid>` in the PostgreSQL server of `TEST_POSTGRES_URL` and returns its URL (the
/// server URL with the database name swapped, its query kept). Panics with the fix when the
/// variable is unset.
pub async fn fresh_postgres_database() -> String {
    let Ok(server) = std::env::var("TEST_POSTGRES_URL") else {
        panic!(
            "TEST_POSTGRES_URL is not set, so the PostgreSQL variant of this test cannot run. Run the \
             tests with `cargo xtask test`, which starts a throwaway PostgreSQL, or export \
             TEST_POSTGRES_URL=postgres://USER@HOST:PORT/postgres (a user that may create databases)."
        );
    };
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", Uuid::new_v4().simple());
    let mut conn = AnyConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("connecting to TEST_POSTGRES_URL: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create the test database");
    conn.close().await.expect("close the admin connection");
    let mut url = reqwest::Url::parse(&server).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Turns each named `async fn(testkit::Backend)` scenario of the current module into two tests,
/// `<scenario>::on_sqlite` and `<scenario>::on_postgres`, on a two-worker Tokio runtime.
///
/// ```no_run
/// use testkit::Backend;
///
/// async fn registering_twice_is_a_conflict(backend: Backend) {
///     let _ = backend; // spawn the app on this backend, register twice, expect 409
/// }
///
/// testkit::on_both_databases!(registering_twice_is_a_conflict);
/// ```
///
/// The calling crate needs `tokio` (with the `macros` and `rt-multi-thread` features). The
/// PostgreSQL variant needs `TEST_POSTGRES_URL` and fails, never skips, without it.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$scenario($crate::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$scenario($crate::Backend::Postgres).await;
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_url_points_at_the_given_file() {
        let url = database_url(Backend::Sqlite, Path::new("/tmp/x/users.db")).await;
        assert_eq!(url, "sqlite:///tmp/x/users.db");
    }

    async fn the_scenario_gets_its_backend(backend: Backend) {
        assert!(matches!(backend, Backend::Sqlite | Backend::Postgres));
        if backend == Backend::Postgres && std::env::var("TEST_POSTGRES_URL").is_ok() {
            let url = fresh_postgres_database().await;
            assert!(url.contains("/t_"), "{url}");
        }
    }

    // The PostgreSQL variant of this one is allowed to pass without a server: it tests the macro.
    on_both_databases!(the_scenario_gets_its_backend);
}
