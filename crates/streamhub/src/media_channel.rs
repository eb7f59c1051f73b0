//! The media channel (`GET /media?token=TOKEN`, `docs/protocol.md` "Media channel"): a plain
//! WebSocket that carries one viewer's `stream:data` instead of its Socket.IO connection.
//!
//! A viewer asks for a token (`media:token`) and opens it before `stream:join`; every join after
//! that sends the frames here, encoded once per frame ([`streamhub_protocol::media_channel`]) and
//! queued as the same shared bytes for every viewer. The writer sends each message at once
//! (`write_buffer_size` 0), so a viewer that reads slowly leaves its unsent frames in its
//! bounded queue (shared bytes) and the kernel, not in a private copy per connection (why:
//! `docs/architecture.md`, "The Socket.IO path").
//!
//! Limits: one channel per Socket.IO connection (so at most `--max-connections`), a queue of
//! `--viewer-queue` frames and `--viewer-queue-bytes` bytes (a full queue drops the frame for that viewer, counted like on the
//! Socket.IO path), and nothing accepted from the client but control frames (1 KiB at most).

use std::str::FromStr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use socketioxide::socket::Sid;
use streamhub_protocol::ErrorCode;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::accept::ConnSlot;
use crate::api_error::error;
use crate::hub::Hub;
use crate::ids;
use crate::sink::{MediaRx, MediaTx, SocketSink};

/// What viewers may send on the channel: nothing but control frames.
const MAX_INCOMING: usize = 1024;

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
    ws: WebSocketUpgrade,
) -> Response {
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
    let failed = (Arc::clone(&hub), sid.clone());
    ws.read_buffer_size(MAX_INCOMING)
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .write_buffer_size(0)
        .on_failed_upgrade(move |_| failed.0.media.remove_exact(&failed.1, id))
        .on_upgrade(move |socket| {
            let span = tracing::info_span!("media", id = %ids::conn_label(&sid));
            async move {
                // The connection counts against its address's limit for as long as it is open.
                let _slot = slot;
                serve(hub, sid, id, rx, closed, socket).await;
            }
            .instrument(span)
        })
}

/// Writes the queued frames until the viewer leaves or its Socket.IO connection ends; then
/// forgets the channel and ends the joins that used it.
async fn serve(
    hub: Arc<Hub>,
    sid: String,
    id: u64,
    mut rx: MediaRx,
    closed: CancellationToken,
    socket: WebSocket,
) {
    let (mut out, mut incoming) = socket.split();
    // The connection broke under a write (the kernel gave up on a peer that stopped reading,
    // after `--tcp-user-timeout-secs`), as opposed to the viewer closing it.
    let mut broken = false;
    loop {
        tokio::select! {
            () = closed.cancelled() => break,
            frame = rx.recv() => match frame {
                Some(bytes) => {
                    let sent = tokio::select! {
                        r = out.send(Message::Binary(bytes)) => r.map_err(|_| true),
                        () = closed.cancelled() => Err(false),
                    };
                    if let Err(failed) = sent {
                        broken = failed;
                        break;
                    }
                }
                None => break,
            },
            msg = incoming.next() => match msg {
                // Pings are answered by the websocket library; data is not expected.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(_)) => {
                    broken = true;
                    break;
                }
                Some(Ok(_)) | None => break,
            },
        }
    }
    hub.media.remove_exact(&sid, id);
    // The joins that sent their frames here end with it; the connection may join again.
    rx.close();
    hub.leave_everywhere(&sid, SocketSink::media_closed);
    if broken {
        // The same peer stopped taking data here; its Socket.IO connection goes too, as an
        // evicted viewer's does, instead of lingering until its heartbeat fails.
        tracing::debug!("media channel broke; disconnecting the viewer");
        let socket = Sid::from_str(&sid)
            .ok()
            .and_then(|s| hub.io.get()?.get_socket(s));
        if let Some(socket) = socket {
            let _ = socket.disconnect();
        }
    }
    // A viewer that stopped reading cannot take a close frame either: do not wait on it.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), out.close()).await;
}
