//! The caller's own identity: `GET /me` and `GET /auth/verify` (Traefik forwardAuth).

use axum::{
    http::HeaderValue,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use common::{auth::Role, AppJson};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{CurrentUser, UserView};
use crate::{error::Result, state::AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/auth/verify", get(verify))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(me, verify))]
pub(crate) struct Api;

/// The profile of the caller.
#[utoipa::path(
    get,
    path = "/me",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = UserView),
        (status = 401, description = "Missing, invalid or expired token, or disabled account"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn me(CurrentUser(user): CurrentUser) -> AppJson<UserView> {
    AppJson(UserView::from(&user))
}

/// Who a verified token belongs to.
#[derive(Serialize, ToSchema)]
struct Identity {
    id: Uuid,
    name: String,
    role: Role,
}

/// For the gateway's forwardAuth: 200 with `X-User-Id`, `X-User-Name` and `X-User-Role` for a
/// valid bearer token of an enabled account, else 401.
#[utoipa::path(
    get,
    path = "/auth/verify",
    tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Valid token", body = Identity, headers(
            ("X-User-Id" = String, description = "The user's id"),
            ("X-User-Name" = String, description = "The username"),
            ("X-User-Role" = String, description = "`user` or `admin`"),
        )),
        (status = 401, description = "Missing, invalid or expired token, or disabled account"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
async fn verify(CurrentUser(user): CurrentUser) -> Result<Response> {
    let headers = [
        (
            "x-user-id",
            HeaderValue::from_str(&user.id.to_string()).map_err(anyhow::Error::new)?,
        ),
        // Usernames are ASCII by construction, so they are valid header values.
        (
            "x-user-name",
            HeaderValue::from_str(&user.username).map_err(anyhow::Error::new)?,
        ),
        ("x-user-role", HeaderValue::from_static(user.role.as_str())),
    ];
    let identity = Identity {
        id: user.id,
        name: user.username.clone(),
        role: user.role,
    };
    Ok((headers, AppJson(identity)).into_response())
}
