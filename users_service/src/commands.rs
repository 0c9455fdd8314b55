//! The non-serving subcommands (`create-admin`, `gen-key`) and the admin bootstrap on start.

use std::{io::BufRead, path::Path};

use anyhow::{bail, Context};
use common::auth::Role;
use secrecy::{ExposeSecret, SecretString};
use sqlx::AnyPool;

use crate::{
    config::{BootstrapAdmin, Settings},
    db,
    domain::{Email, Password, Username},
    error::Error,
    keys,
    metrics::UsersMetrics,
    passwords::Passwords,
};

/// Creates an admin account after checking the same input rules as registration.
#[tracing::instrument(skip_all, fields(username = admin.username))]
pub async fn create_admin(
    pool: &AnyPool,
    passwords: &Passwords,
    admin: &BootstrapAdmin,
) -> Result<db::User, Error> {
    let username = Username::parse(&admin.username).map_err(Error::Validation)?;
    let email = Email::parse(&admin.email).map_err(Error::Validation)?;
    let password = Password::parse(admin.password.expose_secret()).map_err(Error::Validation)?;
    let hash = passwords.hash(&password).await?;
    let new = db::NewUser {
        username: username.as_str(),
        email: email.as_str(),
        password_hash: &hash,
        role: Role::Admin,
    };
    db::insert_user(pool, new).await
}

/// On start: creates the configured admin unless an admin exists. Replicas starting together
/// race harmlessly: the losers hit the unique index and find the winner's admin.
pub async fn bootstrap_admin(
    pool: &AnyPool,
    passwords: &Passwords,
    admin: &BootstrapAdmin,
) -> anyhow::Result<()> {
    if db::admin_exists(pool).await? {
        return Ok(());
    }
    match create_admin(pool, passwords, admin).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, username = user.username, "created the first admin from ADMIN_USERNAME");
            Ok(())
        }
        Err(Error::Conflict(_)) if db::admin_exists(pool).await? => Ok(()),
        Err(Error::Conflict(detail)) => bail!("ADMIN_USERNAME: {detail} (and it is not an admin)"),
        Err(e) => Err(anyhow::anyhow!(
            "ADMIN_USERNAME/ADMIN_EMAIL/ADMIN_PASSWORD: {e}"
        )),
    }
}

/// Reads the admin password from `ADMIN_PASSWORD`, else from the first line of standard input.
fn admin_password() -> anyhow::Result<SecretString> {
    if let Some(password) = common::config::var::<String>("ADMIN_PASSWORD")? {
        return Ok(SecretString::from(password));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password: set ADMIN_PASSWORD or pipe the password on standard input");
    }
    Ok(SecretString::from(password))
}

/// `users_service create-admin --username U --email E`.
pub async fn create_admin_command(
    settings: &Settings,
    username: String,
    email: String,
) -> anyhow::Result<()> {
    let admin = BootstrapAdmin {
        username,
        email,
        password: admin_password()?,
    };
    let pool = db::connect(&settings.database_url).await?;
    let registry = common::metrics::Metrics::new(
        "users",
        &settings.server.instance_name,
        common::metrics::SLOW_BUCKETS,
    )?;
    let metrics = UsersMetrics::register(&registry)?;
    let argon2 = settings.argon2;
    let hash_metrics = metrics.hash_metrics();
    let passwords =
        tokio::task::spawn_blocking(move || Passwords::new(argon2, hash_metrics)).await??;
    let user = create_admin(&pool, &passwords, &admin)
        .await
        .map_err(anyhow::Error::new)?;
    tracing::info!(user_id = %user.id, username = user.username, "admin created");
    pool.close().await;
    Ok(())
}

/// `users_service gen-key --out PATH`: a new signing key and `PATH.pub`; never overwrites.
pub fn gen_key_command(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} already exists; remove it first to replace the key (tokens it signed stop verifying)", out.display());
    }
    let (key, created) = keys::create_key_file(out)?;
    if !created {
        bail!("{} was created by another process meanwhile", out.display());
    }
    tracing::info!(path = %out.display(), public = %keys::public_key_path(out).display(), kid = key.key_id(), "signing key written");
    Ok(())
}
