//! `GET /internal/revocations`: the revoked sessions other services poll, so a logout, a reused
//! refresh token or a disabled account stops the old access tokens everywhere within seconds.
//!
//! For the services behind the gateway only: the gateway answers 404 for `/internal` on its
//! public entrypoint.

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use common::{auth::RevocationFeed, problem::AppQuery, AppJson};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{db, error::Result, state::AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/internal/revocations", get(revocations))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(revocations))]
pub(crate) struct Api;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FeedQuery {
    /// Only revocations recorded at or after this time, in microseconds since the Unix epoch
    /// (default: every live one).
    since: Option<i64>,
}

/// The live revocations (until every token they concern has expired), oldest first.
#[utoipa::path(
    get,
    path = "/internal/revocations",
    tag = "tokens",
    params(FeedQuery),
    responses(
        (status = 200, description = "Revocations", body = RevocationFeed),
        (status = 422, description = "`since` is not an integer"),
    )
)]
#[tracing::instrument(skip_all, fields(since = query.since))]
async fn revocations(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<FeedQuery>,
) -> Result<impl IntoResponse> {
    let revocations = db::revocations_since(&state.db, query.since.unwrap_or(i64::MIN)).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        AppJson(RevocationFeed { revocations }),
    ))
}
