//! One raw Engine.IO v4 websocket connection: handshake, emits, and waiting for a reply.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::eio::{self, Packet};
use crate::error::ProtocolError;

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `ws://host:port/socket.io/?EIO=4&transport=websocket`.
    pub ws_url: String,
    /// `ws://host:port`, for the media channel.
    pub ws_base: String,
    /// The base URL as given, for the report.
    pub base: String,
}

impl Target {
    /// Accepts `http://host:port`, `ws://host:port` (a path is ignored) or `host:port`.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if let Some(r) = url.strip_prefix("ws://") {
            r
        } else if url.starts_with("https://") || url.starts_with("wss://") {
            anyhow::bail!("TLS is not supported by the load generator: {url}");
        } else {
            url
        };
        let hostport = rest.split('/').next().unwrap_or(rest);
        let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("resolving {hostport}: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{hostport} resolves to nothing"))?;
        Ok(Target {
            addr,
            ws_url: format!("ws://{hostport}/socket.io/?EIO=4&transport=websocket"),
            ws_base: format!("ws://{hostport}"),
            base: url.to_owned(),
        })
    }
}

/// Websocket settings for bench connections: a 32 KiB read buffer (the default 128 KiB, times
/// 10,000 viewers, is over a gigabyte of address space) and no write buffering.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(32 * 1024)
        .write_buffer_size(0)
}

pub type Ws = WebSocketStream<TcpStream>;

/// A connected Socket.IO client on the default namespace.
#[derive(Debug)]
pub struct Conn {
    pub ws: Ws,
    /// The client's ephemeral port (to find this connection in `/proc/net/tcp`).
    pub local_port: u16,
    /// The Socket.IO connection id (from the connect ack), which names the media channel.
    pub sid: String,
}

/// TCP connect and websocket upgrade to `url`.
async fn dial(target: &Target, url: &str) -> Result<(Ws, u16), ProtocolError> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| ProtocolError::Connect(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    // Close with a reset at the end: no TIME_WAIT sockets pile up on the client side
    // across a matrix of runs with thousands of connections each.
    let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
    let local_port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
        .await
        .map_err(|e| ProtocolError::Connect(e.to_string()))?;
    Ok((ws, local_port))
}

/// Opens the media channel of Socket.IO connection `sid` (StreamHub's `GET /media`); returns
/// it with its client port.
pub async fn open_media(target: &Target, sid: &str) -> Result<(Ws, u16), ProtocolError> {
    let url = format!(
        "{}{}?sid={sid}",
        target.ws_base,
        streamhub_protocol::media_channel::PATH
    );
    dial(target, &url).await
}

impl Conn {
    /// TCP connect, websocket upgrade, Engine.IO open, Socket.IO connect.
    pub async fn open(target: &Target) -> Result<Conn, ProtocolError> {
        let (ws, local_port) = dial(target, &target.ws_url).await?;
        let mut c = Conn {
            ws,
            local_port,
            sid: String::new(),
        };
        match c.next_packet_text("the Engine.IO open packet").await? {
            t if t.starts_with('0') => {}
            t => {
                return Err(ProtocolError::Unexpected {
                    expected: "Engine.IO open (0{...})",
                    got: clip(&t),
                });
            }
        }
        c.send_text(eio::CONNECT.to_owned()).await?;
        loop {
            let t = c.next_packet_text("the Socket.IO connect ack").await?;
            match eio::parse(&t)? {
                Packet::Connect(payload) => {
                    c.sid = serde_json::from_str::<Value>(payload)
                        .ok()
                        .and_then(|v| v.get("sid")?.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    return Ok(c);
                }
                Packet::ConnectError(m) => return Err(ProtocolError::ConnectRefused(clip(m))),
                Packet::Noop | Packet::Pong => {}
                _ => {
                    return Err(ProtocolError::Unexpected {
                        expected: "Socket.IO connect ack (40)",
                        got: clip(&t),
                    });
                }
            }
        }
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), ProtocolError> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// `42["name",payload]`.
    pub async fn emit<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        payload: &T,
    ) -> Result<(), ProtocolError> {
        self.send_text(eio::encode_event(name, payload)).await
    }

    /// The next text message, answering pings on the way (binary messages are skipped).
    async fn next_packet_text(
        &mut self,
        waiting_for: &'static str,
    ) -> Result<String, ProtocolError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    self.send_text(eio::PONG.to_owned()).await?;
                }
                Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
                Some(Ok(Message::Close(_))) | None => {
                    return Err(ProtocolError::Closed(waiting_for));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Reads until the event `name` arrives and returns its arguments. Other events are
    /// skipped; an `error` event fails the wait, and so does a disconnect.
    pub async fn wait_event(
        &mut self,
        name: &'static str,
        timeout: Duration,
    ) -> Result<Vec<Value>, ProtocolError> {
        let wait = async {
            loop {
                let t = self.next_packet_text(name).await?;
                let body = match eio::parse(&t)? {
                    Packet::Event { body, .. } | Packet::BinaryEvent { body, .. } => body,
                    Packet::Close | Packet::Disconnect => return Err(ProtocolError::Closed(name)),
                    _ => continue,
                };
                let Some((event, _)) = eio::event_name(body) else {
                    continue;
                };
                if event == name {
                    return Ok(eio::decode_event(body)?.1);
                }
                if event == streamhub_protocol::events::ERROR {
                    let (_, args) = eio::decode_event(body)?;
                    let field = |k: &str| {
                        args.first()
                            .and_then(|a| a.get(k))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned()
                    };
                    return Err(ProtocolError::Server {
                        event: field("event"),
                        code: field("code"),
                        message: field("message"),
                    });
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ProtocolError::Timeout(name, timeout))?
    }
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms() {
        for url in [
            "http://127.0.0.1:3000",
            "ws://127.0.0.1:3000/x",
            "127.0.0.1:3000",
        ] {
            let t = Target::parse(url).expect(url);
            assert_eq!(t.addr, "127.0.0.1:3000".parse().expect("addr"));
            assert_eq!(
                t.ws_url,
                "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
            );
        }
        assert!(Target::parse("https://example.invalid").is_err());
    }
}
