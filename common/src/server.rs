//! Assembling a service's router and running it until a shutdown signal.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Request},
    http::StatusCode,
    response::IntoResponse,
    Router,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

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
    let app = guard_app(
        parts.app,
        shedder.clone(),
        parts.settings.request_timeout,
        parts.settings.body_rate,
    );
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
    header_timeout: Duration,
}

/// How long a client may take to send a request's headers unless the settings say otherwise.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

impl Application {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, router: Router, grace: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            router,
            grace,
            header_timeout: HEADER_TIMEOUT,
        })
    }

    /// Binds the service's `LISTEN_ADDR` with its shutdown grace period and header timeout; a
    /// failure names the variable.
    pub async fn bind_from_settings(
        settings: &ServerSettings,
        router: Router,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let server = Self::bind(settings.listen_addr, router, settings.shutdown_grace)
            .await
            .with_context(|| format!("cannot bind LISTEN_ADDR {}", settings.listen_addr))?;
        Ok(server.with_header_timeout(settings.header_timeout))
    }

    /// A connection whose request headers are not complete within `timeout` is closed.
    pub fn with_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most the
    /// grace period.
    ///
    /// Each connection is served by hyper with a header read timeout: without one (as
    /// `axum::serve` runs it) a client that sends a header line now and then holds its
    /// connection, and the task and buffer behind it, forever. Request bodies have their own
    /// limit ([`crate::body_rate`]).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let connections = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Without TCP_NODELAY a response written in two parts (headers, then a streamed
            // body) waits for the client's delayed ACK: about 40 ms per request on Linux.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
            let service = self
                .router
                .clone()
                .map_request(move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request
                });
            let connection = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(tcp),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        tokio::select! {
            () = connections.shutdown() => {}
            () = tokio::time::sleep(self.grace) => {
                tracing::warn!(grace_secs = self.grace.as_secs(), "in-flight requests did not finish in time");
            }
        }
        Ok(())
    }
}

/// After a failed accept: a connection reset before it was accepted costs nothing; anything
/// else (out of file descriptors) is logged and waited out briefly instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
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

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;

    async fn served(header_timeout: Duration) -> (u16, tokio::sync::oneshot::Sender<()>) {
        let router = Router::new().route(
            "/",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                format!("hello {}", peer.ip())
            }),
        );
        let server = Application::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            router,
            Duration::from_secs(1),
        )
        .await
        .expect("bind")
        .with_header_timeout(header_timeout);
        let port = server.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until_stopped(async {
            let _ = stopped.await;
        }));
        (port, stop)
    }

    async fn get(port: u16) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected() {
        let (port, _stop) = served(Duration::from_secs(1)).await;
        let mut slow = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "a connection whose headers stalled is still open after 10 s"
        );
        // The server goes on serving, with the peer's address.
        assert!(get(port).await.ends_with("hello 127.0.0.1"));
    }

    #[tokio::test]
    async fn in_flight_requests_finish_after_shutdown_and_new_connections_are_refused() {
        let (entered, mut handling) = tokio::sync::mpsc::channel::<()>(1);
        let router = Router::new().route(
            "/slow",
            axum::routing::get(move || async move {
                let _ = entered.send(()).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        let server = Application::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            router,
            Duration::from_secs(5),
        )
        .await
        .expect("bind");
        let port = server.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        // Stop while the handler holds the request for 300 ms.
        handling
            .recv()
            .await
            .expect("the request reached its handler");
        stop.send(()).expect("stop");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.ends_with("done"), "{answer}");
        running.await.expect("join").expect("serve");
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }
}
