//! Where frames leave the relay for the network: the [`ViewerSink`] of one viewer (its
//! Socket.IO connection, or the media channel it opened) and the [`GroupSink`] of a stream's
//! level-0 picture viewers on Socket.IO (one room broadcast). Sinks only queue: they never
//! block, never count (the relay counts what they report), and never await.
//!
//! Also the registry of open media channels ([`MediaChannels`]), which a new viewer sink looks
//! its connection up in, and the slot holding the Socket.IO server handle ([`IoSlot`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use streamhub_protocol::{events, server};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::relay::{Frame, FrameKind, GroupOffer, GroupSink, Offer, ViewerSink};

/// The Socket.IO server handle, set once it exists and emptied when the server stops. The
/// handle's state holds the hub, so the hub must not keep it past the end of `run` (a cycle
/// that would keep the whole server alive).
#[derive(Debug, Default)]
pub(crate) struct IoSlot(RwLock<Option<SocketIo>>);

impl IoSlot {
    pub(crate) fn set(&self, io: SocketIo) {
        *self.0.write() = Some(io);
    }

    /// The handle, while the server runs.
    pub(crate) fn get(&self) -> Option<SocketIo> {
        self.0.read().clone()
    }

    pub(crate) fn clear(&self) {
        self.0.write().take();
    }
}

/// `stream:data` for one frame.
pub(crate) fn stream_data<'a>(
    stream_key: &'a str,
    frame: &'a Frame,
    resync: bool,
) -> server::StreamData<'a> {
    server::StreamData {
        stream_key,
        data: frame.out.get(&frame.data),
        timestamp: frame.timestamp,
        seq: frame.seq,
        media: frame.media,
        key: frame.kind == FrameKind::Key,
        init: frame.init,
        resync,
        chunk: frame.chunk.as_ref(),
        config: frame.config.as_deref(),
    }
}

/// Sends frames to one viewer: into its media channel's queue when it opened one before
/// joining, else into its socketioxide queue. Both are bounded (`--viewer-queue`) and answer
/// "full" at once.
#[derive(Debug, Clone)]
pub(crate) struct SocketSink {
    socket: SocketRef,
    media: Option<mpsc::Sender<Bytes>>,
}

impl SocketSink {
    /// The sink of `socket`'s viewer; its frames go to `media` when given.
    pub(crate) fn new(socket: SocketRef, media: Option<mpsc::Sender<Bytes>>) -> Self {
        Self { socket, media }
    }

    /// Its frames go to a media channel.
    pub(crate) fn uses_media(&self) -> bool {
        self.media.is_some()
    }

    /// Its frames went to a media channel that has closed.
    pub(crate) fn media_closed(&self) -> bool {
        self.media.as_ref().is_some_and(mpsc::Sender::is_closed)
    }
}

impl ViewerSink for SocketSink {
    fn groupable(&self) -> bool {
        // The shared send is a Socket.IO room broadcast; media-channel viewers get the shared
        // bytes through their own queue instead.
        self.media.is_none()
    }

    fn offer(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer {
        let payload = stream_data(stream_key, frame, resync);
        if let Some(media) = &self.media {
            let encode = || streamhub_protocol::media_channel::encode(&payload, &frame.data);
            // Shared by every viewer; a resync message is this viewer's own.
            let msg = if resync {
                encode()
            } else {
                frame.out.media(encode)
            };
            return match media.try_send(msg) {
                Ok(()) => Offer::Sent,
                Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
            };
        }
        match self.socket.emit(events::STREAM_DATA, &payload) {
            Ok(()) => Offer::Sent,
            Err(socketioxide::SendError::Socket(
                socketioxide::SocketError::InternalChannelFull,
            )) => Offer::Full,
            Err(_) => Offer::Closed,
        }
    }
}

/// The room of a stream's viewers that get picture frames by one shared send.
fn media_room(key: &str) -> String {
    format!("media:{key}")
}

/// The relay's shared send: a room per stream (`media:KEY`) and one room broadcast per frame.
/// socketioxide encodes a broadcast packet once and queues the same bytes for every member,
/// where `emit` to each socket encodes and copies the packet per viewer (see
/// `docs/architecture.md`, "Fan-out").
#[derive(Debug)]
pub(crate) struct RoomGroup {
    io: std::sync::Arc<IoSlot>,
}

impl RoomGroup {
    /// Shared sends start once `io` holds the Socket.IO server.
    pub(crate) fn new(io: std::sync::Arc<IoSlot>) -> Self {
        Self { io }
    }
}

impl GroupSink<SocketSink> for RoomGroup {
    fn enabled(&self) -> bool {
        self.io.0.read().is_some()
    }

    fn join(&self, stream_key: &str, viewer: &SocketSink) {
        viewer.socket.join(media_room(stream_key));
    }

    fn leave(&self, stream_key: &str, viewer: &SocketSink) {
        viewer.socket.leave(media_room(stream_key));
    }

    fn broadcast(&self, stream_key: &str, frame: &Frame) -> GroupOffer {
        use futures_util::FutureExt;
        use socketioxide::{BroadcastError, SocketError};
        let guard = self.io.0.read();
        let Some(io) = guard.as_ref() else {
            return GroupOffer::default();
        };
        let payload = stream_data(stream_key, frame, false);
        // The local adapter sends before its future is first polled; it is ready at once.
        match io
            .to(media_room(stream_key))
            .emit(events::STREAM_DATA, &payload)
            .now_or_never()
        {
            Some(Ok(())) => GroupOffer::default(),
            Some(Err(BroadcastError::Socket(errors))) => {
                let full = errors
                    .iter()
                    .filter(|e| matches!(e, SocketError::InternalChannelFull))
                    .count();
                GroupOffer {
                    full,
                    closed: errors.len() - full,
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, stream = stream_key, "shared send failed");
                GroupOffer::default()
            }
            None => {
                tracing::warn!(stream = stream_key, "shared send did not complete at once");
                GroupOffer::default()
            }
        }
    }
}

/// The open media channels, by Socket.IO connection id. Each entry has an id, so a channel
/// that ends forgets itself and not a newer one of the same connection. Bounded by the
/// connections: one channel per Socket.IO connection.
#[derive(Debug, Default)]
pub(crate) struct MediaChannels {
    open: Mutex<HashMap<String, Channel>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Channel {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    /// Ends the writer even while it waits on a viewer that stopped reading.
    closed: CancellationToken,
}

impl MediaChannels {
    /// The channel of a connection, if it opened one.
    pub(crate) fn get(&self, sid: &str) -> Option<mpsc::Sender<Bytes>> {
        self.open
            .lock()
            .get(sid)
            .map(|c| &c.tx)
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    /// Registers a channel and returns its id; none if the connection already has an open one.
    pub(crate) fn insert(
        &self,
        sid: &str,
        tx: mpsc::Sender<Bytes>,
        closed: CancellationToken,
    ) -> Option<u64> {
        let mut open = self.open.lock();
        if open.get(sid).is_some_and(|c| !c.tx.is_closed()) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.insert(sid.to_owned(), Channel { id, tx, closed });
        Some(id)
    }

    /// Channels open now.
    pub(crate) fn open_count(&self) -> usize {
        self.open.lock().len()
    }

    /// Closes a connection's channel (its Socket.IO connection ended, or was evicted).
    pub(crate) fn remove(&self, sid: &str) {
        if let Some(c) = self.open.lock().remove(sid) {
            c.closed.cancel();
        }
    }

    /// Forgets channel `id` if it is still the connection's channel.
    pub(crate) fn remove_exact(&self, sid: &str, id: u64) {
        let mut open = self.open.lock();
        if open.get(sid).is_some_and(|c| c.id == id) {
            open.remove(sid);
        }
    }
}
