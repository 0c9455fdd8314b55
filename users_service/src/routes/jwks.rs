//! `GET /.well-known/jwks.json`: the public keys other services verify access tokens with.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};

use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(jwks))]
pub(crate) struct Api;

/// The JSON Web Key Set (Ed25519 / EdDSA) that signs access tokens.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "tokens",
    responses((status = 200, description = "JWK Set: `{keys: [{kty: OKP, crv: Ed25519, alg: EdDSA, use: sig, kid, x}]}`", content_type = "application/json"))
)]
#[tracing::instrument(skip_all)]
async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.signer.jwks().clone()),
    )
        .into_response()
}
