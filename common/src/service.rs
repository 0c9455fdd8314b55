//! The binary every service shares: the `serve | healthcheck` command line (plus a service's own
//! subcommands), logging, running the application until SIGTERM/SIGINT, and the exit code.
//!
//! A service implements [`ServiceSettings`] for its `config::Settings` and [`Service`] for its
//! `startup::Application`; its `main.rs` then reads `common::service::main::<Application>().await`.

use std::{future::Future, net::SocketAddr, process::ExitCode, sync::Arc};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::{
    auth::TokenVerifier,
    config::{ConfigError, ServerSettings},
    healthcheck,
    server::{self, shutdown_signal},
};

/// A service's typed settings, as the shared binary reads them.
pub trait ServiceSettings: Sized {
    /// `LISTEN_ADDR` when it is not set (`healthcheck` asks this address).
    const DEFAULT_LISTEN_ADDR: &'static str;
    /// `INSTANCE_NAME` when it is not set.
    const DEFAULT_INSTANCE_NAME: &'static str;

    /// Reads and validates every variable, naming the first bad one.
    fn from_env() -> Result<Self, ConfigError>;
    /// The part of the settings every service has (log format, address, instance name).
    fn server(&self) -> &ServerSettings;

    /// The [`ServerSettings`] read with this service's defaults.
    fn server_from_env() -> Result<ServerSettings, ConfigError> {
        ServerSettings::from_env(Self::DEFAULT_LISTEN_ADDR, Self::DEFAULT_INSTANCE_NAME)
    }
}

/// A service's application, as the shared binary and the tests build and run it.
pub trait Service: Sized {
    /// The binary's name, as logs and error messages say it.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// The service crate's version (`env!("CARGO_PKG_VERSION")` there).
    const VERSION: &'static str;

    /// Everything the service reads from its environment.
    type Settings: ServiceSettings;

    /// The OpenAPI document `/openapi.json` serves.
    fn openapi() -> serde_json::Value;

    /// Connects what the service needs and binds its listener.
    fn build(settings: Self::Settings) -> impl Future<Output = anyhow::Result<Self>>;
    /// The bound HTTP server.
    fn server(&self) -> &server::Application;
    /// Serves until `shutdown` completes (or the service cannot go on).
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>>;

    /// The address the listener is bound to.
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.server().local_addr()
    }

    /// The port the listener is bound to.
    fn port(&self) -> u16 {
        self.server().port()
    }
}

/// The command line of every service; `E` holds a service's own subcommands.
#[derive(Parser)]
struct Cli<E: Subcommand> {
    #[command(subcommand)]
    command: Option<Command<E>>,
}

#[derive(Subcommand)]
enum Command<E: Subcommand> {
    /// Serve HTTP on LISTEN_ADDR (the default).
    Serve,
    /// Exit 0 when this instance's /readyz answers 200.
    Healthcheck,
    /// Print the OpenAPI document that /openapi.json serves.
    Openapi,
    #[command(flatten)]
    Own(E),
}

/// For services without subcommands of their own.
#[derive(Subcommand)]
pub enum NoCommand {}

/// The whole `main` of a service with only `serve` and `healthcheck`.
pub async fn main<S: Service>() -> ExitCode {
    main_with::<S, NoCommand, _, _>(|_, command| async move { match command {} }).await
}

/// The whole `main` of a service with subcommands of its own: `run` gets the settings (logging
/// is set up by then) and the parsed subcommand.
pub async fn main_with<S, E, F, Fut>(run: F) -> ExitCode
where
    S: Service,
    E: Subcommand,
    F: FnOnce(S::Settings, E) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let own = match parse::<S, E>().command.unwrap_or(Command::Serve) {
        // Before reading the settings: a health check must not fail on a variable it never uses.
        Command::Healthcheck => {
            return healthcheck::run_from_env(
                S::Settings::DEFAULT_LISTEN_ADDR,
                S::Settings::DEFAULT_INSTANCE_NAME,
            )
            .await
        }
        Command::Openapi => {
            println!("{:#}", S::openapi());
            return ExitCode::SUCCESS;
        }
        Command::Serve => None,
        Command::Own(command) => Some(command),
    };
    let outcome = async {
        let settings = S::Settings::from_env()?;
        crate::telemetry::init(settings.server().log_format);
        match own {
            Some(command) => run(settings, command).await,
            None => serve::<S>(settings).await,
        }
    };
    exit_code(S::NAME, outcome.await)
}

fn parse<S: Service, E: Subcommand>() -> Cli<E> {
    let matches = Cli::<E>::command()
        .name(S::NAME)
        .about(S::ABOUT)
        .version(S::VERSION)
        .get_matches();
    Cli::<E>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `serve`: builds the application and runs it until SIGTERM/SIGINT.
async fn serve<S: Service>(settings: S::Settings) -> anyhow::Result<()> {
    let instance = settings.server().instance_name.clone();
    let application = S::build(settings).await?;
    tracing::info!(addr = %application.local_addr()?, instance, "{} listening", S::NAME);
    application.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("{} stopped", S::NAME);
    Ok(())
}

/// Turns the outcome of a service's command into the process exit code, reporting a failure
/// both in the logs and on stderr (logging may not be set up when configuration fails).
fn exit_code(service: &str, outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{service} failed");
            eprintln!("{service}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The verifier of a service that accepts tokens from users_service, configured from the
/// environment (`JWKS_URL` or `JWT_PUBLIC_KEY_FILE`, and the revocation feed). The keys and the
/// revocations are fetched once now so the first request is fast; users_service may not be up
/// yet, so a failure is only a warning: keys are fetched again on the first token, revocations
/// every poll interval from now on (tokens get 503 until the feed has answered once).
pub async fn token_verifier_from_env() -> anyhow::Result<Arc<TokenVerifier>> {
    let verifier = Arc::new(TokenVerifier::from_env()?);
    if let Err(e) = verifier.refresh().await {
        tracing::warn!(error = %e, "signing keys not fetched yet; will retry on the first token");
    }
    if let Err(e) = verifier.revocations().poll().await {
        tracing::warn!(
            error = format!("{e:#}"),
            "revocations not fetched yet; polling goes on"
        );
    }
    verifier.revocations().spawn_polling();
    Ok(verifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Subcommand, Debug, PartialEq)]
    enum Own {
        /// A service's own subcommand.
        GenKey {
            #[arg(long)]
            out: String,
        },
    }

    fn parse(args: &[&str]) -> Option<Command<Own>> {
        Cli::<Own>::try_parse_from(args).expect("parses").command
    }

    #[test]
    fn no_subcommand_means_serve() {
        assert!(parse(&["svc"]).is_none());
        assert!(matches!(parse(&["svc", "serve"]), Some(Command::Serve)));
    }

    #[test]
    fn a_service_subcommand_sits_beside_the_shared_ones() {
        assert!(matches!(
            parse(&["svc", "healthcheck"]),
            Some(Command::Healthcheck)
        ));
        assert!(matches!(
            parse(&["svc", "gen-key", "--out", "k.pem"]),
            Some(Command::Own(Own::GenKey { out })) if out == "k.pem"
        ));
    }

    #[test]
    fn openapi_is_a_shared_subcommand() {
        assert!(matches!(parse(&["svc", "openapi"]), Some(Command::Openapi)));
    }

    #[test]
    fn an_unknown_subcommand_is_refused() {
        assert!(Cli::<NoCommand>::try_parse_from(["svc", "gen-key"]).is_err());
    }
}
