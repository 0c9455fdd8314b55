//! `/admin/*`: role checks, listing, disabling, promoting, stats, and the first admin.

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use users_service::{
    config::BootstrapAdmin,
    error::{ACCOUNT_DISABLED, INVALID_CREDENTIALS},
};

use crate::helpers::{
    assert_problem, problem_detail, spawn_app, spawn_app_with, unique_name, Backend, Tokens,
};

async fn a_non_admin_gets_403_on_every_admin_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let token = app.login_user(&user).await.access;
    assert_problem(app.admin_users(&token, "").await, StatusCode::FORBIDDEN).await;
    assert_problem(app.admin_stats(&token).await, StatusCode::FORBIDDEN).await;
    let response = app
        .patch_user(&token, &user.id.to_string(), &json!({"role": "admin"}))
        .await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
    assert_problem(app.get("/admin/stats").await, StatusCode::UNAUTHORIZED).await;
}

async fn an_admin_pages_through_every_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let mut expected = vec![admin.id.to_string()];
    for _ in 0..4 {
        expected.push(app.register_user().await.id.to_string());
    }
    let token = app.login_user(&admin).await.access;
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    for _ in 0..10 {
        let query = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".to_owned(),
        };
        let response = app.admin_users(&token, &query).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.expect("json");
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, expected, "every user once, oldest first");
}

async fn a_bad_limit_or_cursor_returns_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let token = app.login_user(&admin).await.access;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=500", "limit"),
        ("?cursor=xyz", "cursor"),
        ("?page=2", "page"),
    ] {
        let detail = problem_detail(
            app.admin_users(&token, query).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(detail.contains(field), "{query}: {detail}");
    }
    assert_problem(
        app.admin_users(&token, "?limit=abc").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

async fn a_disabled_user_cannot_log_in_refresh_or_use_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let admin_token = app.login_user(&admin).await.access;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let response = app
        .patch_user(
            &admin_token,
            &user.id.to_string(),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["disabled"], true);
    assert!(body["disabled_at"].is_string());

    let login = problem_detail(
        app.login(&user.username, &user.password).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(login, INVALID_CREDENTIALS);
    assert_problem(app.refresh(&tokens.refresh).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        problem_detail(app.me(&tokens.access).await, StatusCode::UNAUTHORIZED).await,
        ACCOUNT_DISABLED
    );
    assert_problem(app.verify(&tokens.access).await, StatusCode::UNAUTHORIZED).await;

    let response = app
        .patch_user(
            &admin_token,
            &user.id.to_string(),
            &json!({"disabled": false}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = app.login_user(&user).await;
    assert_eq!(app.me(&fresh.access).await.status(), StatusCode::OK);
    // Sessions revoked by disabling stay revoked.
    assert_problem(app.refresh(&tokens.refresh).await, StatusCode::UNAUTHORIZED).await;
}

async fn a_disabled_admin_loses_admin_access_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.register_admin().await;
    let second = app.register_admin().await;
    let first_token = app.login_user(&first).await.access;
    let second_token = app.login_user(&second).await.access;
    let response = app
        .patch_user(
            &first_token,
            &second.id.to_string(),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_problem(
        app.admin_stats(&second_token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn an_admin_can_promote_and_demote_a_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let admin_token = app.login_user(&admin).await.access;
    let user = app.register_user().await;
    let user_token = app.login_user(&user).await.access;

    let response = app
        .patch_user(
            &admin_token,
            &user.id.to_string(),
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.expect("json")["role"],
        "admin"
    );
    // The role is read from the database, so even the old token now opens the admin endpoints.
    assert_eq!(app.admin_stats(&user_token).await.status(), StatusCode::OK);
    let fresh = Tokens::from_response(app.login(&user.username, &user.password).await).await;
    assert_eq!(
        app.verify(&fresh.access).await.headers()["x-user-role"],
        "admin"
    );

    app.patch_user(&admin_token, &user.id.to_string(), &json!({"role": "user"}))
        .await;
    assert_problem(app.admin_stats(&fresh.access).await, StatusCode::FORBIDDEN).await;
}

async fn bad_user_changes_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let token = app.login_user(&admin).await.access;
    let user = app.register_user().await;
    let id = user.id.to_string();
    assert_problem(
        app.patch_user(
            &token,
            &uuid::Uuid::now_v7().to_string(),
            &json!({"disabled": true}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.patch_user(&token, "not-a-uuid", &json!({"disabled": true}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.patch_user(&token, &id, &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        app.patch_user(&token, &id, &json!({"role": "root"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let detail = problem_detail(
        app.patch_user(&token, &id, &json!({"email": "x@example.com"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(detail.contains("email"), "{detail}");
    assert_problem(
        app.patch_user(&token, &admin.id.to_string(), &json!({"disabled": true}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_problem(
        app.patch_user(&token, &admin.id.to_string(), &json!({"role": "user"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
}

async fn admin_stats_count_users_and_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let token = app.login_user(&admin).await.access;
    let user = app.register_user().await;
    app.login_user(&user).await;
    app.patch_user(&token, &user.id.to_string(), &json!({"disabled": true}))
        .await;
    app.register_user().await;
    let response = app.admin_stats(&token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let stats: Value = response.json().await.expect("json");
    assert_eq!(
        stats,
        json!({"users": 3, "admins": 1, "disabled": 1, "registered_last_24h": 3, "active_sessions": 1})
    );
}

async fn the_first_admin_is_created_from_the_environment(backend: Backend) {
    let username = unique_name("root");
    let admin = BootstrapAdmin {
        username: username.clone(),
        email: format!("{username}@example.com"),
        password: SecretString::from("bootstrap password"),
    };
    let app = spawn_app_with(backend, |s| s.bootstrap_admin = Some(admin)).await;
    let tokens = Tokens::from_response(app.login(&username, "bootstrap password").await).await;
    assert_eq!(
        app.admin_stats(&tokens.access).await.status(),
        StatusCode::OK
    );
    // A second instance with the same setting finds the admin and creates nothing.
    let mut again = crate::helpers::test_settings(&app.database, "users-2");
    again.bootstrap_admin = Some(BootstrapAdmin {
        username: unique_name("other"),
        email: "other@example.com".to_owned(),
        password: SecretString::from("another password"),
    });
    let _second = crate::helpers::spawn_instance(app.database.clone(), again).await;
    let stats: Value = app
        .admin_stats(&tokens.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(stats["admins"], 1);
}

testkit::on_both_databases!(
    a_non_admin_gets_403_on_every_admin_endpoint,
    an_admin_pages_through_every_user,
    a_bad_limit_or_cursor_returns_422,
    a_disabled_user_cannot_log_in_refresh_or_use_a_token,
    a_disabled_admin_loses_admin_access_at_once,
    an_admin_can_promote_and_demote_a_user,
    bad_user_changes_are_refused,
    admin_stats_count_users_and_sessions,
    the_first_admin_is_created_from_the_environment,
);
