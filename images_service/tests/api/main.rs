//! images_service over real HTTP: the very router the binary serves, on 127.0.0.1:0, against
//! SQLite and PostgreSQL, with real image files made by the `image` crate.

/// Runs one test body against both databases: `<name>::on_sqlite` and `<name>::on_postgres`.
/// The PostgreSQL variant fails (never skips) when `TEST_POSTGRES_URL` is unset.
macro_rules! db_test {
    ($(#[$meta:meta])* async fn $name:ident($app:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($app: $crate::helpers::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                run($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                run($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await
            }
        }
    };
}

mod auth;
mod crash;
mod helpers;
mod images;
mod ops;
mod refused;
mod upload;
