//! Administration: `GET /admin/users`, `PATCH /admin/users/{id}`, `GET /admin/stats`.
//!
//! The caller's role is read from the database, so a demoted admin loses access at once. The
//! gateway additionally restricts `/admin` to its IP allow-list.

use axum::{extract::State, routing::get, Router};
use common::{
    auth::Role,
    pagination::{PageRequest, PageSizes},
    problem::{AppPath, AppQuery},
    AppJson,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{CurrentAdmin, UserView};
use crate::{
    db,
    error::{Error, Result},
    state::AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users))
        .route("/admin/users/{id}", axum::routing::patch(update_user))
        .route("/admin/stats", get(stats))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_users, update_user, stats))]
pub(crate) struct Api;

const PAGE_SIZES: PageSizes = PageSizes {
    default: 50,
    max: 200,
};

/// A user as admins see it: the public profile and whether the account is disabled.
#[derive(Serialize, ToSchema)]
struct AdminUserView {
    #[serde(flatten)]
    profile: UserView,
    disabled: bool,
    #[schema(format = DateTime)]
    disabled_at: Option<String>,
}

impl From<&db::User> for AdminUserView {
    fn from(user: &db::User) -> Self {
        Self {
            profile: UserView::from(user),
            disabled: user.is_disabled(),
            disabled_at: user.disabled_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of users, oldest first.
#[derive(Serialize, ToSchema)]
struct UserPage {
    users: Vec<AdminUserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Lists users, oldest first, `limit` at a time.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Not an admin"),
        (status = 422, description = "Bad `limit` or `cursor`"),
    )
)]
#[tracing::instrument(skip_all, fields(admin_id = %admin.id))]
async fn list_users(
    State(state): State<AppState>,
    CurrentAdmin(admin): CurrentAdmin,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<AppJson<UserPage>> {
    let request = PageRequest::<Uuid>::parse(PAGE_SIZES, query.limit, query.cursor.as_deref())
        .map_err(Error::Validation)?;
    let users = db::list_users(&state.db, request.after, request.rows_to_fetch()).await?;
    let page = request.page(users, |user| Some(user.id));
    Ok(AppJson(UserPage {
        users: page.items.iter().map(AdminUserView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserChange {
    /// `true` disables the account (and revokes its sessions); `false` enables it.
    disabled: Option<bool>,
    role: Option<Role>,
}

/// Disables or enables an account, or changes its role.
#[utoipa::path(
    patch,
    path = "/admin/users/{id}",
    tag = "admin",
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = UserChange,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = AdminUserView),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such user"),
        (status = 409, description = "An admin cannot disable or demote themselves"),
        (status = 413, description = "Body larger than 16 KiB"),
        (status = 415, description = "Body not sent as `Content-Type: application/json`"),
        (status = 422, description = "No change given, or an unknown field or role"),
    )
)]
#[tracing::instrument(skip_all, fields(admin_id = %admin.id, user_id = %id))]
async fn update_user(
    State(state): State<AppState>,
    CurrentAdmin(admin): CurrentAdmin,
    AppPath(id): AppPath<Uuid>,
    AppJson(change): AppJson<UserChange>,
) -> Result<AppJson<AdminUserView>> {
    if change.disabled.is_none() && change.role.is_none() {
        return Err(Error::Validation(
            "Give at least one of `disabled` and `role`.".to_owned(),
        ));
    }
    if id == admin.id && (change.disabled == Some(true) || change.role == Some(Role::User)) {
        return Err(Error::Conflict(
            "Admins cannot disable or demote themselves; ask another admin.".to_owned(),
        ));
    }
    let keep_for = state.signer.revocation_lifetime();
    let user = db::update_user(&state.db, id, change.disabled, change.role, keep_for)
        .await?
        .ok_or_else(|| Error::NotFound(format!("There is no user with id {id}.")))?;
    tracing::info!(
        disabled = user.is_disabled(),
        role = user.role.as_str(),
        "user updated"
    );
    Ok(AppJson(AdminUserView::from(&user)))
}

/// Counts of accounts and sessions.
#[derive(Serialize, ToSchema)]
struct Stats {
    users: i64,
    admins: i64,
    disabled: i64,
    registered_last_24h: i64,
    /// Login sessions whose current refresh token is still usable.
    active_sessions: i64,
}

/// Account and session counts.
#[utoipa::path(
    get,
    path = "/admin/stats",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts", body = Stats),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Not an admin"),
    )
)]
#[tracing::instrument(skip_all, fields(admin_id = %admin.id))]
async fn stats(
    State(state): State<AppState>,
    CurrentAdmin(admin): CurrentAdmin,
) -> Result<AppJson<Stats>> {
    let s = db::stats(&state.db).await?;
    Ok(AppJson(Stats {
        users: s.users,
        admins: s.admins,
        disabled: s.disabled,
        registered_last_24h: s.registered_last_24h,
        active_sessions: s.active_sessions,
    }))
}
