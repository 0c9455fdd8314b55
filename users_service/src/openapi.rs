//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers' annotations.

use common::openapi::{BearerAuth, ProblemBody};
use utoipa::OpenApi;

use crate::routes::{AccountApi, AdminApi, AuthApi, JwksApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "users_service",
        description = "Accounts, password login, EdDSA access tokens with rotating refresh tokens, and administration. \
                       Errors are RFC 9457 `application/problem+json`.",
    ),
    components(schemas(ProblemBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Registration, login, sessions, profile"),
        (name = "tokens", description = "Key set and token verification for other services and the gateway"),
        (name = "admin", description = "Needs the admin role (and the gateway's IP allow-list)"),
    )
)]
struct ApiDoc;

/// The whole document as JSON.
pub fn document() -> anyhow::Result<serde_json::Value> {
    let mut doc = ApiDoc::openapi();
    doc.merge(AuthApi::openapi());
    doc.merge(AccountApi::openapi());
    doc.merge(AdminApi::openapi());
    doc.merge(JwksApi::openapi());
    Ok(serde_json::to_value(doc)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_lists_every_endpoint() {
        let doc = super::document().expect("document");
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
        ] {
            assert!(paths.contains_key(path), "missing {path}");
        }
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
    }
}
