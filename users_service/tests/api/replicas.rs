//! Several instances sharing one database and one key file, as the native stack runs them
//! (users-1..3 and users-backup on one SQLite file).

use std::sync::Arc;

use reqwest::StatusCode;

use crate::helpers::{spawn_instance, test_settings, Backend, TestApp, TestDatabase, Tokens};

async fn start_four_replicas(backend: Backend) -> Vec<TestApp> {
    let database = Arc::new(TestDatabase::new(backend).await);
    // Started together on an empty database and without a key: migrations and key generation race.
    let starts = ["users-1", "users-2", "users-3", "users-backup"]
        .map(|name| spawn_instance(database.clone(), test_settings(&database, name)));
    futures::future::join_all(starts).await
}

async fn four_replicas_started_at_once_share_users_and_one_signing_key(backend: Backend) {
    let replicas = start_four_replicas(backend).await;
    let kids: Vec<String> = replicas.iter().map(|r| r.signing_key().key_id()).collect();
    assert!(kids.windows(2).all(|w| w[0] == w[1]), "{kids:?}");

    let user = replicas[0].register_user().await;
    let tokens = replicas[1].login_user(&user).await;
    for replica in &replicas {
        assert_eq!(replica.me(&tokens.access).await.status(), StatusCode::OK);
    }
    let rotated = Tokens::from_response(replicas[2].refresh(&tokens.refresh).await).await;
    // Reuse detected by another replica revokes the family everywhere.
    assert_eq!(
        replicas[3].refresh(&tokens.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        replicas[0].refresh(&rotated.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn concurrent_registrations_across_replicas_all_land(backend: Backend) {
    let replicas = start_four_replicas(backend).await;
    let registrations = (0..12).map(|i| replicas[i % replicas.len()].register_user());
    let users = futures::future::join_all(registrations).await;
    let logins = users
        .iter()
        .enumerate()
        .map(|(i, u)| replicas[(i + 1) % replicas.len()].login(&u.username, &u.password));
    for response in futures::future::join_all(logins).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&replicas[0].pool)
        .await
        .expect("count");
    assert_eq!(count, 12);
}

testkit::on_both_databases!(
    four_replicas_started_at_once_share_users_and_one_signing_key,
    concurrent_registrations_across_replicas_all_land,
);
