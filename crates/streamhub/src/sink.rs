//! Where frames leave the relay for the network: the [`ViewerSink`] of one viewer (its
//! Socket.IO connection, or the media channel it opened). Every viewer of a frame gets the
//! same encoded bytes (built once per frame and kept on it). Sinks only queue, or reserve a
//! direct write that [`crate::direct`] does once the relay is done: they never block, never
//! count (the relay counts what they report), and never await.
//!
//! Also the registry of open media channels ([`MediaChannels`]), which a new viewer sink looks
//! its connection up in, and the slot holding the Socket.IO server handle ([`IoSlot`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use streamhub_protocol::engine_io::{Framed, Placeholder};
use streamhub_protocol::server::Track;
use streamhub_protocol::{DataRef, FrameData, events, server};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::relay::{Frame, FrameKind, Offer, ViewerSink, fits};

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

/// `stream:data` (or `stream:audio`) for one frame. The config goes with key frames and, for
/// audio (which carries it on every chunk), with a viewer's first chunk after a gap.
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
        track: frame.track,
        key: frame.kind == FrameKind::Key,
        init: frame.init,
        resync,
        chunk: frame.chunk.as_ref(),
        config: (frame.kind == FrameKind::Key || resync)
            .then_some(frame.config.as_deref())
            .flatten(),
        capture_time: frame.capture_time,
    }
}

/// The Socket.IO packet of `stream:data` for one frame, framed once per frame (and `resync`
/// value) and shared by every viewer: a binary frame's data rides as the packet's attachment.
fn framed(stream_key: &str, frame: &Frame, resync: bool) -> Framed {
    frame.out.socket_io(resync, || {
        let mut payload = stream_data(stream_key, frame, resync);
        let attachment = match &frame.data {
            FrameData::Binary(b) => {
                payload.data = DataRef::Attachment(Placeholder(0));
                Some(b.clone())
            }
            FrameData::Text(_) => None,
        };
        let event = match frame.track {
            Track::Video => events::STREAM_DATA,
            Track::Audio => events::STREAM_AUDIO,
        };
        Framed::event(event, &payload, attachment)
    })
}

/// A media channel's queue: frames as shared bytes, and the bytes waiting in it.
#[derive(Debug, Clone)]
pub(crate) struct MediaTx {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicU64>,
}

impl MediaTx {
    /// A queue of at most `packets` messages, and its receiving end.
    pub(crate) fn channel(packets: usize) -> (Self, MediaRx) {
        let (tx, rx) = mpsc::channel(packets);
        let queued = Arc::new(AtomicU64::new(0));
        let rx = MediaRx {
            rx,
            queued: Arc::clone(&queued),
        };
        (Self { tx, queued }, rx)
    }

    /// Bytes waiting to be written.
    pub(crate) fn bytes_queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn try_send(&self, msg: Bytes) -> Offer {
        let len = msg.len() as u64;
        // Counted before it can be taken off, so the count never goes below zero.
        self.queued.fetch_add(len, Ordering::Relaxed);
        let refused = match self.tx.try_send(msg) {
            Ok(()) => return Offer::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        };
        self.queued.fetch_sub(len, Ordering::Relaxed);
        refused
    }
}

/// The media channel writer's end of a [`MediaTx`].
#[derive(Debug)]
pub(crate) struct MediaRx {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicU64>,
}

impl MediaRx {
    /// The next message, taken off the queue's byte count.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let msg = self.rx.recv().await?;
        self.queued.fetch_sub(msg.len() as u64, Ordering::Relaxed);
        Some(msg)
    }

    /// No more messages; the senders see the channel closed.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}

/// The part of each viewer's queue only audio may fill, in packets: video stops this many
/// packets short of `--viewer-queue`, so a viewer whose video backs up still gets its audio
/// (a quarter of the queue at most, for small queues).
const AUDIO_RESERVE_PACKETS: usize = 8;
/// The same in bytes, short of `--viewer-queue-bytes` (a quarter at most): 32 KiB is two
/// seconds of 128 kbit/s Opus.
const AUDIO_RESERVE_BYTES: u64 = 32 * 1024;

/// What video may fill of a viewer's queue of `packets` and `budget` bytes: all but the audio
/// reserve.
fn video_share(packets: usize, budget: u64) -> (usize, u64) {
    (
        packets - AUDIO_RESERVE_PACKETS.min(packets / 4),
        budget - AUDIO_RESERVE_BYTES.min(budget / 4),
    )
}

/// Sends frames to one viewer: into its media channel's queue when it opened one before
/// joining, else into its socketioxide queue. Both are bounded in packets (`--viewer-queue`)
/// and in bytes (`--viewer-queue-bytes`) and answer "full" at once. Video frames leave the
/// audio reserve free ([`video_share`]); audio chunks may use the whole queue.
#[derive(Debug, Clone)]
pub(crate) struct SocketSink {
    /// The viewer's socketioxide queue, held directly: reaching it through the `SocketRef`
    /// on every offer was three dependent pointer hops, cache misses across thousands of
    /// viewers (`perf` at 5000 viewers: the offer 10.9% of the server's CPU that way, 5.1% so).
    queue: socketioxide::socket::FrameQueue,
    media: Option<MediaTx>,
    /// The frames' share of the socket's queue, in packets: the rest is for acks and events.
    packets: usize,
    budget: u64,
}

impl SocketSink {
    /// The sink of `socket`'s viewer: frames take at most `packets` of its queue and `budget`
    /// bytes; they go to `media` when given.
    pub(crate) fn new(
        socket: SocketRef,
        media: Option<MediaTx>,
        packets: usize,
        budget: usize,
    ) -> Self {
        Self {
            queue: socket.frame_queue(),
            media,
            packets,
            budget: budget as u64,
        }
    }

    /// Its frames go to a media channel.
    pub(crate) fn uses_media(&self) -> bool {
        self.media.is_some()
    }

    /// Its frames went to a media channel that has closed.
    pub(crate) fn media_closed(&self) -> bool {
        self.media.as_ref().is_some_and(MediaTx::is_closed)
    }

    /// The newest of `frames` (oldest first) that fit its byte budget now: what a joiner's
    /// catch-up can hold.
    pub(crate) fn newest_that_fit<'a>(&self, frames: &'a [Arc<Frame>]) -> &'a [Arc<Frame>] {
        let queued = self.bytes_queued();
        let mut taken = 0u64;
        let mut start = frames.len();
        for (i, f) in frames.iter().enumerate().rev() {
            if !fits(queued + taken, f.data.len(), self.budget) {
                break;
            }
            taken += f.data.len() as u64;
            start = i;
        }
        &frames[start..]
    }
}

impl ViewerSink for SocketSink {
    fn bytes_queued(&self) -> u64 {
        match &self.media {
            Some(media) => media.bytes_queued(),
            None => self.queue.bytes_queued(),
        }
    }

    fn offer(&self, stream_key: &str, frame: &Frame, resync: bool) -> Offer {
        let (packets, budget) = match frame.track {
            Track::Video => video_share(self.packets, self.budget),
            Track::Audio => (self.packets, self.budget),
        };
        if let Some(media) = &self.media {
            let msg = frame.out.media(resync, || {
                let payload = stream_data(stream_key, frame, resync);
                streamhub_protocol::media_channel::ws_frame(&payload, &frame.data)
            });
            // The channel holds `--viewer-queue` messages (as many as `self.packets`): video
            // leaves the last few slots to audio.
            if !fits(media.bytes_queued(), msg.len(), budget)
                || media.tx.capacity() <= self.packets - packets
            {
                return Offer::Full;
            }
            return media.try_send(msg);
        }
        let packet = framed(stream_key, frame, resync);
        if self.queue.packets_queued() >= packets
            || !fits(self.queue.bytes_queued(), packet.len(), budget)
        {
            return Offer::Full;
        }
        if let Some(slot) = self.queue.reserve_direct() {
            crate::direct::defer(slot, &packet);
            return Offer::Sent;
        }
        match self.queue.emit_framed(packet.text, packet.attachment) {
            Ok(()) => Offer::Sent,
            Err(socketioxide::SocketError::InternalChannelFull) => Offer::Full,
            Err(_) => Offer::Closed,
        }
    }
}

/// How long a `media:token` stays valid: long enough for a page to open a websocket on a slow
/// network, short enough that one seen in a proxy's log is stale.
pub(crate) const MEDIA_TOKEN_TTL: Duration = Duration::from_secs(10);

/// The outstanding media channel credentials (`media:token`): single-use, bound to the
/// Socket.IO connection that asked, expiring after [`MEDIA_TOKEN_TTL`]. At most one per
/// connection (a new one replaces the old), so bounded by the connections; expired ones are
/// swept by the ticker. Sans clock: callers pass `now`.
#[derive(Debug, Default)]
pub(crate) struct MediaTokens {
    inner: Mutex<TokenTable>,
}

#[derive(Debug, Default)]
struct TokenTable {
    /// token → (connection id, expiry).
    by_token: HashMap<String, (String, Instant)>,
    /// connection id → its outstanding token.
    by_conn: HashMap<String, String>,
}

impl MediaTokens {
    /// A new token for connection `sid`, replacing the one it had.
    pub(crate) fn issue(&self, sid: &str, now: Instant) -> String {
        let token = crate::ids::media_token();
        let mut t = self.inner.lock();
        if let Some(old) = t.by_conn.insert(sid.to_owned(), token.clone()) {
            t.by_token.remove(&old);
        }
        t.by_token
            .insert(token.clone(), (sid.to_owned(), now + MEDIA_TOKEN_TTL));
        token
    }

    /// The connection `token` was issued to, if it is valid now; it cannot be used again.
    pub(crate) fn redeem(&self, token: &str, now: Instant) -> Option<String> {
        let mut t = self.inner.lock();
        let (sid, expires) = t.by_token.remove(token)?;
        t.by_conn.remove(&sid);
        (now < expires).then_some(sid)
    }

    /// Forgets a connection's token (it disconnected).
    pub(crate) fn forget(&self, sid: &str) {
        let mut t = self.inner.lock();
        if let Some(token) = t.by_conn.remove(sid) {
            t.by_token.remove(&token);
        }
    }

    /// Drops the expired tokens.
    pub(crate) fn sweep(&self, now: Instant) {
        let mut t = self.inner.lock();
        let TokenTable { by_token, by_conn } = &mut *t;
        by_token.retain(|_, (sid, expires)| {
            let keep = now < *expires;
            if !keep {
                by_conn.remove(sid.as_str());
            }
            keep
        });
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let t = self.inner.lock();
        (t.by_token.len(), t.by_conn.len())
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
    tx: MediaTx,
    /// Ends the writer even while it waits on a viewer that stopped reading.
    closed: CancellationToken,
}

impl MediaChannels {
    /// The channel of a connection, if it opened one.
    pub(crate) fn get(&self, sid: &str) -> Option<MediaTx> {
        self.open
            .lock()
            .get(sid)
            .map(|c| &c.tx)
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    /// Registers a channel and returns its id; none if the connection already has an open one.
    pub(crate) fn insert(&self, sid: &str, tx: MediaTx, closed: CancellationToken) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_fits_within_the_budget_or_into_an_empty_queue() {
        assert!(fits(0, 10, 100));
        assert!(fits(90, 10, 100));
        assert!(!fits(91, 10, 100));
        assert!(
            fits(0, 1000, 100),
            "larger than the budget, but the queue is empty"
        );
        assert!(!fits(1, 1000, 100));
        assert!(!fits(u64::MAX, 1, 100), "no overflow");
    }

    #[test]
    fn video_leaves_the_audio_reserve_free() {
        assert_eq!(video_share(64, 1 << 20), (56, (1 << 20) - 32 * 1024));
        assert_eq!(
            video_share(8, 64 * 1024),
            (6, 48 * 1024),
            "a quarter at most"
        );
        assert_eq!(video_share(1, 100), (1, 75));
    }

    #[test]
    fn a_media_token_opens_its_connection_once_and_only_in_time() {
        let tokens = MediaTokens::default();
        let t0 = Instant::now();
        let a = tokens.issue("conn-a", t0);
        assert_eq!(tokens.redeem(&a, t0).as_deref(), Some("conn-a"));
        assert_eq!(tokens.redeem(&a, t0), None, "single use");
        assert_eq!(
            tokens.redeem("conn-a", t0),
            None,
            "the connection id is no token"
        );
        let late = tokens.issue("conn-a", t0);
        assert_eq!(tokens.redeem(&late, t0 + MEDIA_TOKEN_TTL), None, "expired");
        let old = tokens.issue("conn-b", t0);
        let new = tokens.issue("conn-b", t0);
        assert_eq!(tokens.redeem(&old, t0), None, "replaced by the newer one");
        assert_eq!(tokens.redeem(&new, t0).as_deref(), Some("conn-b"));
        tokens.issue("conn-c", t0);
        tokens.issue("conn-d", t0 + Duration::from_secs(5));
        tokens.forget("conn-c");
        assert_eq!(tokens.len(), (1, 1));
        tokens.sweep(t0 + MEDIA_TOKEN_TTL + Duration::from_secs(5));
        assert_eq!(tokens.len(), (0, 0), "expired tokens swept");
    }

    #[tokio::test]
    async fn a_media_queue_counts_its_bytes_in_and_out() {
        let (tx, mut rx) = MediaTx::channel(2);
        assert_eq!(tx.try_send(Bytes::from_static(b"abc")), Offer::Sent);
        assert_eq!(tx.try_send(Bytes::from_static(b"defgh")), Offer::Sent);
        assert_eq!(tx.bytes_queued(), 8);
        assert_eq!(tx.try_send(Bytes::from_static(b"x")), Offer::Full);
        assert_eq!(tx.bytes_queued(), 8, "a refused message is not counted");
        assert_eq!(rx.recv().await.as_deref(), Some(&b"abc"[..]));
        assert_eq!(tx.bytes_queued(), 5);
        rx.close();
        assert_eq!(tx.try_send(Bytes::from_static(b"y")), Offer::Closed);
        assert_eq!(tx.bytes_queued(), 5, "what still waits stays counted");
        assert_eq!(rx.recv().await.as_deref(), Some(&b"defgh"[..]));
        assert_eq!(tx.bytes_queued(), 0);
    }
}
