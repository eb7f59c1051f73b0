//! The accept loop: every TCP connection passes here before HTTP. Connections per client
//! address are limited, a connection must send its request headers in time, and each one is
//! served as HTTP/1.1 with upgrades (Socket.IO's websocket, the media channel) until shutdown.
//!
//! Why not `axum::serve`: it sets no header-read timeout and has no hook per connection, so a
//! client sending one header line every 10 s held a connection for good, and one address could
//! take every connection slot (issue 14). And its HTTP/1-or-2 detection wraps each socket in a
//! private type, so a websocket upgraded through it can never be turned back into the plain TCP
//! stream: engineioxide then splits it behind a lock taken on every read and write (measured:
//! 4% of the server's CPU at 2000 viewers; `vendor/README.md`). Here the upgraded connection is
//! the `TcpStream` itself. HTTP/2 is not offered: websockets ride HTTP/1.1 anyway, and one
//! protocol keeps this loop small.
//!
//! With TLS (`--tls-cert`, `--tls-self-signed`, `--acme-domain`), an admitted connection first
//! completes its handshake, within the header-read timeout, then is served the same way over
//! the `TlsStream`. Its websocket is then not a `TcpStream`, so engineioxide takes its generic
//! `tokio::io::split` (a lock per read and write; `vendor/README.md`), which costs little
//! beside the encryption itself.
//!
//! With ACME the ClientHello is read before a configuration is picked: the CA's TLS-ALPN-01
//! check (ALPN `acme-tls/1` alone) gets the challenge certificate, finishes its handshake and
//! is closed without a byte of HTTP; it counts against the same per-address limit and timeout
//! as any connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::metrics::{AcmeEvent, Metrics, TcpClosed};
use crate::tls::Acceptor;

/// Limits every accepted connection lives under.
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    /// The whole request head must arrive within this, counted from the connection's start
    /// (or the previous response): also closes sockets that never send a byte and idle
    /// keep-alive connections.
    pub(crate) header_read_timeout: Duration,
    /// Connections open at once per client address; `None`: no limit.
    pub(crate) max_per_ip: Option<usize>,
    /// Loopback addresses count too (by default they are exempt, so local load tests work).
    pub(crate) limit_loopback: bool,
    pub(crate) tcp_user_timeout: Option<Duration>,
    pub(crate) tcp_send_buffer: Option<usize>,
}

/// One open connection's place in its address's count, given back when the last holder drops
/// it. The connection task holds it; an upgrade request carries it in its extensions, which
/// the websocket keeps until it closes (the media channel's task, and engineioxide's ws task
/// through `vendor/`'s patch), so a websocket counts for as long as it is open.
#[derive(Debug, Clone)]
pub(crate) struct ConnSlot(#[allow(dead_code)] Arc<SlotGuard>);

#[derive(Debug)]
struct SlotGuard {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
        self.table.metrics.tcp_connections.dec();
    }
}

/// Open connections per client address. Only addresses with a connection open are kept, so
/// it is bounded by the open connections themselves.
#[derive(Debug)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
    max: Option<usize>,
    limit_loopback: bool,
    metrics: Arc<Metrics>,
}

impl PerIp {
    /// A slot for a connection from `ip`, or `None` when that address has its limit open.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let exempt = ip.is_loopback() && !self.limit_loopback;
        let mut counts = self.counts.lock();
        let n = counts.entry(ip).or_insert(0);
        if let Some(max) = self.max
            && !exempt
            && *n >= max
        {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        drop(counts);
        self.metrics.tcp_connections.inc();
        Some(ConnSlot(Arc::new(SlotGuard {
            table: Arc::clone(self),
            ip,
        })))
    }
}

/// What a refused connection reads before it is closed: a complete HTTP response, so a browser
/// or `curl` shows why.
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\n\
content-length: 44\r\nconnection: close\r\n\r\ntoo many connections from this address (429)";

/// Refused connections whose request is read (and discarded) before they are closed, at once.
const REFUSING: usize = 64;

/// Answers a connection over its address's limit with [`TOO_MANY`] and closes it. Closing a
/// socket whose request was not read makes the kernel reset it, and the client may see the
/// reset instead of the answer; so, while fewer than [`REFUSING`] are in this state, the
/// request is read for up to a second first.
fn refuse(tcp: TcpStream, refusing: &Arc<tokio::sync::Semaphore>) {
    // A fresh socket's send buffer is empty: this either goes out whole or not at all.
    let _ = tcp.try_write(TOO_MANY);
    let Ok(permit) = Arc::clone(refusing).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut tcp = tcp;
        let _ = socket2::SockRef::from(&tcp).shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut left: usize = 16 * 1024;
            while left > 0 {
                match tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        })
        .await;
        drop(permit);
    });
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` is cancelled, then
/// asks every connection to finish its current request and waits for them (upgraded
/// websockets are closed by the caller's drain, not here).
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tls: Option<Acceptor>,
) {
    let table = Arc::new(PerIp {
        counts: Mutex::new(HashMap::new()),
        max: limits.max_per_ip,
        limit_loopback: limits.limit_loopback,
        metrics: Arc::clone(&metrics),
    });
    let tracker = TaskTracker::new();
    let refusing = Arc::new(tokio::sync::Semaphore::new(REFUSING));
    loop {
        let (tcp, addr) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: nothing to do but wait a little, as
                    // axum::serve does, instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = table.admit(addr.ip()) else {
            metrics.tcp_closed(TcpClosed::PerIpLimit);
            tracing::debug!(ip = %addr.ip(), "refused: per-address connection limit");
            refuse(tcp, &refusing);
            continue;
        };
        if let Err(e) = tune(&tcp, limits.tcp_user_timeout, limits.tcp_send_buffer) {
            tracing::debug!(error = %e, "could not tune an accepted socket");
        }
        let conn = Conn {
            addr,
            slot,
            app: app.clone(),
            header_read_timeout: limits.header_read_timeout,
            metrics: Arc::clone(&metrics),
            stop: stop.clone(),
        };
        match &tls {
            Some(acceptor) => tracker.spawn(conn.handshake(tcp, acceptor.clone())),
            None => tracker.spawn(conn.serve(tcp)),
        };
    }
    tracker.close();
    tracker.wait().await;
}

/// One admitted connection and what serving it needs.
struct Conn {
    addr: SocketAddr,
    slot: ConnSlot,
    app: axum::Router,
    header_read_timeout: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl Conn {
    /// The TLS handshake, within the header-read timeout (a socket that never finishes it is
    /// a slowloris too), then [`Conn::serve`] over the encrypted stream.
    async fn handshake(self, tcp: TcpStream, acceptor: Acceptor) {
        let handshake = tokio::time::timeout(self.header_read_timeout, tls_accept(tcp, acceptor));
        let done = tokio::select! {
            done = handshake => done,
            // Nothing was asked of this connection yet: just close it.
            () = self.stop.cancelled() => return,
        };
        match done {
            Ok(Ok(Handshake::Serve(tls))) => self.serve(*tls).await,
            Ok(Ok(Handshake::Challenge)) => {
                self.metrics.acme(AcmeEvent::ChallengeAnswered);
                tracing::info!(ip = %self.addr.ip(), "ACME: TLS-ALPN-01 check answered");
            }
            Ok(Err(e)) => {
                self.metrics.tcp_closed(TcpClosed::TlsHandshake);
                tracing::debug!(ip = %self.addr.ip(), error = %e, "closed: TLS handshake failed");
            }
            Err(_) => {
                self.metrics.tcp_closed(TcpClosed::TlsHandshake);
                tracing::debug!(ip = %self.addr.ip(), "closed: TLS handshake not done in time");
            }
        }
    }

    /// One connection, from its first byte (after the handshake, with TLS) to its close or
    /// upgrade.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            addr,
            slot,
            app,
            header_read_timeout,
            metrics,
            stop,
        } = self;
        let svc_slot = slot.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // The handlers read the client's address (wrong publish secrets count per address).
            req.extensions_mut().insert(ConnectInfo(addr));
            if req.headers().contains_key(hyper::header::UPGRADE) {
                req.extensions_mut().insert(svc_slot.clone());
            }
            let mut app = app.clone();
            async move { Ok::<_, Infallible>(app.call(req).await.unwrap_or_else(|e| match e {})) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        tokio::pin!(conn);
        let res = tokio::select! {
            res = conn.as_mut() => res,
            () = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = res {
            if e.is_timeout() {
                metrics.tcp_closed(TcpClosed::HeaderTimeout);
                tracing::debug!(ip = %addr.ip(), "closed: request headers not sent in time");
            } else {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        drop(slot);
    }
}

/// How a connection's handshake ended.
enum Handshake {
    /// A client to serve HTTP to.
    Serve(Box<TlsStream<TcpStream>>),
    /// The ACME CA's TLS-ALPN-01 check: its handshake was the whole point; closed.
    Challenge,
}

async fn tls_accept(tcp: TcpStream, acceptor: Acceptor) -> std::io::Result<Handshake> {
    match acceptor {
        Acceptor::Fixed(a) => a.accept(tcp).await.map(|t| Handshake::Serve(Box::new(t))),
        Acceptor::Acme(acme) => {
            let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
            if crate::acme::is_challenge(&start.client_hello()) {
                let mut tls = start.into_stream(acme.challenge).await?;
                // The CA only needed the certificate; a close_notify ends it cleanly.
                let _ = tls.shutdown().await;
                Ok(Handshake::Challenge)
            } else {
                let tls = start.into_stream(acme.serve).await?;
                Ok(Handshake::Serve(Box::new(tls)))
            }
        }
    }
}

fn tune(
    tcp: &TcpStream,
    user_timeout: Option<Duration>,
    send_buffer: Option<usize>,
) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    if let Some(bytes) = send_buffer {
        socket2::SockRef::from(tcp).set_send_buffer_size(bytes)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(t) = user_timeout {
        socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(t))?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = user_timeout;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: Option<usize>, limit_loopback: bool) -> Arc<PerIp> {
        Arc::new(PerIp {
            counts: Mutex::new(HashMap::new()),
            max,
            limit_loopback,
            metrics: Arc::new(Metrics::new()),
        })
    }

    #[test]
    fn an_address_gets_its_limit_and_a_slot_back_when_the_last_holder_goes() {
        let t = table(Some(2), false);
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let other: IpAddr = "203.0.113.8".parse().expect("ip");
        let a = t.admit(ip).expect("first");
        let b = t.admit(ip).expect("second");
        assert!(t.admit(ip).is_none(), "third from the same address");
        assert!(t.admit(other).is_some(), "another address is not affected");
        // An upgrade request's copy keeps the slot taken after the connection task let go.
        let upgraded = b.clone();
        drop(b);
        assert!(t.admit(ip).is_none(), "the websocket still holds it");
        drop(upgraded);
        let c = t.admit(ip).expect("free again");
        drop((a, c));
        assert!(
            t.counts.lock().is_empty(),
            "nothing kept for closed addresses"
        );
        assert_eq!(t.metrics.tcp_connections.get(), 0);
    }

    #[test]
    fn loopback_is_exempt_unless_asked() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let t = table(Some(1), false);
        let _held: Vec<_> = (0..5).map(|_| t.admit(lo).expect("exempt")).collect();
        let t = table(Some(1), true);
        let _a = t.admit(lo).expect("first");
        assert!(t.admit(lo).is_none(), "limited when asked");
        let t = table(None, true);
        let _held: Vec<_> = (0..5).map(|_| t.admit(lo).expect("no limit")).collect();
    }
}
