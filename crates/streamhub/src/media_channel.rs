//! The media channel (`GET /media?token=TOKEN`, `docs/protocol.md` "Media channel"): a plain
//! WebSocket that carries one viewer's `stream:data` instead of its Socket.IO connection.
//!
//! A viewer asks for a token (`media:token`) and opens it before `stream:join`; every join after
//! that sends the frames here, framed once per frame as a whole websocket frame
//! ([`streamhub_protocol::media_channel::ws_frame`]) and queued as the same shared bytes for
//! every viewer.
//!
//! The writer is ours ([`Writer`]), as on the Socket.IO path (`vendor/README.md`, point 2):
//! tungstenite, even with `write_buffer_size` 0, copied every outgoing message (header and
//! payload) into a buffer of its own per connection before writing it. That copy cost CPU on
//! every frame for every viewer (11% of the server's CPU at 2000 viewers on the Socket.IO path,
//! before its writer), and a viewer that stopped reading held a private copy of the frame it
//! was stuck on: with 1 MB frames and 200 never-reading viewers the server's RSS peaked at
//! 270 MB, against 50 MB on the Socket.IO path. With this writer: 70 MB, and 0.73–0.81 cores
//! against 0.90–0.94 at 2000 viewers (`docs/architecture.md`, "The media channel"). Here tungstenite only reads the connection
//! and writes its own control frames (pongs, the close reply) into a small bounded outbox
//! (engineioxide's [`Outbox`], 64 KiB); the writer writes each shared frame with plain writes
//! of the `Bytes` every viewer holds, and the outbox between frames. A plain TCP connection is
//! split into lock-free halves; TLS takes the generic split.
//!
//! Limits: one channel per Socket.IO connection (so at most `--max-connections`), a queue of
//! `--viewer-queue` frames and `--viewer-queue-bytes` bytes (a full queue drops the frame for that viewer, counted like on the
//! Socket.IO path), and nothing accepted from the client but control frames (1 KiB at most).

use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::{Buf, Bytes};
use engineioxide::ws_io::{Outbox, WsIo};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use socketioxide::socket::Sid;
use streamhub_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::accept::ConnSlot;
use crate::api_error::error;
use crate::hub::Hub;
use crate::ids;
use crate::sink::{MediaRx, MediaTx, SocketSink};

/// What viewers may send on the channel: nothing but control frames.
const MAX_INCOMING: usize = 1024;

/// How long closing may take: a viewer that stopped reading cannot take a close frame either.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
pub(crate) struct Params {
    token: Option<String>,
}

/// `GET /media?token=TOKEN`: upgrades to the media channel of the Socket.IO connection that
/// asked for `TOKEN` (`media:token`). The connection id alone (the old `?sid=`) opens nothing:
/// it shows in polling URLs and proxy logs, and whoever held it could take a viewer's channel.
pub(crate) async fn upgrade(
    State(hub): State<Arc<Hub>>,
    Query(params): Query<Params>,
    slot: Option<Extension<ConnSlot>>,
    mut req: Request,
) -> Response {
    // A request that is no websocket upgrade is refused before its token is spent.
    let accepted = match create_response_with_body(&req, Body::empty) {
        Ok(response) => response,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidPayload,
                &format!("the media channel is a websocket: {e}"),
            );
        }
    };
    if hub.draining() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "the server is shutting down",
        );
    }
    let Some(sid) = params
        .token
        .and_then(|t| hub.media_tokens.redeem(&t, std::time::Instant::now()))
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken,
            "the media channel needs a fresh token: emit media:token on your Socket.IO connection, then open /media?token=<token> within 10 s (each token works once)",
        );
    };
    let connected = Sid::from_str(&sid)
        .ok()
        .and_then(|sid| hub.io.get()?.get_socket(sid))
        .is_some();
    if !connected {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "the Socket.IO connection this token was issued to is gone",
        );
    }
    // The registry holds the only sender until a join hands clones to viewer sinks.
    let (tx, rx) = MediaTx::channel(hub.config.viewer_queue);
    let closed = CancellationToken::new();
    let Some(id) = hub.media.insert(&sid, tx, closed.clone()) else {
        return error(
            StatusCode::CONFLICT,
            ErrorCode::AlreadyRegistered,
            "this connection already has a media channel",
        );
    };
    let upgraded = hyper::upgrade::on(&mut req);
    let span = tracing::info_span!("media", id = %ids::conn_label(&sid));
    tokio::spawn(
        async move {
            // The connection counts against its address's limit for as long as it is open.
            let _slot = slot;
            let conn = match upgraded.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!("media channel upgrade failed: {e}");
                    hub.media.remove_exact(&sid, id);
                    return;
                }
            };
            let channel = Channel {
                hub,
                sid,
                id,
                rx,
                closed,
            };
            // Plain TCP (`accept.rs` serves the `TcpStream` itself) splits into halves that
            // share no lock; TLS takes the generic split.
            match engineioxide::ws_io::tcp_halves(conn) {
                Ok((rd, wr)) => channel.serve(rd, wr).await,
                Err(conn) => {
                    let (rd, wr) = tokio::io::split(TokioIo::new(conn));
                    channel.serve(rd, wr).await;
                }
            }
        }
        .instrument(span),
    );
    accepted
}

/// One open media channel.
struct Channel {
    hub: Arc<Hub>,
    sid: String,
    id: u64,
    rx: MediaRx,
    closed: CancellationToken,
}

/// Why a channel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The viewer closed it, or sent data (not part of the protocol).
    Viewer,
    /// The server closed it (the Socket.IO connection ended, the viewer was evicted).
    Server,
    /// The connection broke: under a write (the kernel gave up on a peer that stopped
    /// reading, after `--tcp-user-timeout-secs`), or on a read error.
    Broken,
}

impl Channel {
    /// Writes the queued frames until the viewer leaves or its Socket.IO connection ends; then
    /// forgets the channel and ends the joins that used it.
    async fn serve<R, W>(mut self, rd: R, wr: W)
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let outbox = Arc::new(Outbox::default());
        let config = WebSocketConfig::default()
            .read_buffer_size(MAX_INCOMING)
            .max_message_size(Some(MAX_INCOMING))
            .max_frame_size(Some(MAX_INCOMING));
        let mut ws = WebSocketStream::from_raw_socket(
            WsIo::new(rd, Arc::clone(&outbox)),
            Role::Server,
            Some(config),
        )
        .await;
        let mut writer = Writer {
            wr,
            rest: Bytes::new(),
        };
        let end = tokio::select! {
            () = self.closed.cancelled() => End::Server,
            end = read(&mut ws) => end,
            res = writer.run(&mut self.rx, &outbox) => match res {
                Ok(()) => End::Server,
                Err(_) => End::Broken,
            },
        };
        self.hub.media.remove_exact(&self.sid, self.id);
        // The joins that sent their frames here end with it; the connection may join again.
        self.rx.close();
        self.hub
            .leave_everywhere(&self.sid, SocketSink::media_closed);
        if end == End::Broken {
            // The same peer stopped taking data here; its Socket.IO connection goes too, as an
            // evicted viewer's does, instead of lingering until its heartbeat fails.
            tracing::debug!("media channel broke; disconnecting the viewer");
            let socket = Sid::from_str(&self.sid)
                .ok()
                .and_then(|s| self.hub.io.get()?.get_socket(s));
            if let Some(socket) = socket {
                let _ = socket.disconnect();
            }
        }
        // The frame being written is finished, then the close frame (tungstenite's reply to
        // the viewer's, or ours), unless the connection is broken; all within the bound.
        let closing = async {
            if end != End::Broken {
                writer.finish().await?;
                // Into the outbox. `SinkExt::close`, not `WebSocketStream::close`: after the
                // viewer's close it flushes the reply where the other refuses to send.
                if let Err(e) = SinkExt::close(&mut ws).await {
                    tracing::debug!("media channel close frame: {e}");
                }
                writer.rest = outbox.take();
                writer.finish().await?;
            }
            writer.wr.shutdown().await
        };
        if let Ok(Err(e)) = tokio::time::timeout(CLOSE_WITHIN, closing).await {
            tracing::debug!("media channel close: {e}");
        }
    }
}

/// Reads the viewer's side until it ends. tungstenite answers pings itself (into the outbox,
/// on the read that follows); data is not expected.
async fn read<R: AsyncRead + Unpin>(ws: &mut WebSocketStream<WsIo<R>>) -> End {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(e)) => {
                tracing::debug!("media channel read: {e}");
                return End::Broken;
            }
            Some(Ok(_)) | None => return End::Viewer,
        }
    }
}

/// The channel's writer: each queued frame (a whole websocket frame, shared by every viewer)
/// and tungstenite's control frames, written as they are, nothing copied per viewer. Cancelling
/// a write loses nothing: what is left of the frame stays in `rest`.
struct Writer<W> {
    wr: W,
    /// The unwritten rest of the frame being written.
    rest: Bytes,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Writes control frames and queued frames until the queue closes or a write fails.
    async fn run(&mut self, rx: &mut MediaRx, outbox: &Outbox) -> io::Result<()> {
        loop {
            // Control frames first: a pong does not wait behind the queue.
            self.rest = tokio::select! {
                biased;
                () = outbox.ready() => match outbox.take() {
                    // Closed with nothing left: `ready` would resolve at once from now on.
                    rest if rest.is_empty() && outbox.is_closed() => return Ok(()),
                    rest => rest,
                },
                frame = rx.recv() => match frame {
                    Some(frame) => frame,
                    None => return Ok(()),
                },
            };
            self.finish().await?;
        }
    }

    /// Writes what is left of the current frame, a plain `write` per readiness (no `writev`,
    /// no buffer of ours).
    async fn finish(&mut self) -> io::Result<()> {
        while !self.rest.is_empty() {
            let n = self.wr.write(&self.rest).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.rest.advance(n);
        }
        self.wr.flush().await
    }
}
