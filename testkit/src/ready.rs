//! Waiting for readiness: poll until a URL answers 200, or until a condition holds, before a
//! deadline. Failures name what was awaited and the last answer seen.

use std::{
    fmt,
    future::Future,
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    time::{Duration, Instant},
};

/// How long [`wait_until_ready`] waits for a service started in-process.
pub const READY_WITHIN: Duration = Duration::from_secs(30);

/// The pause between two polls: short, so a test goes on as soon as the service is ready.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long one poll may take before it counts as "no answer".
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// A URL that did not answer 200 in time.
#[derive(Debug, Clone)]
pub struct NotReady {
    /// The URL polled.
    pub url: String,
    /// How long it was polled.
    pub waited: Duration,
    /// The last answer: a status line, a connection error, or why polling stopped.
    pub last: String,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} did not answer 200 within {:?}; last answer: {}",
            self.url, self.waited, self.last
        )
    }
}

impl std::error::Error for NotReady {}

/// Polls `url` until it answers 200 within [`READY_WITHIN`]; panics with the URL and the last
/// answer otherwise. Returns the 200 response (for its headers).
pub async fn wait_until_ready(url: &str) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    poll_until_ready(&client, url, READY_WITHIN, || None)
        .await
        .unwrap_or_else(|not_ready| panic!("{not_ready}"))
}

/// Polls `url` with `client` until it answers 200, for at most `within`.
///
/// Before each new attempt `give_up` is asked whether waiting is pointless (for example because
/// the child process that should answer has exited); `Some(reason)` stops at once with that reason.
pub async fn poll_until_ready(
    client: &reqwest::Client,
    url: &str,
    within: Duration,
    mut give_up: impl FnMut() -> Option<String>,
) -> Result<reqwest::Response, NotReady> {
    let started = Instant::now();
    let not_ready = |last: String| NotReady {
        url: url.to_owned(),
        waited: started.elapsed(),
        last,
    };
    loop {
        let last = match client.get(url).timeout(ATTEMPT_TIMEOUT).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(response),
            Ok(response) => format!("status {}", response.status()),
            Err(e) => format!("no answer ({e})"),
        };
        if let Some(reason) = give_up() {
            return Err(not_ready(format!("{last}; stopped waiting: {reason}")));
        }
        if started.elapsed() >= within {
            return Err(not_ready(last));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`poll_until_ready`] for code without an async runtime (system tests driving child processes).
/// Speaks plain HTTP/1.1 to `http://` URLs only.
pub fn poll_until_ready_blocking(
    url: &str,
    within: Duration,
    mut give_up: impl FnMut() -> Option<String>,
) -> Result<(), NotReady> {
    let started = Instant::now();
    let not_ready = |last: String| NotReady {
        url: url.to_owned(),
        waited: started.elapsed(),
        last,
    };
    let target = reqwest::Url::parse(url).map_err(|e| not_ready(format!("not a URL: {e}")))?;
    if target.scheme() != "http" {
        return Err(not_ready("only http:// URLs can be polled".to_owned()));
    }
    loop {
        let last = match status_of(&target) {
            Ok(200) => return Ok(()),
            Ok(status) => format!("status {status}"),
            Err(e) => format!("no answer ({e})"),
        };
        if let Some(reason) = give_up() {
            return Err(not_ready(format!("{last}; stopped waiting: {reason}")));
        }
        if started.elapsed() >= within {
            return Err(not_ready(last));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// One `GET` over a fresh connection; the status code of the answer.
fn status_of(url: &reqwest::Url) -> std::io::Result<u16> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let host = url
        .host_str()
        .ok_or_else(|| invalid("the URL has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid("the host resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, ATTEMPT_TIMEOUT)?;
    stream.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
    stream.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    // One write: a server may answer after the first segment and reset an unread rest.
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 1024 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| invalid("the answer has no HTTP status line"))
}

/// Polls `check` until it returns true, for at most `within`; panics naming `what` otherwise.
///
/// For conditions a test cannot be notified of, such as "a request reached the queue".
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < within,
            "{what}: not true within {within:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A server that answers every request with `status`, on a free loopback port.
    async fn answering(status: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}/readyz")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
    }

    #[tokio::test]
    async fn a_url_answering_200_is_ready() {
        let url = answering("200 OK").await;
        let response = wait_until_ready(&url).await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }

    #[tokio::test]
    async fn a_url_answering_503_is_not_ready_and_the_error_names_url_and_status() {
        let url = answering("503 Service Unavailable").await;
        let error = poll_until_ready(&client(), &url, Duration::from_millis(100), || None)
            .await
            .expect_err("503 is not ready");
        let message = error.to_string();
        assert!(message.contains(&url), "{message}");
        assert!(message.contains("503"), "{message}");
    }

    #[tokio::test]
    async fn nothing_listening_is_not_ready() {
        let url = format!("http://{}/readyz", crate::free_addr());
        let error = poll_until_ready(&client(), &url, Duration::from_millis(100), || None)
            .await
            .expect_err("nothing listens");
        assert!(error.last.contains("no answer"), "{error}");
    }

    #[tokio::test]
    async fn giving_up_stops_at_once_with_the_reason() {
        let url = format!("http://{}/readyz", crate::free_addr());
        let started = Instant::now();
        let error = poll_until_ready(&client(), &url, Duration::from_secs(30), || {
            Some("the process exited".to_owned())
        })
        .await
        .expect_err("gave up");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(error.last.contains("the process exited"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_polling_tells_200_from_503() {
        let ok = answering("200 OK").await;
        let unavailable = answering("503 Service Unavailable").await;
        let (ok, unavailable) = tokio::task::spawn_blocking(move || {
            (
                poll_until_ready_blocking(&ok, Duration::from_secs(5), || None),
                poll_until_ready_blocking(&unavailable, Duration::from_millis(100), || None),
            )
        })
        .await
        .expect("polling thread");
        ok.expect("200 is ready");
        let error = unavailable.expect_err("503 is not ready");
        assert!(error.last.contains("503"), "{error}");
    }

    #[tokio::test]
    async fn eventually_returns_once_the_condition_holds() {
        let mut polls = 0;
        eventually("the third poll", Duration::from_secs(5), || {
            polls += 1;
            std::future::ready(polls >= 3)
        })
        .await;
        assert_eq!(polls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "never true: not true within")]
    async fn eventually_panics_naming_the_condition() {
        eventually("never true", Duration::from_millis(50), || {
            std::future::ready(false)
        })
        .await;
    }
}
