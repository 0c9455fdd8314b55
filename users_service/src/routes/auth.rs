//! Accounts and sessions: `POST /register`, `/login`, `/token/refresh`, `/logout`.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, State},
    http::{request::Parts, StatusCode},
    response::IntoResponse,
    routing::post,
    Router,
};
use common::AppJson;
use serde::{Deserialize, Serialize};
use utoipa::{
    openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type},
    ToSchema,
};
use uuid::Uuid;

use super::UserView;
use crate::{
    db,
    domain::{Email, Password, Username},
    error::{Error, Result},
    rate_limit::client_ip,
    state::AppState,
    tokens::{hash_refresh_token, new_refresh_token},
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/token/refresh", post(refresh))
        .route("/logout", post(logout))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(register, login, refresh, logout))]
pub(crate) struct Api;

impl Api {
    /// The document of these routes, with the links a client follows from a token pair (from
    /// `/login` or `/token/refresh`): refresh it, or log out with it.
    pub(crate) fn with_links() -> utoipa::openapi::OpenApi {
        use utoipa::openapi::{link::LinkBuilder, RefOr};
        let mut doc = <Self as utoipa::OpenApi>::openapi();
        let with_refresh_token = |operation_id: &str, description: &str| {
            LinkBuilder::new()
                .operation_id(operation_id)
                .request_body(Some(serde_json::json!({
                    "refresh_token": "$response.body#/refresh_token"
                })))
                .description(description)
                .build()
        };
        for path in ["/login", "/token/refresh"] {
            let pair = doc
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.responses.responses.get_mut("200"));
            if let Some(RefOr::T(pair)) = pair {
                pair.links.insert(
                    "Refresh".to_owned(),
                    RefOr::T(with_refresh_token(
                        "refresh",
                        "Trade the refresh token for a new pair.",
                    )),
                );
                pair.links.insert(
                    "LogOut".to_owned(),
                    RefOr::T(with_refresh_token(
                        "logout",
                        "End the session the refresh token belongs to.",
                    )),
                );
            }
        }
        doc
    }
}

/// The client's IP address (see [`client_ip`]).
struct ClientIp(IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

// Each field's schema states the rules of its domain type (`Username`, `Email`, `Password`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    #[schema(schema_with = username_schema)]
    username: String,
    #[schema(schema_with = email_schema)]
    email: String,
    #[schema(schema_with = password_schema)]
    password: String,
}

fn username_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Letters A-Z and a-z, digits, `_`, `.` and `-`; unique regardless of case.",
        ))
        .min_length(Some(Username::MIN_LEN))
        .max_length(Some(Username::MAX_LEN))
        .pattern(Some(Username::PATTERN))
        .examples(["alice"])
        .build()
}

fn email_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "An address whose domain has a dot; surrounding spaces are dropped.",
        ))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(Email::MAX_LEN))
        .examples(["alice@example.com"])
        .build()
}

fn password_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(Password::MIN_LEN))
        .max_length(Some(Password::MAX_LEN))
        .examples(["correct horse battery staple"])
        .build()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    /// The refresh token from `/login` or the previous `/token/refresh`.
    refresh_token: String,
}

/// A new access token and refresh token.
#[derive(Serialize, ToSchema)]
struct TokenPair {
    /// EdDSA-signed JWT; send it as `Authorization: Bearer <token>`.
    token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until `token` expires.
    #[schema(example = 900)]
    expires_in: u64,
    /// Opaque; single use: `/token/refresh` returns a new one each time.
    refresh_token: String,
}

/// Creates an account with the `user` role. Registrations are limited per client IP (429 with
/// `Retry-After`); a taken username or email is refused before the password is hashed.
#[utoipa::path(
    post,
    path = "/register",
    tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserView, links(
            ("LogIn" = (
                operation_id = "login",
                request_body = json!({
                    "username": "$request.body#/username",
                    "password": "$request.body#/password"
                }),
                description = "Log in with the new account's credentials."
            ))
        )),
        (status = 400, description = "Malformed JSON"),
        (status = 409, description = "Username or email already registered"),
        (status = 413, description = "Body larger than 16 KiB"),
        (status = 415, description = "Body not sent as `Content-Type: application/json`"),
        (status = 422, description = "A field breaks a rule or is unknown; the detail names it"),
        (status = 429, description = "Too many registrations from this address; see `Retry-After`"),
        (status = 503, description = "Too many password hashes waiting; see `Retry-After`"),
    )
)]
#[tracing::instrument(skip_all, fields(username = %body.username, client_ip = %ip))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<RegisterRequest>,
) -> Result<impl IntoResponse> {
    // Everything that can refuse a registration is checked before the costly hash.
    if let Err(retry_after) = state.limiter.check_register_ip(ip) {
        tracing::warn!(retry_after, "registration rate limited");
        return Err(Error::RateLimited { retry_after });
    }
    let username = Username::parse(&body.username).map_err(Error::Validation)?;
    let email = Email::parse(&body.email).map_err(Error::Validation)?;
    let password = Password::parse(&body.password).map_err(Error::Validation)?;
    if let Some(conflict) =
        db::registration_conflict(&state.db, username.as_str(), email.as_str()).await?
    {
        return Err(conflict);
    }
    let hash = state.passwords.hash(&password).await?;
    let new = db::NewUser {
        username: username.as_str(),
        email: email.as_str(),
        password_hash: &hash,
        role: common::auth::Role::User,
    };
    let user = db::insert_user(&state.db, new).await?;
    state.metrics.registrations.inc();
    tracing::info!(user_id = %user.id, "registered");
    Ok((StatusCode::CREATED, AppJson(UserView::from(&user))))
}

/// Issues an access token and a new refresh token (in `family_id`).
async fn issue_pair(
    state: &AppState,
    user: &db::User,
    family_id: &str,
    rotated_from: Option<&str>,
) -> Result<Option<TokenPair>> {
    let refresh_token = new_refresh_token();
    let new_hash = hash_refresh_token(&refresh_token);
    match rotated_from {
        Some(old_hash) => {
            if !db::rotate_refresh_token(
                &state.db,
                old_hash,
                &new_hash,
                user.id,
                family_id,
                state.refresh_token_ttl,
            )
            .await?
            {
                return Ok(None);
            }
        }
        None => {
            db::insert_refresh_token(
                &state.db,
                &new_hash,
                user.id,
                family_id,
                state.refresh_token_ttl,
            )
            .await?
        }
    }
    let access = state
        .signer
        .issue(user.id, &user.username, user.role, family_id)?;
    Ok(Some(TokenPair {
        token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token,
    }))
}

/// Checks a username and password and starts a session.
///
/// Every bad credential gets the same 401, whether the user exists or not. A disabled account
/// gets that same 401 even with the right password: a different answer would confirm the
/// password to whoever guessed it. Attempts are limited per client IP and per username (429 with
/// `Retry-After`).
#[utoipa::path(
    post,
    path = "/login",
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPair),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Wrong username or password, or the account is disabled"),
        (status = 413, description = "Body larger than 16 KiB"),
        (status = 415, description = "Body not sent as `Content-Type: application/json`"),
        (status = 422, description = "Missing or unknown field"),
        (status = 429, description = "Too many attempts; see `Retry-After`"),
        (status = 503, description = "Too many password checks waiting; see `Retry-After`"),
    )
)]
#[tracing::instrument(skip_all, fields(username = %body.username, client_ip = %ip))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<AppJson<TokenPair>> {
    let limited = state
        .limiter
        .check_ip(ip)
        .and_then(|()| state.limiter.check_user(&body.username));
    if let Err(retry_after) = limited {
        state.metrics.login("rate_limited");
        tracing::warn!(retry_after, "login rate limited");
        return Err(Error::RateLimited { retry_after });
    }
    // Malformed input cannot match any account; refuse it without hashing, with the same answer.
    let (Ok(username), Ok(password)) = (
        Username::parse(&body.username),
        Password::parse(&body.password),
    ) else {
        state.metrics.login("failed");
        return Err(Error::InvalidCredentials);
    };
    let user = db::find_user_by_username(&state.db, username.as_str()).await?;
    let matches = state
        .passwords
        .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    let Some(user) = user.filter(|_| matches) else {
        state.metrics.login("failed");
        return Err(Error::InvalidCredentials);
    };
    if user.is_disabled() {
        state.metrics.login("failed");
        tracing::info!(user_id = %user.id, "login refused: account disabled");
        return Err(Error::InvalidCredentials);
    }
    let family_id = Uuid::new_v4().to_string();
    let pair = issue_pair(&state, &user, &family_id, None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("a fresh session could not be stored"))?;
    state.metrics.login("ok");
    tracing::info!(user_id = %user.id, "logged in");
    Ok(AppJson(pair))
}

fn invalid_refresh_token() -> Error {
    Error::Unauthorized("The refresh token is not valid; log in again.".to_owned())
}

fn reused_refresh_token() -> Error {
    Error::Unauthorized(
        "This refresh token was already used. For safety every token of this session is now revoked; log in again."
            .to_owned(),
    )
}

/// Exchanges a refresh token for a new pair. The old refresh token stops working; presenting it
/// again revokes the whole session (every token descended from the same login).
#[utoipa::path(
    post,
    path = "/token/refresh",
    tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenPair),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token, or disabled account"),
        (status = 413, description = "Body larger than 16 KiB"),
        (status = 415, description = "Body not sent as `Content-Type: application/json`"),
        (status = 422, description = "Missing or unknown field"),
    )
)]
#[tracing::instrument(skip_all, fields(user_id, family_id))]
async fn refresh(
    State(state): State<AppState>,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<AppJson<TokenPair>> {
    let old_hash = hash_refresh_token(&body.refresh_token);
    let Some(stored) = db::find_refresh_token(&state.db, &old_hash).await? else {
        state.metrics.refresh("invalid");
        return Err(invalid_refresh_token());
    };
    let span = tracing::Span::current();
    span.record("user_id", tracing::field::display(stored.user_id));
    span.record("family_id", stored.family_id.as_str());
    if stored.used_at.is_some() {
        let revoked = revoke_session(&state, &stored).await?;
        state.metrics.refresh("reused");
        tracing::warn!(revoked, "refresh token reused: session revoked");
        return Err(reused_refresh_token());
    }
    if stored.revoked_at.is_some() || stored.expires_at <= common::timestamp::Timestamp::now() {
        state.metrics.refresh("invalid");
        return Err(invalid_refresh_token());
    }
    let user = match db::find_user(&state.db, stored.user_id).await? {
        Some(user) if user.is_disabled() => {
            state.metrics.refresh("invalid");
            return Err(Error::AccountDisabled);
        }
        Some(user) => user,
        None => {
            state.metrics.refresh("invalid");
            return Err(invalid_refresh_token());
        }
    };
    match issue_pair(&state, &user, &stored.family_id, Some(&old_hash)).await? {
        Some(pair) => {
            state.metrics.refresh("ok");
            Ok(AppJson(pair))
        }
        None => {
            // Another request rotated this token between our read and our write: that is reuse.
            revoke_session(&state, &stored).await?;
            state.metrics.refresh("reused");
            tracing::warn!("refresh token used concurrently: session revoked");
            Err(reused_refresh_token())
        }
    }
}

/// Revokes the session of `token`: its refresh tokens, and its access tokens on every service.
async fn revoke_session(state: &AppState, token: &db::RefreshToken) -> Result<u64> {
    db::revoke_session(
        &state.db,
        &token.family_id,
        token.user_id,
        state.signer.revocation_lifetime(),
    )
    .await
}

/// Ends the session of a refresh token: it and every token of its session stop working.
/// Answers 204 also for an unknown token, so it can be repeated safely.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Session revoked"),
        (status = 400, description = "Malformed JSON"),
        (status = 413, description = "Body larger than 16 KiB"),
        (status = 415, description = "Body not sent as `Content-Type: application/json`"),
        (status = 422, description = "Missing or unknown field"),
    )
)]
#[tracing::instrument(skip_all, fields(family_id))]
async fn logout(
    State(state): State<AppState>,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<StatusCode> {
    let hash = hash_refresh_token(&body.refresh_token);
    if let Some(stored) = db::find_refresh_token(&state.db, &hash).await? {
        tracing::Span::current().record("family_id", stored.family_id.as_str());
        let revoked = revoke_session(&state, &stored).await?;
        tracing::info!(user_id = %stored.user_id, revoked, "logged out");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::domain::{Email, Password, Username};

    fn register_fields() -> Value {
        let doc = super::super::openapi();
        let schema = &doc["paths"]["/register"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"];
        let name = schema
            .as_str()
            .and_then(|s| s.strip_prefix("#/components/schemas/"))
            .expect("a schema reference");
        doc["components"]["schemas"][name]["properties"].clone()
    }

    #[test]
    fn registration_documents_the_username_rules() {
        let username = &register_fields()["username"];
        assert_eq!(username["minLength"], Username::MIN_LEN);
        assert_eq!(username["maxLength"], Username::MAX_LEN);
        assert_eq!(username["pattern"], Username::PATTERN);
    }

    #[test]
    fn registration_documents_the_password_and_email_rules() {
        let fields = register_fields();
        assert_eq!(fields["password"]["minLength"], Password::MIN_LEN);
        assert_eq!(fields["password"]["maxLength"], Password::MAX_LEN);
        assert_eq!(fields["email"]["format"], "email");
        assert_eq!(fields["email"]["maxLength"], Email::MAX_LEN);
    }

    #[test]
    fn every_json_body_documents_its_rejections() {
        let doc = super::super::openapi();
        for (method, path) in [
            ("post", "/register"),
            ("post", "/login"),
            ("post", "/token/refresh"),
            ("post", "/logout"),
            ("patch", "/admin/users/{id}"),
        ] {
            let responses = &doc["paths"][path][method]["responses"];
            for status in ["400", "413", "415", "422"] {
                assert!(responses.get(status).is_some(), "{method} {path} {status}");
            }
        }
        assert!(doc["paths"]["/login"]["post"]["responses"]
            .get("429")
            .is_some());
    }

    #[test]
    fn every_operation_documents_its_problems_and_the_bearer_scheme() {
        let doc = super::super::openapi();
        assert_eq!(common::openapi::shortcomings(&doc), Vec::<String>::new());
        for (method, path) in [
            ("get", "/me"),
            ("get", "/auth/verify"),
            ("get", "/admin/users"),
            ("patch", "/admin/users/{id}"),
            ("get", "/admin/stats"),
        ] {
            let operation = &doc["paths"][path][method];
            assert_eq!(operation["security"], json!([{"bearer": []}]), "{path}");
        }
    }
}
