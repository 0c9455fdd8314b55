//! Assembling a service's router and running it until a shutdown signal.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{http::StatusCode, response::IntoResponse, serve::ListenerExt, Router};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    config::ServerSettings,
    metrics::Metrics,
    middleware::{common_layers, guard_app, Shedder},
    ops::{self, ReadinessCheck},
    Problem,
};

/// What a service hands over to become a full HTTP application.
pub struct ServiceParts {
    pub settings: ServerSettings,
    pub metrics: Metrics,
    /// The service's own routes, state already applied.
    pub app: Router,
    pub readiness: ReadinessCheck,
    pub openapi: serde_json::Value,
}

async fn not_found() -> impl IntoResponse {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "There is no such endpoint; see /openapi.json.",
    )
}

/// The full router: application routes behind shedding and timeout, ops routes beside them, and
/// the shared layers around all.
pub fn build_router(parts: ServiceParts) -> Router {
    let shedder = Shedder::new(parts.settings.max_in_flight, parts.metrics.clone());
    let app = guard_app(parts.app, shedder.clone(), parts.settings.request_timeout);
    let ops = ops::router(
        parts.metrics.clone(),
        shedder,
        parts.readiness,
        parts.openapi,
    );
    let router = app.merge(ops).fallback(not_found);
    common_layers(router, parts.metrics, &parts.settings.instance_name)
}

/// A bound HTTP server ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    grace: Duration,
}

impl Application {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, router: Router, grace: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            router,
            grace,
        })
    }

    /// Binds the service's `LISTEN_ADDR` with its shutdown grace period; a failure names the variable.
    pub async fn bind_from_settings(
        settings: &ServerSettings,
        router: Router,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        Self::bind(settings.listen_addr, router, settings.shutdown_grace)
            .await
            .with_context(|| format!("cannot bind LISTEN_ADDR {}", settings.listen_addr))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most the
    /// grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let mut drain_rx = stop_rx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // Without TCP_NODELAY a response written in two parts (headers, then a streamed body)
        // waits for the client's delayed ACK: about 40 ms per request on Linux.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
        });
        let grace = self.grace;
        let deadline = async move {
            let _ = drain_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => result,
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
                Ok(())
            }
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
