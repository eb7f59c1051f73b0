//! One way to start the real server on port 0, and the client the tests speak to it with:
//! `streamhub_bench::Client`, the raw Socket.IO client the load generator uses too.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use serde_json::Value;
use streamhub::config::Config;
use streamhub_bench::Target;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a test returns: a client error (a timeout, a refusal, a closed connection) fails it
/// with the error's message.
pub(crate) type TestResult = Result<(), streamhub_bench::ProtocolError>;

pub(crate) struct Server {
    pub addr: SocketAddr,
    pub target: Target,
    pub shutdown: CancellationToken,
    /// What the binary's SIGHUP handler notifies (the TLS certificate is read again).
    pub reload: std::sync::Arc<tokio::sync::Notify>,
    pub handle: JoinHandle<anyhow::Result<()>>,
    /// Holds the database file; removed when the server is dropped.
    pub dir: tempfile::TempDir,
}

/// Starts `streamhub::run` on 127.0.0.1:0 with a fresh database and the defaults changed by
/// `tweak`.
pub(crate) async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
    start_in(tempfile::tempdir().unwrap(), tweak).await
}

/// [`start`] on the database in `dir` (`streamhub.db`), e.g. one a stopped server left.
pub(crate) async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Server {
    start_at("127.0.0.1:0", dir, tweak).await
}

/// [`start`] listening on `bind` (`0.0.0.0:0`: every interface, as a public server does);
/// `addr` is still a loopback address to connect to.
pub(crate) async fn start_on(bind: &str, tweak: impl FnOnce(&mut Config)) -> Server {
    start_at(bind, tempfile::tempdir().unwrap(), tweak).await
}

async fn start_at(bind: &str, dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::defaults();
    config.db = dir.path().join("streamhub.db");
    tweak(&mut config);
    // The binary's own listener (backlog 4096), on a free port.
    let listener = streamhub::listen(bind.parse().unwrap()).unwrap();
    let mut addr = listener.local_addr().unwrap();
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let shutdown = CancellationToken::new();
    let reload = std::sync::Arc::new(tokio::sync::Notify::new());
    let handle = tokio::spawn(streamhub::run_with_reload(
        config,
        listener,
        shutdown.clone(),
        std::sync::Arc::clone(&reload),
    ));
    Server {
        addr,
        target: Target::from(addr),
        shutdown,
        reload,
        handle,
        dir,
    }
}

impl Server {
    /// Cancels the shutdown token and waits for `run` to return cleanly.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }

    /// Stops the server and hands back its database directory (for a restart on it).
    pub(crate) async fn stop_keeping_db(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
        self.dir
    }
}

/// A plain HTTP/1.1 GET, enough for our JSON API.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let text = http_raw(addr, path).await;
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

/// The whole response to `GET path`, head and body, as text.
pub(crate) async fn http_raw(addr: SocketAddr, path: &str) -> String {
    http_raw_as(addr, path, None).await
}

/// The status of `GET path` with `Authorization: Bearer TOKEN` when `token` is given.
pub(crate) async fn http_status(addr: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    http_raw_as(addr, path, token).await[9..12].parse().unwrap()
}

/// [`http_raw`], with `Authorization: Bearer TOKEN` when `token` is given.
pub(crate) async fn http_raw_as(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// `GET path` with `Host: host` on a keep-alive HTTP/1.1 connection (plain or TLS): the status
/// and body of one response.
pub(crate) async fn get_on<S>(conn: &mut S, host: &str, path: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if body.len() >= len {
                return (head[9..12].parse().unwrap(), body[..len].to_owned());
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}
