//! Revoked access tokens: refused by users_service at once, and served to the other services at
//! `GET /internal/revocations` (logout, refresh-token reuse, disabled account).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::auth::{Claims, Revocation, RevocationFeed, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_problem, claims_for, now_secs, problem_detail, spawn_app, Backend, TestApp, Tokens,
};

const REVOKED: &str = "The access token has been revoked; log in again.";
/// The default access token lifetime (900 s) plus the margin revocations are kept beyond it.
const KEPT_MICROS: i64 = (900 + 60) * 1_000_000;

/// The claims inside a token the service signed.
fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("claims")
}

fn session_of(tokens: &Tokens) -> String {
    claims_of(&tokens.access).sid.expect("a session claim")
}

impl TestApp {
    async fn revocations(&self, query: &str) -> Vec<Revocation> {
        let response = self.get(&format!("/internal/revocations{query}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let feed: RevocationFeed = response.json().await.expect("a revocation feed");
        feed.revocations
    }
}

async fn logging_out_revokes_that_session_s_access_token_at_once_and_feeds_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let (ended, other) = (app.login_user(&user).await, app.login_user(&user).await);
    assert_eq!(app.me(&ended.access).await.status(), StatusCode::OK);

    assert_eq!(
        app.logout(&ended.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        problem_detail(app.me(&ended.access).await, StatusCode::UNAUTHORIZED).await,
        REVOKED
    );
    assert_problem(app.verify(&ended.access).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);

    // A repeated logout records nothing new.
    app.logout(&ended.refresh).await;
    let feed = app.revocations("").await;
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(
        (feed[0].sub, feed[0].sid.clone()),
        (user.id, Some(session_of(&ended)))
    );
    assert_eq!(feed[0].expires_at - feed[0].revoked_at, KEPT_MICROS);
}

async fn a_reused_refresh_token_revokes_every_access_token_of_its_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let second = Tokens::from_response(app.refresh(&first.refresh).await).await;
    assert_eq!(session_of(&first), session_of(&second));
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);

    assert_problem(app.refresh(&first.refresh).await, StatusCode::UNAUTHORIZED).await;
    for token in [&first.access, &second.access] {
        assert_eq!(
            problem_detail(app.me(token).await, StatusCode::UNAUTHORIZED).await,
            REVOKED
        );
    }
    let sessions: Vec<_> = app
        .revocations("")
        .await
        .into_iter()
        .map(|r| r.sid)
        .collect();
    assert_eq!(sessions, vec![Some(session_of(&first))]);
}

async fn disabling_an_account_feeds_the_revocation_of_each_of_its_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let admin_token = app.login_user(&admin).await.access;
    let user = app.register_user().await;
    let sessions = [app.login_user(&user).await, app.login_user(&user).await];

    let response = app
        .patch_user(
            &admin_token,
            &user.id.to_string(),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let feed = app.revocations("").await;
    assert!(feed.iter().all(|r| r.sub == user.id), "{feed:?}");
    let mut revoked: Vec<_> = feed.iter().map(|r| r.sid.clone()).collect();
    revoked.sort();
    let mut expected: Vec<_> = sessions.iter().map(|t| Some(session_of(t))).collect();
    expected.push(None);
    expected.sort();
    assert_eq!(revoked, expected);
}

/// Tokens signed before sessions were claimed carry no `sid`: disabling the account revokes
/// them by subject, and enabling it again does not bring them back.
async fn a_token_without_a_session_stays_revoked_after_its_account_is_enabled_again(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let admin_token = app.login_user(&admin).await.access;
    let user = app.register_user().await;
    let old = app.sign(&claims_for(&user, Role::User, now_secs() - 5, 900));
    assert_eq!(app.me(&old).await.status(), StatusCode::OK);

    for disabled in [true, false] {
        let response = app
            .patch_user(
                &admin_token,
                &user.id.to_string(),
                &json!({ "disabled": disabled }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        problem_detail(app.me(&old).await, StatusCode::UNAUTHORIZED).await,
        REVOKED
    );
    let fresh = app.login_user(&user).await;
    assert_eq!(app.me(&fresh.access).await.status(), StatusCode::OK);
}

async fn the_feed_answers_what_was_revoked_since_a_time_and_refuses_a_bad_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    assert!(app.revocations("").await.is_empty());
    app.logout(&tokens.refresh).await;

    let revoked_at = app.revocations("").await[0].revoked_at;
    assert_eq!(
        app.revocations(&format!("?since={revoked_at}")).await.len(),
        1
    );
    assert!(app
        .revocations(&format!("?since={}", revoked_at + 1))
        .await
        .is_empty());
    assert_problem(
        app.get("/internal/revocations?since=yesterday").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

/// A revocation outlives every token it concerns only by a margin; older rows are deleted when
/// the next one is recorded, and never served.
async fn revocations_of_tokens_that_have_all_expired_are_pruned(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let long_ago = (now_secs() - 3_600) * 1_000_000;
    sqlx::query(
        "INSERT INTO revocations (id, user_id, session_id, revoked_at, expires_at) \
         VALUES ('old', $1, 'old-session', $2, $3)",
    )
    .bind(user.id.to_string())
    .bind(long_ago)
    .bind(long_ago + KEPT_MICROS)
    .execute(&app.pool)
    .await
    .expect("an old revocation");
    assert!(
        app.revocations("").await.is_empty(),
        "an expired row is never served"
    );

    let tokens = app.login_user(&user).await;
    app.logout(&tokens.refresh).await;
    let row = sqlx::query("SELECT COUNT(*) AS n FROM revocations WHERE id = 'old'")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(sqlx::Row::get::<i64, _>(&row, "n"), 0);
    assert_eq!(app.revocations("").await.len(), 1);
}

testkit::on_both_databases!(
    logging_out_revokes_that_session_s_access_token_at_once_and_feeds_it,
    a_reused_refresh_token_revokes_every_access_token_of_its_session,
    disabling_an_account_feeds_the_revocation_of_each_of_its_sessions,
    a_token_without_a_session_stays_revoked_after_its_account_is_enabled_again,
    the_feed_answers_what_was_revoked_since_a_time_and_refuses_a_bad_one,
    revocations_of_tokens_that_have_all_expired_are_pruned,
);
