//! HTTP routes, one module per resource. Each exports `router()` and an `Api` for the OpenAPI
//! document; handlers and their request/response types stay private to their module.

mod account;
mod admin;
mod auth;
mod internal;
mod jwks;

use axum::{
    extract::{DefaultBodyLimit, FromRequestParts},
    http::request::Parts,
    Router,
};
use common::auth::{AuthUser, Role};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{
    db,
    error::{Error, Result},
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "users_service",
        description = "Accounts, password login, EdDSA access tokens with rotating refresh tokens, and administration. \
                       Errors are RFC 9457 `application/problem+json`.",
    ),
    tags(
        (name = "accounts", description = "Registration, login, sessions, profile"),
        (name = "tokens", description = "Key set and token verification for other services and the gateway"),
        (name = "admin", description = "Needs the admin role (and the gateway's IP allow-list)"),
    )
)]
struct ApiDoc;

/// The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers' annotations.
pub fn openapi() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.merge(auth::Api::with_links());
    doc.merge(account::Api::openapi());
    doc.merge(admin::Api::openapi());
    doc.merge(jwks::Api::openapi());
    doc.merge(internal::Api::openapi());
    common::openapi::document(doc)
}

/// Request bodies are small JSON documents; anything larger is refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Every users_service route, state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(account::router())
        .merge(admin::router())
        .merge(jwks::router())
        .merge(internal::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A user's public profile.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    id: Uuid,
    username: String,
    email: String,
    role: Role,
    /// RFC 3339
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&db::User> for UserView {
    fn from(user: &db::User) -> Self {
        Self {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            role: user.role,
            created_at: user.created_at.to_rfc3339(),
        }
    }
}

/// The caller, from a verified access token, checked against the database: tokens of deleted or
/// disabled accounts, and of sessions ended by logout or refresh-token reuse, stop working at
/// once, not when they expire.
pub(crate) struct CurrentUser(db::User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let (user, revoked) = db::find_token_user(&state.db, &auth.claims)
            .await?
            .ok_or_else(|| {
                Error::Unauthorized("The account of this access token no longer exists.".to_owned())
            })?;
        if user.is_disabled() {
            return Err(Error::AccountDisabled);
        }
        if revoked {
            return Err(Error::Unauthorized(
                common::auth::AuthError::Revoked.to_string(),
            ));
        }
        Ok(Self(user))
    }
}

/// A [`CurrentUser`] whose role in the database (not only in the token) is `admin`.
pub(crate) struct CurrentAdmin(db::User);

impl FromRequestParts<AppState> for CurrentAdmin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(Error::Forbidden(
                "This endpoint needs the admin role.".to_owned(),
            ));
        }
        Ok(Self(user))
    }
}

#[cfg(test)]
mod tests {
    use super::openapi;

    /// Clients that follow links (schemathesis' stateful phase, generated SDKs) chain register →
    /// log in → refresh → log out through them, with OpenAPI's field names.
    #[test]
    fn the_account_operations_link_to_each_other() {
        let doc = openapi();
        let links = |path: &str, status: &str| {
            doc["paths"][path]["post"]["responses"][status]["links"].clone()
        };
        assert_eq!(links("/register", "201")["LogIn"]["operationId"], "login");
        assert_eq!(
            links("/register", "201")["LogIn"]["requestBody"]["password"],
            "$request.body#/password"
        );
        for path in ["/login", "/token/refresh"] {
            assert_eq!(links(path, "200")["Refresh"]["operationId"], "refresh");
            assert_eq!(links(path, "200")["LogOut"]["operationId"], "logout");
            assert_eq!(
                links(path, "200")["LogOut"]["requestBody"]["refresh_token"],
                "$response.body#/refresh_token"
            );
        }
    }

    #[test]
    fn the_document_lists_every_endpoint() {
        let doc = openapi();
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            "/register",
            "/login",
            "/token/refresh",
            "/logout",
            "/me",
            "/auth/verify",
            "/.well-known/jwks.json",
            "/admin/users",
            "/admin/users/{id}",
            "/admin/stats",
            "/internal/revocations",
        ] {
            assert!(paths.contains_key(path), "missing {path}");
        }
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
    }
}
