//! The websocket under every bench connection: `tokio-websockets` over a connection upgraded
//! by hyper.
//!
//! Why not tokio-tungstenite, which this client used first: tungstenite zero-fills its read
//! buffer before every read (snapview/tungstenite-rs#547), and the load generator reads a
//! 13 KB message per viewer per frame. Measured on this machine, 2000 loopback readers of
//! 13.4 KB text messages at 30 fps (one run each, 20 s): tungstenite 8.3 s user + 9.0 s
//! system, tokio-websockets 2.4-2.9 s user + 9.1-10.0 s system (fastwebsockets was as cheap,
//! but its reads are not cancel safe, and our loops `select!` over reads). `perf` put the
//! zero-filling at 16-21% of the load generator's CPU at 2000 viewers: CPU the server under
//! test lost, since both share the machine's two cores.
//!
//! hyper makes the upgrade (not `tokio-websockets`' own handshake) because a refused upgrade
//! must come back with its body: the media channel answers 404/409/503 with a JSON error that
//! the server's tests read.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::header;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::ProtocolError;

/// Largest message a bench connection accepts: above the server's 2 MiB frame limit plus
/// base64 and JSON around it.
const MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// One message as the bench reads it.
#[derive(Debug)]
pub enum Msg {
    /// A text message (valid UTF-8: `tokio-websockets` checks it on arrival).
    Text(Text),
    Binary(Bytes),
    Close,
    /// Websocket pings and pongs (answered by `tokio-websockets` itself).
    Control,
}

/// A text message's payload, checked UTF-8.
#[derive(Debug)]
pub struct Text(tokio_websockets::Message);

impl Text {
    pub fn as_str(&self) -> &str {
        self.0.as_text().unwrap_or_default()
    }
}

/// A websocket that reads [`Msg`]s; `next` is cancel safe (a `Stream`).
#[derive(Debug)]
pub struct Ws(tokio_websockets::WebSocketStream<TokioIo<Upgraded>>);

impl Ws {
    /// The next message; `None` once the connection is closed.
    pub async fn next(&mut self) -> Option<Result<Msg, tokio_websockets::Error>> {
        let msg = match self.0.next().await? {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(if msg.is_text() {
            Msg::Text(Text(msg))
        } else if msg.is_binary() {
            Msg::Binary(msg.into_payload().into())
        } else if msg.is_close() {
            Msg::Close
        } else {
            Msg::Control
        }))
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), tokio_websockets::Error> {
        self.0.send(tokio_websockets::Message::text(text)).await
    }

    /// A text message and a binary one with a single flush (a binary Socket.IO packet and
    /// its attachment).
    pub async fn send_text_binary(
        &mut self,
        text: String,
        bin: Bytes,
    ) -> Result<(), tokio_websockets::Error> {
        self.0.feed(tokio_websockets::Message::text(text)).await?;
        self.0.send(tokio_websockets::Message::binary(bin)).await
    }

    /// Sends a close frame.
    pub async fn close(&mut self) -> Result<(), tokio_websockets::Error> {
        self.0.close().await
    }
}

/// TCP connect, TLS when `tls` is given, and the websocket upgrade to `url`
/// (`ws[s]://host:port/path?query`); the websocket and its client port.
pub async fn dial(
    addr: std::net::SocketAddr,
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(Ws, u16), ProtocolError> {
    let connect_err = |e: &dyn std::fmt::Display| ProtocolError::Connect(e.to_string());
    let uri: hyper::Uri = url.parse().map_err(|e| connect_err(&e))?;
    let host = uri.host().unwrap_or_default().to_owned();
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| connect_err(&e))?;
    let _ = tcp.set_nodelay(true);
    // Close with a reset at the end: no TIME_WAIT sockets pile up on the client side
    // across a matrix of runs with thousands of connections each.
    let _ = socket2::SockRef::from(&tcp).set_linger(Some(std::time::Duration::ZERO));
    let local_port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    let ws = match tls {
        None => upgrade(tcp, &uri).await?,
        Some(config) => {
            let name =
                rustls::pki_types::ServerName::try_from(host).map_err(|e| connect_err(&e))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| connect_err(&e))?;
            upgrade(stream, &uri).await?
        }
    };
    Ok((ws, local_port))
}

/// The HTTP/1.1 upgrade on `io`. The `Sec-WebSocket-Accept` check is left out: this client
/// only talks to servers under test, and a refusal's status and body are what it needs.
async fn upgrade<S>(io: S, uri: &hyper::Uri) -> Result<Ws, ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connect_err = |e: &dyn std::fmt::Display| ProtocolError::Connect(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| connect_err(&e))?;
    tokio::spawn(conn.with_upgrades());
    let key: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or("", |a| a.as_str());
    let request = hyper::Request::get(path)
        .header(header::HOST, authority)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(
            header::SEC_WEBSOCKET_KEY,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| connect_err(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| connect_err(&e))?;
    let status = response.status();
    if status != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        return Err(ProtocolError::Rejected {
            status: status.as_u16(),
            body,
        });
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| connect_err(&e))?;
    let ws = tokio_websockets::ClientBuilder::new()
        .limits(tokio_websockets::Limits::default().max_payload_len(Some(MAX_MESSAGE)))
        .take_over(TokioIo::new(upgraded));
    Ok(Ws(ws))
}
