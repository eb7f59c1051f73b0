//! A small raw Socket.IO v5 client over one Engine.IO v4 websocket, and the media channel:
//! what the load generator and the server's integration tests both speak.
//!
//! Built on [`eio`]'s packet codec. Rust Socket.IO client crates are dormant and the protocol
//! is small, so we speak it ourselves: the handshake (`0{...}` open, our `40`, the server's
//! `40{"sid":...}`), pings answered with pongs while reading, events with binary attachments,
//! and acks (`42<id>[...]` out, `43<id>[...]` back).
//!
//! The load generator's hot loops read the websocket directly ([`Client::ws`]) and never
//! decode JSON there; everything else in a run goes through these methods.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use streamhub_protocol::client::Role;
use streamhub_protocol::{events, media_channel};

use crate::eio::{self, Packet};
use crate::error::{ProtocolError, UrlError};
pub use crate::ws::Ws;
use crate::ws::{Msg, Text, dial};

/// How long a [`Client`] waits for a reply unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `ws://host:port/socket.io/?EIO=4&transport=websocket` (`wss://` over TLS).
    pub ws_url: String,
    /// `ws://host:port` (`wss://`), for the media channel.
    pub ws_base: String,
    /// The base URL as given, for the report.
    pub base: String,
    /// TLS settings for an `https://`/`wss://` URL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// Accepts `http://host:port`, `ws://host:port` (a path is ignored) or `host:port`.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        Target::parse_with(url, None)
    }

    /// Like [`Target::parse`], and `https://host:port` or `wss://host:port` with `tls`, the
    /// client settings that trust the server's certificate ([`client_tls`]).
    pub fn parse_with(
        url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Target, UrlError> {
        let (rest, secure) = if let Some(r) = url.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (r, false)
        } else if let Some(r) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("wss://"))
        {
            (r, true)
        } else {
            (url, false)
        };
        let tls = match (secure, tls) {
            (true, None) => return Err(UrlError::NoTrust(url.to_owned())),
            (true, tls) => tls,
            (false, _) => None,
        };
        let hostport = rest.split('/').next().unwrap_or(rest);
        let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| UrlError::Resolve(hostport.clone(), e))?
            .next()
            .ok_or_else(|| UrlError::NoAddress(hostport.clone()))?;
        Ok(Target::at(addr, &hostport, url, tls))
    }

    fn at(
        addr: SocketAddr,
        hostport: &str,
        base: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Target {
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        Target {
            addr,
            ws_url: format!("{scheme}://{hostport}/socket.io/?EIO=4&transport=websocket"),
            ws_base: format!("{scheme}://{hostport}"),
            base: base.to_owned(),
            tls,
        }
    }
}

/// Client TLS settings that trust the certificates in the PEM file `ca` alone (a private CA,
/// or the server's own self-signed certificate, `DB.tls-cert.pem`). ring, as the server uses
/// (deprecated in rustls 0.23.48 for lacking post-quantum key exchange; the server's
/// `tls::crypto_provider` says why it is kept), so both ends pay for the same key exchange.
#[allow(deprecated)]
pub fn client_tls(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, UrlError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bad = |e: String| UrlError::Ca(ca.display().to_string(), e);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target::at(addr, &addr.to_string(), &format!("http://{addr}"), None)
    }
}

/// A Socket.IO event as received: its name, its arguments, and its binary attachments in
/// order (an argument holds `{"_placeholder":true,"num":N}` where attachment N belongs; see
/// [`Received::binary`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub event: String,
    pub args: Vec<Value>,
    pub binaries: Vec<Bytes>,
}

impl Received {
    /// The attachment a placeholder value stands for, e.g. `r.binary(&r.args[0]["data"])`.
    pub fn binary(&self, placeholder: &Value) -> Option<&Bytes> {
        self.binaries.get(eio::placeholder_num(placeholder)?)
    }
}

/// The server's answer to one of our events sent with an ack id.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// The event it answers.
    pub event: String,
    pub args: Vec<Value>,
    pub binaries: Vec<Bytes>,
}

impl Ack {
    /// The payload of a success ack (`{ok: true, ...}`); a failure ack (`{ok: false,
    /// error: {code, message}}`) becomes [`ProtocolError::Server`].
    pub fn into_ok(mut self) -> Result<Value, ProtocolError> {
        let payload = if self.args.is_empty() {
            Value::Null
        } else {
            self.args.swap_remove(0)
        };
        if payload["ok"] == true {
            return Ok(payload);
        }
        let field = |k: &str| payload["error"][k].as_str().unwrap_or("").to_owned();
        Err(ProtocolError::Server {
            code: field("code"),
            message: field("message"),
            event: self.event,
        })
    }
}

/// One packet read off the Socket.IO connection.
enum Incoming {
    Event(Received),
    Ack {
        id: u64,
        args: Vec<Value>,
        binaries: Vec<Bytes>,
    },
}

/// A connected Socket.IO client on the default namespace.
///
/// Reads answer pings on the way. Events that arrive while [`Client::emit_ack`] waits for its
/// ack are kept, in order, for [`Client::next_event`] and [`Client::wait_for`].
#[derive(Debug)]
pub struct Client {
    ws: Ws,
    target: Target,
    /// The Socket.IO connection id (from the connect ack), which names the media channel.
    pub sid: String,
    /// The client's ephemeral port (to find this connection in `/proc/net/tcp`).
    pub local_port: u16,
    /// How long each wait for a reply may take.
    pub timeout: Duration,
    next_ack: u64,
    queued: VecDeque<Received>,
}

impl Client {
    /// [`Client::connect_within`] the [`DEFAULT_TIMEOUT`].
    pub async fn connect(target: &Target) -> Result<Client, ProtocolError> {
        Client::connect_within(target, DEFAULT_TIMEOUT).await
    }

    /// TCP connect, websocket upgrade, Engine.IO open, Socket.IO connect; `timeout` is for
    /// the handshake and every later wait.
    pub async fn connect_within(
        target: &Target,
        timeout: Duration,
    ) -> Result<Client, ProtocolError> {
        let (ws, local_port) = dial(target.addr, &target.ws_url, target.tls.as_ref()).await?;
        let mut c = Client {
            ws,
            target: target.clone(),
            sid: String::new(),
            local_port,
            timeout,
            next_ack: 0,
            queued: VecDeque::new(),
        };
        within(timeout, c.handshake(), || "the Socket.IO handshake".into()).await?;
        Ok(c)
    }

    async fn handshake(&mut self) -> Result<(), ProtocolError> {
        let open = self.next_text("the Engine.IO open packet").await?;
        if !matches!(eio::parse(open.as_str())?, Packet::Open(_)) {
            return Err(ProtocolError::Unexpected {
                expected: "Engine.IO open (0{...})",
                got: clip(open.as_str()),
            });
        }
        self.send_text(eio::CONNECT.to_owned()).await?;
        loop {
            let t = self.next_text("the Socket.IO connect ack").await?;
            match eio::parse(t.as_str())? {
                Packet::Connect(payload) => {
                    // socketioxide uses the Engine.IO sid (the open packet's) here too.
                    self.sid = serde_json::from_str::<Value>(payload)
                        .ok()
                        .and_then(|v| v.get("sid")?.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    return Ok(());
                }
                Packet::ConnectError(m) => return Err(ProtocolError::ConnectRefused(clip(m))),
                Packet::Noop | Packet::Pong => {}
                _ => {
                    return Err(ProtocolError::Unexpected {
                        expected: "Socket.IO connect ack (40)",
                        got: clip(t.as_str()),
                    });
                }
            }
        }
    }

    /// The websocket itself, for hot loops that parse packets on their own. Events kept while
    /// an ack was awaited are not seen there.
    pub fn ws(&mut self) -> &mut Ws {
        &mut self.ws
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), ProtocolError> {
        self.ws.send_text(text).await?;
        Ok(())
    }

    /// `42["name",payload]`.
    pub async fn emit<T: Serialize + ?Sized>(
        &mut self,
        event: &str,
        payload: &T,
    ) -> Result<(), ProtocolError> {
        self.send_text(eio::encode_event(event, payload)).await
    }

    /// Emits `payload` with `payload[field]` standing for one binary attachment, `bin`.
    pub async fn emit_binary(
        &mut self,
        event: &str,
        payload: Value,
        field: &str,
        bin: impl Into<Bytes>,
    ) -> Result<(), ProtocolError> {
        self.send_binary(event, payload, field, bin.into(), None)
            .await
    }

    /// Emits with an ack id and waits for the server's answer; events that come first are
    /// kept for [`Client::next_event`].
    pub async fn emit_ack<T: Serialize + ?Sized>(
        &mut self,
        event: &str,
        payload: &T,
    ) -> Result<Ack, ProtocolError> {
        let id = self.take_ack_id();
        self.send_text(eio::encode_packet(event, payload, 0, Some(id)))
            .await?;
        self.wait_ack(event, id).await
    }

    /// [`Client::emit_binary`] with an ack id, waiting for the answer as [`Client::emit_ack`].
    pub async fn emit_binary_ack(
        &mut self,
        event: &str,
        payload: Value,
        field: &str,
        bin: impl Into<Bytes>,
    ) -> Result<Ack, ProtocolError> {
        let id = self.take_ack_id();
        self.send_binary(event, payload, field, bin.into(), Some(id))
            .await?;
        self.wait_ack(event, id).await
    }

    /// Emits with an ack and returns the payload of a success ack; a failure ack is an error.
    pub async fn request<T: Serialize + ?Sized>(
        &mut self,
        event: &str,
        payload: &T,
    ) -> Result<Value, ProtocolError> {
        self.emit_ack(event, payload).await?.into_ok()
    }

    fn take_ack_id(&mut self) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        id
    }

    async fn send_binary(
        &mut self,
        event: &str,
        mut payload: Value,
        field: &str,
        bin: Bytes,
        ack: Option<u64>,
    ) -> Result<(), ProtocolError> {
        payload[field] = eio::placeholder(0);
        let header = eio::encode_packet(event, &payload, 1, ack);
        self.ws.send_text_binary(header, bin).await?;
        Ok(())
    }

    async fn wait_ack(&mut self, event: &str, id: u64) -> Result<Ack, ProtocolError> {
        let what = format!("the ack of {event}");
        let timeout = self.timeout;
        let wait = async {
            loop {
                match self.next_incoming(&what).await? {
                    Incoming::Ack {
                        id: got,
                        args,
                        binaries,
                    } if got == id => {
                        return Ok(Ack {
                            event: event.to_owned(),
                            args,
                            binaries,
                        });
                    }
                    // We wait for each ack as soon as we ask, so another id cannot be ours.
                    Incoming::Ack { .. } => {}
                    Incoming::Event(r) => self.queued.push_back(r),
                }
            }
        };
        within(timeout, wait, || what.clone()).await
    }

    /// The next event, kept or read (any name).
    pub async fn next_event(&mut self) -> Result<Received, ProtocolError> {
        if let Some(r) = self.queued.pop_front() {
            return Ok(r);
        }
        let timeout = self.timeout;
        let wait = async {
            loop {
                if let Incoming::Event(r) = self.next_incoming("an event").await? {
                    return Ok(r);
                }
            }
        };
        within(timeout, wait, || "an event".into()).await
    }

    /// Skips events until one named `event` arrives. An `error` event on the way fails the
    /// wait (unless `error` is what we wait for), as does a disconnect.
    pub async fn wait_for(&mut self, event: &str) -> Result<Received, ProtocolError> {
        let timeout = self.timeout;
        let wait = async {
            loop {
                let r = match self.queued.pop_front() {
                    Some(r) => r,
                    None => match self.next_incoming(event).await? {
                        Incoming::Event(r) => r,
                        Incoming::Ack { .. } => continue,
                    },
                };
                if r.event == event {
                    return Ok(r);
                }
                if r.event == events::ERROR {
                    let arg = r.args.first().unwrap_or(&Value::Null);
                    let field = |k: &str| arg[k].as_str().unwrap_or("").to_owned();
                    return Err(ProtocolError::Server {
                        event: field("event"),
                        code: field("code"),
                        message: field("message"),
                    });
                }
            }
        };
        within(timeout, wait, || event.to_owned()).await
    }

    /// Events received while an ack was awaited and not read yet, oldest first.
    pub fn queued(&self) -> &VecDeque<Received> {
        &self.queued
    }

    /// `user:register`; returns the `user:registered` payload (`{user}`). Waits for the event,
    /// not an ack: the design note's own server (the benchmark's Node baseline) acks nothing.
    pub async fn register(&mut self, username: &str, role: Role) -> Result<Value, ProtocolError> {
        self.emit(
            events::USER_REGISTER,
            &json!({"username": username, "role": role}),
        )
        .await?;
        let registered = self.wait_for(events::USER_REGISTERED).await?;
        Ok(registered.args.into_iter().next().unwrap_or_default())
    }

    /// Registers as a STREAMER and returns the key of the stream the server made for it.
    pub async fn register_streamer(&mut self, username: &str) -> Result<String, ProtocolError> {
        self.register(username, Role::Streamer).await?;
        let created = self.wait_for(events::STREAM_CREATED).await?;
        created.args[0]["stream"]["streamKey"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ProtocolError::Unexpected {
                expected: "stream:created {stream: {streamKey}}",
                got: clip(&format!("{:?}", created.args)),
            })
    }

    /// Connects a STREAMER; returns it with the key of the stream made for it.
    pub async fn streamer(
        target: &Target,
        username: &str,
    ) -> Result<(Client, String), ProtocolError> {
        let mut c = Client::connect(target).await?;
        let key = c.register_streamer(username).await?;
        Ok((c, key))
    }

    /// Connects and registers a VIEWER.
    pub async fn viewer(target: &Target, username: &str) -> Result<Client, ProtocolError> {
        let mut c = Client::connect(target).await?;
        c.register(username, Role::Viewer).await?;
        Ok(c)
    }

    /// `stream:join`; returns the ack (`{ok, stream, viewerCount, media}`). `stream:joined`
    /// and the catch-up come before it and are kept for [`Client::next_event`].
    pub async fn join(&mut self, stream_key: &str) -> Result<Value, ProtocolError> {
        self.request(events::STREAM_JOIN, &json!({"streamKey": stream_key}))
            .await
    }

    /// `stream:data:send` of a text (base64) frame; returns the ack (`{ok, seq, viewers}`),
    /// which comes once the frame, and every frame sent before it, went out to the viewers.
    pub async fn send_frame(
        &mut self,
        stream_key: &str,
        data: &str,
    ) -> Result<Value, ProtocolError> {
        self.request(
            events::STREAM_DATA_SEND,
            &json!({"streamKey": stream_key, "data": data}),
        )
        .await
    }

    /// [`Client::send_frame`] for a binary frame.
    pub async fn send_binary_frame(
        &mut self,
        stream_key: &str,
        data: impl Into<Bytes>,
    ) -> Result<Value, ProtocolError> {
        self.emit_binary_ack(
            events::STREAM_DATA_SEND,
            json!({"streamKey": stream_key}),
            "data",
            data,
        )
        .await?
        .into_ok()
    }

    /// Opens this connection's media channel (`media:token`, then `GET /media?token=TOKEN`).
    /// Open it before joining: only joins made while it is open deliver their frames there.
    pub async fn open_media(&mut self) -> Result<MediaChannel, ProtocolError> {
        let token = self.media_token().await?;
        let query = format!("{}={token}", media_channel::TOKEN_PARAM);
        MediaChannel::open_at(&self.target, &query, self.timeout).await
    }

    /// A single-use credential for this connection's media channel (`media:token`).
    pub async fn media_token(&mut self) -> Result<String, ProtocolError> {
        let reply = self
            .request(
                streamhub_protocol::events::MEDIA_TOKEN,
                &serde_json::json!({}),
            )
            .await?;
        reply["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ProtocolError::Unexpected {
                expected: "a media:token ack with a token",
                got: reply.to_string(),
            })
    }

    /// The next packet: an event or an ack, attachments read.
    async fn next_incoming(&mut self, waiting_for: &str) -> Result<Incoming, ProtocolError> {
        loop {
            let text = self.next_text(waiting_for).await?;
            let (attachments, ack, body) = match eio::parse(text.as_str())? {
                Packet::Event { body, .. } => (0, None, body),
                Packet::BinaryEvent {
                    attachments, body, ..
                } => (attachments, None, body),
                Packet::Ack { ack, body } => (0, Some(ack), body),
                Packet::BinaryAck {
                    attachments,
                    ack,
                    body,
                } => (attachments, Some(ack), body),
                Packet::Close | Packet::Disconnect => {
                    return Err(ProtocolError::Closed(waiting_for.to_owned()));
                }
                Packet::ConnectError(m) => return Err(ProtocolError::ConnectRefused(clip(m))),
                Packet::Open(_)
                | Packet::Connect(_)
                | Packet::Ping
                | Packet::Pong
                | Packet::Noop => {
                    continue;
                }
            };
            let binaries = self.read_attachments(attachments, waiting_for).await?;
            return Ok(match ack {
                Some(id) => Incoming::Ack {
                    id,
                    args: eio::decode_args(body)?,
                    binaries,
                },
                None => {
                    let (event, args) = eio::decode_event(body)?;
                    Incoming::Event(Received {
                        event,
                        args,
                        binaries,
                    })
                }
            });
        }
    }

    /// The `n` binary messages that follow a binary packet.
    async fn read_attachments(
        &mut self,
        n: usize,
        waiting_for: &str,
    ) -> Result<Vec<Bytes>, ProtocolError> {
        let mut binaries = Vec::with_capacity(n);
        while binaries.len() < n {
            match self.ws.next().await {
                Some(Ok(Msg::Binary(b))) => binaries.push(b),
                Some(Ok(Msg::Text(t))) if t.as_str() == "2" => {
                    self.send_text(eio::PONG.to_owned()).await?;
                }
                Some(Ok(Msg::Text(t))) => {
                    return Err(ProtocolError::Unexpected {
                        expected: "a binary attachment",
                        got: clip(t.as_str()),
                    });
                }
                Some(Ok(Msg::Close)) | None => {
                    return Err(ProtocolError::Closed(waiting_for.to_owned()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
        Ok(binaries)
    }

    /// The next text message, answering pings on the way (binary messages outside a binary
    /// packet are skipped).
    async fn next_text(&mut self, waiting_for: &str) -> Result<Text, ProtocolError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Msg::Text(t))) if t.as_str() == "2" => {
                    self.send_text(eio::PONG.to_owned()).await?;
                }
                Some(Ok(Msg::Text(t))) => return Ok(t),
                Some(Ok(Msg::Close)) | None => {
                    return Err(ProtocolError::Closed(waiting_for.to_owned()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}

/// A viewer's media channel: one binary message per frame (`docs/protocol.md`, "Media
/// channel"), read with [`media_channel::decode`].
#[derive(Debug)]
pub struct MediaChannel {
    ws: Ws,
    /// The client's ephemeral port (to find this connection in `/proc/net/tcp`).
    pub local_port: u16,
    /// How long [`MediaChannel::next_frame`] waits.
    pub timeout: Duration,
}

impl MediaChannel {
    /// Opens `GET /media?QUERY` (`token=TOKEN`, or anything a test wants to try: the server's
    /// refusal comes back as [`ProtocolError::Rejected`]).
    pub async fn open(target: &Target, query: &str) -> Result<MediaChannel, ProtocolError> {
        MediaChannel::open_at(target, query, DEFAULT_TIMEOUT).await
    }

    async fn open_at(
        target: &Target,
        query: &str,
        timeout: Duration,
    ) -> Result<MediaChannel, ProtocolError> {
        let url = format!("{}{}?{query}", target.ws_base, media_channel::PATH);
        let (ws, local_port) = dial(target.addr, &url, target.tls.as_ref()).await?;
        Ok(MediaChannel {
            ws,
            local_port,
            timeout,
        })
    }

    /// The websocket itself, for the load generator's hot loop.
    pub fn into_ws(self) -> Ws {
        self.ws
    }

    /// The next frame: its header and its payload.
    pub async fn next_frame(&mut self) -> Result<(media_channel::Header, Bytes), ProtocolError> {
        let what = "a media-channel frame";
        let timeout = self.timeout;
        let wait = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Msg::Binary(msg))) => {
                        let (header, payload) = media_channel::decode(&msg)?;
                        let payload = msg.slice_ref(payload);
                        return Ok((header, payload));
                    }
                    Some(Ok(Msg::Close)) | None => {
                        return Err(ProtocolError::Closed(what.into()));
                    }
                    Some(Ok(Msg::Text(t))) => {
                        return Err(ProtocolError::Unexpected {
                            expected: "a binary frame",
                            got: clip(t.as_str()),
                        });
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                }
            }
        };
        within(timeout, wait, || what.into()).await
    }

    /// The closing handshake: our close, then the server's, so the server has seen it.
    pub async fn close(mut self) -> Result<(), ProtocolError> {
        self.ws.close().await?;
        let timeout = self.timeout;
        let drain = async {
            while let Some(msg) = self.ws.next().await {
                match msg {
                    Ok(_) => {}
                    Err(tokio_websockets::Error::AlreadyClosed) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        };
        within(timeout, drain, || "the media channel's close".into()).await
    }
}

/// `fut`, or [`ProtocolError::Timeout`] naming `what` once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, ProtocolError>>,
    what: impl FnOnce() -> String,
) -> Result<T, ProtocolError> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ProtocolError::Timeout(what(), timeout))?
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
        // https needs a certificate to trust.
        assert!(matches!(
            Target::parse("https://127.0.0.1:4000"),
            Err(UrlError::NoTrust(_))
        ));
        let t = Target::from(SocketAddr::from(([127, 0, 0, 1], 4000)));
        assert_eq!(
            (t.ws_url.as_str(), t.ws_base.as_str(), t.base.as_str()),
            (
                "ws://127.0.0.1:4000/socket.io/?EIO=4&transport=websocket",
                "ws://127.0.0.1:4000",
                "http://127.0.0.1:4000"
            )
        );
    }

    #[test]
    fn acks_say_ok_or_why_not() {
        let ack = |payload: Value| Ack {
            event: "stream:join".into(),
            args: vec![payload],
            binaries: vec![],
        };
        let ok = ack(json!({"ok": true, "viewerCount": 1})).into_ok();
        assert_eq!(ok.expect("ok")["viewerCount"], 1);
        let refused =
            ack(json!({"ok": false, "error": {"code": "STREAM_NOT_FOUND", "message": "no"}}))
                .into_ok();
        match refused {
            Err(ProtocolError::Server { event, code, .. }) => {
                assert_eq!(
                    (event.as_str(), code.as_str()),
                    ("stream:join", "STREAM_NOT_FOUND")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Ack {
                event: "x".into(),
                args: vec![],
                binaries: vec![]
            }
            .into_ok()
            .is_err()
        );
    }

    #[test]
    fn placeholders_resolve_to_their_attachment() {
        let r = Received {
            event: "stream:buffer".into(),
            args: vec![
                json!({"frames": [{"data": eio::placeholder(1)}, {"data": eio::placeholder(0)}]}),
            ],
            binaries: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        };
        assert_eq!(
            r.binary(&r.args[0]["frames"][0]["data"]).map(|b| &b[..]),
            Some(&b"b"[..])
        );
        assert_eq!(
            r.binary(&r.args[0]["frames"][1]["data"]).map(|b| &b[..]),
            Some(&b"a"[..])
        );
        assert_eq!(r.binary(&json!("text")), None);
        assert_eq!(r.binary(&eio::placeholder(2)), None);
    }
}
