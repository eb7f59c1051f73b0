//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, PacketBuf, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket, body::ResponseBody, config::EngineIoConfig, engine::EngineIo,
    errors::Error, handler::EngineIoHandler, socket::InternalRx, transport::make_open_packet,
};

// StreamHub patch: the writer below (see `writer.rs`).
use super::writer::{Direct, Outbox, SharedTcp, WsIo, write_packets};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);

    let ws_key = parts
        .headers
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();

    tokio::spawn(async move {
        let res = match hyper::upgrade::on(req).await {
            // StreamHub patch: a plain TCP connection splits into halves that need no lock
            // between the reader and the writer task (`ws_io::tcp_halves`); any other one
            // (TLS, say) is split the usual way.
            Ok(conn) => match crate::ws_io::tcp_halves(conn) {
                Ok((rd, wr)) => {
                    // Shared with senders for direct writes (`writer::Direct`).
                    let wr = SharedTcp(Arc::new(wr));
                    let direct = Some(wr.0.clone());
                    on_init_halves(engine.clone(), rd, wr, direct, protocol, sid, parts).await
                }
                Err(conn) => {
                    let conn = hyper_util::rt::TokioIo::new(conn);
                    on_init(engine.clone(), conn, protocol, sid, parts).await
                }
            },
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                return;
            }
        };

        match res {
            Ok(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed")
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Read packets from the websocket and handle them, it will block until the connection is closed
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
pub async fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(conn);
    on_init_halves(engine, rd, wr, None, protocol, sid, req_data).await
}

/// [`on_init`] over a connection already split into its read and write halves (StreamHub
/// patch).
async fn on_init_halves<H: EngineIoHandler, R, W>(
    engine: Arc<EngineIo<H>>,
    rd: R,
    mut wr: W,
    direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(), Error>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    // StreamHub patch: tungstenite reads; the writer task owns the write half and writes each
    // packet itself (`writer.rs`). What tungstenite writes (handshake packets, pongs, a close
    // reply) goes through the outbox.
    let outbox = Arc::new(Outbox::default());
    let io = WsIo::new(rd, outbox.clone());
    let ws_init = move || WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config));
    let (socket, ws) = if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => return Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => return Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, _, W>(&socket, &mut ws, &outbox, &mut wr);
                match tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut)
                    .with_cancellation_token(&socket.cancellation_token)
                    .await
                {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                (socket, ws)
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        outbox.write_to(&mut wr).await.map_err(tungstenite::Error::Io)?;
        socket
            .clone()
            .spawn_heartbeat(engine.config.ping_interval, engine.config.ping_timeout);
        (socket, ws)
    };

    // Pipe between websocket and internal socket channel.
    tokio::spawn(forward_to_socket::<H, W>(socket.clone(), wr, direct, outbox.clone()));
    // Whatever ends the reader below (the peer, an error, the session's cancellation) ends
    // the writer too.
    let _close_writer = CloseOnDrop(outbox);

    // pipe between internal socket channel and websocket
    match forward_to_handler(&engine, ws, &socket)
        .with_cancellation_token(&socket.cancellation_token)
        .await
    {
        Some(Err(ref e)) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);

            #[cfg(feature = "tracing")]
            tracing::debug!("error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
        }
        Some(Ok(())) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
        }
    }
    Ok(())
}

/// Closes the outbox when dropped (StreamHub patch).
struct CloseOnDrop(Arc<Outbox>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Forwards all packets received from a websocket to a EngineIo [`Socket`]
async fn forward_to_handler<H: EngineIoHandler, S>(
    engine: &Arc<EngineIo<H>>,
    mut rx: WebSocketStream<S>,
    socket: &Arc<Socket<H::Data>>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    while let Some(msg) = rx.try_next().await? {
        match msg {
            Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
                Packet::Close => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] closing session", socket.id);
                    engine.close_session(socket.id, DisconnectReason::TransportClose);
                    break;
                }
                Packet::Pong | Packet::Ping => {
                    // A full channel means that the client is already known to be alive.
                    socket.heartbeat_tx.try_send(()).ok();
                    Ok::<(), Error>(())
                }
                Packet::Message(msg) => {
                    engine.handler.on_message(msg, socket.clone());
                    Ok(())
                }
                p => return Err(Error::BadPacket(p)),
            },
            Message::Binary(mut data) => {
                if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                    // The first byte is the message type, which we don't need.
                    data = data.split_off(1);
                }
                engine.handler.on_binary(data, socket.clone());
                Ok(())
            }
            Message::Close(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("websocket closed, closing session");
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                break;
            }
            _ => {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = ?socket.id, "unexpected ws message");
                Ok(())
            }
        }?
    }
    Ok(())
}

/// Forwards all packets waiting to be sent to the websocket.
///
/// StreamHub patch: each packet is written as one websocket frame by a vectored write of its
/// header and its bytes, which may be shared with other sockets (no copy per socket, no write
/// buffer); tungstenite's own frames (pongs, a close reply) are written between packets.
async fn forward_to_socket<H: EngineIoHandler, W>(
    socket: Arc<Socket<H::Data>>,
    mut wr: W,
    direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
    outbox: Arc<Outbox>,
) where
    W: AsyncWrite + Unpin + Send + 'static,
{
    // A polling request that was in progress during the upgrade may still hold the lock.
    let lock = socket.internal_rx.lock();
    let Some(mut internal_rx) = lock
        .with_cancellation_token(&socket.cancellation_token)
        .await
    else {
        #[cfg(feature = "tracing")]
        tracing::debug!(sid = %socket.id, "session closed before starting the ws writer");
        return;
    };
    let InternalRx {
        buffered_rx,
        volatile_rx,
        ..
    } = &mut *internal_rx;
    // Senders may write to the connection themselves from now on, between this task's turns
    // (`writer::Direct`). Only one websocket per session gets this far, so it is set once.
    let direct = direct.and_then(|tcp| {
        let d = Direct::new(tcp, outbox.clone(), socket.protocol);
        socket.counters.direct.set(d).ok()?;
        socket.counters.direct.get()
    });

    // Whether the connection ended in the middle of a frame (no close frame can follow).
    let mut torn = false;
    // The first turn writes what the handshake left in the outbox.
    let mut packets = PacketBuf::new();
    loop {
        if let Some(d) = direct {
            d.acquire().await;
        }
        let written = async {
            // The rest of a direct write goes before anything else.
            if let Some(d) = direct {
                d.write_tail(&mut wr, &socket.counters.queued).await?;
            }
            outbox.write_to(&mut wr).await?;
            let mut packets = packets;
            loop {
                for item in &packets {
                    socket.note_dequeued(item);
                }
                write_packets(&mut wr, socket.protocol, packets).await?;
                match buffered_rx.try_recv() {
                    Ok(next) => packets = next,
                    Err(_) => return Ok::<(), std::io::Error>(()),
                }
            }
        };
        // A peer that stopped reading leaves the write pending: the end of the connection
        // interrupts it.
        let res = tokio::select! {
            biased;
            res = written => res,
            _ = outbox.closed() => Err(std::io::ErrorKind::Interrupted.into()),
        };
        if let Err(_e) = res {
            #[cfg(feature = "tracing")]
            tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
            torn = true;
            break;
        }
        if let Some(d) = direct {
            d.release();
        }
        // One hand-written wait on every source, cheapest first: atomics and the queue's own
        // waker, where `select!` over `cancelled()` and `watch::changed()` futures took a lock
        // per packet.
        let next = std::future::poll_fn(|cx| {
            use std::task::Poll;
            // Said before a packet can leave the queue, unsaid only when none did: a packet in
            // hand must not be overtaken by a direct write before this task has the connection.
            if let Some(d) = direct {
                d.taking(true);
            }
            // Packets queued before the end still go out (a disconnect packet, say).
            if let Poll::Ready(items) = buffered_rx.poll_recv(cx) {
                return Poll::Ready(items);
            }
            if outbox.is_closed() {
                return Poll::Ready(None);
            }
            socket.volatile_waker.register(cx.waker());
            if socket.counters.volatile_pending.load(std::sync::atomic::Ordering::Acquire)
                && socket
                    .counters
                    .volatile_pending
                    .swap(false, std::sync::atomic::Ordering::AcqRel)
                && volatile_rx.has_changed().unwrap_or(false)
            {
                if let Some(packets) = volatile_rx.borrow_and_update().clone() {
                    return Poll::Ready(Some(packets));
                }
            }
            match std::pin::pin!(outbox.ready()).poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(smallvec::SmallVec::new())),
                Poll::Pending => {
                    if let Some(d) = direct {
                        d.taking(false);
                    }
                    Poll::Pending
                }
            }
        });
        // `None`: the queue or the connection is closed; an empty batch: the outbox has bytes
        // (or the rest of a direct write waits).
        let Some(next) = next.await else {
            break;
        };
        packets = next;
    }
    if let Some(d) = direct {
        d.close().await;
    }

    #[cfg(feature = "tracing")]
    tracing::trace!(sid = %socket.id, "ws closing");
    if !torn {
        // A peer that stopped reading does not hold the task: the close frame gets a second.
        let closing = async {
            if let Some(d) = direct {
                d.write_tail(&mut wr, &socket.counters.queued).await?;
            }
            outbox.write_to(&mut wr).await?;
            super::writer::write_close(&mut wr).await
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), closing)
            .await
            .ok();
    }
    tokio::io::AsyncWriteExt::shutdown(&mut wr).await.ok();
}
/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(make_open_packet(TransportType::Websocket, sid, config));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws, outbox, wr))
)]
async fn upgrade_handshake<H: EngineIoHandler, S, W>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
    outbox: &Outbox,
    wr: &mut W,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    socket
        .internal_tx
        .send(smallvec![Packet::Noop])
        .await
        .map_err(|_| Error::Upgrade)?;

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
            outbox.write_to(wr).await.map_err(tungstenite::Error::Io)?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}
